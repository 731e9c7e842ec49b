"""Rounding, multiplier encoding and worst-case widths of docs/arithmetic.md."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from a2q import fixedpoint as fp


def test_round_half_up_on_ties():
    assert fp.rescale(5, 1, 1) == 3 and fp.rescale(-5, 1, 1) == -2
    assert fp.rescale(-3, 1, 1) == -1 and fp.rescale(3, 1, 1) == 2
    assert fp.rescale(7, 3, 0) == 21  # shift 0: plain product, no rounding constant


@given(st.integers(-2**30, 2**30), st.integers(0, 2**16 - 1), st.integers(0, 48))
@settings(max_examples=300, deadline=None)
def test_rescale_equals_floor_of_exact_plus_half(v, m, s):
    from fractions import Fraction
    exact = Fraction(v * m, 2**s) + (Fraction(1, 2) if s > 0 else 0)
    assert fp.rescale(v, m, s) == exact.__floor__()
    # the tensor path gives the same integer
    assert int(fp.rescale(torch.tensor([v]), torch.tensor([m]), torch.tensor([s]))[0]) == fp.rescale(v, m, s)


@given(st.floats(1e-9, 3e4))
@settings(max_examples=300, deadline=None)
def test_quantize_multiplier_is_normalised_and_accurate(real):
    m, s = fp.quantize_multiplier(real)
    assert 0 <= m < 2**fp.MULT_BITS and 0 <= s <= fp.MAX_SHIFT
    if s < fp.MAX_SHIFT:
        assert m >= 2**(fp.MULT_BITS - 1)
        assert abs(m / 2**s - real) <= real * 2.0**-(fp.MULT_BITS - 1)


def test_quantize_multiplier_rejects_bad_values():
    assert fp.quantize_multiplier(0.0) == (0, 0)
    for bad in (-1.0, float("nan"), float("inf"), 2.0**20):
        with pytest.raises(ValueError):
            fp.quantize_multiplier(bad)


def test_ranges_and_saturation():
    assert fp.signed_range(4) == (-8, 7) and fp.unsigned_range(3) == (0, 7)
    assert fp.feature_range(1, True) == (-1, 0) and fp.feature_range(1, False) == (0, 1)
    assert fp.saturate_signed(40000, 16) == 32767 and fp.saturate_signed(-40000, 16) == -32768
    np.testing.assert_array_equal(fp.saturate_signed(np.array([-9, 0, 9]), 4), [-8, 0, 7])


@pytest.mark.parametrize("f_in,bits,wb,signed", [(1433, 8, 4, False), (16, 1, 4, False), (7, 8, 8, True)])
def test_combine_width_holds_the_worst_case(f_in, bits, wb, signed):
    width = fp.combine_acc_bits(f_in, bits, wb, signed)
    lo, hi = fp.signed_range(width)
    xmax = 2**(bits - 1) if signed else 2**bits - 1
    xmin = -2**(bits - 1) if signed else 0
    wmin, wmax = fp.signed_range(wb)
    worst = [f_in * a * b for a in (xmin, xmax) for b in (wmin, wmax)]
    assert lo <= min(worst) and max(worst) <= hi
    # and it is tight: one bit fewer would not hold it
    lo1, hi1 = fp.signed_range(width - 1)
    assert min(worst) < lo1 or max(worst) > hi1
    assert fp.combine_acc_bits(1433, 8, 4, False) == 23


def test_aggregate_width_holds_a_full_row_of_extremes():
    for row in (1, 2, 3, 169, 2708):
        lo, hi = fp.signed_range(fp.aggregate_acc_bits(row))
        assert lo <= row * -2**15 and row * (2**15 - 1) <= hi
