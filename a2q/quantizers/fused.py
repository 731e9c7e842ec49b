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


class _FusedLocal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, step, qmin, qmax, weight, l2: bool):
        # x [N, F]; step, qmin, qmax, weight [N, 1]
        # in place where a value is not needed again: each [N, F] temporary costs a fresh allocation
        r = torch.mul(x, 1.0 / step).add_(0.5).floor_()
        below, above = r < qmin, r > qmax
        q = r.clamp_(qmin, qmax)
        xq = q * step
        e = xq - x
        e.masked_fill_(e.abs() <= EXACT_TOL * step, 0.0)  # float residuals of exact values (see node.py)
        de = e * (2.0 * weight) if l2 else torch.sign(e).mul_(weight)
        flat_e, flat_de = e.view(-1), de.view(-1)
        loss = torch.dot(flat_e, flat_de) / 2 if l2 else torch.dot(flat_e, flat_de)
        g_step = q.mul_(de).sum(1, keepdim=True)
        g_qmax = torch.mul(de, above, out=e).sum(1, keepdim=True) * step
        g_qmin = torch.mul(de, below, out=e).sum(1, keepdim=True) * step
        ctx.save_for_backward(~(below | above), g_step, g_qmin, g_qmax)
        ctx.set_materialize_grads(False)
        return xq, loss

    @staticmethod
    def backward(ctx, g_xq, g_loss):
        inside, g_step, g_qmin, g_qmax = ctx.saved_tensors
        gx = None if g_xq is None else g_xq * inside
        if g_loss is None:
            return gx, None, None, None, None, None
        return gx, g_step * g_loss, g_qmin * g_loss, g_qmax * g_loss, None, None


def fused_local_fake_quant(x, step, qmin, qmax, weight, local_norm: str = "l2"):
    """(x_q, local error): x_q's gradient goes to x only, the error's to step, qmin and qmax only."""
    return _FusedLocal.apply(x, step, qmin, qmax, weight, local_norm == "l2")
