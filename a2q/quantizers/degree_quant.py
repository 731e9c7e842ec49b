"""Degree-Quant (Tailor et al., ICLR 2021), the INT-k baseline the A2Q paper compares against.

Two changes to plain uniform quantization-aware training, both about high in-degree nodes, whose
aggregates sum the most rounding errors:

* Stochastic protection: in every training forward node i keeps its full-precision features with
  probability p_i, rising linearly with its in-degree rank from ``p_min`` to ``p_max``; those nodes
  then pass undistorted gradients. Inference quantizes every node.
* Range from percentiles with momentum: the layer's range tracks an exponential moving average of a
  high percentile of |x| (so a few outliers at the hubs do not stretch it), not a learned step.

It exports exactly like the uniform quantizer: one step and k bits for every node.
"""
from __future__ import annotations

import torch

from .uniform import UniformQuantizer


class DegreeQuantQuantizer(UniformQuantizer):
    def __init__(self, bits: int, signed: bool = False, p_min: float = 0.0, p_max: float = 0.1,
                 percentile: float = 0.999, momentum: float = 0.1):
        super().__init__(bits, signed)
        if not 0.0 <= p_min <= p_max <= 1.0:
            raise ValueError(f"protection probabilities need 0 <= p_min <= p_max <= 1, got {p_min}, {p_max}")
        self.p_min, self.p_max, self.percentile, self.momentum = p_min, p_max, percentile, momentum
        del self.log_step  # the range is tracked, not learned
        self.register_buffer("log_step", torch.tensor(0.0))
        self.register_buffer("protect_prob", torch.zeros(0), persistent=False)  # set per graph

    @torch.no_grad()
    def set_protection(self, in_degree: torch.Tensor) -> None:
        """p_i from the rank of node i's in-degree: p_min for the lowest, p_max for the highest."""
        n = in_degree.numel()
        rank = torch.empty(n)
        rank[torch.argsort(in_degree, stable=True)] = torch.arange(n, dtype=torch.float32)
        self.protect_prob = self.p_min + (self.p_max - self.p_min) * rank / max(n - 1, 1)

    def forward(self, x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        if self.training and bool(self.initialised):
            with torch.no_grad():
                step = (1 - self.momentum) * self.step + self.momentum * self.percentile_step(x)
                self.log_step.copy_(step.log())
        xq = super().forward(x, rows)
        if not self.training or self.protect_prob.numel() == 0:
            return xq
        protected = torch.bernoulli(self.protect_prob).bool()
        keep = protected[rows] if rows is not None else protected[:, None]
        return torch.where(keep, x, xq)
