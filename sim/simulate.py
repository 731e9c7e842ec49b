"""Simulate a program on the generated RTL: generate Verilog, build (cached), run the cocotb bench.

    report = simulate("runs/cora/program", lanes=16, pes=16)          # Verilator
    report = simulate(path, config=cfg, sim="icarus", out="rep.json")

The report (JSON) holds ``mismatches``, ``first_mismatch`` (layer, phase, node, channel),
``rtl_cycles`` and ``model_cycles`` per phase, and the simulation wall time.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

from a2q import program as prog
from a2q.jsonio import write_json
from hw import memory_map as mm
from hw.config import AcceleratorConfig

from . import runner

TOPLEVEL = "a2q_accel"
TEST_MODULE = "sim.tb_accelerator"
#: bus -> (toplevel, cocotb test module): the bare core's load port, or the AXI wrapper (hw/axi.py)
BUSES = {"none": (TOPLEVEL, TEST_MODULE), "axi": ("a2q_axi", "sim.tb_axi")}
#: How the testbench moves memory images in and results out (sim/tb_accelerator.py).
IO_METHODS = ("backdoor", "port")


def _generator_fingerprint() -> bytes:
    """The hw/ sources and the Amaranth version: what, besides the config, decides the Verilog."""
    import amaranth

    import hw

    h = hashlib.sha256(amaranth.__version__.encode())
    for src in sorted(Path(hw.__file__).parent.glob("*.py")) + sorted(Path(hw.__file__).parent.glob("*.vlt")):
        h.update(src.name.encode())
        h.update(src.read_bytes())
    return h.digest()


def verilog_for(cfg: AcceleratorConfig, build_root: Path = runner.DEFAULT_BUILD_ROOT, bus: str = "none",
                primitives: str = "none") -> Path:
    """Generated Verilog for ``cfg``, cached by a hash of the config and of the generator's sources
    (generation is deterministic, so equal keys mean equal Verilog)."""
    from hw.generate import generate

    top = BUSES[bus][0]
    h = hashlib.sha256(json.dumps(cfg.to_json(), sort_keys=True).encode())
    h.update(_generator_fingerprint())
    h.update(primitives.encode())
    key = h.hexdigest()[:16]
    path = Path(build_root) / "verilog" / f"{top}-{key}.v"
    if not path.exists():
        if bus == "axi":
            from hw.axi import generate_axi

            generate_axi(cfg, path, top, primitives)
        else:
            generate(cfg, path, top, primitives)
    return path


def simulate(program_dir, config: AcceleratorConfig | None = None, lanes: int = 16, pes: int = 16,
             sim: str = "verilator", out: str | os.PathLike | None = None, zero_skip: int = 1,
             build_root: Path = runner.DEFAULT_BUILD_ROOT, progress=None, io: str = "backdoor",
             bus: str = "none", primitives: str = "none") -> dict:
    """Run ``program_dir`` on the RTL; returns the report (also written to ``out`` if given).

    ``io``: ``backdoor`` loads and reads the memories through the simulator's handles (fast),
    ``port`` through the load port, one clock per word (see sim/backdoor.py).
    ``bus="axi"``: run it through the AXI wrapper instead (``hw/axi.py``, testbench ``sim/tb_axi.py``:
    every word over AXI4, ``io`` does not apply).
    ``progress``: optional callable(stage: str) told when each stage starts.
    ``primitives``: simulate the Verilog generated with a vendor's primitives (``hw/primitives.py``; the
    ECP5 netlist that ``a2q hw synth`` builds), on their simulation models.
    """
    say = progress or (lambda stage: None)
    if io not in IO_METHODS:
        raise ValueError(f"io must be one of {IO_METHODS}, got {io!r}")
    program = prog.load(program_dir)
    cfg = config or AcceleratorConfig.fit(program, lanes=lanes, pes=pes, zero_skip=zero_skip)
    cfg.check(program)
    runner.ensure_simulator(sim)
    t0 = time.perf_counter()
    say("generate Verilog")
    if bus not in BUSES:
        raise ValueError(f"unknown bus {bus!r}; choose one of {', '.join(BUSES)}")
    toplevel, test_module = BUSES[bus]
    verilog = verilog_for(cfg, build_root, bus, primitives)
    t_generate = time.perf_counter() - t0
    say(f"build ({sim})")
    t_build = time.perf_counter()
    # the bare-core bench loads and reads the memory arrays directly: they must be visible to it
    memories = mm.MEMORIES if bus == "none" else ()
    from hw.primitives import SIM_MODELS

    build_dir = runner.build(verilog, toplevel, sim, build_root, memories=memories, models=SIM_MODELS[primitives])
    t_build = time.perf_counter() - t_build
    say("load, run, read back")
    with tempfile.TemporaryDirectory(prefix="a2q-sim-") as tmp:
        cfg_path = cfg.save(Path(tmp) / "config.json")
        rep_path = Path(tmp) / "report.json"
        env = {"A2Q_PROGRAM": str(Path(program_dir).resolve()), "A2Q_CONFIG": str(cfg_path),
               "A2Q_REPORT": str(rep_path), "A2Q_SIMULATOR": sim, "A2Q_IO": io,
               "A2Q_ZERO_INIT": "1" if sim in runner.ZERO_INIT_SIMULATORS else "0"}
        runner.run(build_dir, toplevel, test_module, sim, extra_env=env, test_dir=Path(tmp),
                   log_file=Path(tmp) / "sim.log")
        if not rep_path.exists():
            log = (Path(tmp) / "sim.log").read_text()[-4000:] if (Path(tmp) / "sim.log").exists() else ""
            raise RuntimeError(f"the testbench wrote no report; simulator log tail:\n{log}")
        report = json.loads(rep_path.read_text())
    report["wall_s"]["generate"] = t_generate
    report["wall_s"]["build"] = t_build
    report["wall_s"]["flow"] = time.perf_counter() - t0
    report["verilog"] = str(verilog)
    report["primitives"] = primitives
    if out is not None:
        write_json(out, report)
    return report
