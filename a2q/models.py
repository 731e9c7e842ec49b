"""Two-layer GCN models: FP32, uniform INT-k and A2Q, all of the folded form of :class:`a2q.nn.QGCNConv`.

``build_model(method, ...)`` makes ``GCN(F0 -> hidden -> classes)``: layer 1 with ReLU (so layer 2's input
is unsigned), layer 2 plain logits. Quantized methods quantize every layer input per node (the first
one unsigned when the features are non-negative, signed otherwise) and the weights per output channel.

* ``fp32``: no quantizers.
* ``uniform``: :class:`a2q.quant.UniformQuantizer` with ``bits`` for the features; the weights use
  ``weight_bits`` (default ``max(4, bits)``, so the INT8 baseline has 8-bit weights and INT4/INT2 4-bit ones).
* ``a2q``: :class:`a2q.quant.NodeQuantizer` (learned per-node step and bits, Local Gradient by default,
  each node's L1 error weighted by :func:`aggregation_weight` unless ``aggregation_weighted=False``)
  with ``weight_bits`` (default 4) weights.

The export hook (contract with :mod:`a2q.export`) is :meth:`GCN.export_layers` + :meth:`GCN.quantized_input`.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .nn import QGCNConv, SparseRows, gcn_graph
from .quant import NodeQuantizer, UniformQuantizer, WeightQuantizer

METHODS = ("fp32", "uniform", "a2q")
DEFAULT_WEIGHT_BITS = 4
#: First-layer inputs with at most this fraction of non-zeros run through the sparse path.
SPARSE_DENSITY = 0.1


def default_weight_bits(method: str, bits: int | None) -> int:
    if method == "uniform" and bits is not None:
        return max(DEFAULT_WEIGHT_BITS, int(bits))
    return DEFAULT_WEIGHT_BITS


def aggregation_weight(edge_index: torch.Tensor, deg_inv_sqrt: torch.Tensor) -> torch.Tensor:
    """``w_j = d_j^-1/2 * sum_{i: j -> i} d_i^-1/2``: the total weight with which node j's (quantized)
    features enter the aggregates of the layer, i.e. the column sums of ``D^-1/2 (A + I) D^-1/2``.

    The task gradient that reaches a node's quantizer is summed over every aggregate the node feeds,
    which is what makes A2Q's bits aggregation-aware; the Local Gradient's L1 error alone has lost it.
    Weighting node j's L1 error by ``w_j`` (about ``sqrt(d_j)``) puts it back.
    """
    src, dst = edge_index
    return deg_inv_sqrt * torch.zeros_like(deg_inv_sqrt).index_add_(0, src, deg_inv_sqrt[dst])


class GCN(nn.Module):
    def __init__(self, in_channels: int, hidden: int, out_channels: int, num_nodes: int, method: str = "fp32",
                 bits: int | None = None, weight_bits: int | None = None, input_signed: bool = False,
                 dropout: float = 0.5, init_bits: float = 4.0, local_grad: bool = True,
                 aggregation_weighted: bool = True):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
        if method == "uniform" and bits is None:
            raise ValueError("method 'uniform' needs bits")
        self.config = dict(in_channels=in_channels, hidden=hidden, out_channels=out_channels, num_nodes=num_nodes,
                           method=method, bits=bits, weight_bits=weight_bits, input_signed=bool(input_signed),
                           dropout=dropout, init_bits=init_bits, local_grad=local_grad,
                           aggregation_weighted=aggregation_weighted)
        self.aggregation_weighted = bool(aggregation_weighted) and method == "a2q" and local_grad
        self.method, self.num_nodes = method, num_nodes
        self.weight_bits = None if method == "fp32" else (weight_bits or default_weight_bits(method, bits))
        dims = [in_channels, hidden, out_channels]
        signed = [bool(input_signed), False]
        self.convs = nn.ModuleList()
        for i in range(2):
            iq = wq = None
            if method == "uniform":
                iq = UniformQuantizer(num_nodes, bits, signed=signed[i])
            elif method == "a2q":
                iq = NodeQuantizer(num_nodes, signed=signed[i], init_bits=init_bits, local_grad=local_grad)
            if method != "fp32":
                wq = WeightQuantizer(dims[i + 1], self.weight_bits)
            self.convs.append(QGCNConv(dims[i], dims[i + 1], iq, wq, dropout=dropout, relu=(i == 0)))
        self._graph_key = self._input_key = None
        self._graph = self._input = None

    # ----------------------------------------------------------------- forward
    def graph(self, data) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(edge_index with self loops, in-degree, d^-1/2)``, cached; sets the Local Gradient weights."""
        key = (data.edge_index.data_ptr(), tuple(data.edge_index.shape), int(data.num_nodes))
        if key != self._graph_key:
            self._graph = gcn_graph(data.edge_index, int(data.num_nodes))
            self._graph_key = key
            if self.aggregation_weighted:
                w = aggregation_weight(self._graph[0], self._graph[2])
                for q in self.node_quantizers():
                    if hasattr(q, "set_error_weight"):
                        q.set_error_weight(w)
        return self._graph

    def model_input(self, data):
        """``data.x``, as :class:`SparseRows` when at most :data:`SPARSE_DENSITY` of it is non-zero (cached)."""
        x = data.x
        key = (x.data_ptr(), tuple(x.shape), x._version)
        if key != self._input_key:
            dense = float((x != 0).float().mean()) > SPARSE_DENSITY
            self._input = x if dense else SparseRows.from_dense(x)
            self._input_key = key
        return self._input

    def forward(self, data) -> torch.Tensor:
        ei, _, dis = self.graph(data)
        h = self.model_input(data)
        for conv in self.convs:
            h = conv(h, ei, dis)
        return h

    # -------------------------------------------------------------- quantizers
    @property
    def quantized(self) -> bool:
        return self.method != "fp32"

    def node_quantizers(self) -> list[nn.Module]:
        return [c.input_quant for c in self.convs if c.input_quant is not None]

    def in_features(self) -> list[int]:
        return [c.in_channels for c in self.convs]

    def local_loss(self) -> torch.Tensor | None:
        losses = [q.local_loss for q in self.node_quantizers() if getattr(q, "local_loss", None) is not None]
        return sum(losses) if losses else None

    def bits_ste(self) -> list[torch.Tensor]:
        return [q.bits_ste() for q in self.node_quantizers()]

    def layer_bits(self) -> list[np.ndarray]:
        """Integer per-node bits of each quantized layer input."""
        return [q.int_bits().numpy() for q in self.node_quantizers()]

    @torch.no_grad()
    def clamp_(self) -> None:
        for m in self.modules():
            if m is not self and hasattr(m, "clamp_"):
                m.clamp_()

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by role: ``weights`` (W, b), ``weight_steps``, ``node_steps``, ``node_bits``."""
        groups = {"weights": [], "weight_steps": [], "node_steps": [], "node_bits": []}
        for conv in self.convs:
            groups["weights"] += [conv.weight, conv.bias]
            if conv.weight_quant is not None:
                groups["weight_steps"].append(conv.weight_quant.step)
            if conv.input_quant is not None:
                q = conv.input_quant
                groups["node_steps"].append(q.log_step if hasattr(q, "log_step") else q.step)
                if isinstance(conv.input_quant.bits, nn.Parameter):
                    groups["node_bits"].append(conv.input_quant.bits)
        return groups

    # ------------------------------------------------------------------ export
    @torch.no_grad()
    def fakequant_logits(self, data) -> torch.Tensor:
        was = self.training
        self.eval()
        try:
            return self(data)
        finally:
            self.train(was)

    def _require_quantized(self) -> None:
        if not self.quantized:
            raise ValueError("an FP32 model has no quantizers to export")

    @torch.no_grad()
    def export_layers(self, data=None) -> list[dict]:
        """One dict per layer (see the module docstring of :mod:`a2q.export`): numpy, float64 floats."""
        self._require_quantized()
        out = []
        for conv in self.convs:
            q, wq = conv.input_quant, conv.weight_quant
            out.append({
                "in_step": q.node_steps().to(torch.float64).numpy().copy(),
                "in_bits": q.int_bits().numpy().astype(np.int64),
                "in_signed": bool(q.signed),
                "weight": conv.weight.detach().to(torch.float64).numpy().copy(),
                "weight_step": wq.step.detach().to(torch.float64).numpy().copy(),
                "weight_bits": int(wq.num_bits),
                "bias": conv.bias.detach().to(torch.float64).numpy().copy(),
                "relu": bool(conv.relu),
            })
        return out

    @torch.no_grad()
    def quantized_input(self, data) -> np.ndarray:
        """First layer's integer input ``clamp(floor(x/s + 0.5))``, int64 ``[N, F0]``."""
        self._require_quantized()
        return self.convs[0].input_quant.quantize_int(data.x).numpy()


def build_model(method: str, num_features: int, num_classes: int, num_nodes: int, **kw) -> GCN:
    return GCN(num_features, kw.pop("hidden", 16), num_classes, num_nodes, method=method, **kw)


def model_from_config(config: dict) -> GCN:
    return GCN(**config)
