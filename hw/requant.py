"""Requantizer: P lanes of REQUANT (docs/arithmetic.md, phase 4), fully pipelined, LATENCY = 12.

Per lane o of a group (node i, output tile t_o):

    p = sat24(rescale(a, Mc[o], Sc[o]) + B[o])                     (channel rescale + bias, 6 stages)
    r = rescale(p, Md[i], Sd[i])                                   (node rescale, 6 stages)
    q = last layer      ? sat16(r)
        signed next     ? clamp(r, -2^(b'-1), 2^(b'-1) - 1)
        unsigned next   ? clamp(r, 0, 2^b' - 1)                    (the clamp at 0 is the ReLU)

with b' the node's bitwidth in the next layer. A payload (the group's packer information) travels
alongside so it leaves with the values.
"""
from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from a2q import fixedpoint as fp

from . import memory_map as mm
from .config import NODE_BITS_FIELD, SHIFT_BITS, AcceleratorConfig
from .pipeline import delay_line
from .rescale import LATENCY as RESCALE_LATENCY
from .rescale import Rescaler, drive, scale_operands, splits

LATENCY = 2 * RESCALE_LATENCY


class Requantizer(wiring.Component):
    def __init__(self, cfg: AcceleratorConfig, payload_bits: int = 1):
        self.cfg = cfg
        self.payload_bits = payload_bits
        self.cf = mm.chan_lane_fields()
        P, wd = cfg.pes, cfg.widths
        super().__init__({
            "valid": In(1),
            "sums": In(unsigned(P * wd.aggregate_acc)),       # P signed aggregates
            "chan": In(unsigned(P * self.cf.width)),           # channel-table word (Mc, Sc, B per lane)
            "dst_mult": In(unsigned(fp.MULT_BITS)),
            "dst_shift": In(unsigned(SHIFT_BITS)),
            "bits": In(unsigned(NODE_BITS_FIELD)),             # b' (ignored for the last layer)
            "out_signed": In(1),
            "last": In(1),
            "payload": In(unsigned(payload_bits)),
            "out_valid": Out(1),
            "q": Out(unsigned(P * fp.OUT_BITS)),               # P signed 16-bit results
            "out_payload": Out(unsigned(payload_bits)),
            "busy": Out(1),                                    # a group is in the pipeline
            # after the channel rescale (RESCALE_LATENCY): p for the NNS selector, with its payload
            "p_valid": Out(1),
            "p": Out(unsigned(P * fp.P_BITS)),                 # P signed 24-bit values
            "p_payload": Out(unsigned(payload_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, cf = self.cfg, self.cf
        P, wd = cfg.pes, cfg.widths

        # node parameters and the clamp range wait RESCALE_LATENCY cycles for the channel rescale
        lo_in, hi_in = Signal(signed(fp.OUT_BITS)), Signal(signed(fp.OUT_BITS))
        b = self.bits
        one = Const(1, 9)
        bm1 = (b - 1)[:len(b)]
        slo, shi = fp.signed_range(fp.OUT_BITS)
        m.d.comb += [
            lo_in.eq(Mux(self.last, slo, Mux(self.out_signed, -(one << bm1), 0))),
            hi_in.eq(Mux(self.last, shi, Mux(self.out_signed, (one << bm1) - 1, (one << b) - 1))),
        ]
        node_in = Cat(self.dst_mult, self.dst_shift, lo_in, hi_in)
        node_d = delay_line(m, node_in, RESCALE_LATENCY - 1, "node")
        # the last stage: the multiplier and shift as kept copies beside each node rescaler's DSPs
        # (``node_scale<o>``, ``node_mult_hi<o>``: rescale.scale_operands); the clamp range as one register
        ms_bits = fp.MULT_BITS + SHIFT_BITS
        node_ops = scale_operands(m, node_d[-1][:ms_bits], P, "node_scale", "node_mult_hi", fp.P_BITS)
        node_range = Signal(len(node_in) - ms_bits, name=f"node_d{RESCALE_LATENCY}")
        m.d.sync += node_range.eq(node_d[-1][ms_bits:])
        n_lo, n_hi = node_range[:fp.OUT_BITS].as_signed(), node_range[fp.OUT_BITS:].as_signed()

        pay = delay_line(m, self.payload, LATENCY, "payload")
        m.d.comb += [self.out_payload.eq(pay[-1]), self.p_payload.eq(pay[RESCALE_LATENCY])]
        vs = delay_line(m, self.valid, LATENCY, "valid")
        m.d.comb += self.busy.eq(Cat(*vs).any())

        outs, chans = [], []
        for o in range(P):
            lane = self.chan[o * cf.width:(o + 1) * cf.width]

            def f(name, lane=lane):
                off, width = cf.offsets[name]
                return lane[off:off + width]

            ch = Rescaler(wd.aggregate_acc, fp.P_BITS, addend_bits=fp.P_BITS)
            nd_r = Rescaler(fp.P_BITS, fp.OUT_BITS, dynamic=True, mult_hi=splits(fp.P_BITS))
            m.submodules[f"chan_rescale{o}"] = ch
            m.submodules[f"node_rescale{o}"] = nd_r
            a = self.sums[o * wd.aggregate_acc:(o + 1) * wd.aggregate_acc].as_signed()
            m.d.comb += [
                ch.valid.eq(self.valid), ch.value.eq(a), ch.mult.eq(f("mult")), ch.shift.eq(f("shift")),
                ch.addend.eq(f("bias").as_signed()),
                nd_r.valid.eq(ch.out_valid), nd_r.value.eq(ch.result),
                *drive(nd_r, node_ops[o]),
                nd_r.lo.eq(n_lo), nd_r.hi.eq(n_hi),
            ]
            outs.append(nd_r)
            chans.append(ch)
        m.d.comb += [self.out_valid.eq(outs[0].out_valid), self.q.eq(Cat(*[r.result for r in outs])),
                     self.p_valid.eq(chans[0].out_valid), self.p.eq(Cat(*[c.result for c in chans]))]
        return m
