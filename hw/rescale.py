"""Fixed-point rescale unit: ``clamp(((v * M + 2**S // 2) >> S) + add, lo, hi)``, three pipeline stages.

This is the one rescale of docs/arithmetic.md (round half up, arithmetic shift), used three times:
SRC_RESCALE (saturate to 16 bits), the channel rescale (add the bias, saturate to 24 bits) and the
node rescale (clamp to a per-node range supplied at run time).

Widths: the product ``v*M + round`` is ``rescale_product_bits(in_bits)`` = in_bits + 17 bits wide.
That holds for every shift S < in_bits + 17; for S >= in_bits + 17 (shifts go up to MAX_SHIFT = 48) the
round constant alone would not fit, but then ``v*M + 2**(S-1)`` lies in [0, 2**S) and the exact result
is 0, which the unit returns directly -- so no adder is wider than the contract's product width.

Stages (for timing closure, see docs/hardware.md "Timing"): 1 multiply (and the round constant decoded
from S); 2 add the round constant, arithmetic shift; 3 addend, clamp. Each stage ends in registers.
"""
from __future__ import annotations

from amaranth import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from a2q import fixedpoint as fp

from .config import SHIFT_BITS

LATENCY = 3


def clamp(v, lo, hi):
    """``min(max(v, lo), hi)`` as a mux (lo <= hi assumed)."""
    return Mux(v < lo, lo, Mux(v > hi, hi, v))


class Rescaler(wiring.Component):
    """``result = clamp(((value*mult + round) >> shift) + addend, lo, hi)``, LATENCY = 3 cycles.

    Parameters: ``in_bits`` signed input width; ``out_bits`` signed output width; ``addend_bits``
    (0: no addend port); ``dynamic`` -- if False the clamp is the saturation to ``out_bits``, if True
    the ``lo``/``hi`` ports give the range (they must lie inside the ``out_bits`` range).
    ``valid`` travels with the data to ``out_valid``.
    """

    def __init__(self, in_bits: int, out_bits: int, *, addend_bits: int = 0, dynamic: bool = False):
        self.in_bits, self.out_bits = in_bits, out_bits
        self.addend_bits, self.dynamic = addend_bits, dynamic
        self.product_bits = fp.rescale_product_bits(in_bits)
        members = {
            "valid": In(1),
            "value": In(signed(in_bits)),
            "mult": In(unsigned(fp.MULT_BITS)),
            "shift": In(unsigned(SHIFT_BITS)),
            "out_valid": Out(1),
            "result": Out(signed(out_bits)),
        }
        if addend_bits:
            members["addend"] = In(signed(addend_bits))
        if dynamic:
            members["lo"] = In(signed(out_bits))
            members["hi"] = In(signed(out_bits))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        W = self.product_bits
        # stage 1: product and the round constant (and everything later stages need, registered alongside)
        prod = Signal(signed(W))
        shift = Signal(unsigned(SHIFT_BITS))
        rnd = Signal(unsigned(W - 1))
        v1 = Signal()
        m.d.sync += [prod.eq(self.value * self.mult), shift.eq(self.shift), v1.eq(self.valid),
                     rnd.eq(((Const(1, W) << self.shift) >> 1)[:W - 1])]
        if self.addend_bits:
            add1, add2 = Signal(signed(self.addend_bits)), Signal(signed(self.addend_bits))
            m.d.sync += [add1.eq(self.addend), add2.eq(add1)]
        if self.dynamic:
            lo1, hi1 = Signal(signed(self.out_bits)), Signal(signed(self.out_bits))
            lo, hi = Signal(signed(self.out_bits)), Signal(signed(self.out_bits))
            m.d.sync += [lo1.eq(self.lo), hi1.eq(self.hi), lo.eq(lo1), hi.eq(hi1)]
        else:
            lo_v, hi_v = fp.signed_range(self.out_bits)
            lo, hi = Const(lo_v, signed(self.out_bits)), Const(hi_v, signed(self.out_bits))

        # stage 2: add half, arithmetic shift
        total = Signal(signed(W))
        m.d.comb += total.eq(prod + rnd)
        shifted = Signal(signed(W))
        v2 = Signal()
        m.d.sync += [shifted.eq(Mux(shift >= W, 0, total >> shift)), v2.eq(v1)]

        # stage 3: addend, clamp
        summed = Signal(signed(W + 1 + max(0, self.addend_bits - W)))
        m.d.comb += summed.eq(shifted + add2 if self.addend_bits else shifted)
        m.d.sync += [self.result.eq(clamp(summed, lo, hi)), self.out_valid.eq(v2)]
        return m
