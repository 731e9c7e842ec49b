"""Layer sequencer: runs every layer of the descriptor table from ``start`` to ``done`` unattended.

Per layer: DESC (1 cycle: the descriptor table is addressed with the layer number; its read port then
holds the descriptor for the whole layer), COMBINE (start the combination engine, wait until it has
written the whole XW buffer), SELECT (only if the descriptor's ``select`` is set, i.e. the next layer's
input is an NNS pool: the aggregation engine walks the layer once without the packer, and the selector
stores each row's NNS pair), AGGREGATE (start the aggregation engine; wait until the aggregation,
requantizer and packer pipelines are empty). After the layer whose descriptor has ``last`` set (or
the last descriptor slot), ``done`` rises and stays high until the next ``start``.
"""
from __future__ import annotations

import enum

from amaranth import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import AcceleratorConfig, addr_bits
from .replicate import KEEP_REGISTER

#: Register stages between the engines' busy flags and the phase logic: the phase waits for a registered
#: "engine idle" (one cycle later than the busy itself), so the OR of every pipeline stage's valid bit
#: and the engines' start terms stay off the path into the phase registers and the busy copies beside
#: the memories (docs/hardware.md, "Timing closure", step 24). It adds this many cycles to each wait. One
#: register, not a parameter: through a second, the first kicked cycle would see the previous phase's idle.
IDLE_STAGES = 1


class Phase(enum.IntEnum):
    IDLE = 0
    DESC = 1
    COMBINE = 2
    AGGREGATE = 3
    SELECT = 4


class Sequencer(wiring.Component):
    """``busy_copies`` names copies of ``busy`` (``busy_copy`` bit k is copy k): one register per
    memory, so each memory's port muxes get their own ``busy`` beside them instead of one register
    routed across the die (``hw/replicate.py``)."""

    def __init__(self, cfg: AcceleratorConfig, busy_copies: tuple[str, ...] = ()):
        self.cfg, self.busy_copies = cfg, tuple(busy_copies)
        super().__init__({
            "start": In(1),
            "busy": Out(1),
            "busy_copy": Out(max(1, len(self.busy_copies))),
            "done": Out(1),
            "layer": Out(unsigned(addr_bits(cfg.depth("desc")))),   # descriptor table address
            "phase": Out(unsigned(3)),
            # the phase decoded, as registers set with ``phase`` (timing: they steer port muxes and the
            # aggregation engine's back-pressure, which must not wait for a decode of ``phase``)
            "in_combine": Out(1),
            "in_walk": Out(1),        # AGGREGATE or SELECT: the aggregation engine owns its ports
            "in_select": Out(1),
            "desc_last": In(1),
            "desc_select": In(1),     # the layer has a select pass
            "comb_start": Out(1),
            "comb_busy": In(1),
            "agg_start": Out(1),
            "agg_busy": In(1),        # aggregation, requantizer or packer still working
        })

    def elaborate(self, platform):
        m = Module()
        kicked = Signal()
        max_layer = self.cfg.max_layers - 1
        # busy (phase != IDLE) is a register of its own, set and cleared with the phase: it selects
        # every memory port between the engines and the load port (a high fanout), so no logic sits
        # between a flip-flop and that fanout (timing)
        busy = Signal()
        # the engines' idle flags, registered (IDLE_STAGES): an engine that has drained stays idle until
        # its next start, so the flag is only late, never wrong; in the first cycle of a phase it still
        # shows the start term of the busy it registers (the kick), so the phase cannot end at once
        comb_idle, agg_idle = Signal(name="comb_idle"), Signal(name="agg_idle")
        m.d.sync += [comb_idle.eq(~self.comb_busy), agg_idle.eq(~self.agg_busy)]
        copies = [Signal(name=f"busy_{n}", attrs=KEEP_REGISTER) for n in self.busy_copies]

        def set_busy(value):
            return [b.eq(value) for b in [busy, *copies]]

        def goto(phase: Phase, select=None):
            """The next phase with its decoded flags, all registers loaded in the same cycle; ``select``
            (a signal) picks SELECT over ``phase`` = AGGREGATE at run time."""
            if select is None:
                return [self.phase.eq(phase), self.in_combine.eq(phase == Phase.COMBINE),
                        self.in_walk.eq(phase in (Phase.AGGREGATE, Phase.SELECT)),
                        self.in_select.eq(phase == Phase.SELECT)]
            return [self.phase.eq(Mux(select, Phase.SELECT, phase)), self.in_combine.eq(0), self.in_walk.eq(1),
                    self.in_select.eq(select)]

        m.d.comb += [
            self.busy.eq(busy),
            self.busy_copy.eq(Cat(*copies)) if copies else self.busy_copy.eq(busy),
            # each engine is started in the first cycle of its phase
            self.comb_start.eq(self.in_combine & ~kicked),
            self.agg_start.eq(self.in_walk & ~kicked),
        ]
        with m.Switch(self.phase):
            with m.Case(Phase.IDLE), m.If(self.start):
                m.d.sync += [self.layer.eq(0), self.done.eq(0), *goto(Phase.DESC), *set_busy(1)]
            with m.Case(Phase.DESC):
                m.d.sync += [*goto(Phase.COMBINE), kicked.eq(0)]
            with m.Case(Phase.COMBINE):
                m.d.sync += kicked.eq(1)
                with m.If(kicked & comb_idle):
                    m.d.sync += [*goto(Phase.AGGREGATE, select=self.desc_select), kicked.eq(0)]
            with m.Case(Phase.SELECT):
                m.d.sync += kicked.eq(1)
                with m.If(kicked & agg_idle):
                    m.d.sync += [*goto(Phase.AGGREGATE), kicked.eq(0)]
            with m.Case(Phase.AGGREGATE):
                m.d.sync += kicked.eq(1)
                with m.If(kicked & agg_idle):
                    m.d.sync += kicked.eq(0)
                    with m.If(self.desc_last | (self.layer == max_layer)):
                        m.d.sync += [*goto(Phase.IDLE), self.done.eq(1), *set_busy(0)]
                    with m.Else():
                        m.d.sync += [*goto(Phase.DESC), self.layer.eq(self.layer + 1)]
            with m.Default():   # unused encodings of the 3-bit phase (unreachable): back to idle; every
                # register of the switch is assigned, so each generated case statement is complete (lint)
                m.d.sync += [*goto(Phase.IDLE), kicked.eq(0), self.layer.eq(self.layer),
                             self.done.eq(self.done), *set_busy(0)]
        return m
