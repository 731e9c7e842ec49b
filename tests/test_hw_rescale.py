"""The fixed-point rescale unit against a2q.fixedpoint, including saturation and the largest shifts."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from a2q import fixedpoint as fp
from hw.rescale import Rescaler, splits
from hw.testing import stream


def _reference(v, m, s, add, lo, hi):
    return max(lo, min(hi, fp.rescale(v, m, s) + add))


def _run(dut, vectors, lo=None, hi=None):
    inputs = []
    for v, m, s, add, vlo, vhi in vectors:
        e = {"value": v, "mult": m, "shift": s}
        if dut.has_mult_hi:
            e["mult_hi"] = m
        if dut.addend_bits:
            e["addend"] = add
        if dut.dynamic:
            e["lo"], e["hi"] = vlo, vhi
        inputs.append(e)
    got = stream(dut, inputs, ("result",))
    return [g["result"] for g in got]


def _extremes(in_bits):
    lo, hi = fp.signed_range(in_bits)
    w = fp.rescale_product_bits(in_bits)
    vals = [lo, hi, -1, 0, 1, lo + 1]
    shifts = sorted({0, 1, 2, w - 2, w - 1, w, fp.MAX_SHIFT - 1, fp.MAX_SHIFT} & set(range(fp.MAX_SHIFT + 1)))
    return [(v, m, s) for v in vals for m in (0, 1, (1 << fp.MULT_BITS) - 1) for s in shifts]


def test_src_rescale_extremes_saturate_to_y_bits():
    in_bits = 23  # Cora's combine accumulator
    dut = Rescaler(in_bits, fp.Y_BITS)
    vec = [(v, m, s, 0, *fp.signed_range(fp.Y_BITS)) for v, m, s in _extremes(in_bits)]
    assert _run(dut, vec) == [_reference(*x) for x in vec]
    # saturation really happened on both sides
    outs = _run(dut, vec)
    assert (min(outs), max(outs)) == fp.signed_range(fp.Y_BITS)


def test_channel_rescale_with_bias_saturates_to_24_bits():
    in_bits = fp.aggregate_acc_bits(64)
    dut = Rescaler(in_bits, fp.P_BITS, addend_bits=fp.P_BITS)
    blo, bhi = fp.signed_range(fp.P_BITS)
    vec = [(v, m, s, b, blo, bhi) for (v, m, s) in _extremes(in_bits) for b in (blo, 0, bhi)]
    outs = _run(dut, vec)
    assert outs == [_reference(*x) for x in vec]
    assert min(outs) == blo and max(outs) == bhi


@given(st.data())
@settings(max_examples=12, deadline=None)
def test_rescale_random(data):
    in_bits = data.draw(st.integers(2, 30), label="in_bits")
    out_bits = data.draw(st.sampled_from([8, 16, 24]), label="out_bits")
    dynamic = data.draw(st.booleans(), label="dynamic")
    addend_bits = data.draw(st.sampled_from([0, 24]), label="addend_bits")
    vlo, vhi = fp.signed_range(in_bits)
    olo, ohi = fp.signed_range(out_bits)
    alo, ahi = fp.signed_range(addend_bits) if addend_bits else (0, 0)
    n = data.draw(st.integers(1, 24), label="n")
    vec = []
    for _ in range(n):
        v = data.draw(st.one_of(st.integers(vlo, vhi), st.sampled_from([vlo, vhi, 0, -1])))
        m = data.draw(st.integers(0, (1 << fp.MULT_BITS) - 1))
        s = data.draw(st.integers(0, fp.MAX_SHIFT))
        add = data.draw(st.integers(alo, ahi))
        if dynamic:
            lo = data.draw(st.integers(olo, ohi))
            hi = data.draw(st.integers(lo, ohi))
        else:
            lo, hi = olo, ohi
        vec.append((v, m, s, add, lo, hi))
    dut = Rescaler(in_bits, out_bits, addend_bits=addend_bits, dynamic=dynamic)
    assert _run(dut, vec) == [_reference(*x) for x in vec]


def test_mult_hi_port_feeds_the_high_partial_product():
    """With ``mult_hi`` (a second copy of the multiplier for the high DSP: step 25) the result is the same
    when both copies agree; the high partial product really takes it (a different mult_hi changes the result
    of a value with high bits); a one-DSP width has no such port."""
    in_bits = 23
    assert splits(in_bits) and not splits(17)
    dut = Rescaler(in_bits, fp.Y_BITS, mult_hi=True)
    vec = [(v, m, s, 0, *fp.signed_range(fp.Y_BITS)) for v, m, s in _extremes(in_bits)]
    assert _run(dut, vec) == [_reference(*x) for x in vec]
    got = stream(Rescaler(in_bits, fp.Y_BITS, mult_hi=True),
                 [{"value": 1 << 20, "mult": 3, "mult_hi": 5, "shift": 0}], ("result",))
    assert got[0]["result"] == (1 << 20) * 5
    with pytest.raises(ValueError, match="one DSP"):
        Rescaler(17, fp.Y_BITS, mult_hi=True)

