"""Straight-through rounding and the integer range of a b-bit code.

Rounding is round-half-up, ``floor(v + 0.5)``, the rule of docs/arithmetic.md, so the fake-quant model
and the integer accelerator round the same way.
"""
from __future__ import annotations

import torch


def round_half_up_ste(v: torch.Tensor) -> torch.Tensor:
    """``floor(v + 0.5)`` forward, identity backward."""
    return v + (torch.floor(v + 0.5) - v).detach()


def qrange(bits: torch.Tensor, signed: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(qmin, qmax) of a b-bit code; differentiable in ``bits`` (A2Q's gradient for the bitwidth)."""
    if signed:
        half = torch.pow(2.0, bits - 1)
        return -half, half - 1
    return torch.zeros_like(bits), torch.pow(2.0, bits) - 1


def clip(q: torch.Tensor, qmin: torch.Tensor, qmax: torch.Tensor) -> torch.Tensor:
    """``clamp(q, qmin, qmax)`` whose gradient goes to qmin/qmax only where q lies strictly outside.

    ``torch.minimum`` splits the gradient of a tie: a code sitting exactly at the top (a row's max |x|
    after initialisation) would push the bitwidth although the code does not clip.
    """
    return torch.where(q > qmax, qmax, torch.where(q < qmin, qmin, q))


def fake_quant(x: torch.Tensor, step: torch.Tensor, qmin: torch.Tensor, qmax: torch.Tensor) -> torch.Tensor:
    """``clamp(round(x / step), qmin, qmax) * step`` with STE rounding (LSQ's gradients for step).

    Gradients: to ``x`` inside the range, to ``step`` as ``round(v) - v`` inside and ``qmin|qmax``
    outside, to ``qmin``/``qmax`` (hence the bits) where the value clips.
    """
    return clip(round_half_up_ste(x / step), qmin, qmax) * step
