"""Quantizers for A2Q and the uniform baselines; each concept in its own module."""
from .degree_quant import DegreeQuantQuantizer
from .node import NodeQuantizer
from .penalty import MemoryPenalty
from .ste import qrange, round_half_up_ste
from .uniform import UniformQuantizer
from .weight import WeightQuantizer

__all__ = ["DegreeQuantQuantizer", "NodeQuantizer", "MemoryPenalty", "UniformQuantizer", "WeightQuantizer", "qrange",
           "round_half_up_ste"]
