"""Cycle counters. They partition the busy cycles of a run by what the sequencer is doing:

* ``cyc_total``     every cycle with ``busy`` high (from the cycle after ``start`` to the cycle before
                    ``done`` rises);
* ``cyc_combine``   cycles in the COMBINE phase (engine start, setup, issue, pipeline drain);
* ``cyc_aggregate`` cycles in the AGGREGATE phase up to the last edge-stream entry, except stalls;
* ``cyc_stall``     cycles the aggregation engine holds a row-ending entry for the packer;
* ``cyc_requant``   cycles in the AGGREGATE phase after the last entry (requantizer and packer drain),
                    and on a dense layer (no edge stream) every non-stalled AGGREGATE cycle;
* ``cyc_select``    cycles in the SELECT phase (the NNS select pass);

so ``cyc_total - (combine + aggregate + stall + requant + select)`` = one DESC cycle per layer. All counters are
cleared by ``start`` and hold their values after ``done``. They wrap at 2**counter_bits.
"""
from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import AcceleratorConfig
from .sequencer import Phase

COUNTERS = ("cyc_total", "cyc_combine", "cyc_aggregate", "cyc_requant", "cyc_stall", "cyc_select")


class CycleCounters(wiring.Component):
    def __init__(self, cfg: AcceleratorConfig):
        n = cfg.counter_bits
        super().__init__({
            "clear": In(1),
            "phase": In(3),
            "dense": In(1),       # the layer walks no edge stream: its walk counts as requantizer time
            "walking": In(1),     # the aggregation engine's edge walker is active
            "stalled": In(1),
            **{name: Out(n) for name in COUNTERS},
        })

    def elaborate(self, platform):
        m = Module()
        walked = Signal()   # the edge walker has run in this AGGREGATE phase
        in_agg = self.phase == Phase.AGGREGATE
        with m.If(in_agg & self.walking):
            m.d.sync += walked.eq(1)
        with m.If(~in_agg):
            m.d.sync += walked.eq(0)
        draining = in_agg & walked & ~self.walking
        inc = {
            "cyc_total": self.phase != Phase.IDLE,
            "cyc_combine": self.phase == Phase.COMBINE,
            "cyc_aggregate": in_agg & ~self.stalled & ~draining & ~self.dense,
            "cyc_stall": in_agg & self.stalled,
            "cyc_requant": draining | (in_agg & ~self.stalled & self.dense),
            "cyc_select": self.phase == Phase.SELECT,
        }
        for name in COUNTERS:
            ctr = getattr(self, name)
            with m.If(self.clear):
                m.d.sync += ctr.eq(0)
            with m.Elif(inc[name]):
                m.d.sync += ctr.eq(ctr + 1)
        return m
