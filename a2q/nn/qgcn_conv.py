"""Quantized GCN layer with the GCN normalisation folded into per-node factors.

    x_q   = Q_in(x)                                  (per-node quantizer; none for FP32)
    y_j   = d_j^-1/2 * (x_q_j @ W_q)                 (W_q: per-output-channel weight quantizer)
    out_i = d_i^-1/2 * (sum_{j in N(i) + {i}} y_j + b)

``d`` is the in-degree counting one self loop; the aggregation is a plain sum (``aggr="add"``) with no
per-edge weight, and the bias sits *inside* the destination normalisation (``docs/arithmetic.md``): the
exact form of the integer accelerator. The graph is prepared once by :func:`gcn_graph`, with the
exporter's convention (existing self loops and duplicate edges dropped, one self loop per node added).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import add_self_loops, coalesce, degree, remove_self_loops


class SparseRows(NamedTuple):
    """Non-zero entries of a sparse ``[num_rows, num_cols]`` feature matrix (bag-of-words inputs are ~99%
    zeros; a zero quantizes to zero with zero gradients, so skipping them changes nothing)."""
    rows: torch.Tensor
    cols: torch.Tensor
    values: torch.Tensor
    num_rows: int
    num_cols: int

    @classmethod
    def from_dense(cls, x: torch.Tensor) -> SparseRows:
        rows, cols = x.nonzero(as_tuple=True)
        return cls(rows, cols, x[rows, cols], int(x.shape[0]), int(x.shape[1]))


def gcn_graph(edge_index: torch.Tensor, num_nodes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(edge_index with one self loop per node, in-degree d, d^-1/2)``; edges go source -> target."""
    ei, _ = remove_self_loops(edge_index)
    ei = coalesce(ei, num_nodes=num_nodes)
    ei, _ = add_self_loops(ei, num_nodes=num_nodes)
    deg = degree(ei[1], num_nodes=num_nodes, dtype=torch.float32)
    return ei, deg, deg.clamp_min(1.0).pow(-0.5)


class QGCNConv(MessagePassing):
    """GCN layer ``F_in -> F_out``; ``input_quant`` (node quantizer or None) and ``weight_quant``
    (:class:`a2q.quant.WeightQuantizer` or None) make it quantized; ``dropout`` acts on the quantized input."""

    def __init__(self, in_channels: int, out_channels: int, input_quant: nn.Module | None = None,
                 weight_quant: nn.Module | None = None, dropout: float = 0.0, relu: bool = False):
        super().__init__(aggr="add")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.input_quant, self.weight_quant = input_quant, weight_quant
        self.dropout, self.relu = float(dropout), bool(relu)
        self.weight = nn.Parameter(torch.empty(in_channels, out_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = math.sqrt(6.0 / (self.in_channels + self.out_channels))  # glorot, like PyG's GCNConv
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.zeros_(self.bias)

    def quantized_weight(self) -> torch.Tensor:
        return self.weight if self.weight_quant is None else self.weight_quant(self.weight)

    def forward(self, x: torch.Tensor | SparseRows, edge_index: torch.Tensor,
                deg_inv_sqrt: torch.Tensor) -> torch.Tensor:
        """``x`` is dense ``[N, F_in]`` or :class:`SparseRows` (same result, only non-zeros are touched)."""
        w = self.quantized_weight()
        if isinstance(x, SparseRows):
            vals = x.values if self.input_quant is None else self.input_quant(x.values, rows=x.rows)
            vals = F.dropout(vals, p=self.dropout, training=self.training)
            xw = torch.zeros(x.num_rows, w.shape[1], dtype=w.dtype).index_add_(0, x.rows, vals[:, None] * w[x.cols])
        else:
            xq = x if self.input_quant is None else self.input_quant(x)
            xq = F.dropout(xq, p=self.dropout, training=self.training)
            xw = xq @ w
        y = deg_inv_sqrt[:, None] * xw
        out = deg_inv_sqrt[:, None] * (self.propagate(edge_index, x=y) + self.bias)
        return torch.relu(out) if self.relu else out

    def message(self, x_j: torch.Tensor) -> torch.Tensor:
        return x_j

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, relu={self.relu})"
