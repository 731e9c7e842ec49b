"""RTL benchmark: the full Cora GCN programs (A2Q, INT4 as trained, INT4 with binary input) on one
accelerator config, with zero-word skipping on and off, and E = 1 or 4 edges aggregated per cycle.

For each program and skip setting: RTL and model cycles per phase and per layer, bit-exactness,
speedup against both baselines (INT4 as trained, and the fair "INT4 (binary input)"), in total and
per layer, combine cycles against the ideal bound sum_j nz_words_j * T_out, the aggregation phase's
share, feature memory in KB (dense and sparse layout), and simulation wall time. The testbench
loads and reads the memories through their arrays (``--io backdoor``) or through the load port, one
clock per word (``port``); every I/O method of ``--io`` after the first is timed on the first setting
too, in the same run. Checkpoints come from results/runs/<dataset>-<name> or are trained here (one
seed) when missing. Writes results/bench_rtl.json and results/bench_rtl.md.

    python scripts/bench_rtl.py --dataset Cora --lanes 16 --pes 16 --sim verilator --io backdoor,port
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from a2q import integer  # noqa: E402
from a2q.cycle_model import cycles_for_config, speedup  # noqa: E402
from a2q.export import export_checkpoint  # noqa: E402
from a2q.jsonio import write_json, write_text  # noqa: E402
from a2q.program import save  # noqa: E402
from a2q.trainer import parse_train_args, run_train  # noqa: E402
from hw import memory_map as mm  # noqa: E402
from hw.config import AcceleratorConfig  # noqa: E402
from hw.latency import label, latency  # noqa: E402
from sim.simulate import simulate  # noqa: E402

TRAIN = {"A2Q": ["--method", "a2q", "--target-bits", "2.0"],
         "INT4": ["--method", "uniform", "--bits", "4"]}
#: program name -> (checkpoint, binary-input encoding)
PROGRAMS = {"A2Q": ("A2Q", False), "INT4": ("INT4", False), "INT4 (binary input)": ("INT4", True)}
BASELINES = ("INT4", "INT4 (binary input)")
PHASES = ("combine", "aggregate", "requant", "stall", "total")


def checkpoint(args, name: str) -> Path:
    ck = Path(args.runs) / f"{args.dataset}-{name}" / "model.pt"
    if not ck.exists():
        run_train(parse_train_args(["--dataset", args.dataset, "--seeds", "0", "--out", str(ck.parent),
                                    "--hidden", str(args.hidden), "--no-progress", *TRAIN[name]] +
                                   (["--data-root", args.data_root] if args.data_root else [])))
    return ck


def slug(name: str) -> str:
    return name.replace(" (binary input)", "-bin")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="Cora")
    ap.add_argument("--hidden", type=int, default=16, help="hidden channels when a checkpoint is trained here")
    ap.add_argument("--lanes", type=int, default=16)
    ap.add_argument("--pes", type=int, default=16)
    ap.add_argument("--sim", default="verilator", choices=["verilator", "icarus"])
    ap.add_argument("--settings", default="1x1,0x1,1x4",
                    help="accelerator settings to run, SKIPxE: zero-word skipping (1/0) x edges per cycle")
    ap.add_argument("--runs", default="results/runs", help="where bench_accuracy left its checkpoints")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--io", default="backdoor", help="testbench I/O methods, comma list (backdoor, port)")
    ap.add_argument("--programs", default=",".join(PROGRAMS), help="comma list of " + ", ".join(PROGRAMS))
    ap.add_argument("--out", default="results")
    ap.add_argument("--clock-mhz", type=float, default=100.0,
                    help="clock for µs/inference where `a2q hw synth` has no Fmax for the config (labelled stated)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    ios = [m for m in args.io.split(",") if m]
    io_timing = {}
    programs = {}
    wanted = args.programs.split(",")
    for name, (ck, binary) in PROGRAMS.items():
        if name not in wanted and not (name in BASELINES and any(w in PROGRAMS for w in wanted)):
            continue
        programs[name] = export_checkpoint(checkpoint(args, ck), args.data_root, binary=binary)
        save(programs[name], out / "programs" / f"{args.dataset}-{slug(name)}")
    accs = {name: integer.accuracy(p) for name, p in programs.items()}
    runs = {}
    for setting in args.settings.split(","):
        skip, edges = (int(v) for v in setting.lower().split("x"))
        cfg = AcceleratorConfig.covering(programs.values(), lanes=args.lanes, pes=args.pes, zero_skip=skip,
                                         edges_per_cycle=edges)
        rows = {}
        for name, program in programs.items():
            t0 = time.perf_counter()
            rep = simulate(out / "programs" / f"{args.dataset}-{slug(name)}", config=cfg, sim=args.sim, io=ios[0],
                           out=out / f"bench_rtl_{args.dataset}-{slug(name)}-skip{skip}-e{edges}.json")
            if not runs:   # the first setting: time the other I/O methods on the same program and config
                io_timing[name] = {ios[0]: rep["wall_s"]}
                for io in ios[1:]:
                    other = simulate(out / "programs" / f"{args.dataset}-{slug(name)}", config=cfg, sim=args.sim,
                                     io=io, out=out / f"bench_rtl_{args.dataset}-{slug(name)}-{io}.json")
                    assert other["rtl_cycles"] == rep["rtl_cycles"] and other["mismatches"] == rep["mismatches"]
                    io_timing[name][io] = other["wall_s"]
            model = cycles_for_config(program, cfg)
            layers = model.to_json()["layers"]
            rows[name] = {"avg_bits": program.avg_bits(), "int_test_acc": accs[name],
                          "rtl_cycles": rep["rtl_cycles"], "model_cycles": rep["model_cycles"],
                          "model_layers": layers, "cycles_match": rep["cycles_match"],
                          "mismatches": rep["mismatches"], "unresolved_words": rep["unresolved_words"],
                          "combine_over_ideal": model.combine / max(1, sum(x.combine_ideal for x in model.layers)),
                          "aggregate_share": (model.aggregate + model.stall) / model.total,
                          "feature_kb": mm.feature_kb(program, cfg),
                          "sim_wall_s": rep["wall_s"], "sim_cycles_per_s": rep["sim_cycles_per_s"],
                          "load_words": rep["load_words"], "wall_s": time.perf_counter() - t0,
                          "latency": latency(rep["rtl_cycles"]["total"], cfg, clock_mhz=args.clock_mhz)}
            print(f"skip={skip} E={edges} {name}: {rep['rtl_cycles']['total']:,} cycles, "
                  f"mismatches {rep['mismatches']}, "
                  f"cycles match {rep['cycles_match']}, run {rep['wall_s']['run']:.1f} s", flush=True)
        for r in rows.values():
            r["speedup"] = {}
            for base in BASELINES:
                sp = speedup({"cyc_total": r["rtl_cycles"]["total"], "layers": r["model_layers"]},
                             {"cyc_total": rows[base]["rtl_cycles"]["total"], "layers": rows[base]["model_layers"]})
                r["speedup"][base] = sp
        runs[f"skip{skip}-e{edges}"] = {"zero_skip": skip, "edges": edges, "config": cfg.to_json(), "programs": rows}
    result = {"dataset": args.dataset, "simulator": args.sim, "threads": torch.get_num_threads(), "runs": runs,
              "io_timing": io_timing}
    write_json(out / "bench_rtl.json", result)
    md = markdown(result)
    write_text(out / "bench_rtl.md", md)
    print(md)
    return 0


def markdown(result) -> str:
    lines = []
    for run in result["runs"].values():
        cfg = run["config"]
        nl = len(next(iter(run["programs"].values()))["model_layers"])
        lines += [f"### {result['dataset']}, L={cfg['lanes']}, P={cfg['pes']}, zero-word skipping "
                  f"{'on' if run['zero_skip'] else 'off'}, E={run.get('edges', 1)} edges per cycle "
                  f"({result['simulator']})", "",
                  "| program | int acc (%) | avg bits | combine | aggregate | requant | stall | total | " +
                  " | ".join(f"layer {i}" for i in range(nl)) + " | = model | bit-exact | combine / ideal | "
                  "aggregation share | feature KB dense / sparse | vs INT4 | vs INT4 (binary input) | "
                  "sim wall (s) | µs/inference | fits |", "|---|" + "---|" * (17 + nl)]
        for name, r in run["programs"].items():
            c = r["rtl_cycles"]
            sp = " | ".join(f"{r['speedup'][b]['total']:.2f}x (" +
                            ", ".join(f"{x:.2f}" for x in r["speedup"][b]["layers"]) + ")" for b in BASELINES)
            kb = r["feature_kb"]
            lines.append(
                f"| {name} | {100 * r['int_test_acc']:.1f} | {r['avg_bits']:.2f} | " +
                " | ".join(f"{c[k]:,}" for k in PHASES) + " | " +
                " | ".join(f"{x['total']:,}" for x in r["model_layers"]) +
                f" | {'yes' if r['cycles_match'] else 'NO'} | "
                f"{'yes' if r['mismatches'] == 0 and r['unresolved_words'] == 0 else 'NO'} | "
                f"{r['combine_over_ideal']:.3f} | {100 * r['aggregate_share']:.1f}% | "
                f"{kb['dense']:.1f} / {kb['sparse']:.1f} | {sp} | {r['sim_wall_s']['total']:.1f} | " +
                (f"{label(r['latency'])} | {r['latency']['fit']['part']}: "
                 f"{'yes' if r['latency']['fit']['fits'] else 'no'} |" if "latency" in r else "- | - |"))
        lines.append("")
    if result.get("io_timing"):
        lines += ["Testbench I/O, first setting: wall seconds load / run / read.", "",
                  "| program | " + " | ".join(next(iter(result["io_timing"].values()))) + " |",
                  "|---|" + "---|" * len(next(iter(result["io_timing"].values())))]
        for name, by_io in result["io_timing"].items():
            lines.append(f"| {name} | " + " | ".join(f"{w['load']:.1f} / {w['run']:.1f} / {w['read']:.1f}"
                                                    for w in by_io.values()) + " |")
        lines.append("")
    lines.append("Speedups: total (per layer). Aggregation share = (aggregate + stall) / total cycles. "
                 "combine / ideal: combine cycles over sum_j nz_words_j * T_out (skipping on) or "
                 "sum_j b_j * T_in * T_out (off).")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
