"""Per-output-channel weight quantizer: signed, ``bits`` wide (default 4), one learnable step per channel.

Weights are stored ``[F_in, F_out]``; channel ``o`` is quantized as
``w_q[:, o] = s_o * clamp(floor(w[:, o] / s_o + 0.5), -2^(wb-1), 2^(wb-1)-1)`` (the exporter applies the
same rule). The step is LSQ-trained with the task gradient (see :mod:`a2q.quant.fake_quant`) and
initialised on the first training forward as ``max_k |w[k, o]| / (2^(wb-1) - 1)``.
"""
from __future__ import annotations

import torch
from torch import nn

from .fake_quant import fake_quantize, quantize_int
from .node_quantizer import STEP_MIN


class WeightQuantizer(nn.Module):
    def __init__(self, out_channels: int, bits: int = 4):
        super().__init__()
        if not 2 <= int(bits) <= 8:
            raise ValueError(f"weight bits must be in [2, 8], got {bits}")
        self.out_channels, self.num_bits = out_channels, int(bits)
        self.step = nn.Parameter(torch.ones(out_channels))
        self.register_buffer("bits", torch.tensor(float(bits)))
        self.register_buffer("initialized", torch.tensor(False))

    def extra_repr(self) -> str:
        return f"out_channels={self.out_channels}, bits={self.num_bits}"

    @torch.no_grad()
    def initialize(self, w: torch.Tensor) -> None:
        qmax = float(2 ** (self.num_bits - 1) - 1)
        m = w.detach().abs().amax(dim=0)
        self.step.copy_(torch.where(m > 0, m / qmax, torch.full_like(m, 1.0 / qmax)).clamp_min(STEP_MIN))
        self.initialized.fill_(True)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if self.training and not bool(self.initialized):
            self.initialize(w)
        return fake_quantize(w, self.step.view(1, -1), self.bits, signed=True)

    @torch.no_grad()
    def clamp_(self) -> None:
        self.step.clamp_(min=STEP_MIN)

    def quantize_int(self, w: torch.Tensor) -> torch.Tensor:
        return quantize_int(w, self.step.detach().view(1, -1), self.bits, signed=True)
