"""Quantizers for A2Q and the uniform baselines; each concept in its own module."""
from .degree_quant import DegreeQuantQuantizer
from .factory import METHODS, UNIFORM_METHODS, apply, layer_bits, make_feature_quantizer
from .nns import DEFAULT_POOL, NNSQuantizer, nns_select, pair_ranges
from .node import NodeQuantizer
from .penalty import MemoryPenalty
from .ste import qrange, round_half_up_ste
from .uniform import UniformQuantizer
from .weight import WeightQuantizer

__all__ = ["DEFAULT_POOL", "METHODS", "UNIFORM_METHODS", "DegreeQuantQuantizer", "MemoryPenalty", "NNSQuantizer",
           "NodeQuantizer", "UniformQuantizer", "WeightQuantizer", "apply", "layer_bits", "make_feature_quantizer",
           "nns_select", "pair_ranges", "qrange", "round_half_up_ste"]
