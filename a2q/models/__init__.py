"""The models, one a file: GCN (node-level, exportable), GIN (node- and graph-level), GAT (node-level).

``build_model(config)`` rebuilds any of them from the ``config`` a checkpoint stores.
"""
from __future__ import annotations

from .gat import GAT
from .gcn import GCN
from .gin import GIN

MODELS = {"gcn": GCN, "gin": GIN, "gat": GAT}
#: the tasks each model supports (the CLI refuses the other combinations)
TASKS = {"gcn": ("node",), "gin": ("node", "graph"), "gat": ("node",)}


def build_model(config: dict):
    config = dict(config)
    kind = config.pop("kind", "gcn")  # checkpoints from before GIN/GAT hold a GCN config without a kind
    if kind not in MODELS:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(MODELS)}")
    config.setdefault("weight_step", "linear")  # checkpoints from before the log weight step
    return MODELS[kind](**config)


__all__ = ["GAT", "GCN", "GIN", "MODELS", "TASKS", "build_model"]
