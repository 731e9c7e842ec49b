"""``a2q flow --model gin``: train (or reuse) A2Q, INT4 and Degree-Quant INT4 GIN models, export them as
format-v2 programs on the same rows, fit one accelerator config that runs all of them, price them in
cycles, simulate them on the RTL and tabulate accuracy, bits, feature memory and cycles.

Graph-level (TU sets): one fold is trained and ``--graphs`` test graphs of that fold (a class-stratified
sample, ``--graph-order``) form one block-diagonal batch, the program's rows. Node-level (Planetoid,
KarateClub): the whole graph, its test mask. Accuracies are given twice: the fake-quant model on the
program's rows (its NNS pools selecting with the program's integer thresholds) and the integer program;
they must agree, and the selections that differ between the two are counted (``a2q.export.gin_agreement``).
"""
from __future__ import annotations

import time
from pathlib import Path

from .flow import BINARY_SUFFIX
from .jsonio import write_json, write_text

#: The three models of the comparison: name -> training arguments.
GIN_MODELS = {"a2q": ["--method", "a2q"], "int4": ["--method", "uniform", "--bits", "4"],
              "dq4": ["--method", "dq", "--bits", "4"]}
BASELINES = ("int4", "dq4")
DEFAULT_EPOCHS = {"graph": 100, "node": 200}


def label(name: str) -> str:
    """``a2q`` -> ``A2Q``, ``dq4`` -> ``DQ-INT4``, ``int4-bin`` -> ``INT4 (binary input)``."""
    base = name[:-len(BINARY_SUFFIX)] if name.endswith(BINARY_SUFFIX) else name
    text = {"a2q": "A2Q"}.get(base, f"DQ-INT{base[2:]}" if base.startswith("dq") else base.upper())
    return f"{text} (binary input)" if name.endswith(BINARY_SUFFIX) else text


def parse_ckpts(items: list[str]) -> dict[str, str]:
    """``--ckpt PATH`` (the A2Q model) or ``--ckpt NAME=PATH`` with NAME in a2q / int4 / dq4."""
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        name, path = (name, path) if sep else ("a2q", item)
        if name not in GIN_MODELS:
            raise ValueError(f"--ckpt {item!r}: NAME must be one of {', '.join(GIN_MODELS)}")
        if not Path(path).is_file():
            raise ValueError(f"--ckpt {item!r}: no checkpoint at {path}")
        out[name] = path
    return out


def feature_kb(program) -> float:
    """On-chip feature memory of one inference, KB: every layer input's rows at their bits (run-time NNS
    selections included), ``sum_i sum_r bits_{i,r} * F_in_i / 8 / 1024``: dense bit-planes, no skipping."""
    from . import integer

    traces = integer.run(program)
    total = sum(float(t.bits.double().sum()) * s.in_features for t, s in zip(traces, program.layers, strict=True))
    return total / 8 / 1024


def _train(args, name: str, task: str, out: Path) -> tuple[Path, dict]:
    from .trainer import parse_train_args, run_train

    argv = ["--model", "gin", "--dataset", args.dataset, "--epochs", str(args.epochs), "--threads",
            str(args.threads), "--out", str(out / name / "train"), *GIN_MODELS[name]]
    if name == "a2q" and args.target_bits is not None:
        argv += ["--target-bits", str(args.target_bits)]
    argv += ["--fold", str(args.fold)] if task == "graph" else ["--seeds", args.seeds]
    if args.data_root:
        argv += ["--data-root", args.data_root]
    m = run_train(parse_train_args(argv))
    ckpt = out / name / "train" / (f"fold{args.fold}.pt" if task == "graph" else "model.pt")
    return ckpt, m


def run_gin_flow(args) -> dict:
    import torch

    from .data import TU_DATASETS
    from .export import export_checkpoint
    from .program import save
    from .progress import Progress

    torch.set_num_threads(args.threads)
    task = "graph" if args.dataset in TU_DATASETS else "node"
    if args.method != "a2q":
        raise ValueError("--model gin always runs A2Q against INT4 and DQ-INT4 (leave --method at a2q)")
    args.epochs = DEFAULT_EPOCHS[task] if args.epochs is None else args.epochs
    if task == "graph" and args.graphs < 1:
        raise ValueError(f"--graphs must be >= 1, got {args.graphs}")
    ckpts = parse_ckpts(args.ckpt)
    out = Path(args.out or f"runs/{args.dataset}-gin")
    out.mkdir(parents=True, exist_ok=True)
    stages = [f"train {n}" for n in GIN_MODELS if n not in ckpts] + ["export", "config"] + \
             ([f"simulate {n}" for n in GIN_MODELS] if args.sim != "none" else [])
    bar = Progress(len(stages), "a2q flow gin", unit="stage")
    t0 = time.perf_counter()
    res, paths = {}, {}
    for name in GIN_MODELS:
        if name in ckpts:
            paths[name] = Path(ckpts[name])
            res[name] = {"checkpoint": str(paths[name]), "trained": False}
            continue
        bar.set_postfix(stage=f"train {name}")
        t1 = time.perf_counter()
        paths[name], m = _train(args, name, task, out)
        res[name] = {"checkpoint": str(paths[name]), "trained": True, "train_wall_s": time.perf_counter() - t1,
                     "train_test_acc": m["test_acc_mean"], "train_avg_bits": m.get("avg_bits"),
                     "s_per_epoch": m.get("s_per_epoch"), "epochs": args.epochs}
        bar.update(1, note=f"acc {m['test_acc_mean']:.4f}")
    bar.set_postfix(stage="export")
    programs = {}
    for name in list(GIN_MODELS):
        variants = [(name, False)] + ([(f"{name}{BINARY_SUFFIX}", True)] if name != "a2q" else [])
        for vname, binary in variants:
            report: dict = {}
            program = export_checkpoint(paths[name], args.data_root, binary=binary,
                                        graphs=args.graphs if task == "graph" else None,
                                        fold=args.fold if task == "graph" else None, report=report,
                                        graph_order=getattr(args, "graph_order", "stratified"))
            if binary and not program.meta.get("binary_input_nodes"):
                continue  # the input is not binary (e.g. REDDIT-BINARY's standardised degree): no fair variant
            programs[vname] = program
            save(program, out / vname / "program")
            r = res.setdefault(vname, dict(res[name]))
            r.update(avg_bits=program.avg_bits(), feature_kb=feature_kb(program),
                     fakequant_acc=report["fakequant_acc"], int_acc=report["integer_acc"],
                     selection_differ=report["selection_differ"], selection_rows=report["selection_rows"],
                     prediction_differ=report["prediction_differ"], agreement=report,
                     input_encoding=program.meta.get("input_encoding"),
                     train_test_acc=program.meta.get("fakequant_test_acc", r.get("train_test_acc")),
                     weight_bits_raised=program.meta.get("weight_bits_raised"))
    bar.update(1)
    bar.set_postfix(stage="config")
    cfg, hw_error, gen = _hardware(args, programs, out, res)
    bar.update(1)
    if cfg is not None and args.sim != "none":
        from sim.simulate import simulate

        for name in programs:
            bar.set_postfix(stage=f"simulate {name}")
            rep = simulate(out / name / "program", config=cfg, sim=args.sim, out=out / name / f"sim_{args.sim}.json")
            res[name].update(bit_exact=rep["mismatches"] == 0 and rep["unresolved_words"] == 0,
                             rtl_cycles=rep["rtl_cycles"], cycles_match=rep["cycles_match"], sim_wall_s=rep["wall_s"])
            if name in GIN_MODELS:
                bar.update(1)
    bar.close()
    bases = [b for b in programs if b != "a2q"]
    for r in (res[n] for n in programs):
        if "model_cycles" in r:
            r["cycles"] = (r.get("rtl_cycles") or {}).get("total") or r["model_cycles"]["cyc_total"]
    for name in programs:
        r = res[name]
        if "cycles" in r:
            from .cycle_model import speedup

            r["speedup"] = {b: speedup(r["model_cycles"], res[b]["model_cycles"]) for b in bases if "cycles" in res[b]}
            for b in r["speedup"]:
                r["speedup"][b]["total"] = res[b]["cycles"] / r["cycles"]
    first = next(iter(programs.values()))
    summary = {"model": "gin", "task": task, "dataset": args.dataset, "fold": args.fold if task == "graph" else None,
               "graphs": first.num_graphs, "nodes": first.num_nodes, "nnz": first.nnz,
               "graph_order": first.meta.get("graph_order"), "graph_ids": first.meta.get("graph_ids"),
               "config": cfg.to_json() if cfg is not None else None,
               "lanes": args.lanes, "pes": args.pes, "verilog": gen, "hardware_error": hw_error,
               "simulator": args.sim if cfg is not None else "none", "baselines": bases,
               "results": {n: res[n] for n in programs}, "wall_s": time.perf_counter() - t0, "threads": args.threads}
    write_json(out / "flow.json", summary)
    table = gin_flow_table(summary)
    write_text(out / "flow.md", table)
    print(table)
    return summary


def _hardware(args, programs: dict, out: Path, res: dict):
    """One covering config for every program, its Verilog, and each program's cycle-model count. Until the
    RTL and cycle model run format-v2 programs this step fails on them: the flow records why and keeps
    the integer results (accuracy, bits, feature memory)."""
    from .cycle_model import cycles as model_cycles

    try:
        from hw.config import AcceleratorConfig
        from hw.generate import generate

        cfg = AcceleratorConfig.covering(programs.values(), lanes=args.lanes, pes=args.pes,
                                         zero_skip=0 if args.no_skip else 1, edges_per_cycle=args.edges)
        for name, program in programs.items():
            res[name]["model_cycles"] = model_cycles(program, cfg.lanes, cfg.pes, bool(cfg.zero_skip),
                                                     cfg.edges_per_cycle).to_json()
        gen = generate(cfg, out / "a2q_accel.v")["verilog"]
    except (KeyError, ValueError, NotImplementedError) as e:  # ConfigError is a ValueError
        for r in res.values():
            r.pop("model_cycles", None)
        return None, f"{type(e).__name__}: {e} (the hardware / cycle model does not run these programs yet)", None
    return cfg, None, gen


def gin_flow_table(summary: dict) -> str:
    res = summary["results"]
    bases = summary.get("baselines", [])
    rows_of = f"{summary['graphs']} test graphs of fold {summary['fold']}" if summary["task"] == "graph" \
        else "the test nodes"
    head = (f"GIN {summary['dataset']} ({summary['task']}-level; {rows_of}; {summary['nodes']} nodes) on "
            f"L={summary['lanes']} P={summary['pes']} ({summary['simulator']})")
    lines = [head, ""]
    if summary.get("hardware_error"):
        lines += [f"Cycles not priced: {summary['hardware_error']}", ""]
    nl = max((len(r["model_cycles"]["layers"]) for r in res.values() if "model_cycles" in r), default=0)
    cols = ["model", "fake-quant acc (%)", "int-only acc (%)", "train-time test acc (%)", "avg bits", "feature KB",
            "NNS selections differ", "bit-exact", "cycles"] + [f"layer {i}" for i in range(nl)] + \
           [f"vs {label(b)}" for b in bases]
    lines += ["| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"]
    for name, r in res.items():
        pct = lambda v: "-" if v is None else f"{100 * v:.2f}"  # noqa: E731
        exact = {True: "yes", False: "NO"}.get(r.get("bit_exact"), "not simulated")
        cyc = f"{r['cycles']:,}" if "cycles" in r else "-"
        per = [f"{layer['total']:,}" for layer in r["model_cycles"]["layers"]] if "model_cycles" in r else ["-"] * nl
        sp = [f"{r['speedup'][b]['total']:.2f}x" if b in r.get("speedup", {}) else "-" for b in bases]
        lines.append("| " + " | ".join([label(name), pct(r["fakequant_acc"]),
                                        pct(r["int_acc"]), pct(r.get("train_test_acc")), f"{r['avg_bits']:.2f}",
                                        f"{r['feature_kb']:.1f}", f"{r['selection_differ']} / {r['selection_rows']}",
                                        exact, cyc, *per, *sp]) + " |")
    return "\n".join(lines) + "\n"
