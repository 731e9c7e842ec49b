"""Fixed-point rescale unit: ``clamp(((v * M + 2**S // 2) >> S) + add, lo, hi)``, six pipeline stages.

This is the one rescale of docs/arithmetic.md (round half up, arithmetic shift), used three times:
SRC_RESCALE (saturate to 16 bits), the channel rescale (add the bias, saturate to 24 bits) and the
node rescale (clamp to a per-node range supplied at run time).

Widths: the product ``v*M + round`` is ``rescale_product_bits(in_bits)`` = in_bits + 17 bits wide.
That holds for every shift S < in_bits + 17; for S >= in_bits + 17 (shifts go up to MAX_SHIFT = 48) the
round constant alone would not fit, but then ``v*M + 2**(S-1)`` lies in [0, 2**S) and the exact result
is 0, which the unit returns directly -- so no adder is wider than the contract's product width.

Stages (for timing closure, see docs/hardware.md "Timing closure"): 1 partial products (one DSP each)
and the round constant decoded from S; 2 their sum; 3 add the round constant; 4 arithmetic shift;
5 addend; 6 clamp. Each stage ends in registers, so each holds one multiplier, one carry chain or one
mux tree.

The registers fed by the parameters and the valid bit (``shift*``, ``rnd*``, ``valid_d*``, ``lo_d*``,
``hi_d*``) carry ``KEEP_REGISTER``: the P rescalers of an engine get the same parameters, so synthesis
would merge these registers into one copy driving all P units across the die (the default config's
critical path after step 10: docs/hardware.md, "Timing closure", step 11).
"""
from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from a2q import fixedpoint as fp

from .config import SHIFT_BITS
from .pipeline import delay_line
from .primitives import registered_product
from .replicate import KEEP_REGISTER, kept_copies

LATENCY = 6
#: Bits of the value's low part in a split multiply (a DSP multiplier's unsigned operand: 17 of 18).
DSP_A = 17


def splits(in_bits: int) -> bool:
    """Whether a rescaler of ``in_bits``-bit values multiplies in two DSPs (low and high partial products)."""
    return in_bits > DSP_A


def scale_operands(m, scale, n: int, name: str, hi_name: str, in_bits: int) -> list[dict]:
    """The multiplier and shift of ``n`` rescalers of ``in_bits``-bit values (``scale``: the multiplier in
    the low ``MULT_BITS``, the shift above), registered beside each rescaler's DSPs: one kept copy per
    rescaler (``<name><o>``: one register would drive n DSPs across the die, docs/hardware.md step 17) and,
    where the multiply splits into two DSPs, a second kept copy of the multiplier for the high one
    (``<hi_name><o>``, step 25). Returns each rescaler's port values (``mult``, ``shift``, ``mult_hi``), for
    a ``Rescaler(in_bits, ..., mult_hi=splits(in_bits))``."""
    copies = kept_copies(m, "sync", scale, n, name)
    his = kept_copies(m, "sync", scale[:fp.MULT_BITS], n, hi_name) if splits(in_bits) else [None] * n
    return [{"mult": c[:fp.MULT_BITS], "shift": c[fp.MULT_BITS:], **({"mult_hi": h} if h is not None else {})}
            for c, h in zip(copies, his, strict=True)]


def drive(rs, operands: dict) -> list:
    """Statements that connect ``operands`` (an item of ``scale_operands``) to the rescaler ``rs``."""
    return [getattr(rs, port).eq(value) for port, value in operands.items()]


def clamp(v, lo, hi):
    """``min(max(v, lo), hi)`` as a mux (lo <= hi assumed)."""
    return Mux(v < lo, lo, Mux(v > hi, hi, v))


class Rescaler(wiring.Component):
    """``result = clamp(((value*mult + round) >> shift) + addend, lo, hi)``, LATENCY = 6 cycles.

    Parameters: ``in_bits`` signed input width; ``out_bits`` signed output width; ``addend_bits``
    (0: no addend port); ``dynamic`` -- if False the clamp is the saturation to ``out_bits``, if True
    the ``lo``/``hi`` ports give the range (they must lie inside the ``out_bits`` range).
    ``valid`` travels with the data to ``out_valid``. ``mult_hi``: where the multiply splits into two DSPs
    (``splits(in_bits)``), a ``mult_hi`` port feeds the high partial product's DSP, so that the caller can
    give each DSP its own copy of the multiplier register (timing: docs/hardware.md, step 25).
    """

    def __init__(self, in_bits: int, out_bits: int, *, addend_bits: int = 0, dynamic: bool = False,
                 mult_hi: bool = False):
        self.in_bits, self.out_bits = in_bits, out_bits
        self.addend_bits, self.dynamic = addend_bits, dynamic
        if mult_hi and not splits(in_bits):
            raise ValueError(f"a {in_bits}-bit value is multiplied in one DSP: no mult_hi port")
        self.has_mult_hi = mult_hi
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
        if mult_hi:
            members["mult_hi"] = In(unsigned(fp.MULT_BITS))
        if dynamic:
            members["lo"] = In(signed(out_bits))
            members["hi"] = In(signed(out_bits))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        W = self.product_bits

        def delay(value, cycles, name):
            """``value`` ``cycles`` clocks later (a chain of kept registers)."""
            return delay_line(m, value, cycles, name, attrs=KEEP_REGISTER)[-1]

        # stage 1: partial products, one DSP multiplier each (the value's low DSP_A bits unsigned, its
        # high bits signed; on ECP5 the product register is the DSP's own, hw/primitives.py), and the
        # round constant. Stage 2: the product from the registered parts
        # (timing: a multiplier's delay and the partial-product adder do not share a cycle).
        shift0 = Signal(unsigned(SHIFT_BITS), name="shift0", attrs=KEEP_REGISTER)
        rnd0 = Signal(unsigned(W - 1), name="rnd0", attrs=KEEP_REGISTER)
        m.d.sync += [shift0.eq(self.shift), rnd0.eq(((Const(1, W) << self.shift) >> 1)[:W - 1])]
        prod = Signal(signed(W))
        if splits(self.in_bits):
            p_lo = Signal(unsigned(DSP_A + fp.MULT_BITS))
            p_hi = Signal(signed(W - DSP_A))
            registered_product(m, platform, self.value[:DSP_A], self.mult, p_lo, "mul_lo")
            registered_product(m, platform, self.value[DSP_A:].as_signed(),
                               self.mult_hi if self.has_mult_hi else self.mult, p_hi, "mul_hi")
            m.d.sync += prod.eq(Cat(p_lo[:DSP_A], (p_hi + p_lo[DSP_A:])[:W - DSP_A]).as_signed())
        else:
            p = Signal(signed(W))
            registered_product(m, platform, self.value, self.mult, p, "mul")
            m.d.sync += prod.eq(p)
        shift, rnd = delay(shift0, 1, "shift"), delay(rnd0, 1, "rnd")
        valid = delay(self.valid, LATENCY - 1, "valid")
        if self.dynamic:
            lo, hi = delay(self.lo, LATENCY - 1, "lo_d"), delay(self.hi, LATENCY - 1, "hi_d")
        else:
            lo_v, hi_v = fp.signed_range(self.out_bits)
            lo, hi = Const(lo_v, signed(self.out_bits)), Const(hi_v, signed(self.out_bits))

        # stage 3: add half
        total = Signal(signed(W))
        shift2 = Signal.like(shift, name="shift2", attrs=KEEP_REGISTER)
        m.d.sync += [total.eq(prod + rnd), shift2.eq(shift)]

        # stage 4: arithmetic shift
        shifted = Signal(signed(W))
        m.d.sync += shifted.eq(Mux(shift2 >= W, 0, total >> shift2))

        # stage 5: addend (a register stage without one: the clamp's compares get their own cycle)
        summed = Signal(signed(W + 1 + max(0, self.addend_bits - W)))
        if self.addend_bits:
            m.d.sync += summed.eq(shifted + delay(self.addend, 4, "add_d"))
        else:
            m.d.sync += summed.eq(shifted)

        # stage 6: clamp
        m.d.sync += [self.result.eq(clamp(summed, lo, hi)), self.out_valid.eq(valid)]
        return m
