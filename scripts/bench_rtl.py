"""RTL benchmark: the full Cora GCN programs (A2Q, uniform INT4, uniform INT8) on ONE accelerator config.

For each program: RTL and model cycles per phase, speedup against INT4 and INT8, simulation wall time
and simulated cycles per second. Checkpoints come from `scripts/bench_accuracy.py` (results/runs/...)
or are trained here (one seed) when missing. Writes results/bench_rtl.json and results/bench_rtl.md.

    python scripts/bench_rtl.py --dataset Cora --lanes 16 --pes 16 --sim verilator
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from a2q.export import export_checkpoint  # noqa: E402
from a2q.jsonio import write_json, write_text  # noqa: E402
from a2q.program import save  # noqa: E402
from a2q.trainer import parse_train_args, run_train  # noqa: E402
from hw.config import AcceleratorConfig  # noqa: E402
from hw.latency import label, latency  # noqa: E402
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
    ap.add_argument("--out", default="results")
    ap.add_argument("--clock-mhz", type=float, default=100.0,
                    help="clock for µs/inference where `a2q hw synth` has no Fmax for the config (labelled stated)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    programs = {}
    for name in VARIANTS:
        programs[name] = export_checkpoint(checkpoint(args, name), args.data_root)
        save(programs[name], out / "programs" / f"{args.dataset}-{name}")
    cfg = AcceleratorConfig.covering(programs.values(), lanes=args.lanes, pes=args.pes)
    rows = {}
    for name in VARIANTS:
        t0 = time.perf_counter()
        rep = simulate(out / "programs" / f"{args.dataset}-{name}", config=cfg, sim=args.sim,
                       out=out / f"bench_rtl_{args.dataset}-{name}.json")
        rows[name] = {"avg_bits": programs[name].avg_bits(), "rtl_cycles": rep["rtl_cycles"],
                      "model_cycles": rep["model_cycles"], "cycles_match": rep["cycles_match"],
                      "mismatches": rep["mismatches"], "unresolved_words": rep["unresolved_words"],
                      "sim_wall_s": rep["wall_s"], "sim_cycles_per_s": rep["sim_cycles_per_s"],
                      "load_words": rep["load_words"], "wall_s": time.perf_counter() - t0}
        print(f"{name}: {rep['rtl_cycles']['total']:,} cycles, mismatches {rep['mismatches']}, "
              f"run {rep['wall_s']['run']:.1f} s")
    for r in rows.values():
        for base in ("INT4", "INT8"):
            r[f"speedup_vs_{base}"] = rows[base]["rtl_cycles"]["total"] / r["rtl_cycles"]["total"]
        r["latency"] = latency(r["rtl_cycles"]["total"], cfg, clock_mhz=args.clock_mhz)
    result = {"dataset": args.dataset, "simulator": args.sim, "config": cfg.to_json(), "programs": rows}
    write_json(out / "bench_rtl.json", result)
    md = markdown(result)
    write_text(out / "bench_rtl.md", md)
    print(md)
    return 0


def markdown(result) -> str:
    cfg = result["config"]
    lines = [f"{result['dataset']} GCN programs on one config (L={cfg['lanes']}, P={cfg['pes']}), "
             f"{result['simulator']}; RTL cycles (model cycles are identical where marked).", "",
             "| program | avg bits | combine | aggregate | requant | stall | total | = model | bit-exact | "
             "vs INT4 | vs INT8 | load+run+read (s) | sim cycles/s | µs/inference | fits |", "|---|" + "---|" * 14]
    for name, r in result["programs"].items():
        c = r["rtl_cycles"]
        lines.append(f"| {name} | {r['avg_bits']:.2f} | " + " | ".join(f"{c[k]:,}" for k in PHASES) +
                     f" | {'yes' if r['cycles_match'] else 'NO'} | "
                     f"{'yes' if r['mismatches'] == 0 and r['unresolved_words'] == 0 else 'NO'} | "
                     f"{r['speedup_vs_INT4']:.2f}x | {r['speedup_vs_INT8']:.2f}x | "
                     f"{r['sim_wall_s']['total']:.1f} | {r['sim_cycles_per_s']:,.0f} | " +
                     (f"{label(r['latency'])} | {r['latency']['fit']['part']}: "
                      f"{'yes' if r['latency']['fit']['fits'] else 'no'} |" if "latency" in r else "- | - |"))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
