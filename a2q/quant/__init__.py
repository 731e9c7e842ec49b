"""Quantizers with straight-through estimators (A2Q per-node, per-channel weight, uniform INT-k) and the
memory penalty. One concept per module; see each module's docstring for the forward rule and gradients."""
from .fake_quant import fake_quantize, quant_range, round_bits, round_half_up
from .memory_penalty import MemoryPenalty
from .node_quantizer import NodeQuantizer
from .uniform_quantizer import UniformQuantizer
from .weight_quantizer import WeightQuantizer

__all__ = ["MemoryPenalty", "NodeQuantizer", "UniformQuantizer", "WeightQuantizer", "fake_quantize",
           "quant_range", "round_bits", "round_half_up"]
