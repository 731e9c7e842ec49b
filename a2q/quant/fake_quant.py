"""The fake-quantization primitive shared by every quantizer: learnable step and bitwidth, STE backward.

Forward (``docs/arithmetic.md``: round half up, like the integer accelerator)::

    bq      = clamp(floor(b + 0.5), 1, 8)                      # integer bitwidth used in the forward pass
    qmin, qmax = (0, 2^bq - 1)                  unsigned
                 (-2^(bq-1), 2^(bq-1) - 1)      signed
    v       = x / s
    q       = clamp(floor(v + 0.5), qmin, qmax)
    x_q     = q * s

Backward (A2Q paper, LSQ for the step, straight-through for the rounding of values and of the bit)::

    dx_q/dx = 1 if qmin <= floor(v+0.5) <= qmax else 0
    dx_q/ds = q - v (in range; LSQ) | qmin (below) | qmax (above)
            with ``lsq=False`` the in-range derivative is the exact one of the piecewise function, ``q``
            (the rounding held fixed): used to minimise the quantization error itself (Local Gradient),
            where LSQ's ``q - v`` (which pretends x_q tracks x) drives the step down into clipping
    dx_q/db = 0 (in range) | s * dqmin/db (below) | s * dqmax/db (above)
      with dqmax/db = 2^bq ln2 (unsigned), 2^(bq-1) ln2 (signed); dqmin/db = 0 (unsigned), -2^(bq-1) ln2 (signed)

The bit gradient passes straight through the rounding and the [1, 8] clamp of ``b``; callers keep the
bit parameter inside [0.5, 8.5) (``clamp_`` of the quantizers) so the clamp is never active in practice.
``step`` and ``bits`` broadcast against ``x`` (per node: ``[N, 1]``; per channel: ``[1, F]``; per layer:
``[1, 1]``); their gradients are summed back to their own shapes.
"""
from __future__ import annotations

import math

import torch

from ..fixedpoint import MAX_NODE_BITS, MIN_NODE_BITS

LN2 = math.log(2.0)


def round_half_up(v: torch.Tensor) -> torch.Tensor:
    """``floor(v + 0.5)``: the rounding rule of the accelerator (ties go towards +inf)."""
    return torch.floor(v + 0.5)


def round_bits(bits: torch.Tensor, lo: int = MIN_NODE_BITS, hi: int = MAX_NODE_BITS) -> torch.Tensor:
    """Integer bitwidth used in the forward pass: ``clamp(floor(b + 0.5), lo, hi)`` (float tensor)."""
    return torch.clamp(round_half_up(bits), lo, hi)


def quant_range(bq: torch.Tensor, signed: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(qmin, qmax)`` for integer bitwidths ``bq`` (float tensors of the same shape)."""
    if signed:
        half = torch.pow(2.0, bq - 1)
        return -half, half - 1
    return torch.zeros_like(bq), torch.pow(2.0, bq) - 1


class _FakeQuantize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, step, bits, signed: bool, lsq: bool):
        bq = round_bits(bits)
        qmin, qmax = quant_range(bq, signed)
        v = x / step
        qf = round_half_up(v)
        q = torch.minimum(torch.maximum(qf, qmin), qmax)
        ctx.signed, ctx.lsq = signed, lsq
        ctx.save_for_backward(v, qf, q, step, bq, qmin, qmax)
        ctx.shapes = (step.shape, bits.shape)
        return q * step

    @staticmethod
    def backward(ctx, g):
        v, qf, q, step, bq, qmin, qmax = ctx.saved_tensors
        step_shape, bits_shape = ctx.shapes
        below, above = qf < qmin, qf > qmax
        inside = ~(below | above)
        gx = gs = gb = None
        if ctx.needs_input_grad[0]:
            gx = g * inside
        if ctx.needs_input_grad[1]:
            gs = (g * (torch.where(inside, q - v, q) if ctx.lsq else q)).sum_to_size(step_shape)
        if ctx.needs_input_grad[2]:
            if ctx.signed:
                d = torch.pow(2.0, bq - 1) * LN2
                dmax, dmin = d, -d
            else:
                dmax, dmin = torch.pow(2.0, bq) * LN2, torch.zeros_like(bq)
            gb = (g * step * (above * dmax + below * dmin)).sum_to_size(bits_shape)
        return gx, gs, gb, None, None


def fake_quantize(x: torch.Tensor, step: torch.Tensor, bits: torch.Tensor, signed: bool,
                  lsq: bool = True) -> torch.Tensor:
    """Quantize-dequantize ``x`` (see the module docstring for forward values and gradients)."""
    if not torch.is_tensor(bits):
        bits = torch.tensor(float(bits), dtype=x.dtype)
    return _FakeQuantize.apply(x, step, bits.to(x.dtype), bool(signed), bool(lsq))


def quantize_int(x: torch.Tensor, step: torch.Tensor, bits: torch.Tensor, signed: bool) -> torch.Tensor:
    """The integers of the forward pass, ``clamp(floor(x/s + 0.5), qmin, qmax)``, as int64."""
    bq = round_bits(bits if torch.is_tensor(bits) else torch.tensor(float(bits)))
    qmin, qmax = quant_range(bq.to(x.dtype), signed)
    q = torch.minimum(torch.maximum(round_half_up(x / step), qmin), qmax)
    return q.to(torch.int64)
