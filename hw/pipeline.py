"""Pipeline stages: a set of named values registered together, so that a value and the control that goes
with it (valid, first, last, the row's parameters) stay aligned however many stages a path gets.

The registers are named ``<prefix>_<name>`` (``a1_valid``, ``s3_bits``): the netlist, the timing reports
and the FPGA tests find them by those names (docs/hardware.md, "Timing closure").
"""
from __future__ import annotations

from amaranth import Signal


def register_stage(m, values: dict, prefix: str, domain: str = "sync") -> dict:
    """One register per value, ``<prefix>_<name>``, loaded every cycle in ``domain``; returns them by name."""
    regs = {n: Signal(v.shape(), name=f"{prefix}_{n}") for n, v in values.items()}
    m.d[domain] += [regs[n].eq(v) for n, v in values.items()]
    return regs


def delay_line(m, value, cycles: int, name: str, domain: str = "sync", attrs=None) -> list:
    """``value`` and its copies 1..``cycles`` clocks later (registers ``<name>_d<k>``, with ``attrs``, e.g.
    ``KEEP_REGISTER``); item k is the value k cycles late, item 0 the value itself."""
    stages = [value]
    for k in range(cycles):
        r = Signal.like(value, name=f"{name}_d{k + 1}", attrs=attrs)
        m.d[domain] += r.eq(stages[-1])
        stages.append(r)
    return stages
