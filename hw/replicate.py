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

#: Amaranth ``attrs`` of a register copy that must survive synthesis (emitted as ``(* keep = "true" *)``)
KEEP_REGISTER = {"keep": "true"}
