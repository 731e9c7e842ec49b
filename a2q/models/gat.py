"""Two-layer GAT (8 heads x 8 channels, then one head) for node-level tasks, FP32 / INT-k / DQ / A2Q.

The configuration of Velickovic et al. on Cora (dropout 0.6 on inputs and attention, ELU). Quantized:
the inputs of both layers and the attention inputs per node, weights and attention vectors per
channel, attention coefficients at 8 bits (``a2q/layers/qgat_conv.py``). Training and fake-quant
evaluation only: ``a2q export`` refuses it (the accelerator has no softmax).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..layers import QGATConv
from ..quantizers import WeightQuantizer, make_feature_quantizer
from .base import QuantizedModel


class GAT(QuantizedModel):
    kind = "gat"

    def __init__(self, in_features: int, num_classes: int, num_nodes: int, hidden: int = 8, heads: int = 8,
                 method: str = "a2q", bits: int = 4, weight_bits: int = 4, init_bits: float = 4.0,
                 local_gradient: bool = True, local_norm: str = "l2", dropout: float = 0.6,
                 first_signed: bool = False, aggregation_aware: bool = True, task: str = "node",
                 weight_step: str = "log"):
        super().__init__()
        if task != "node":
            raise ValueError("GAT is built for node-level tasks only")
        self.config = dict(kind="gat", in_features=in_features, num_classes=num_classes, num_nodes=num_nodes,
                           hidden=hidden, heads=heads, method=method, bits=bits, weight_bits=weight_bits,
                           init_bits=init_bits, local_gradient=local_gradient, local_norm=local_norm,
                           dropout=dropout, first_signed=first_signed, aggregation_aware=aggregation_aware,
                           weight_step=weight_step)
        self.method, self.task, self.dropout = method, "node", dropout

        def fq(signed):
            return make_feature_quantizer(method, num_nodes, signed, bits, init_bits, local_gradient, local_norm)

        def wq(width):
            return None if method == "fp32" else WeightQuantizer(width, weight_bits, weight_step)

        q = method != "fp32"
        self.conv1 = QGATConv(in_features, hidden, heads, True, fq(first_signed), fq(True), wq(hidden * heads),
                              wq(2 * heads), dropout, quantize_alpha=q, input_dropout=dropout)
        # the second layer's input follows an ELU: signed (>= -1)
        self.conv2 = QGATConv(hidden * heads, num_classes, 1, False, fq(True), fq(True), wq(num_classes), wq(2),
                              dropout, quantize_alpha=q, input_dropout=dropout)
        self._graph_key = None

    def feature_quantizers(self):
        return self.conv1.quantizers() + self.conv2.quantizers()

    def _aggregated_inputs(self):
        return [self.conv1.attention_quantizer, self.conv2.attention_quantizer]

    def forward(self, data) -> torch.Tensor:
        key = (data.edge_index.data_ptr(), data.num_nodes)
        if self._graph_key != key:
            self._graph_key = key
            n = data.num_nodes
            ones = torch.ones(data.edge_index.shape[1])
            in_deg = torch.zeros(n).index_add_(0, data.edge_index[1], ones) + 1
            spread = torch.zeros(n).index_add_(0, data.edge_index[0], ones) + 1 \
                if self.config["aggregation_aware"] else torch.ones(n)
            self._set_degree_dependent(in_deg, spread, [q for q, _ in self.feature_quantizers() if q is not None])
        h = F.elu(self.conv1(data.x, data.edge_index))
        return self.conv2(h, data.edge_index)


