"""Quantized GCN layer with the normalisation folded into per-node factors.

    y_j   = d_j^-1/2 * (xq_j @ Wq)                       (combine, then the source factor)
    out_i = d_i^-1/2 * (sum_{j in N(i) + {i}} y_j + b)   (plain sum, then the destination factor)

d counts in-edges including the self loop. The bias sits inside the destination factor (see
docs/arithmetic.md): that is what lets the accelerator add it as one integer per channel. The input
quantizer (per-node A2Q, uniform, or none for FP32) is applied to the layer input, the first layer's
included, so the accelerator never sees a float.
"""
from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import add_remaining_self_loops, coalesce, degree


def gcn_norm_factors(edge_index: torch.Tensor, num_nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(edge_index of A + I, coalesced, with one self loop per node; d^-1/2 per node)."""
    ei, _ = add_remaining_self_loops(edge_index, num_nodes=num_nodes)
    ei = coalesce(ei, num_nodes=num_nodes)
    deg = degree(ei[1], num_nodes=num_nodes)
    return ei, deg.clamp_min(1).pow(-0.5)


class QGCNConv(MessagePassing):
    def __init__(self, in_features: int, out_features: int, input_quantizer: nn.Module | None = None,
                 weight_quantizer: nn.Module | None = None, bias: bool = True):
        super().__init__(aggr="add")
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.input_quantizer = input_quantizer
        self.weight_quantizer = weight_quantizer
        nn.init.xavier_uniform_(self.weight)

    def quantized_weight(self) -> torch.Tensor:
        return self.weight if self.weight_quantizer is None else self.weight_quantizer(self.weight)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, dinv: torch.Tensor) -> torch.Tensor:
        """``edge_index`` and ``dinv`` from ``gcn_norm_factors`` (computed once per graph).

        ``x`` may be a sparse COO tensor (bag-of-words inputs are ~99% zeros): then only its non-zero
        values are quantized and the combination is a sparse product, with the same result.
        """
        if x.is_sparse:
            idx, vals = x.indices(), x.values()
            if self.input_quantizer is not None:
                vals = self.input_quantizer(vals, rows=idx[0])
            xq = torch.sparse_coo_tensor(idx, vals, x.shape, is_coalesced=True, check_invariants=False)
            xw = torch.sparse.mm(xq, self.quantized_weight())
        else:
            xq = x if self.input_quantizer is None else self.input_quantizer(x)
            xw = xq @ self.quantized_weight()
        y = dinv[:, None] * xw
        agg = self.propagate(edge_index, x=y)
        if self.bias is not None:
            agg = agg + self.bias
        return dinv[:, None] * agg

    def message(self, x_j: torch.Tensor) -> torch.Tensor:
        return x_j
