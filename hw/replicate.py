"""Replicated registers: copies of one register that synthesis must not merge back into one.

A register that drives logic all over the die (the PEs' shared bit-plane word, the sequencer's ``busy``
into every memory port) is a long route in front of that logic. Copies of it, each feeding one group of
loads and placed beside them, shorten the route; but the copies are logically equivalent, and synthesis
merges equivalent flip-flops (Yosys' opt_merge, Vivado's equivalent-register removal) back into one.
Such copies carry ``KEEP_REGISTER``: ``keep`` is honoured on a register by Vivado; Yosys keeps the
*wire* but still merges the flip-flops, so ``hw/synth.py`` (``KEEP_REGISTERS``) also marks the
flip-flop cells that drive ``keep`` wires, which Yosys never merges (docs/hardware.md, "Timing
closure", steps 9-10).
"""
from __future__ import annotations

from amaranth import Signal

#: Amaranth ``attrs`` of a register copy that must survive synthesis (emitted as ``(* keep = "true" *)``)
KEEP_REGISTER = {"keep": "true"}


def kept_copies(m, domain: str, value, n: int, name: str) -> list:
    """``n`` kept registers ``<name>0 .. <name>{n-1}``, each loaded with ``value`` in ``domain``: one copy
    per bank (or unit) it feeds, so each is placed beside its loads instead of one register driving them
    all across the die. ``value`` is usually itself a register, so the die-crossing net is register to
    register (docs/hardware.md, "Timing closure", steps 12-14)."""
    copies = [Signal(value.shape(), name=f"{name}{k}", attrs=KEEP_REGISTER) for k in range(n)]
    m.d[domain] += [c.eq(value) for c in copies]
    return copies


def ownership_copies(m, domain: str, busy, n: int, name: str) -> list:
    """Whether an engine owns a banked memory's read port (else the load port addresses it), one kept bit
    per bank for the port mux beside it: ``busy`` registered once, then copied (``kept_copies``), so the
    bits are high from two cycles after ``busy`` rises to two cycles after it falls."""
    own_r = Signal()
    m.d[domain] += own_r.eq(busy)
    return kept_copies(m, domain, own_r, n, name)
