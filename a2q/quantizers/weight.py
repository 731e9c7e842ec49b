"""Per-output-channel weight quantizer: signed, ``bits`` wide (4 by default), learnable step (LSQ)."""
from __future__ import annotations

import math

import torch
from torch import nn

from a2q import fixedpoint as fp

from .ste import fake_quant


class WeightQuantizer(nn.Module):
    def __init__(self, out_features: int, bits: int = 4):
        super().__init__()
        if not 2 <= bits <= 8:
            raise ValueError(f"weight bits must lie in [2, 8], got {bits}")
        self.bits = int(bits)
        self.step = nn.Parameter(torch.ones(out_features))
        self.register_buffer("initialised", torch.tensor(False))

    @property
    def qrange(self) -> tuple[int, int]:
        return fp.signed_range(self.bits)

    @torch.no_grad()
    def init_from(self, w: torch.Tensor) -> None:
        _, qmax = self.qrange
        self.step.copy_(w.abs().amax(dim=0).clamp_min(1e-8) / qmax)
        self.initialised.fill_(True)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        """``w`` is [F_in, F_out]; one step per output channel (column)."""
        if not bool(self.initialised):
            self.init_from(w)
        qmin, qmax = self.qrange
        g = 1.0 / math.sqrt(w.shape[0] * qmax)
        step = self.step.abs().clamp_min(1e-8)
        step = step * g + (step - step * g).detach()
        return fake_quant(w, step[None, :], torch.tensor(float(qmin)), torch.tensor(float(qmax)))

    def export(self) -> dict:
        return {"weight_step": self.step.detach().abs().clamp_min(1e-8).double().numpy(),
                "weight_bits": self.bits}
