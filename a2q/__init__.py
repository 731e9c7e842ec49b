"""a2q: aggregation-aware GNN quantization (A2Q), from training to a bit-serial accelerator program.

Training (trainer, quantizers, layers, gcn), the accelerator program (program, export), its exact
integer arithmetic (fixedpoint, integer), the cycle model of the RTL (cycle_model) and the co-sweep.
"""
__version__ = "0.1.0"
