"""Where zero-word skipping saves cycles: per layer of each program, the bits each input row runs at and
the bit-plane words the combination engine actually walks (non-zero L-lane words) against the dense
count ``bits x T_in``.

The combine phase costs one cycle per stored word per output tile, so ``planes/tile`` (stored words
per row and input tile) is the effective bitwidth the accelerator pays for. It shows why A2Q's saving
in bits need not become a saving in cycles once the baseline skips too: a uniform step set for the
whole layer leaves the high planes of small rows empty, which skipping drops, while A2Q fits every
row's step to its own range, so each of its planes tends to carry a one (issue #11's analysis).

    python scripts/skip_density.py results/flow_reddit_gin/x/a2q results/flow_reddit_gin/x/int4 --lanes 16 \\
        --out results/flow_reddit_gin/x/skip_density
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from a2q.jsonio import write_json, write_text  # noqa: E402


def density(program, lanes: int) -> list[dict]:
    """Per layer: rows, mean run bits, mean dense and stored words per row, planes per tile."""
    import numpy as np

    from a2q import cycle_model, integer

    traces = integer.run(program)
    bits = cycle_model.run_bits(program, traces)
    stored = cycle_model.stored_words(program, lanes, skip=True, traces=traces)
    out = []
    for i, spec in enumerate(program.layers):
        t_in = -(-spec.in_features // lanes)
        b, w = bits[i].astype(np.float64), stored[i].astype(np.float64)
        out.append({"layer": i, "kind": spec.kind, "rows": int(len(b)), "t_in": t_in,
                    "mean_bits": float(b.mean()) if len(b) else 0.0,
                    "dense_words_per_row": float((b * t_in).mean()) if len(b) else 0.0,
                    "stored_words_per_row": float(w.mean()) if len(w) else 0.0,
                    "planes_per_tile": float(w.mean() / t_in) if len(w) else 0.0,
                    "stored_fraction": float(w.sum() / max((b * t_in).sum(), 1.0))})
    return out


def markdown(results: dict) -> str:
    names = list(results)
    lines = ["| layer | kind | " + " | ".join(f"{n} bits | {n} planes/tile | {n} stored" for n in names) + " |",
             "|---|---|" + "---:|---:|---:|" * len(names)]
    for k, row in enumerate(results[names[0]]):
        cells = []
        for n in names:
            r = results[n][k]
            cells.append(f"{r['mean_bits']:.2f} | {r['planes_per_tile']:.2f} | {100 * r['stored_fraction']:.0f} %")
        lines.append(f"| {row['layer']} | {row['kind']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("programs", nargs="+", help="program directories (`a2q export` output)")
    ap.add_argument("--lanes", type=int, default=16)
    ap.add_argument("--out", default=None, help="write <out>.json and <out>.md")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the integer reference")
    args = ap.parse_args(argv)
    import torch

    from a2q import program as prog

    torch.set_num_threads(args.threads)
    results = {}
    for path in args.programs:
        name = Path(path).name if Path(path).name != "program" else Path(path).parent.name  # a flow's <name>/program
        results[name] = density(prog.load(path), args.lanes)
    text = markdown(results)
    print(text)
    if args.out:
        write_json(Path(args.out + ".json"), {"lanes": args.lanes, "programs": args.programs, "layers": results})
        write_text(Path(args.out + ".md"), text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
