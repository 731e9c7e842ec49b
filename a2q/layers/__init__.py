"""Quantized message-passing layers (one layer a file, as in PyG's nn/conv)."""
from .qgat_conv import QGATConv
from .qgcn_conv import QGCNConv, gcn_norm_factors
from .qgin_conv import QGINConv, SumAdjacency, fold_batchnorm

__all__ = ["QGATConv", "QGCNConv", "QGINConv", "SumAdjacency", "fold_batchnorm", "gcn_norm_factors"]
