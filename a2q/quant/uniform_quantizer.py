"""Uniform fixed-bit quantizer for the INT-k baselines: one learned step per layer (LSQ), ``bits`` fixed.

Forward and step gradient as in :func:`a2q.quant.fake_quant.fake_quantize` with a scalar step and a fixed
bitwidth (no bit gradient). In export terms it is a per-node quantizer whose nodes all share the same
bits and the same step (:meth:`node_steps`, :meth:`int_bits`). The step is initialised on the first
training forward by min-max calibration, ``max|x| / qmax``, then trained with the task gradient
(stored as ``log_step``, see :attr:`step`).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..fixedpoint import MAX_NODE_BITS, MIN_NODE_BITS
from .fake_quant import fake_quantize, quant_range, quantize_int
from .node_quantizer import STEP_MIN


class UniformQuantizer(nn.Module):
    def __init__(self, num_nodes: int, bits: int, signed: bool = False):
        super().__init__()
        if not MIN_NODE_BITS <= int(bits) <= MAX_NODE_BITS:
            raise ValueError(f"uniform bits must be in [{MIN_NODE_BITS}, {MAX_NODE_BITS}], got {bits}")
        self.num_nodes, self.num_bits, self.signed = num_nodes, int(bits), bool(signed)
        self.local_grad = False
        self.local_loss = None
        self.log_step = nn.Parameter(torch.zeros(1))
        self.register_buffer("bits", torch.tensor(float(bits)))
        self.register_buffer("initialized", torch.tensor(False))

    def extra_repr(self) -> str:
        return f"num_nodes={self.num_nodes}, bits={self.num_bits}, signed={self.signed}"

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        qmax = float(quant_range(self.bits, self.signed)[1])
        m = float(x.detach().abs().max())
        self.log_step.fill_(math.log(max(m / qmax, STEP_MIN) if m > 0 else 1.0 / qmax))
        self.initialized.fill_(True)

    @property
    def step(self) -> torch.Tensor:
        """``exp(log_step)``, learned in log space like the node steps (same learning rate applies)."""
        return self.log_step.exp()

    def forward(self, x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Quantize ``x``; ``rows`` (ignored: one step for all nodes) marks ``x`` as sparse entries."""
        if self.training and not bool(self.initialized):
            self.initialize(x)
        return fake_quantize(x, self.step.view([1] * x.dim()), self.bits, self.signed)

    def bits_ste(self) -> torch.Tensor:
        return self.bits.expand(self.num_nodes)

    def int_bits(self) -> torch.Tensor:
        return torch.full((self.num_nodes,), self.num_bits, dtype=torch.int64)

    def node_steps(self) -> torch.Tensor:
        return self.step.detach().expand(self.num_nodes)

    def quantize_int(self, x: torch.Tensor) -> torch.Tensor:
        return quantize_int(x, self.step.detach().view(1, 1), self.bits, self.signed)
