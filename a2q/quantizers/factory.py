"""One place that maps a training method to the feature quantizer of a layer input (all models use it).

Node-level (transductive) A2Q gives every node its own learned (step, bits): ``NodeQuantizer``.
Graph-level A2Q must quantize unseen graphs, so it uses the Nearest Neighbour Strategy pool
(``NNSQuantizer``). Uniform INT-k and Degree-Quant INT-k are the same for both tasks.
"""
from __future__ import annotations

import torch

from .degree_quant import DegreeQuantQuantizer
from .nns import DEFAULT_POOL, NNSQuantizer
from .node import NodeQuantizer
from .uniform import UniformQuantizer

METHODS = ("fp32", "uniform", "dq", "a2q")
#: methods that quantize every node to the same k bits
UNIFORM_METHODS = ("uniform", "dq")


def make_feature_quantizer(method: str, num_nodes: int | None, signed: bool, bits: int = 4,
                           init_bits: float = 4.0, local_gradient: bool = True, local_norm: str = "l2",
                           pool: int = DEFAULT_POOL):
    """The quantizer of one layer input; ``num_nodes=None`` means graph-level (NNS for A2Q)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    if method == "fp32":
        return None
    if method == "uniform":
        return UniformQuantizer(bits, signed)
    if method == "dq":
        return DegreeQuantQuantizer(bits, signed)
    if num_nodes is None:
        return NNSQuantizer(pool, signed, init_bits, local_gradient, local_norm=local_norm)
    return NodeQuantizer(num_nodes, signed, init_bits, local_gradient, exact_init=True, local_norm=local_norm)


def apply(q, x: torch.Tensor) -> torch.Tensor:
    """Quantize x with q (None: identity), remembering how many rows it saw (for the bit statistics)."""
    if q is None:
        return x
    q.last_rows = x.shape[0]
    return q(x)


def layer_bits(q) -> torch.Tensor | None:
    """Bits of every row the quantizer saw last (differentiable for A2Q); None for FP32."""
    if q is None:
        return None
    if isinstance(q, NNSQuantizer):
        return q.row_bits()
    if isinstance(q, NodeQuantizer):
        return q.int_bits()
    return torch.full((getattr(q, "last_rows", 1),), float(q.k))
