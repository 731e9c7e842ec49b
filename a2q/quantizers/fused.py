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


def _clips(row_ext, inv, bound, low: bool) -> bool:
    """Does any row clip at this end? ``floor(v / s + 1/2)`` is monotone in v, so a row clips below
    (above) iff its smallest (largest) value does: an [N] test instead of an [N, F] one, with the same
    float operations as on the values, so the same decision."""
    r = torch.mul(row_ext, inv).add_(0.5).floor_()
    return bool((r < bound).any() if low else (r > bound).any())


class _FusedLocal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, step, qmin, qmax, weight, l2: bool, row_min=None, row_max=None, zero_rows=False):
        # x [N, F]; step, qmin, qmax, weight, row_min, row_max [N, 1] (row min/max of x: computed if None).
        # Every [N, F] pass costs ~2-5 ms on a REDDIT batch (54k x 64), so: in place where a value is not
        # needed again; no bool -> float conversions: the clip indicators are made as floats from the
        # integer codes, ``clamp(q - qmax, 0, 1)`` is exactly 1 where q > qmax and 0 elsewhere; an end no
        # row reaches (the lower end of an unsigned code on ReLU outputs) costs nothing.
        if row_min is None:
            row_min, row_max = x.amin(1, keepdim=True), x.amax(1, keepdim=True)
        inv = 1.0 / step
        low, high = _clips(row_min, inv, qmin, True), _clips(row_max, inv, qmax, False)
        q = torch.mul(x, inv).add_(0.5).floor_()
        above = torch.sub(q, qmax).clamp_(0.0, 1.0) if high else None
        below = torch.sub(qmin, q).clamp_(0.0, 1.0) if low else None
        if low or high:
            q.clamp_(qmin if low else None, qmax if high else None)
        xq = q * step
        e = xq - x
        # float residuals of exact values count as zero (see node.py); a multiply by the bool keeps the
        # other values bit for bit (a masked_fill is 3x slower here)
        e.mul_(e.abs() > EXACT_TOL * step)
        de = e * (2.0 * weight) if l2 else torch.sign(e).mul_(weight)
        flat_e, flat_de = e.view(-1), de.view(-1)
        loss = torch.dot(flat_e, flat_de) / 2 if l2 else torch.dot(flat_e, flat_de)
        g_step = q.mul_(de).sum(1, keepdim=True)
        if zero_rows:
            # a row whose codes are all 0 (its max |x| rounds to 0) gets LSQ's surrogate d x_q / d s = -x/s
            # instead of the exact q = 0, which would leave its step where the data left it
            dead = (torch.maximum(row_max, -row_min).mul(inv).add_(0.5).floor_() == 0).flatten().nonzero().flatten()
            if dead.numel():
                g_step[dead] = -(de[dead] * x[dead]).sum(1, keepdim=True) * inv[dead]
        # the range ends get the error of the values clipped there
        g_qmax = torch.mul(de, above, out=e).sum(1, keepdim=True) * step if high else torch.zeros_like(step)
        g_qmin = torch.mul(de, below, out=e).sum(1, keepdim=True) * step if low else torch.zeros_like(step)
        outside = above if below is None else below if above is None else above.add_(below)
        ctx.save_for_backward(outside, g_step, g_qmin, g_qmax)
        ctx.set_materialize_grads(False)
        return xq, loss

    @staticmethod
    def backward(ctx, g_xq, g_loss):
        outside, g_step, g_qmin, g_qmax = ctx.saved_tensors
        gx = g_xq
        if g_xq is not None and outside is not None:  # straight through inside the range, 0 where clipped:
            gx = torch.addcmul(g_xq, g_xq, outside, value=-1.0)  # g - g * 1 = 0, g - g * 0 = g, exactly
        if g_loss is None:
            return gx, None, None, None, None, None, None, None, None
        return gx, g_step * g_loss, g_qmin * g_loss, g_qmax * g_loss, None, None, None, None, None


def fused_local_fake_quant(x, step, qmin, qmax, weight, local_norm: str = "l2", row_min=None, row_max=None,
                           zero_rows: bool = False):
    """(x_q, local error): x_q's gradient goes to x only, the error's to step, qmin and qmax only.
    ``row_min``/``row_max`` ([N, 1], the rows' smallest and largest value) save a pass when known.
    ``zero_rows``: rows whose codes are all 0 give their step LSQ's surrogate gradient (``-x/s`` for
    ``d x_q / d s``) instead of the exact 0 (docs/training.md, "zero-code rows")."""
    return _FusedLocal.apply(x, step, qmin, qmax, weight, local_norm == "l2", row_min, row_max, zero_rows)
