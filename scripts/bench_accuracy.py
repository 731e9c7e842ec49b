"""Accuracy benchmark: FP32, uniform INT8/INT4, Degree-Quant INT4 and A2Q GCNs on Cora, CiteSeer, PubMed.

Writes results/bench_accuracy.json and results/bench_accuracy.md. A dataset that cannot be loaded
(PubMed offline) is reported as unavailable with the reason; it does not fail the benchmark.

    python scripts/bench_accuracy.py --seeds 0-9 --threads 1
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from a2q.data import DatasetError, load_dataset  # noqa: E402
from a2q.export import export_checkpoint  # noqa: E402
from a2q.integer import accuracy as int_accuracy  # noqa: E402
from a2q.jsonio import write_json, write_text  # noqa: E402
from a2q.trainer import parse_train_args, run_train  # noqa: E402

METHODS = {"FP32": ["--method", "fp32"], "INT8": ["--method", "uniform", "--bits", "8"],
           "INT4": ["--method", "uniform", "--bits", "4"], "DQ-INT4": ["--method", "dq", "--bits", "4"],
           "A2Q": ["--method", "a2q"]}
TARGETS = {"Cora": "2.0", "CiteSeer": "2.2", "PubMed": "2.0"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="Cora,CiteSeer,PubMed")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seeds", default="0-9")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--out", default="results")
    ap.add_argument("--merge", action="store_true", help="update an existing results JSON in place")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite the markdown from the existing results JSON, train nothing")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.report_only:
        import json

        return report(json.loads((out / "bench_accuracy.json").read_text()), out)
    import torch

    torch.set_num_threads(args.threads)
    results = {"seeds": args.seeds, "threads": args.threads, "epochs": args.epochs,
               "torch_version": str(torch.__version__), "datasets": {}}
    previous = out / "bench_accuracy.json"
    if args.merge and previous.exists():  # keep methods/datasets this run does not redo
        import json

        results["datasets"] = json.loads(previous.read_text()).get("datasets", {})
    for ds in args.datasets.split(","):
        try:
            load_dataset(ds, args.data_root)
        except DatasetError as e:
            results["datasets"][ds] = {"available": False, "reason": str(e)}
            print(f"{ds}: unavailable ({e})")
            continue
        entry = {"available": True, "methods": dict(results["datasets"].get(ds, {}).get("methods", {}))}
        for name in args.methods.split(","):
            argv_t = ["--dataset", ds, "--seeds", args.seeds, "--epochs", str(args.epochs), "--threads",
                      str(args.threads), "--out", str(out / "runs" / f"{ds}-{name}"), "--no-progress",
                      *METHODS[name]]
            if name == "A2Q":
                argv_t += ["--target-bits", TARGETS.get(ds, "2.0")]
            if name == "INT8":
                argv_t += ["--weight-bits", "8"]
            if args.data_root:
                argv_t += ["--data-root", args.data_root]
            t0 = time.perf_counter()
            m = run_train(parse_train_args(argv_t))
            row = {k: m.get(k) for k in ("test_acc_mean", "test_acc_std", "avg_bits", "layer_avg_bits",
                                         "compression_ratio", "degree_bits_spearman", "wall_s_per_seed",
                                         "test_acc_max_over_epochs_mean", "target_bits")}
            row["n_seeds"] = len(m["per_seed"])
            row["wall_s"] = time.perf_counter() - t0
            if name != "FP32":  # integer-only accuracy of the best-validation seed's exported program
                prog = export_checkpoint(out / "runs" / f"{ds}-{name}" / "model.pt", args.data_root)
                row["int_test_acc_best_seed"] = int_accuracy(prog)
                row["fakequant_test_acc_best_seed"] = prog.meta.get("fakequant_test_acc")
            entry["methods"][name] = row
            write_json(out / "bench_accuracy.json", results | {"datasets": {**results["datasets"], ds: entry}})
        results["datasets"][ds] = entry
    write_json(out / "bench_accuracy.json", results)
    return report(results, out)


def report(results: dict, out: Path) -> int:
    """Write the markdown table beside the JSON and print it."""
    text = markdown(results)
    write_text(out / "bench_accuracy.md", text)
    print(text)
    return 0


def markdown(results) -> str:
    lines = [f"GCN, {results['epochs']} epochs, seeds {results['seeds']}, test accuracy at the best-validation "
             f"epoch (mean ± std), {results['threads']} torch thread(s).", "",
             "| dataset | method | test acc (%) | avg bits | compression | int-only acc, best seed (%) | "
             "fake-quant acc, same seed (%) | degree-bits Spearman | s/seed |",
             "|---|---|---|---|---|---|---|---|---|"]
    for ds, e in results["datasets"].items():
        if not e["available"]:
            reason = e["reason"].split(" (expected")[0].replace("|", "/")
            lines.append(f"| {ds} | unavailable ({reason}) | | | | | | | |")
            continue
        for name, r in e["methods"].items():
            f = lambda v, s=".2f", k=1.0: "-" if v is None else format(k * v, s)  # noqa: E731
            lines.append(f"| {ds} | {name} | {100 * r['test_acc_mean']:.2f} ± {100 * r['test_acc_std']:.2f} | "
                         f"{r['avg_bits']:.2f} | {f(r.get('compression_ratio'), '.1f')}x | "
                         f"{f(r.get('int_test_acc_best_seed'), '.2f', 100)} | "
                         f"{f(r.get('fakequant_test_acc_best_seed'), '.2f', 100)} | "
                         f"{f(r.get('degree_bits_spearman'), '.3f')} | {r['wall_s_per_seed']:.1f} |")
    lines += ["", "A2Q against the others: test-accuracy points, A2Q minus the method, ± the standard error of "
              "that difference over the seeds:", ""]
    for ds, e in results["datasets"].items():
        methods = e.get("methods", {})
        if "A2Q" not in methods:
            continue
        a2q = methods["A2Q"]
        diffs = [f"{name} {100 * (a2q['test_acc_mean'] - r['test_acc_mean']):+.2f} ± "
                 f"{100 * difference_se(a2q, r, results['seeds']):.2f}"
                 for name, r in methods.items() if name != "A2Q"]
        lines.append(f"- {ds}, A2Q at {a2q['avg_bits']:.2f} bits: " + ", ".join(diffs))
    return "\n".join(lines) + "\n"


def difference_se(a: dict, b: dict, seeds: str) -> float:
    """Standard error of mean(a) - mean(b) from the rows' population stds (sample std = std*sqrt(n/(n-1)))."""
    from a2q.trainer import parse_seeds

    var = 0.0
    for r in (a, b):
        n = r.get("n_seeds") or len(parse_seeds(seeds))
        var += r["test_acc_std"] ** 2 * n / max(n - 1, 1) / n
    return var ** 0.5


if __name__ == "__main__":
    sys.exit(main())
