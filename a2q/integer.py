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


def nns_select(p: torch.Tensor, thresholds: torch.Tensor, signed: bool) -> torch.Tensor:
    """Run-time NNS selection (docs/arithmetic.md, "NNS selection"): per row, the row's integer max
    over its channels -- ``max(p, 0)`` for an unsigned (post-ReLU) next input, ``|p|`` for a signed
    one -- against the exporter's ascending integer thresholds; the pair index is the number of
    thresholds strictly below it (a row exactly at a threshold takes the lower pair)."""
    v = p.abs() if signed else p.clamp_min(0)
    v = v.amax(dim=1) if p.shape[1] else torch.zeros(p.shape[0], dtype=torch.int64)
    return (thresholds[None, :] < v[:, None]).sum(dim=1)


def membership_csr(graph_ptr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The pool's CSR: row g lists graph g's nodes (contiguous), rows = graphs."""
    return graph_ptr, torch.arange(int(graph_ptr[-1]), dtype=torch.int64)


@dataclass
class LayerTrace:
    """Every intermediate the hardware produces for one layer, for locating mismatches."""

    x: torch.Tensor      # layer input  [R, F_in]
    bits: torch.Tensor   # per-row bits of the input [R] (static, or the pool pair selected at run time)
    acc: torch.Tensor    # COMBINE      [R, F_out]
    y: torch.Tensor      # SRC_RESCALE  [R, F_out]
    a: torch.Tensor      # AGGREGATE    [Q, F_out] (= y for a dense layer; Q = G for a pool layer)
    p: torch.Tensor      # channel rescale + bias [Q, F_out]
    out: torch.Tensor    # node requant: next layer's input, or logits for the last layer
    sel: torch.Tensor | None = None       # [Q] NNS pair of each output row (next input is a pool), else None
    out_bits: torch.Tensor | None = None  # [Q] bits of the output rows (None for the logits)

    PHASES = ("acc", "y", "a", "p", "out")


def input_params(program: Program, i: int, sel: torch.Tensor | None):
    """Per input row of layer i: (bits, src_mult, src_shift), static or through the pool selection."""
    if not program.has_pool_input(i):
        return tuple(_t(program.layer(i, k)) for k in ("bits", "src_mult", "src_shift"))
    if sel is None:
        raise ValueError(f"layer {i} takes an NNS pool input: it needs the previous layer's selection")
    return tuple(_t(program.layer(i, k))[sel] for k in ("pool_bits", "pool_src_mult", "pool_src_shift"))


def run_layer(program: Program, i: int, x: torch.Tensor, sel_in: torch.Tensor | None = None) -> LayerTrace:
    """One layer of any kind (docs/arithmetic.md): COMBINE, SRC_RESCALE, AGGREGATE over the graph
    (gcn, gin), over the membership (pool) or none (dense), REQUANT with static or NNS-selected rows."""
    spec = program.layers[i]
    L = lambda name: _t(program.layer(i, name))  # noqa: E731
    bits, src_mult, src_shift = input_params(program, i, sel_in)
    acc = combine(x, L("weight"))
    y = src_rescale(acc, src_mult, src_shift)
    if spec.aggregates:
        a = aggregate(y, _t(program.arrays["row_ptr"]), _t(program.arrays["col_idx"]))
    elif spec.kind == "pool":
        a = aggregate(y, *membership_csr(_t(program.arrays["graph_ptr"])))
    else:
        a = y
    p = channel_rescale(a, L("ch_mult"), L("ch_shift"), L("bias"))
    last = i == program.num_layers - 1
    sel = None
    if last:
        out_bits, out_signed, dst = None, False, (L("dst_mult"), L("dst_shift"))
    elif program.has_pool_input(i + 1):
        nxt = lambda name: _t(program.layer(i + 1, name))  # noqa: E731
        out_signed = program.layers[i + 1].in_signed
        sel = nns_select(p, nxt("pool_thr"), out_signed)
        out_bits, dst = nxt("pool_bits")[sel], (nxt("pool_dst_mult")[sel], nxt("pool_dst_shift")[sel])
    else:
        out_bits, out_signed = _t(program.layer(i + 1, "bits")), program.layers[i + 1].in_signed
        dst = (L("dst_mult"), L("dst_shift"))
    out = node_requant(p, *dst, out_bits, out_signed)
    return LayerTrace(x=x, bits=bits, acc=acc, y=y, a=a, p=p, out=out, sel=sel, out_bits=out_bits)


def run(program: Program) -> list[LayerTrace]:
    """Run every layer; ``run(p)[-1].out`` are the int logits (rows: nodes, or graphs)."""
    x = _t(program.arrays["x"])
    traces, sel = [], None
    for i in range(program.num_layers):
        traces.append(run_layer(program, i, x, sel))
        x, sel = traces[-1].out, traces[-1].sel
    return traces


def logits(program: Program) -> torch.Tensor:
    return run(program)[-1].out


def accuracy(program: Program) -> float | None:
    """Test accuracy of the integer logits, if the program carries labels and a test mask."""
    if "labels" not in program.arrays or "test_mask" not in program.arrays:
        return None
    pred = logits(program).argmax(dim=1).numpy()  # rows: nodes, or graphs of a graph-level program
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
