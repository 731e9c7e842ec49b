"""Integer-only inference of an accelerator program: the bit-exact specification of the arithmetic.

Everything here is int64 PyTorch; no float is touched after export. Each phase of
``docs/arithmetic.md`` is its own function so the layer function can call them in either order
(GCN: combine then aggregate; GIN: aggregate then combine) and so a mismatch can be located.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import fixedpoint as fp
from .program import Program


def _t(a) -> torch.Tensor:
    return torch.as_tensor(a).to(torch.int64)


def combine(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """COMBINE: ``acc[j, o] = sum_k x[j, k] * W[k, o]`` (exact int64)."""
    return x @ weight


def src_rescale(acc: torch.Tensor, mult: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """SRC_RESCALE: per source node multiplier, saturated to Y_BITS."""
    return fp.saturate_signed(fp.rescale(acc, mult[:, None], shift[:, None]), fp.Y_BITS)


def aggregate(y: torch.Tensor, row_ptr: torch.Tensor, col_idx: torch.Tensor) -> torch.Tensor:
    """AGGREGATE: ``a[i] = sum over CSR row i of y[col]`` (exact; rows may be empty)."""
    n = row_ptr.shape[0] - 1
    rows = torch.repeat_interleave(torch.arange(n), row_ptr[1:] - row_ptr[:-1])
    out = torch.zeros((n, y.shape[1]), dtype=torch.int64)
    out.index_add_(0, rows, y[col_idx])
    return out


def channel_rescale(a: torch.Tensor, mult: torch.Tensor, shift: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """REQUANT, first half: per-channel multiplier plus bias, saturated to P_BITS."""
    return fp.saturate_signed(fp.rescale(a, mult[None, :], shift[None, :]) + bias[None, :], fp.P_BITS)


def node_requant(p: torch.Tensor, mult: torch.Tensor, shift: torch.Tensor,
                 out_bits: torch.Tensor | None, out_signed: bool) -> torch.Tensor:
    """REQUANT, second half: per-node multiplier, then clamp to the next layer's per-node range.

    ``out_bits`` None means the last layer: saturate to OUT_BITS signed logits. For an unsigned next
    layer the clamp at 0 is the ReLU.
    """
    r = fp.rescale(p, mult[:, None], shift[:, None])
    if out_bits is None:
        return fp.saturate_signed(r, fp.OUT_BITS)
    lo, hi = fp.feature_range(out_bits, out_signed)
    return torch.maximum(torch.minimum(r, hi[:, None]), lo[:, None])


@dataclass
class LayerTrace:
    """Every intermediate the hardware produces for one layer, for locating mismatches."""

    x: torch.Tensor      # layer input  [N, F_in]
    acc: torch.Tensor    # COMBINE      [N, F_out]
    y: torch.Tensor      # SRC_RESCALE  [N, F_out]
    a: torch.Tensor      # AGGREGATE    [N, F_out]
    p: torch.Tensor      # channel rescale + bias [N, F_out]
    out: torch.Tensor    # node requant: next layer's input, or logits for the last layer

    PHASES = ("acc", "y", "a", "p", "out")


def run_layer(program: Program, i: int, x: torch.Tensor) -> LayerTrace:
    row_ptr, col_idx = _t(program.arrays["row_ptr"]), _t(program.arrays["col_idx"])
    L = lambda name: _t(program.layer(i, name))  # noqa: E731
    acc = combine(x, L("weight"))
    y = src_rescale(acc, L("src_mult"), L("src_shift"))
    a = aggregate(y, row_ptr, col_idx)
    p = channel_rescale(a, L("ch_mult"), L("ch_shift"), L("bias"))
    last = i == program.num_layers - 1
    out_bits = None if last else _t(program.layer(i + 1, "bits"))
    out_signed = False if last else program.layers[i + 1].in_signed
    out = node_requant(p, L("dst_mult"), L("dst_shift"), out_bits, out_signed)
    return LayerTrace(x=x, acc=acc, y=y, a=a, p=p, out=out)


def run(program: Program) -> list[LayerTrace]:
    """Run every layer; ``run(p)[-1].out`` are the int logits."""
    x = _t(program.arrays["x"])
    traces = []
    for i in range(program.num_layers):
        traces.append(run_layer(program, i, x))
        x = traces[-1].out
    return traces


def logits(program: Program) -> torch.Tensor:
    return run(program)[-1].out


def accuracy(program: Program) -> float | None:
    """Test accuracy of the integer logits, if the program carries labels and a test mask."""
    if "labels" not in program.arrays or "test_mask" not in program.arrays:
        return None
    pred = logits(program).argmax(dim=1).numpy()
    mask = program.arrays["test_mask"]
    return float((pred[mask] == program.arrays["labels"][mask]).mean())


def first_mismatch(expected: list[LayerTrace], layer: int, phase: str, got) -> dict | None:
    """Locate the first (node, channel) where ``got`` differs from the reference phase output."""
    ref = getattr(expected[layer], phase)
    got = _t(got)
    diff = (ref != got).nonzero()
    if diff.numel() == 0:
        return None
    node, ch = (int(v) for v in diff[0])
    return {"layer": layer, "phase": phase, "node": node, "channel": ch,
            "expected": int(ref[node, ch]), "got": int(got[node, ch]), "count": int(diff.shape[0])}
