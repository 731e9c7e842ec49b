"""RTL benchmark: the full Cora GCN programs (A2Q, uniform INT4, uniform INT8) on ONE accelerator config.

For each program: RTL and model cycles per phase, speedup against INT4 and INT8, simulation wall time
and simulated cycles per second, for each testbench I/O method of ``--io`` (``backdoor``: memory images
written into and results read from the memory arrays; ``port``: one clock per word through the load
port), so both figures come from the same run. Checkpoints come from `scripts/bench_accuracy.py` (results/runs/...)
or are trained here (one seed) when missing. Writes results/bench_rtl.json and results/bench_rtl.md.

    python scripts/bench_rtl.py --dataset Cora --lanes 16 --pes 16 --sim verilator --io backdoor,port
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from a2q.export import export_checkpoint  # noqa: E402
from a2q.jsonio import write_json, write_text  # noqa: E402
from a2q.program import save  # noqa: E402
from a2q.trainer import parse_train_args, run_train  # noqa: E402
from hw.config import AcceleratorConfig  # noqa: E402
from sim.simulate import simulate  # noqa: E402

VARIANTS = {"A2Q": ["--method", "a2q", "--target-bits", "2.0"],
            "INT4": ["--method", "uniform", "--bits", "4"],
            "INT8": ["--method", "uniform", "--bits", "8", "--weight-bits", "8"]}
PHASES = ("combine", "aggregate", "requant", "stall", "total")


def checkpoint(args, name: str) -> Path:
    ck = Path(args.runs) / f"{args.dataset}-{name}" / "model.pt"
    if not ck.exists():
        run_train(parse_train_args(["--dataset", args.dataset, "--seeds", "0", "--out", str(ck.parent),
                                "--no-progress", *VARIANTS[name]] +
                               (["--data-root", args.data_root] if args.data_root else [])))
    return ck


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="Cora")
    ap.add_argument("--lanes", type=int, default=16)
    ap.add_argument("--pes", type=int, default=16)
    ap.add_argument("--sim", default="verilator", choices=["verilator", "icarus"])
    ap.add_argument("--runs", default="results/runs", help="where bench_accuracy left its checkpoints")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--io", default="backdoor,port", help="testbench I/O methods to time, comma list")
    ap.add_argument("--programs", default=",".join(VARIANTS), help="comma list of " + ", ".join(VARIANTS))
    ap.add_argument("--out", default="results")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    programs = {}
    for name in VARIANTS:
        programs[name] = export_checkpoint(checkpoint(args, name), args.data_root)
        save(programs[name], out / "programs" / f"{args.dataset}-{name}")
    cfg = AcceleratorConfig.covering(programs.values(), lanes=args.lanes, pes=args.pes)
    ios = [m for m in args.io.split(",") if m]
    rows = {}
    for name in VARIANTS:
        if name not in args.programs.split(","):
            continue
        for io in ios:
            t0 = time.perf_counter()
            rep = simulate(out / "programs" / f"{args.dataset}-{name}", config=cfg, sim=args.sim, io=io,
                           out=out / f"bench_rtl_{args.dataset}-{name}-{io}.json")
            row = {"avg_bits": programs[name].avg_bits(), "rtl_cycles": rep["rtl_cycles"],
                   "model_cycles": rep["model_cycles"], "cycles_match": rep["cycles_match"],
                   "mismatches": rep["mismatches"], "unresolved_words": rep["unresolved_words"],
                   "sim_wall_s": rep["wall_s"], "sim_cpu_s": rep.get("cpu_s"),
                   "sim_cycles_per_s": rep["sim_cycles_per_s"],
                   "load_words": rep["load_words"], "io": io, "wall_s": time.perf_counter() - t0}
            rows.setdefault(name, {})[io] = row
            print(f"{name} [{io}]: {rep['rtl_cycles']['total']:,} cycles, mismatches {rep['mismatches']}, "
                  f"load {rep['wall_s']['load']:.1f} s, run {rep['wall_s']['run']:.1f} s, "
                  f"read {rep['wall_s']['read']:.1f} s (CPU {rep['cpu_s']['total']:.1f} s)", flush=True)
    for by_io in rows.values():
        for r in by_io.values():
            for base in ("INT4", "INT8"):
                if base in rows:
                    r[f"speedup_vs_{base}"] = rows[base][r["io"]]["rtl_cycles"]["total"] / r["rtl_cycles"]["total"]
    result = {"dataset": args.dataset, "simulator": args.sim, "config": cfg.to_json(), "programs": rows,
              "threads": torch.get_num_threads()}
    write_json(out / "bench_rtl.json", result)
    md = markdown(result)
    write_text(out / "bench_rtl.md", md)
    print(md)
    return 0


def markdown(result) -> str:
    cfg = result["config"]
    lines = [f"{result['dataset']} GCN programs on one config (L={cfg['lanes']}, P={cfg['pes']}), "
             f"{result['simulator']}, {result.get('threads', 1)} torch thread; RTL cycles (model cycles are "
             "identical where marked); testbench I/O through the memory arrays (backdoor) or the load port; "
             "wall times, and the CPU time of the simulator process.", "",
             "| program | I/O | avg bits | combine | aggregate | requant | stall | total | = model | bit-exact | "
             "vs INT4 | vs INT8 | load (s) | run (s) | read (s) | load+run+read (s) | CPU load+run+read (s) | "
             "sim cycles/s |",
             "|---|" + "---|" * 17]
    sp = lambda r, k: f"{r[k]:.2f}x" if k in r else "-"  # noqa: E731
    for name, by_io in result["programs"].items():
        for io, r in by_io.items():
            c, w = r["rtl_cycles"], r["sim_wall_s"]
            cpu = f"{r['sim_cpu_s']['total']:.1f}" if r.get("sim_cpu_s") else "-"
            lines.append(f"| {name} | {io} | {r['avg_bits']:.2f} | " + " | ".join(f"{c[k]:,}" for k in PHASES) +
                         f" | {'yes' if r['cycles_match'] else 'NO'} | "
                         f"{'yes' if r['mismatches'] == 0 and r['unresolved_words'] == 0 else 'NO'} | "
                         f"{sp(r, 'speedup_vs_INT4')} | {sp(r, 'speedup_vs_INT8')} | {w['load']:.1f} | "
                         f"{w['run']:.1f} | {w['read']:.1f} | {w['total']:.1f} | {cpu} | "
                         f"{r['sim_cycles_per_s']:,.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
