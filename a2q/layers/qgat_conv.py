"""Quantized GAT layer (Velickovic et al., ICLR 2018) for node-level tasks, training and fake-quant only.

    h_j     = xq_j W                                     (per head: H heads of C channels)
    e_ij    = LeakyReLU(a_src . hq_j + a_dst . hq_i)      (over the in-edges of i and a self loop)
    alpha_ij = softmax_j(e_ij), quantized to 8-bit unsigned codes of step 1/255
    out_i   = sum_j alpha_ij hq_j + b                    (heads concatenated, or averaged)

Quantized, as in A2Q's GAT: the layer input x (per node), the weights W and the attention vectors
a_src, a_dst (per channel), the attention inputs hq = Q(h) (per node, signed), and the attention
coefficients alpha. The accelerator cannot run it: the softmax needs exp and a per-node division over
data-dependent edge weights, which the integer program (combine, plain sum, rescale) does not have.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import add_remaining_self_loops, softmax

from ..quantizers import apply
from ..quantizers.ste import fake_quant

#: Attention coefficients lie in [0, 1]: 8-bit unsigned codes with a fixed step.
ALPHA_BITS = 8


class QGATConv(MessagePassing):
    def __init__(self, in_features: int, out_per_head: int, heads: int = 1, concat: bool = True,
                 input_quantizer: nn.Module | None = None, attention_quantizer: nn.Module | None = None,
                 weight_quantizer: nn.Module | None = None, att_quantizer: nn.Module | None = None,
                 dropout: float = 0.6, negative_slope: float = 0.2, quantize_alpha: bool = False,
                 input_dropout: float = 0.0):
        super().__init__(aggr="add", node_dim=0)
        self.in_features, self.heads, self.channels, self.concat = in_features, heads, out_per_head, concat
        self.out_features = heads * out_per_head if concat else out_per_head
        self.dropout, self.negative_slope, self.quantize_alpha = dropout, negative_slope, quantize_alpha
        self.input_dropout = input_dropout  # after the quantizer: dropout is training-only, codes are not
        self.weight = nn.Parameter(torch.empty(in_features, heads * out_per_head))
        # attention vectors as [C, 2H]: columns 0..H-1 the source halves, H..2H-1 the destination halves,
        # so a per-column weight quantizer gives one step per head and side
        self.att = nn.Parameter(torch.empty(out_per_head, 2 * heads))
        self.bias = nn.Parameter(torch.zeros(self.out_features))
        self.input_quantizer, self.attention_quantizer = input_quantizer, attention_quantizer
        self.weight_quantizer, self.att_quantizer = weight_quantizer, att_quantizer
        nn.init.xavier_uniform_(self.weight)
        nn.init.xavier_uniform_(self.att)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        n, H, C = x.shape[0], self.heads, self.channels
        xq = F.dropout(apply(self.input_quantizer, x), self.input_dropout, self.training)
        w = self.weight if self.weight_quantizer is None else self.weight_quantizer(self.weight)
        h = apply(self.attention_quantizer, xq @ w).view(n, H, C)
        att = self.att if self.att_quantizer is None else self.att_quantizer(self.att)
        a_src = (h * att[:, :H].T[None]).sum(-1)  # [N, H]
        a_dst = (h * att[:, H:].T[None]).sum(-1)
        ei, _ = add_remaining_self_loops(edge_index, num_nodes=n)
        out = self.propagate(ei, x=h, a_src=a_src, a_dst=a_dst, size=(n, n))
        out = out.reshape(n, H * C) if self.concat else out.mean(dim=1)
        return out + self.bias

    def message(self, x_j, a_src_j, a_dst_i, index, ptr, size_i):
        e = F.leaky_relu(a_src_j + a_dst_i, self.negative_slope)
        alpha = softmax(e, index, ptr, size_i)
        if self.quantize_alpha:
            top = float(2 ** ALPHA_BITS - 1)
            alpha = fake_quant(alpha, torch.tensor(1.0 / top), torch.tensor(0.0), torch.tensor(top))
        alpha = F.dropout(alpha, self.dropout, self.training)
        return x_j * alpha[..., None]

    def quantizers(self) -> list:
        return [(self.input_quantizer, self.in_features), (self.attention_quantizer, self.heads * self.channels)]
