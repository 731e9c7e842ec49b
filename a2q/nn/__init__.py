"""Quantized GNN layers (one layer a file, like PyG's ``nn/conv``)."""
from .qgcn_conv import QGCNConv, SparseRows, gcn_graph

__all__ = ["QGCNConv", "SparseRows", "gcn_graph"]
