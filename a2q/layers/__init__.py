"""Quantized message-passing layers (one layer a file, as in PyG's nn/conv)."""
from .qgcn_conv import QGCNConv, gcn_norm_factors

__all__ = ["QGCNConv", "gcn_norm_factors"]
