"""Fixed-point primitives shared by the integer reference, the exporter and the RTL tests.

Every rescale in the accelerator is ``rescale(v, M, S) = (v * M + 2**S // 2) >> S`` (multiply by an
unsigned multiplier, add half, arithmetic shift right, i.e. round half up towards +inf), optionally
followed by a saturation. The constants below are the widths written in ``docs/arithmetic.md``.
Functions work on Python ints, numpy int64 arrays and torch int64 tensors alike.
"""
from __future__ import annotations

import math

#: Width of a node multiplier / channel multiplier (unsigned, normalised to [2**(MULT_BITS-1), 2**MULT_BITS)).
MULT_BITS = 16
#: Largest shift a rescale may use; keeps every product inside int64.
MAX_SHIFT = 48
#: Signed width of the rescaled neighbour rows (the aggregation engine's inputs, "XW buffer").
Y_BITS = 24
#: Signed width of the channel-rescaled, bias-added aggregate that feeds the node requantizer.
P_BITS = 24
#: Signed width of the final layer's output logits.
OUT_BITS = 16
#: Node feature bitwidths the accelerator supports.
MIN_NODE_BITS, MAX_NODE_BITS = 1, 8


def rounding_constant(shift):
    """``2**shift // 2``: the add-half of round-half-up (0 when shift == 0)."""
    return (1 << shift) >> 1 if isinstance(shift, int) else ((shift * 0 + 1) << shift) >> 1


def rescale(v, mult, shift):
    """Round-half-up fixed-point multiply: ``(v*mult + 2**shift//2) >> shift`` (arithmetic shift)."""
    return (v * mult + rounding_constant(shift)) >> shift


def signed_range(bits: int) -> tuple[int, int]:
    """Two's complement range of a ``bits``-wide signed integer."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def unsigned_range(bits: int) -> tuple[int, int]:
    return 0, (1 << bits) - 1


def feature_range(bits, signed: bool):
    """Range of a quantized feature with ``bits`` bits (ints or arrays of bits)."""
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return bits * 0, (1 << bits) - 1


def saturate_signed(v, bits: int):
    lo, hi = signed_range(bits)
    return v.clip(lo, hi) if hasattr(v, "clip") else max(lo, min(hi, v))


def quantize_multiplier(real: float, mult_bits: int = MULT_BITS, max_shift: int = MAX_SHIFT) -> tuple[int, int]:
    """Represent a positive real factor as ``M * 2**-S`` with M unsigned, ``mult_bits`` wide.

    M is normalised into [2**(mult_bits-1), 2**mult_bits) when possible, so every factor keeps the same
    relative precision; factors too small for ``max_shift`` lose low bits (and become 0 below range).
    """
    if not math.isfinite(real) or real < 0:
        raise ValueError(f"multiplier must be finite and >= 0, got {real!r}")
    if real == 0.0:
        return 0, 0
    exp = math.floor(math.log2(real))
    shift = mult_bits - 1 - exp
    if shift < 0:
        raise ValueError(f"multiplier {real!r} too large for {mult_bits}-bit fixed point")
    shift = min(shift, max_shift)
    mult = int(math.floor(real * (1 << shift) + 0.5))
    if mult >= (1 << mult_bits):  # rounding carried into the next power of two
        mult >>= 1
        shift -= 1
    return mult, shift


def bits_for_range(lo: int, hi: int) -> int:
    """Smallest two's complement width holding every value in [lo, hi]."""
    width = 1
    while not (-(1 << (width - 1)) <= lo and hi <= (1 << (width - 1)) - 1):
        width += 1
    return width


def combine_acc_bits(f_in: int, max_feature_bits: int, weight_bits: int, signed: bool) -> int:
    """Worst-case width of the combination accumulator ``sum_k x[k] * w[k]`` over ``f_in`` terms."""
    xlo, xhi = feature_range(max_feature_bits, signed)
    wlo, whi = signed_range(weight_bits)
    products = [xlo * wlo, xlo * whi, xhi * wlo, xhi * whi]
    return bits_for_range(f_in * min(products), f_in * max(products))


def aggregate_acc_bits(max_row_len: int, y_bits: int = Y_BITS) -> int:
    """Worst-case width of ``sum_e y[col[e]]`` over a CSR row of ``max_row_len`` entries."""
    lo, hi = signed_range(y_bits)
    return bits_for_range(max(1, max_row_len) * lo, max(1, max_row_len) * hi)


def rescale_product_bits(in_bits: int, mult_bits: int = MULT_BITS) -> int:
    """Width of ``v * M + round`` before the shift (signed v times unsigned M, plus one carry bit)."""
    return in_bits + mult_bits + 1
