"""NNS selector: the run-time choice of each row's (bits, step) pair (docs/arithmetic.md, "NNS selection").

During a layer's select pass the aggregation engine walks the layer once with the packer off; the
requantizer's channel rescale hands every group's ``p`` (P lanes, 24-bit) to this unit. For output row
r it keeps the running max over the row's T_out groups of

    v = max(p, 0)   (the next input is unsigned)   or   |p|   (signed),

and after the row's last group stores ``sel_r = #{t : thr[t] < v_r}`` (the count of thresholds strictly
below: a row exactly at a threshold takes the lower pair) in the ``sel`` field of the next layer's
count word of row r. Unused threshold slots hold 2^24 - 1, above any v (v <= 2^23). The normal pass
then reads ``sel_r`` (aggregation: b' and Md, Sd; next layer's combine: bits, Ms, Ss).

Stages: A (registered) the lane max of one group; B (registered) the row max; the compare against all
thresholds and the count-word write are combinational from B's registers (one write per row).
"""
from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from a2q import fixedpoint as fp

from . import memory_map as mm
from .config import AcceleratorConfig, addr_bits, count_bits

#: Cycles from a group's ``p`` (valid) to the write of its row's pair (the write cycle included).
LATENCY = 2


def _max(a, b):
    return Mux(a > b, a, b)


class NNSSelector(wiring.Component):
    def __init__(self, cfg: AcceleratorConfig):
        self.cfg = cfg
        self.cf = mm.count_fields(cfg)
        shapes = mm.memory_shapes(cfg)
        P = cfg.pes
        super().__init__({
            "valid": In(1),
            "p": In(unsigned(P * fp.P_BITS)),
            "signed": In(1),
            "t_o": In(unsigned(count_bits(cfg.max_tiles_out))),
            "t_out": In(unsigned(count_bits(cfg.max_tiles_out))),
            "cnt_addr": In(unsigned(addr_bits(shapes["count"][1]))),
            "thr": In(unsigned(mm.thr_width(cfg))),
            "count_addr": Out(unsigned(addr_bits(shapes["count"][1]))),
            "count_data": Out(unsigned(self.cf.width)),
            "count_en": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        P, V = cfg.pes, fp.P_BITS   # v in [0, 2^23] fits 24 unsigned bits
        # ---- stage A: per lane v, max over the group's P lanes ------------------------------------
        vs = []
        for o in range(P):
            p = self.p[o * V:(o + 1) * V].as_signed()
            v = Signal(unsigned(V), name=f"v{o}")
            m.d.comb += v.eq(Mux(p < 0, Mux(self.signed, -p, 0), p))
            vs.append(v)
        while len(vs) > 1:
            vs = [_max(vs[k], vs[k + 1]) if k + 1 < len(vs) else vs[k] for k in range(0, len(vs), 2)]
        a_valid, a_first, a_last = Signal(), Signal(), Signal()
        a_max = Signal(unsigned(V))
        a_addr = Signal.like(self.cnt_addr)
        m.d.sync += [a_valid.eq(self.valid), a_first.eq(self.t_o == 0), a_last.eq(self.t_o == self.t_out - 1),
                     a_max.eq(vs[0]), a_addr.eq(self.cnt_addr)]
        # ---- stage B: the row max; on the row's last group the pair is written -------------------
        rmax = Signal(unsigned(V))
        b_done = Signal()
        b_addr = Signal.like(self.cnt_addr)
        with m.If(a_valid):
            m.d.sync += rmax.eq(Mux(a_first, a_max, _max(rmax, a_max)))
        m.d.sync += [b_done.eq(a_valid & a_last), b_addr.eq(a_addr)]
        nthr = max(1, cfg.max_pool - 1)
        below = [self.thr[t * mm.THR_BITS:(t + 1) * mm.THR_BITS] < rmax for t in range(nthr)]
        sel = Signal(unsigned(mm.sel_bits(cfg)))
        m.d.comb += sel.eq(sum(below[1:], below[0]) if cfg.max_pool > 1 else 0)
        m.d.comb += [
            self.count_addr.eq(b_addr),
            self.count_data.eq(Cat(Signal(self.cf.offsets["count"][1]), sel)),
            self.count_en.eq(b_done),
            self.busy.eq(a_valid | b_done),
        ]
        return m
