"""A2Q's memory-size penalty ``lambda * relu(mem - target)^2``.

``mem`` is either the feature memory in KB (sum over layers and nodes of b_i * F_in / 8 / 1024) or the
node-weighted average bitwidth over layers; the latter is what ``--target-bits`` constrains, because in
KB the first layer's 1433-wide rows would dominate and leave the hidden layer's bits unconstrained.
"""
from __future__ import annotations

import torch


class MemoryPenalty:
    """``weight * relu(mem - target)^2 + bit_cost * mem``.

    The squared term enforces the target. The small linear ``bit_cost`` keeps a price on every bit
    below the target too; without it all nodes stop together at the target (the squared term gives
    every node the same gradient), while with it a node keeps a bit only where its local quantization
    error pays for it, which is what spreads the bits by node.
    """

    def __init__(self, target: float, weight: float, unit: str = "bits", bit_cost: float = 0.0):
        if unit not in ("bits", "kb"):
            raise ValueError(f"unit must be 'bits' or 'kb', got {unit!r}")
        self.target, self.weight, self.unit = float(target), float(weight), unit
        self.bit_cost = float(bit_cost)

    @staticmethod
    def memory_kb(bits_per_layer: list[torch.Tensor], in_features: list[int]) -> torch.Tensor:
        return sum(b.sum() * f for b, f in zip(bits_per_layer, in_features)) / 8 / 1024

    @staticmethod
    def average_bits(bits_per_layer: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack([b.mean() for b in bits_per_layer]).mean()

    def measure(self, bits_per_layer, in_features) -> torch.Tensor:
        if self.unit == "kb":
            return self.memory_kb(bits_per_layer, in_features)
        return self.average_bits(bits_per_layer)

    def __call__(self, bits_per_layer, in_features) -> torch.Tensor:
        mem = self.measure(bits_per_layer, in_features)
        return self.weight * torch.relu(mem - self.target) ** 2 + self.bit_cost * mem
