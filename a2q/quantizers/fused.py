"""One-pass fake quantization with the Local Gradient, for the graph-level hot path (NNS rows).

With the Local Gradient the task loss reaches only x (straight through inside the range) and the
quantization error ``sum_i w_i sum_j e_ij^p`` (``e = x_q - x`` with x detached, p = 2 or |.|) reaches
only the step and the bits (the rounding held fixed: ``d x_q / d s = q``; the range ends get the
error of the values clipped there). Autograd builds that from ~30 element-wise ops and their
backward over every [N, F] input; this computes the output, the error and the three per-row
gradients in one forward over the data and keeps only a bool mask and three [N] vectors.
Equality with the autograd form is tested (tests/test_nns_and_graph_level.py).
"""
from __future__ import annotations

import torch

from .node import EXACT_TOL


def _clip_rows(row_min, row_max, inv, qmin, qmax) -> torch.Tensor:
    """Indices of the rows with a value clipped below qmin or above qmax. ``floor(v / s + 1/2)`` is
    monotone in v, so a row clips iff its smallest or its largest value does: two [N] tests instead
    of two [N, F] masks (the same float operations as on the values, so the same decisions)."""
    lo = torch.mul(row_min, inv).add_(0.5).floor_() < qmin
    hi = torch.mul(row_max, inv).add_(0.5).floor_() > qmax
    return (lo | hi).flatten().nonzero().flatten()


class _FusedLocal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, step, qmin, qmax, weight, l2: bool, row_min=None, row_max=None):
        # x [N, F]; step, qmin, qmax, weight, row_min, row_max [N, 1] (row min/max of x: computed if None).
        # Every [N, F] pass costs ~2-5 ms on a REDDIT batch (54k x 64), so: in place where a value is not
        # needed again; bool masks only on the rows that clip (few); no bool -> float conversions.
        if row_min is None:
            row_min, row_max = x.amin(1, keepdim=True), x.amax(1, keepdim=True)
        inv = 1.0 / step
        rows = _clip_rows(row_min, row_max, inv, qmin, qmax)
        q = torch.mul(x, inv).add_(0.5).floor_()
        if len(rows):
            qc, lo, hi = q[rows], qmin[rows], qmax[rows]
            below, above = qc < lo, qc > hi
            q[rows] = qc.clamp_(lo, hi)
        xq = q * step
        e = xq - x
        # float residuals of exact values count as zero (see node.py); a multiply by the bool keeps the
        # other values bit for bit (a masked_fill is 3x slower here)
        e.mul_(e.abs() > EXACT_TOL * step)
        de = e * (2.0 * weight) if l2 else torch.sign(e).mul_(weight)
        flat_e, flat_de = e.view(-1), de.view(-1)
        loss = torch.dot(flat_e, flat_de) / 2 if l2 else torch.dot(flat_e, flat_de)
        g_step = q.mul_(de).sum(1, keepdim=True)
        g_qmax, g_qmin = torch.zeros_like(step), torch.zeros_like(step)
        outside = None
        if len(rows):  # the range ends get the error of the values clipped there (rows summed one by one)
            dc, sc = de[rows], step[rows]
            g_qmax[rows] = dc.mul(above).sum(1, keepdim=True) * sc
            g_qmin[rows] = dc.mul(below).sum(1, keepdim=True) * sc
            outside = below | above
        ctx.save_for_backward(rows, outside, g_step, g_qmin, g_qmax)
        ctx.set_materialize_grads(False)
        return xq, loss

    @staticmethod
    def backward(ctx, g_xq, g_loss):
        rows, outside, g_step, g_qmin, g_qmax = ctx.saved_tensors
        gx = g_xq
        if g_xq is not None and outside is not None:  # straight through inside the range, 0 where clipped
            gx = g_xq.clone()
            gx[rows] = g_xq[rows].mul(~outside)
        if g_loss is None:
            return gx, None, None, None, None, None, None, None
        return gx, g_step * g_loss, g_qmin * g_loss, g_qmax * g_loss, None, None, None, None


def fused_local_fake_quant(x, step, qmin, qmax, weight, local_norm: str = "l2", row_min=None, row_max=None):
    """(x_q, local error): x_q's gradient goes to x only, the error's to step, qmin and qmax only.
    ``row_min``/``row_max`` ([N, 1], the rows' smallest and largest value) save a pass when known."""
    return _FusedLocal.apply(x, step, qmin, qmax, weight, local_norm == "l2", row_min, row_max)
