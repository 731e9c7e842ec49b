"""Memory penalty of A2Q: ``lambda * relu(mem - target)^2`` on the integer node bits (STE to ``b``).

``mem = sum_l c_l * sum_i bq_i`` over the quantized layers ``l`` and their nodes ``i``. Two units:

* ``"kb"``: ``c_l = F_in(l) / 8 / 1024`` -- the feature memory in KB (the A2Q paper's form), target in KB;
* ``"bits"``: ``c_l = 1 / (L * N)`` -- the node-weighted average bitwidth over all quantized layers (the
  ``avg_bits`` that ``a2q train`` reports and ``Program.avg_bits`` computes), target in bits.

Why two: in KB the first layer (F_in = 1433 on Cora) outweighs the hidden layer (F_in = 16) ~90:1, so a
KB budget derived from a target *average* bitwidth never constrains the hidden layer once the first
layer is at 1 bit; ``--target-bits`` therefore uses the "bits" unit, ``--target-kb`` the "kb" unit.
"""
from __future__ import annotations

import torch
from torch import nn


def feature_kb(bits_per_layer, in_features) -> torch.Tensor | float:
    """``sum_l sum_i b_i * F_in(l) / 8 / 1024`` (works on tensors and numpy arrays)."""
    return sum(b.sum() * f / 8.0 / 1024.0 for b, f in zip(bits_per_layer, in_features))


class MemoryPenalty(nn.Module):
    def __init__(self, lam: float, target: float, unit: str = "bits", margin: float = 0.0):
        """``margin``: the penalty aims at ``target * (1 - margin)``, so that a model it holds at its
        equilibrium (a little above the point it aims at) still meets ``target``; :meth:`met` checks
        ``target`` itself."""
        super().__init__()
        if unit not in ("kb", "bits"):
            raise ValueError(f"unit must be 'kb' or 'bits', got {unit!r}")
        if target <= 0:
            raise ValueError(f"memory target must be > 0, got {target}")
        if not 0.0 <= margin < 1.0:
            raise ValueError(f"margin must be in [0, 1), got {margin}")
        self.lam, self.target, self.unit, self.margin = float(lam), float(target), unit, float(margin)

    def extra_repr(self) -> str:
        return f"lam={self.lam}, target={self.target}, unit={self.unit}, margin={self.margin}"

    def memory(self, bits_per_layer: list[torch.Tensor], in_features: list[int]) -> torch.Tensor:
        if self.unit == "kb":
            return feature_kb(bits_per_layer, in_features)
        total = sum(b.numel() for b in bits_per_layer)
        return sum(b.sum() for b in bits_per_layer) / total

    def forward(self, bits_per_layer: list[torch.Tensor], in_features: list[int]) -> torch.Tensor:
        mem = self.memory(bits_per_layer, in_features)
        return self.lam * torch.relu(mem - self.target * (1.0 - self.margin)) ** 2

    def met(self, bits_per_layer, in_features) -> bool:
        """Whether integer bits meet ``target`` (without the margin)."""
        b = [torch.as_tensor(x, dtype=torch.float64) for x in bits_per_layer]
        return float(self.memory(b, in_features)) <= self.target + 1e-9
