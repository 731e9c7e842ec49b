"""A2Q's memory-size penalty ``lambda * relu(mem - target)^2``.

``mem`` is either the feature memory in KB (sum over layers and nodes of b_i * F_in / 8 / 1024) or the
node-weighted average bitwidth over layers; the latter is what ``--target-bits`` constrains, because in
KB the first layer's 1433-wide rows would dominate and leave the hidden layer's bits unconstrained.
"""
from __future__ import annotations

import torch


class MemoryPenalty:
    """``weight * relu(mem - target * (1 - margin))^2 + bit_cost * mem``.

    The squared term enforces the target. It holds the bits at an equilibrium a little above the point
    it aims at, so it aims ``margin`` below the target and the trained model meets the target itself
    (``met``). The optional linear ``bit_cost`` puts a price on every bit, below the target too.
    """

    def __init__(self, target: float, weight: float, unit: str = "bits", bit_cost: float = 0.0,
                 margin: float = 0.0):
        if unit not in ("bits", "kb"):
            raise ValueError(f"unit must be 'bits' or 'kb', got {unit!r}")
        if target <= 0:
            raise ValueError(f"the memory target must be > 0, got {target}")
        if not 0.0 <= margin < 1.0:
            raise ValueError(f"the penalty margin must lie in [0, 1), got {margin}")
        self.target, self.weight, self.unit = float(target), float(weight), unit
        self.bit_cost, self.margin = float(bit_cost), float(margin)

    @staticmethod
    def memory_kb(bits_per_layer: list[torch.Tensor], in_features: list[int]) -> torch.Tensor:
        return sum(b.sum() * f for b, f in zip(bits_per_layer, in_features, strict=True)) / 8 / 1024

    @staticmethod
    def average_bits(bits_per_layer: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack([b.mean() for b in bits_per_layer]).mean()

    def measure(self, bits_per_layer, in_features) -> torch.Tensor:
        if self.unit == "kb":
            return self.memory_kb(bits_per_layer, in_features)
        return self.average_bits(bits_per_layer)

    def met(self, bits_per_layer, in_features) -> bool:
        """Whether these bits meet the target itself (not the point the penalty aims at)."""
        return float(self.measure([b.detach() for b in bits_per_layer], in_features)) <= self.target + 1e-6

    def __call__(self, bits_per_layer, in_features) -> torch.Tensor:
        mem = self.measure(bits_per_layer, in_features)
        aim = self.target * (1.0 - self.margin)
        return self.weight * torch.relu(mem - aim) ** 2 + self.bit_cost * mem
