"""NNS selector: the run-time choice of each row's (bits, step) pair (docs/arithmetic.md, "NNS selection").

During a layer's select pass the aggregation engine walks the layer once with the packer off; the
requantizer's channel rescale hands every group's ``p`` (P lanes, 24-bit) to this unit. For output row
r it keeps the running max over the row's T_out groups of

    v = max(p, 0)   (the next input is unsigned)   or   |p|   (signed),

and after the row's last group stores ``sel_r = #{t : thr[t] < v_r}`` (the count of thresholds strictly
below: a row exactly at a threshold takes the lower pair) in the ``sel`` field of the next layer's
count word of row r. Unused threshold slots hold 2^24 - 1, above any v (v <= 2^23). The normal pass
then reads ``sel_r`` (aggregation: b' and Md, Sd; next layer's combine: bits, Ms, Ss).

Stages (each ends in registers, for timing): V the per-lane v; the lane max of one group, one tree
level per stage (ceil(log2 P) stages); B the row max; C the compares against all thresholds. The count
of the compares (a small adder tree) and the count-word write are combinational from C's registers
(one write per row). ``latency(P)`` = 3 + ceil(log2 P) cycles.
"""
from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from a2q import fixedpoint as fp

from . import memory_map as mm
from .config import AcceleratorConfig, addr_bits, count_bits


def tree_levels(pes: int) -> int:
    """Levels of the lane-max tree over ``pes`` lanes."""
    return max(0, (pes - 1).bit_length())


def latency(pes: int) -> int:
    """Cycles from a group's ``p`` (valid) to the write of its row's pair (the write cycle included):
    v (1), the lane-max tree (one level per stage), the row max (1), the compares (1)."""
    return 3 + tree_levels(pes)


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
        self.latency = latency(P)

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        P, V = cfg.pes, fp.P_BITS   # v in [0, 2^23] fits 24 unsigned bits
        # ---- stage V: per lane v, registered; then the max over the P lanes, one tree level per
        # stage (timing: a level is a 24-bit compare and a mux) --------------------------------------
        vs = []
        for o in range(P):
            p = self.p[o * V:(o + 1) * V].as_signed()
            v = Signal(unsigned(V), name=f"v{o}")
            m.d.sync += v.eq(Mux(p < 0, Mux(self.signed, -p, 0), p))
            vs.append(v)
        ctl = Cat(self.valid, self.t_o == 0, self.t_o == self.t_out - 1, self.cnt_addr)
        ctl_r = Signal(len(ctl), name="ctl_v")
        m.d.sync += ctl_r.eq(ctl)
        busy = [ctl_r[0]]       # a group is in the tree
        level = 0
        while len(vs) > 1:
            nxt = []
            for k in range(0, len(vs), 2):
                r = Signal(unsigned(V), name=f"max_l{level}_{k // 2}")
                m.d.sync += r.eq(_max(vs[k], vs[k + 1]) if k + 1 < len(vs) else vs[k])
                nxt.append(r)
            c = Signal(len(ctl), name=f"ctl_l{level}")
            m.d.sync += c.eq(ctl_r)
            vs, ctl_r, level = nxt, c, level + 1
            busy.append(c[0])
        a_valid, a_first, a_last = ctl_r[0], ctl_r[1], ctl_r[2]
        a_max = vs[0]
        a_addr = ctl_r[3:]
        # ---- stage B: the row max; on the row's last group the pair is written -------------------
        rmax = Signal(unsigned(V))
        b_done = Signal()
        b_addr = Signal.like(self.cnt_addr)
        with m.If(a_valid):
            m.d.sync += rmax.eq(Mux(a_first, a_max, _max(rmax, a_max)))
        m.d.sync += [b_done.eq(a_valid & a_last), b_addr.eq(a_addr)]
        # ---- stage C (timing): the compares against the thresholds, registered; then their count ---
        nthr = max(1, cfg.max_pool - 1)
        below = Signal(nthr)
        c_done = Signal()
        c_addr = Signal.like(self.cnt_addr)
        m.d.sync += [below.eq(Cat(*[self.thr[t * mm.THR_BITS:(t + 1) * mm.THR_BITS] < rmax for t in range(nthr)])),
                     c_done.eq(b_done), c_addr.eq(b_addr)]
        terms = [below[t] for t in range(nthr)]
        while len(terms) > 1:      # balanced adder tree (popcount)
            terms = [terms[k] + terms[k + 1] if k + 1 < len(terms) else terms[k] for k in range(0, len(terms), 2)]
        sel = Signal(unsigned(mm.sel_bits(cfg)))
        m.d.comb += sel.eq(terms[0] if cfg.max_pool > 1 else 0)
        m.d.comb += [
            self.count_addr.eq(c_addr),
            self.count_data.eq(Cat(Signal(self.cf.offsets["count"][1]), sel)),
            self.count_en.eq(c_done),
            self.busy.eq(Cat(*busy).any() | b_done | c_done),
        ]
        return m
