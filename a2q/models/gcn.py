"""Two-layer GCN in FP32, uniform INT-k, Degree-Quant INT-k or A2Q form, with the export hook the accelerator needs.

``export_layers`` hands the exporter every float it folds into integers (steps, bits, float weights,
weight steps, bias); ``quantized_input`` gives the first layer's integer codes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import QGCNConv, gcn_norm_factors
from ..quantizers import (
    METHODS,
    UNIFORM_METHODS,
    DegreeQuantQuantizer,
    NodeQuantizer,
    UniformQuantizer,
    WeightQuantizer,
)
from .base import QuantizedModel

__all__ = ["GCN", "METHODS", "UNIFORM_METHODS"]


class GCN(QuantizedModel):
    kind = "gcn"

    def __init__(self, num_nodes: int, in_features: int, num_classes: int, hidden: int = 16,
                 method: str = "a2q", bits: int = 4, weight_bits: int = 4, init_bits: float = 4.0,
                 local_gradient: bool = True, dropout: float = 0.5, first_signed: bool = False,
                 aggregation_aware: bool = True, local_norm: str = "l2",
                 weight_step: str = "log"):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
        self.method, self.dropout = method, dropout
        self.config = dict(num_nodes=num_nodes, in_features=in_features, num_classes=num_classes,
                           hidden=hidden, method=method, bits=bits, weight_bits=weight_bits,
                           init_bits=init_bits, local_gradient=local_gradient, dropout=dropout,
                           first_signed=first_signed, aggregation_aware=aggregation_aware,
                           local_norm=local_norm, weight_step=weight_step)
        dims = [in_features, hidden, num_classes]
        signed = [first_signed, False]  # the hidden layer's input follows a ReLU
        self.convs = nn.ModuleList()
        for i in range(2):
            if method == "fp32":
                iq, wq = None, None
            elif method in UNIFORM_METHODS:
                kind = UniformQuantizer if method == "uniform" else DegreeQuantQuantizer
                iq, wq = kind(bits, signed[i]), WeightQuantizer(dims[i + 1], weight_bits, weight_step)
            else:
                iq = NodeQuantizer(num_nodes, signed[i], init_bits, local_gradient, local_norm=local_norm)
                wq = WeightQuantizer(dims[i + 1], weight_bits, weight_step)
            if iq is not None:
                iq.last_rows = num_nodes  # every layer input has one row per node (for the bit statistics)
            self.convs.append(QGCNConv(dims[i], dims[i + 1], iq, wq))
        self._graph = None
        self._sparse = None
        self.sparse_input = True

    def _norm(self, data):
        key = (data.edge_index.data_ptr(), data.num_nodes)
        if self._graph is None or self._graph[0] != key:
            ei, dinv = gcn_norm_factors(data.edge_index, data.num_nodes)
            self._graph = (key, ei, dinv)
            if self.config.get("aggregation_aware", True):
                # A node's quantization error reaches the next layer through the normalised adjacency:
                # node j's error is spread with total weight sum_i A_ij = d_j^-1/2 sum_{i <- j} d_i^-1/2.
                # Weighting the Local Gradient by it makes the bits aggregation-aware.
                spread = torch.zeros(data.num_nodes).index_add_(0, ei[0], dinv[ei[1]]) * dinv
                for q in self.node_quantizers:
                    q.set_error_weight(spread)
            for c in self.convs:
                if isinstance(c.input_quantizer, DegreeQuantQuantizer):
                    c.input_quantizer.set_protection(1.0 / dinv ** 2)  # in-degree with the self loop
        return self._graph[1], self._graph[2]

    def _input(self, data) -> torch.Tensor:
        """The first layer's input: sparse COO when mostly zeros (faster, identical result)."""
        x = data.x
        if x.is_sparse or not self.sparse_input:
            return x
        key = (x.data_ptr(), tuple(x.shape))
        if self._sparse is None or self._sparse[0] != key:
            first = self.convs[0].input_quantizer
            if first is not None and not bool(first.initialised):
                first.init_from(x)
            self._sparse = (key, x.to_sparse().coalesce())
        return self._sparse[1]

    def forward(self, data) -> torch.Tensor:
        ei, dinv = self._norm(data)
        h = self.convs[0](self._input(data), ei, dinv)
        h = F.relu(h)
        h = F.dropout(h, self.dropout, self.training)
        return self.convs[1](h, ei, dinv)

    # -- quantization bookkeeping (the rest comes from QuantizedModel) ----------------------------
    def feature_quantizers(self):
        return [(c.input_quantizer, c.in_features) for c in self.convs]

    # -- export hook --------------------------------------------------------------------------------
    @torch.no_grad()
    def export_layers(self, data) -> list[dict]:
        if self.method == "fp32":
            raise ValueError("an FP32 model has no quantizers to export")
        self.eval()
        self(data)  # make sure every quantizer is initialised
        layers = []
        for i, c in enumerate(self.convs):
            q = c.input_quantizer
            qd = q.export() if isinstance(q, NodeQuantizer) else q.export_for(data.num_nodes)
            layers.append({**qd, "weight": c.weight.detach().double().numpy(), **c.weight_quantizer.export(),
                           "bias": c.bias.detach().double().numpy(), "relu": i == 0})
        return layers

    @torch.no_grad()
    def quantized_input(self, data):
        return self.convs[0].input_quantizer.codes(data.x).numpy()
