"""What the trainers need from every quantized model: its feature quantizers and their bookkeeping.

A model lists ``(quantizer, input width)`` for every quantized linear input (``feature_quantizers``);
the Local Gradient, the post-step clamp, the bits for the memory penalty and the statistics all
derive from that list, the same for GCN, GIN and GAT, node- and graph-level.
"""
from __future__ import annotations

import torch
from torch import nn

from ..quantizers import DegreeQuantQuantizer, NNSQuantizer, NodeQuantizer, layer_bits


class QuantizedModel(nn.Module):
    kind = "?"

    def feature_quantizers(self) -> list[tuple[nn.Module | None, int]]:
        raise NotImplementedError

    def _aggregated_inputs(self) -> list:
        """Quantizers whose rows feed a neighbourhood sum (their error is weighted by how far it spreads)."""
        return []

    def _active(self):
        return [(q, w) for q, w in self.feature_quantizers() if q is not None]

    @property
    def node_quantizers(self) -> list[NodeQuantizer]:
        """A2Q quantizers (per node, or NNS pools): their steps and bits get their own learning rates."""
        return [q for q, _ in self._active() if isinstance(q, NodeQuantizer)]

    def local_loss(self) -> torch.Tensor | None:
        losses = [q.local_loss() for q in self.node_quantizers if q.local_loss() is not None]
        return torch.stack(losses).sum() if losses else None

    @torch.no_grad()
    def clamp_(self) -> None:
        for q in self.node_quantizers:
            q.clamp_()

    def configure_quantizers(self, zero_row_grad: bool, reseed: bool = False) -> None:
        """Training options of the A2Q quantizers: LSQ's surrogate step gradient for zero-code rows, and
        whether NNS pools count their usage for ``reseed_dead_pairs_``."""
        for q in self.node_quantizers:
            q.zero_row_grad = zero_row_grad
            if isinstance(q, NNSQuantizer):
                q.track_usage = reseed

    @torch.no_grad()
    def reseed_dead_pairs_(self) -> int:
        """Move the NNS pools' dead pairs back to their rows (``NNSQuantizer.reseed_dead_``), from the
        rows seen in training since the last call; the graph-level trainer calls it once per epoch.
        Returns the number of pairs moved."""
        return sum(q.reseed_dead_() for q in self.node_quantizers if isinstance(q, NNSQuantizer))

    def bits_per_layer(self) -> list[torch.Tensor]:
        """Bits of every row each quantized input saw in the last forward (per node, or per NNS row)."""
        return [layer_bits(q) for q, _ in self._active()]

    def in_features(self) -> list[int]:
        return [w for _, w in self._active()]

    @torch.no_grad()
    def _set_degree_dependent(self, in_degree: torch.Tensor, spread: torch.Tensor, node_rows: list) -> None:
        """Degree-Quant protection and the aggregation-aware error weight, for quantizers whose rows
        are the graph's nodes (``node_rows``); others (a graph-level head) get none."""
        spread_inputs = {id(q) for q in self._aggregated_inputs()}
        node_ids = {id(r) for r in node_rows}
        for q, _ in self._active():
            if isinstance(q, DegreeQuantQuantizer):  # no protection where the rows are graphs (empty p)
                q.set_protection(in_degree if id(q) in node_ids else torch.zeros(0))
            elif isinstance(q, NNSQuantizer):
                q.set_row_weight(spread if id(q) in spread_inputs else None)
            elif isinstance(q, NodeQuantizer) and id(q) in spread_inputs:
                q.set_error_weight(spread)

    @torch.no_grad()
    def initialise_quantizers(self, data) -> None:
        """One forward that fits every quantizer's range to the data as training will see it: BatchNorm in
        batch mode (its running statistics start at mean 0, variance 1, far from the batch's), no dropout."""
        self.eval()
        for m in self.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.train()
        self(data)
        self.eval()

    @torch.no_grad()
    def fakequant_logits(self, data) -> torch.Tensor:
        self.eval()
        return self(data)
