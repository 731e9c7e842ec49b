"""GIN-0 in FP32, uniform INT-k, Degree-Quant INT-k or A2Q form, for node- and graph-level tasks.

    x -> QGINConv x L -> Q -> [graph: global sum pooling] -> head: Linear [-> / n_g] -> ReLU -> dropout -> Q -> Linear

Every linear input is quantized (the layer inputs, each MLP's inner input, both head inputs). The head's
first input is quantized per node *before* the readout, so the sum readout and the head's first Linear
fuse exactly into the accelerator's `pool` layer (docs/arithmetic.md). The mean readout divides the
head's first Linear *with its bias* by the graph's node count, ``(sum_i xq_i W + b) / n_g`` (the bias
inside the normalisation, as in our GCN): the accelerator folds ``1 / n_g`` into the pool layer's
per-graph destination multiplier. Node-level
A2Q gives each node its own (step, bits); graph-level A2Q uses the NNS pool, since test graphs are
unseen. Defaults follow the A2Q/Degree-Quant graph-level setting: 5 layers, 64 hidden channels.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import global_add_pool

from ..layers import QGINConv, SumAdjacency
from ..quantizers import DEFAULT_POOL, UniformQuantizer, WeightQuantizer, apply, make_feature_quantizer
from .base import QuantizedModel

TASKS = ("node", "graph")
READOUTS = ("sum", "mean")


class GIN(QuantizedModel):
    kind = "gin"

    def __init__(self, in_features: int, num_classes: int, task: str = "graph", num_nodes: int | None = None,
                 hidden: int = 64, layers: int = 5, method: str = "a2q", bits: int = 4, weight_bits: int = 4,
                 init_bits: float = 4.0, local_gradient: bool = True, local_norm: str = "l2",
                 pool: int = DEFAULT_POOL, dropout: float = 0.5, first_signed: bool = False,
                 readout: str = "sum", aggregation_aware: bool = True, head_bits: int = 0,
                 weight_step: str = "log"):
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if task == "node" and num_nodes is None:
            raise ValueError("a node-level GIN needs num_nodes (one A2Q quantizer row per node)")
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {tuple(READOUTS)}, got {readout!r}")
        self.config = dict(kind="gin", in_features=in_features, num_classes=num_classes, task=task,
                           num_nodes=num_nodes, hidden=hidden, layers=layers, method=method, bits=bits,
                           weight_bits=weight_bits, init_bits=init_bits, local_gradient=local_gradient,
                           local_norm=local_norm, pool=pool, dropout=dropout, first_signed=first_signed,
                           readout=readout, aggregation_aware=aggregation_aware, head_bits=head_bits,
                           weight_step=weight_step)
        self.method, self.task, self.dropout, self.readout = method, task, dropout, readout
        rows = num_nodes if task == "node" else None

        def fq(signed, per_node=True):
            return make_feature_quantizer(method, rows if per_node else None, signed, bits, init_bits,
                                          local_gradient, local_norm, pool)

        def wq(width):
            return None if method == "fp32" else WeightQuantizer(width, weight_bits, weight_step)

        in_drop = dropout if task == "node" else 0.0
        self.convs = nn.ModuleList(
            # the MLP's inner input (post-BN/ReLU, moving with every weight update) takes an NNS pool even at
            # node level: per-node ranges trailed it (GIN-Cora A2Q 52.8 % vs 70.6 %, docs/training.md)
            QGINConv(in_features if i == 0 else hidden, hidden, fq(first_signed and i == 0), fq(False, False),
                     (wq(hidden), wq(hidden)), input_dropout=in_drop) for i in range(layers))
        # head_bits: graph-level A2Q quantizes the head's per-graph input (after the sum readout: rows are
        # graphs, their max |x| spans 3+ decades on REDDIT) with one learned INT-k step that clips the
        # largest graphs, as uniform INT-k does, instead of an NNS pool whose ranges cover every row
        if head_bits and not (method == "a2q" and task == "graph"):
            raise ValueError("head_bits applies to graph-level A2Q only (its head's second input)")
        head2 = UniformQuantizer(head_bits, False) if head_bits else fq(False)
        self.head_quantizers = nn.ModuleList([q for q in (fq(False), head2) if q is not None])
        self._hq = [fq_ for fq_ in self.head_quantizers] or [None, None]
        self.head1 = nn.Linear(hidden, hidden)
        self.head2 = nn.Linear(hidden, num_classes)
        self.head_weight_quantizers = nn.ModuleList([w for w in (wq(hidden), wq(num_classes)) if w is not None])
        self._graph_key = None

    def feature_quantizers(self):
        out = []
        for c in self.convs:
            out += c.quantizers()
        return out + [(q, self.head1.in_features) for q in self._hq]

    def _aggregated_inputs(self):
        return [c.input_quantizer for c in self.convs if c.input_quantizer is not None]

    def _linear(self, lin, i, x):
        w = lin.weight.T
        if len(self.head_weight_quantizers):
            w = self.head_weight_quantizers[i](w)
        return x @ w + lin.bias

    def _prepare(self, data) -> None:
        """Per graph (node-level: once; graph-level: per batch): DQ protection and error weights."""
        key = (data.edge_index.data_ptr(), data.num_nodes)
        if self.task == "node" and self._graph_key == key:
            return
        self._graph_key = key
        self._adj = SumAdjacency(data.edge_index, data.num_nodes)
        n = data.num_nodes
        ones = torch.ones(data.edge_index.shape[1])
        in_deg = torch.zeros(n).index_add_(0, data.edge_index[1], ones) + 1
        # sum aggregation with the self term: node j's error enters 1 + out-degree(j) aggregates
        spread = torch.zeros(n).index_add_(0, data.edge_index[0], ones) + 1 if self.config["aggregation_aware"] \
            else torch.ones(n)
        node_rows = [q for q, _ in self.feature_quantizers()[:2 * len(self.convs)] if q is not None]
        # the head's first input has node rows at both levels (it is quantized before the readout)
        node_rows += [q for q in self._hq[:1 if self.task == "graph" else 2] if q is not None]
        self._set_degree_dependent(in_deg, spread, node_rows)

    def forward(self, data) -> torch.Tensor:
        self._prepare(data)
        h = data.x
        for c in self.convs:
            h = c(h, self._adj)
        # the head's first input is quantized per node, before the readout: sum_i (xq_i W) = (sum_i xq_i) W,
        # so the accelerator fuses the sum readout with the head's first Linear exactly (a `pool` layer)
        h = apply(self._hq[0], h)
        if self.task == "graph":
            h = global_add_pool(h, data.batch, size=int(data.num_graphs))
        h = self._linear(self.head1, 0, h)
        if self.task == "graph" and self.readout == "mean":  # bias inside: (sum_i xq_i W + b) / n_g
            h = h / self.graph_sizes(data)[:, None]
        h = F.relu(h)
        h = F.dropout(h, self.dropout, self.training)
        return self._linear(self.head2, 1, apply(self._hq[1], h))

    @staticmethod
    def graph_sizes(data) -> torch.Tensor:
        """Nodes per graph of the batch, at least 1 (an empty graph's row is the bias alone)."""
        n = torch.bincount(data.batch, minlength=int(data.num_graphs)).to(torch.float32)
        return n.clamp_min(1.0)

    # -- export hook (program format v2: docs/arithmetic.md, "Layer kinds") ------------------------------
    def program_layers(self) -> list[tuple[str, nn.Module | None, str, bool]]:
        """The program's layers in order: (kind, input quantizer, weight owner, ReLU). Per GIN layer a `gin`
        layer (W1, BN1) and a `dense` one (W2, BN2); then the head: graph-level `pool` (sum readout fused
        with head1) + `dense` (head2), node-level `dense` + `dense`."""
        out = []
        for k, c in enumerate(self.convs):
            out += [("gin", c.input_quantizer, f"convs.{k}.1", True),
                    ("dense", c.inner_quantizer, f"convs.{k}.2", True)]
        out += [("pool" if self.task == "graph" else "dense", self._hq[0], "head1", True),
                ("dense", self._hq[1], "head2", False)]
        return out

    @torch.no_grad()
    def _folded_weights(self, owner: str):
        """(integer weight codes [F_in, F_out], step per channel (> 0), bits, bias): the fake-quant weights
        with the eval-mode BatchNorm after them folded in (``fold_batchnorm``; a channel with a negative
        BN scale has its codes negated, its step made positive)."""
        from ..layers.qgin_conv import fold_batchnorm

        if owner.startswith("head"):
            i = int(owner[-1]) - 1
            lin, wq = (self.head1, self.head2)[i], self.head_weight_quantizers[i]
            w, bias, bn = lin.weight.T, lin.bias, None
        else:
            _, k, j = owner.split(".")
            c = self.convs[int(k)]
            w, bias = (c.weight1, c.bias1) if j == "1" else (c.weight2, c.bias2)
            wq, bn = (c.weight1_quantizer, c.bn1) if j == "1" else (c.weight2_quantizer, c.bn2)
        step = wq.step.detach()
        codes = torch.round(wq(w.detach()) / step[None, :])  # the codes of the fake-quant weights, exactly
        if bn is None:
            return codes.long().numpy(), step.double().numpy(), wq.bits, bias.detach().double().numpy()
        _, b, s = fold_batchnorm(codes * step[None, :], bias, bn, step)
        g = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        sign = torch.where(g < 0, -1.0, 1.0)
        s = torch.where(s > 0, s, torch.full_like(s, 1e-30))  # a zero BN scale: the channel is its bias
        return (codes * sign[None, :]).long().numpy(), s.double().numpy(), wq.bits, b.double().numpy()

    @torch.no_grad()
    def export_layers(self, data) -> tuple[list[dict], np.ndarray]:
        """Every float the v2 exporter folds (``a2q.export.build_program_v2``), per program layer, and
        the layer-0 integer codes. Layer 0's input is static: for an NNS quantizer the host selects each
        node's pair here (its input is known). Later inputs are static per row (per-node A2Q, uniform,
        Degree-Quant) or NNS pools selected at run time."""
        from ..quantizers import NNSQuantizer, NodeQuantizer

        if self.method == "fp32":
            raise ValueError("an FP32 model has no quantizers to export")
        self.eval()
        self(data)  # every quantizer initialised
        n, g = int(data.num_nodes), int(getattr(data, "num_graphs", 1) or 1)
        layers, rows, x_int = [], n, None
        for i, (kind, q, owner, relu) in enumerate(self.program_layers()):
            codes, step, wbits, bias = self._folded_weights(owner)
            L = {"kind": kind, "weight_codes": codes, "weight_step": step, "weight_bits": wbits, "bias": bias,
                 "relu": relu, "in_signed": bool(q.signed), "owner": owner}
            if i == 0:
                x = data.x
                if isinstance(q, NNSQuantizer):
                    sel = q.select(x)
                    L |= {"input": "static", "in_step": q.step[sel].double().numpy(),
                          "in_bits": q.int_bits()[sel].long().numpy(), "host_selected": True}
                elif isinstance(q, NodeQuantizer):
                    L |= {"input": "static", **q.export()}
                else:
                    L |= {"input": "static", **q.export_for(rows)}
                x_int = q.codes(x).numpy()
            elif isinstance(q, NNSQuantizer):
                L |= {"input": "pool", **q.export(), "pool_order": q.sorted_order().numpy(), "quantizer": q}
            elif isinstance(q, NodeQuantizer):
                L |= {"input": "static", **q.export()}
            else:
                L |= {"input": "static", **q.export_for(rows)}
            if kind == "pool":
                rows = g
                L["mean"] = self.readout == "mean"  # the exporter folds 1/n_g into the per-graph factor
            layers.append(L)
        return layers, x_int
