"""``a2q infer``: integer-only inference of a program, against the fake-quant accuracy it came from."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from . import integer
from .jsonio import write_json
from .program import content_hash, load


def add_infer_arguments(p) -> None:
    p.add_argument("program", help="program directory written by `a2q export`")
    p.add_argument("--out", default=None, help="JSON report (default: PROGRAM/infer.json)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run_infer(args) -> dict:
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    program = load(args.program)
    out = integer.logits(program)
    expected = program.arrays.get("expected_out")
    result = {
        "program": str(args.program),
        "int_test_acc": integer.accuracy(program),
        "fakequant_test_acc": program.meta.get("fakequant_test_acc"),
        "layer_avg_bits": [float(program.layer(i, "bits").mean()) for i in range(program.num_layers)],
        "avg_bits": program.avg_bits(),
        "program_hash": content_hash(program),
        "matches_expected_out": None if expected is None else bool((out.numpy() == expected).all()),
        "wall_s": time.perf_counter() - t0,
        "threads": args.threads,
    }
    write_json(args.out or Path(args.program) / "infer.json", result)
    acc = result["int_test_acc"]
    fq = result["fakequant_test_acc"]
    print(f"int_test_acc={'n/a' if acc is None else f'{acc:.4f}'} "
          f"fakequant_test_acc={'n/a' if fq is None else f'{fq:.4f}'} "
          f"layer_bits={[round(b, 3) for b in result['layer_avg_bits']]}")
    return result
