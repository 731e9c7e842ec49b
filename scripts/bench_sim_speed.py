"""Simulation speed of one program on the RTL, from a cold start: Verilog generation, Verilator build,
the testbench's setup, load, run, read-back and check, against the 10-minute budget of issue #11.

The build root is a fresh temporary directory unless ``--build-root`` is given, so generation and the
build are measured, not found in the cache. Writes ``<out>/bench_sim_speed.json`` and ``.md``: wall and
CPU seconds per stage, simulated cycles per second (wall and CPU), the machine's load average before
and after, and whether the whole ran inside ``--budget`` seconds. Exit 1 if not bit-exact / not
cycle-exact, or over budget.

    nice -n 10 python scripts/bench_sim_speed.py /tmp/simspeed/a2q --config cfg.json --out results/sim_speed
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from a2q import program as prog  # noqa: E402
from a2q.jsonio import write_json, write_text  # noqa: E402
from a2q.progress import Progress  # noqa: E402
from hw.config import AcceleratorConfig  # noqa: E402
from sim import runner  # noqa: E402
from sim.simulate import simulate  # noqa: E402

#: issue #11: the full 64-graph REDDIT-BINARY simulation, build included, in under 10 minutes
BUDGET_S = 600.0
STAGES = ("generate", "build", "setup", "load", "run", "read", "check")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("program", help="program directory (a2q export)")
    ap.add_argument("--config", default=None, help="accelerator config JSON (default: fit the program)")
    ap.add_argument("--lanes", type=int, default=16)
    ap.add_argument("--pes", type=int, default=16)
    ap.add_argument("--sim", default="verilator", choices=runner.SIMULATORS)
    ap.add_argument("--build-root", default=None, help="reuse this build cache (default: a fresh one)")
    ap.add_argument("--budget", type=float, default=BUDGET_S, help="seconds (default 600)")
    ap.add_argument("--out", default="results/sim_speed")
    args = ap.parse_args(argv)

    program = prog.load(args.program)
    cfg = AcceleratorConfig.load(args.config) if args.config else \
        AcceleratorConfig.fit(program, lanes=args.lanes, pes=args.pes)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="a2q-simspeed-") as tmp, \
            Progress(total=3, desc="bench_sim_speed", unit="stage") as bar:
        root = Path(args.build_root) if args.build_root else Path(tmp)

        def progress(stage):
            bar.set_postfix(stage=stage)
            if not stage.startswith("generate"):
                bar.update(1, note=f"{stage} starts")
        t0 = time.perf_counter()
        rep = simulate(args.program, config=cfg, sim=args.sim, build_root=root, progress=progress)
        total = time.perf_counter() - t0
        bar.update(1, note="simulation done")
    w = rep["wall_s"]
    cycles = rep["rtl_cycles"]["total"]
    result = {
        "program": str(Path(args.program).resolve()), "simulator": args.sim,
        "verilator_threads": 1, "testbench_torch_threads": 1, "cpus": os.cpu_count(),
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "nodes": program.num_nodes, "nnz": program.nnz, "layers": program.num_layers,
        "config": cfg.to_json(), "cycles": cycles,
        "mismatches": rep["mismatches"], "cycles_match": rep["cycles_match"],
        "wall_s": {**{k: w.get(k) for k in STAGES}, "total": total},
        "cpu_s": rep.get("cpu_s"),
        "cycles_per_s": rep["sim_cycles_per_s"],
        "cycles_per_cpu_s": cycles / rep["cpu_s"]["run"] if rep.get("cpu_s", {}).get("run") else None,
        "budget_s": args.budget, "within_budget": total < args.budget,
        "build_flags": {"verilator": runner.VERILATOR_BUILD_ARGS + runner.VERILATOR_PUBLIC_ARGS,
                        "make": runner.VERILATOR_MAKE_FLAGS},
    }
    out = Path(args.out)
    write_json(out / "bench_sim_speed.json", result)
    la, lb = result["load_average_before"], result["load_average_after"]
    lines = [f"# Simulation speed: {Path(args.program).name} on {args.sim} ({program.num_nodes:,} nodes, "
             f"{cycles:,} cycles, L = {cfg.lanes}, P = {cfg.pes})", "",
             f"bit-exact: {rep['mismatches'] == 0}, cycles == model: {rep['cycles_match']}; one simulator thread, "
             f"{os.cpu_count()} CPUs, load average {la[0]:.1f} before, {lb[0]:.1f} after", "",
             "| stage | " + " | ".join(STAGES) + " | total |", "|---" * (len(STAGES) + 2) + "|",
             "| wall s | " + " | ".join(f"{w[k]:.1f}" if w.get(k) is not None else "-" for k in STAGES)
             + f" | {total:.1f} |", "",
             f"run: {result['cycles_per_s']:,.0f} cycles/s wall"
             + (f", {result['cycles_per_cpu_s']:,.0f} per CPU second" if result["cycles_per_cpu_s"] else ""),
             f"budget {args.budget:.0f} s: {'met' if result['within_budget'] else 'MISSED'} ({total:.0f} s)"]
    write_text(out / "bench_sim_speed.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    ok = rep["mismatches"] == 0 and rep["cycles_match"] and result["within_budget"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
