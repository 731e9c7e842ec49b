"""``a2q flow``: train, export, generate Verilog, simulate on the RTL, report, in one run directory.

The A2Q model and a uniform INT4 baseline are trained, exported and simulated on the *same*
accelerator config, so the speedup is measured, not modelled (the model's figure is shown beside it).
Every speedup is given against two baselines: the INT4 program as trained (``int4``: its input layer at
4 bits), and the fair one (``int4-bin``, "INT4 (binary input)"): the same model with the exact one-bit
encoding of a binary input layer that A2Q learns (``a2q.export.binary_input``).
"""
from __future__ import annotations

import time
from pathlib import Path

from .jsonio import write_json, write_text

#: Name suffix of a program exported with the one-bit binary-input encoding (the fair baseline).
BINARY_SUFFIX = "-bin"


def add_flow_arguments(p) -> None:
    p.add_argument("--model", default="gcn", choices=["gcn", "gin"],
                   help="gcn (node-level) or gin (node-level on Planetoid/KarateClub, graph-level on TU sets)")
    p.add_argument("--dataset", default="Cora")
    p.add_argument("--graphs", type=int, default=64, help="gin, graph-level: test graphs of the fold in the batch")
    p.add_argument("--graph-order", default="stratified", choices=["stratified", "first"],
                   help="gin, graph-level: a class-stratified sample of the fold's test graphs (default) or the "
                        "lowest ids (one class on the class-sorted TU files)")
    p.add_argument("--fold", type=int, default=0, help="gin, graph-level: the fold trained and whose test graphs run")
    p.add_argument("--ckpt", action="append", default=[], metavar="[NAME=]PATH",
                   help="gin: reuse a checkpoint instead of training (NAME a2q, int4 or dq4; a bare PATH is a2q); "
                        "repeatable")
    p.add_argument("--method", default="a2q", choices=["a2q", "uniform", "dq"],
                   help="the model to run: A2Q, uniform INT-k or Degree-Quant INT-k")
    p.add_argument("--bits", type=int, default=4, help="feature bits when --method uniform or dq")
    p.add_argument("--target-bits", type=float, default=None,
                   help="A2Q average-bit target (default 2.0; gin: the trainer's default, 4.0 graph-level)")
    p.add_argument("--baseline-bits", type=int, default=4, help="uniform baseline for the speedup (0: none)")
    p.add_argument("--seeds", default="0-2", help="training seeds; the best-validation one is exported")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 200; gin graph-level 100)")
    p.add_argument("--lanes", type=int, default=16)
    p.add_argument("--pes", type=int, default=16)
    p.add_argument("--no-skip", action="store_true", help="accelerator without zero-word skipping")
    p.add_argument("--edges", type=int, default=1, help="edge-stream entries aggregated per cycle (E)")
    p.add_argument("--sim", default="verilator", choices=["verilator", "icarus", "none"])
    p.add_argument("--out", default=None, help="run directory (default runs/<dataset>-<method>)")
    p.add_argument("--data-root", default=None, help="dataset root (default: $A2Q_DATA_ROOT)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (recorded with the timings)")
    p.add_argument("--clock-mhz", type=float, default=100.0,
                   help="clock for µs/inference where `a2q hw synth` has no Fmax for the config (labelled stated)")
    p.add_argument("--json", action="store_true")


def _train(args, name: str, method_argv: list[str], out: Path) -> dict:
    from .trainer import parse_train_args, run_train

    argv = ["--dataset", args.dataset, "--seeds", args.seeds, "--epochs", str(args.epochs), "--threads",
            str(args.threads), "--out", str(out / name / "train"), *method_argv]
    if args.data_root:
        argv += ["--data-root", args.data_root]
    return run_train(parse_train_args(argv))


def run_flow(args) -> dict:
    if getattr(args, "model", "gcn") == "gin":
        from .flow_gin import run_gin_flow

        return run_gin_flow(args)
    if args.ckpt:
        raise ValueError("--ckpt is for --model gin (the GCN flow trains its models)")
    args.epochs = 200 if args.epochs is None else args.epochs
    args.target_bits = 2.0 if args.target_bits is None else args.target_bits
    import torch

    from . import integer
    from .cycle_model import cycles as model_cycles
    from .cycle_model import speedup
    from .export import export_checkpoint
    from .program import save
    from .progress import Progress

    torch.set_num_threads(args.threads)
    out = Path(args.out or f"runs/{args.dataset}-{args.method}")
    out.mkdir(parents=True, exist_ok=True)
    if args.method == "a2q":
        trained = {"a2q": ["--method", "a2q", "--target-bits", str(args.target_bits)]}
    else:
        trained = {f"{'int' if args.method == 'uniform' else 'dq'}{args.bits}":
                   ["--method", args.method, "--bits", str(args.bits)]}
    if args.baseline_bits and f"int{args.baseline_bits}" not in trained:
        trained[f"int{args.baseline_bits}"] = ["--method", "uniform", "--bits", str(args.baseline_bits)]
    # every uniform / Degree-Quant model is exported twice: its input codes as trained (the naive
    # baseline) and with the exact one-bit encoding of a binary input layer that A2Q learns (the fair one)
    variants = {}
    for name in trained:
        variants[name] = (name, False)
        if name != "a2q":
            variants[f"{name}{BINARY_SUFFIX}"] = (name, True)
    stages = [f"train {v}" for v in trained] + ["export", "generate Verilog"] + \
             ([f"simulate {v}" for v in variants] if args.sim != "none" else [])
    bar = Progress(len(stages), "a2q flow", unit="stage")  # a bar on a terminal, a line per stage in a log
    t0 = time.perf_counter()
    res = {name: {} for name in variants}
    for name, margv in trained.items():
        bar.set_postfix(stage=f"train {name}")
        m = _train(args, name, margv, out)
        for v, (tname, _) in variants.items():
            if tname == name:
                res[v].update(test_acc_mean=m["test_acc_mean"], test_acc_std=m["test_acc_std"])
        bar.update(1, note=f"acc {m['test_acc_mean']:.4f}")
    bar.set_postfix(stage="export")
    programs = {}
    for name, (tname, binary) in variants.items():
        programs[name] = export_checkpoint(out / tname / "train" / "model.pt", args.data_root, binary=binary)
        save(programs[name], out / name / "program")
        res[name].update(avg_bits=programs[name].avg_bits(), int_test_acc=integer.accuracy(programs[name]),
                         input_encoding=programs[name].meta.get("input_encoding"),
                         fakequant_test_acc_exported=programs[name].meta.get("fakequant_test_acc"))
    bar.update(1)
    bar.set_postfix(stage="generate Verilog")
    from hw.config import AcceleratorConfig
    from hw.generate import generate

    cfg = AcceleratorConfig.covering(programs.values(), lanes=args.lanes, pes=args.pes,
                                     zero_skip=0 if args.no_skip else 1, edges_per_cycle=args.edges)
    gen = generate(cfg, out / "a2q_accel.v")
    bar.update(1)
    for name, program in programs.items():
        res[name]["model_cycles"] = model_cycles(program, cfg.lanes, cfg.pes, bool(cfg.zero_skip),
                                                 cfg.edges_per_cycle).to_json()
        if args.sim != "none":
            from sim.simulate import simulate

            bar.set_postfix(stage=f"simulate {name}")
            rep = simulate(out / name / "program", config=cfg, sim=args.sim, out=out / name / f"sim_{args.sim}.json")
            res[name].update(bit_exact=rep["mismatches"] == 0 and rep["unresolved_words"] == 0,
                             rtl_cycles=rep["rtl_cycles"], cycles_match=rep["cycles_match"],
                             sim_wall_s=rep["wall_s"])
            bar.update(1)
    bar.close()
    base = f"int{args.baseline_bits}" if args.baseline_bits else None
    bases = [base, f"{base}{BINARY_SUFFIX}"] if base else []
    from hw.latency import latency

    for r in res.values():
        r["cycles"] = (r.get("rtl_cycles") or {}).get("total") or r["model_cycles"]["cyc_total"]
        r["latency"] = latency(r["cycles"], cfg, clock_mhz=args.clock_mhz)
    for r in res.values():
        # per layer from the model (the RTL counters equal it phase by phase: cycles_match)
        r["speedup"] = {b: speedup(r["model_cycles"], res[b]["model_cycles"]) for b in bases}
        for b in bases:
            r["speedup"][b]["total"] = res[b]["cycles"] / r["cycles"]
    summary = {"dataset": args.dataset, "method": args.method, "config": cfg.to_json(), "verilog": gen["verilog"],
               "simulator": args.sim, "zero_skip": cfg.zero_skip, "baselines": bases, "results": res,
               "wall_s": time.perf_counter() - t0, "threads": args.threads}
    write_json(out / "flow.json", summary)
    table = flow_table(summary)
    write_text(out / "flow.md", table)
    print(table)
    return summary


def baseline_label(name: str) -> str:
    """``int4`` -> ``INT4``, ``int4-bin`` -> ``INT4 (binary input)``."""
    if name.endswith(BINARY_SUFFIX):
        return f"{name[:-len(BINARY_SUFFIX)].upper()} (binary input)"
    return name.upper()


def flow_table(summary: dict) -> str:
    bases = summary.get("baselines", [])
    nl = len(next(iter(summary["results"].values()))["model_cycles"]["layers"])
    lines = [f"{summary['dataset']} on L={summary['config']['lanes']} P={summary['config']['pes']} "
             f"E={summary['config'].get('edges_per_cycle', 1)} ({summary['simulator']}, zero-word skipping "
             f"{'on' if summary.get('zero_skip', 1) else 'off'}); "
             "speedups: total (per layer)", "",
             "| model | test acc (%) | int-only acc (%) | avg bits | bit-exact | cycles | " +
             " | ".join(f"layer {i}" for i in range(nl)) + "".join(f" | vs {baseline_label(b)}" for b in bases) +
             " | µs/inference | fits |", "|---|" + "---|" * (7 + nl + len(bases))]
    for name, r in summary["results"].items():
        exact = {True: "yes", False: "NO"}.get(r.get("bit_exact"), "not simulated")
        per = " | ".join(f"{layer['total']:,}" for layer in r["model_cycles"]["layers"])
        sp = "".join(f" | {r['speedup'][b]['total']:.2f}x (" +
                     ", ".join(f"{x:.2f}" for x in r["speedup"][b]["layers"]) + ")" for b in bases)
        lines.append(f"| {baseline_label(name) if name != 'a2q' else 'a2q'} | {100 * r['test_acc_mean']:.2f} ± "
                     f"{100 * r['test_acc_std']:.2f} | {100 * r['int_test_acc']:.2f} | {r['avg_bits']:.2f} | "
                     f"{exact} | {r['cycles']:,} | {per}{sp} | {_lat(r)} |")
    return "\n".join(lines) + "\n"


def _lat(r: dict) -> str:
    """µs/inference and the fits flag (older flow.json files have no latency)."""
    lat = r.get("latency")
    if not lat:
        return "- | -"
    from hw.latency import label

    fit = lat["fit"]
    return f"{label(lat)} | {fit['part']}: {'yes' if fit['fits'] else 'no'}"
