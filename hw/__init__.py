"""Amaranth RTL of the bit-serial A2Q GNN accelerator and its Verilog generator (docs/hardware.md).

Import submodules directly: ``hw.config`` and ``hw.memory_map`` need only numpy; ``hw.accelerator``,
``hw.generate`` and the engines import Amaranth.
"""
