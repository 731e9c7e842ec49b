"""A2Q's per-node quantizer: every node i has a learnable step s_i and a learnable bitwidth b_i.

Forward: bits are rounded (half up) and clamped to [1, 8]; values are ``clamp(round(x/s_i))*s_i``.
Backward: straight through for the rounding of values and bits; the step gets LSQ's gradient; the bit
gets its gradient through the clipping range (A2Q, Eq. 4-5).

Local Gradient (A2Q, Sec. 3.3): with ``local_gradient=True`` the task loss does not reach s and b
(they are detached in the forward that feeds the network); instead ``local_loss()`` returns the L1
quantization error |x_q - x| of the last input, whose gradient trains s and b. Most nodes receive
almost no task gradient (they aggregate little), so this is what lets them learn.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from a2q import fixedpoint as fp

from .ste import fake_quant, qrange, round_half_up_ste


class NodeQuantizer(nn.Module):
    def __init__(self, num_nodes: int, signed: bool = False, init_bits: float = 4.0,
                 local_gradient: bool = True):
        super().__init__()
        self.signed = signed
        self.local_gradient = local_gradient
        # Each node learns its clipping range alpha (in log space: ranges span decades, 1/rowsum of a
        # bag of words is ~0.05, hidden features ~1) and its bits; the step is alpha / top code. So a
        # bit more halves the rounding error at the same range: the bits get a gradient from the
        # rounding error as well as from clipping, which is what spreads them by node.
        self.log_alpha = nn.Parameter(torch.zeros(num_nodes))
        self.bits = nn.Parameter(torch.full((num_nodes,), float(init_bits)))
        self.register_buffer("initialised", torch.tensor(False))
        # per-node weight of the local error: how much of node i's error reaches the next aggregation
        # (see ``set_error_weight``); ones = A2Q's plain Local Gradient
        self.register_buffer("error_weight", torch.ones(num_nodes))
        self._local = None

    @torch.no_grad()
    def set_error_weight(self, weight: torch.Tensor) -> None:
        """Weight node i's |x_q - x| by ``weight[i]``, normalised to mean 1."""
        self.error_weight.copy_(weight / weight.mean().clamp_min(1e-12))

    def _top_code(self, bits: torch.Tensor) -> torch.Tensor:
        """Largest code magnitude: 2^b - 1 unsigned, 2^(b-1) signed (the negative end)."""
        return torch.pow(2.0, bits - 1) if self.signed else torch.pow(2.0, bits) - 1

    def _step(self, bits: torch.Tensor, log_alpha: torch.Tensor) -> torch.Tensor:
        return log_alpha.exp() / self._top_code(bits)

    @property
    def step(self) -> torch.Tensor:
        return self._step(self.int_bits(), self.log_alpha)

    def int_bits(self) -> torch.Tensor:
        """Bits used in the forward pass: round half up, clamp to [1, 8], straight-through."""
        b = torch.clamp(self.bits, fp.MIN_NODE_BITS, fp.MAX_NODE_BITS)
        return round_half_up_ste(b)

    @torch.no_grad()
    def init_from(self, x: torch.Tensor) -> None:
        """Steps so that each node's max |x| maps to the top of its initial range (exact for binary rows)."""
        top = x.abs().amax(dim=1)
        self.log_alpha.copy_(torch.where(top > 0, top, torch.ones_like(top)).log())
        self.initialised.fill_(True)

    def _quant(self, x, log_alpha, bits, rows=None):
        qmin, qmax = qrange(bits, self.signed)
        step = self._step(bits, log_alpha)
        if rows is not None:
            return fake_quant(x, step[rows], qmin[rows], qmax[rows])
        return fake_quant(x, step[:, None], qmin[:, None], qmax[:, None])

    def forward(self, x: torch.Tensor, rows: torch.Tensor | None = None, width: int | None = None) -> torch.Tensor:
        """Quantize dense x [N, F]; or, with ``rows``, the non-zero values x[k] of node ``rows[k]`` of a
        sparse [N, ``width``] input (zeros quantize to zero exactly, so they can be skipped)."""
        if rows is None:
            rows, width = None, x.shape[1]
        if not bool(self.initialised):
            if rows is not None:
                raise RuntimeError("initialise a NodeQuantizer from the dense input first (init_from)")
            self.init_from(x)
        bits = self.int_bits()
        if self.local_gradient and self.training:
            out = self._quant(x, self.log_alpha.detach(), bits.detach(), rows)
            err = (self._quant(x.detach(), self.log_alpha, bits, rows) - x.detach()).abs()
            w = self.error_weight[rows] if rows is not None else self.error_weight[:, None]
            err = (err * w).sum()
            self._local = err / self.log_alpha.shape[0] / math.sqrt(width)
            return out
        self._local = None
        return self._quant(x, self.log_alpha, bits, rows)

    def local_loss(self) -> torch.Tensor | None:
        return self._local

    @torch.no_grad()
    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """The integer codes ``clamp(floor(x/s + 0.5))`` of x (what the accelerator is given)."""
        qmin, qmax = qrange(self.int_bits(), self.signed)
        step = self.step[:, None]
        return torch.minimum(torch.maximum(torch.floor(x / step + 0.5), qmin[:, None]), qmax[:, None]).long()

    def export(self) -> dict:
        return {"in_step": self.step.detach().double().numpy(),
                "in_bits": self.int_bits().detach().long().numpy(), "in_signed": self.signed}
