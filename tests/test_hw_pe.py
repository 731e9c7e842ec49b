"""The bit-serial PE against an exact dot product: signed/unsigned nodes of 1..8 bits, several tiles,
and the accumulator driven to its worst-case bound (all-max features and weights)."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from a2q import fixedpoint as fp
from hw.pe import BitSerialPE
from hw.testing import stream


def _plane_inputs(x, w, bits, signed, lanes, wb):
    """PE inputs for one node: every (tile, plane), tile-major, plane-minor."""
    t = len(x) // lanes
    ux = [int(v) & 0xFF for v in x]
    inputs = []
    for ti in range(t):
        word_w = 0
        for k in range(lanes):
            word_w |= (int(w[ti * lanes + k]) & ((1 << wb) - 1)) << (k * wb)
        for p in range(bits):
            plane = sum(((ux[ti * lanes + k] >> p) & 1) << k for k in range(lanes))
            inputs.append({"bits": plane, "weights": word_w, "plane": p,
                           "negate": int(signed and p == bits - 1),
                           "first": int(ti == 0 and p == 0), "last": int(ti == t - 1 and p == bits - 1)})
    return inputs


def _run(lanes, wb, tiles, nodes):
    """nodes: list of (x, w, bits, signed). Returns accumulated sums, one per node."""
    acc_bits = max(fp.combine_acc_bits(tiles * lanes, 8, wb, s) for s in (False, True))
    dut = BitSerialPE(lanes, wb, acc_bits)
    inputs = []
    for x, w, bits, signed in nodes:
        inputs += _plane_inputs(x, w, bits, signed, lanes, wb)
    got = stream(dut, inputs, ("acc",), out_valid="done", expect=len(nodes))
    return [g["acc"] for g in got], acc_bits


def test_worst_case_bounds_are_reached_exactly():
    lanes, wb, tiles = 8, 4, 3
    f = lanes * tiles
    wlo, whi = fp.signed_range(wb)
    nodes = [
        ([255] * f, [wlo] * f, 8, False),     # most negative: F * 255 * -8
        ([255] * f, [whi] * f, 8, False),     # most positive unsigned
        ([-128] * f, [wlo] * f, 8, True),     # signed: -128 * -8
        ([127] * f, [wlo] * f, 8, True),
        ([1] * f, [wlo] * f, 1, False),       # 1-bit nodes
        ([-1] * f, [whi] * f, 1, True),       # signed 1-bit: values in {-1, 0}
    ]
    got, acc_bits = _run(lanes, wb, tiles, nodes)
    want = [int(np.dot(x, w)) for x, w, _, _ in nodes]
    assert got == want
    lo, hi = fp.signed_range(acc_bits)
    assert lo <= min(want) and max(want) <= hi
    assert min(want) < -(1 << (acc_bits - 2))  # the bound is tight: one bit less would overflow


@given(st.data())
@settings(max_examples=10, deadline=None)
def test_random_nodes(data):
    lanes = data.draw(st.sampled_from([1, 4, 8, 16]))
    wb = data.draw(st.integers(2, 8))
    tiles = data.draw(st.integers(1, 3))
    f = lanes * tiles
    wlo, whi = fp.signed_range(wb)
    nodes = []
    for _ in range(data.draw(st.integers(1, 4))):
        bits = data.draw(st.integers(1, 8))
        signed = data.draw(st.booleans())
        lo, hi = fp.feature_range(bits, signed)
        x = data.draw(st.lists(st.integers(lo, hi), min_size=f, max_size=f))
        w = data.draw(st.lists(st.integers(wlo, whi), min_size=f, max_size=f))
        nodes.append((x, w, bits, signed))
    got, _ = _run(lanes, wb, tiles, nodes)
    assert got == [int(np.dot(x, w)) for x, w, _, _ in nodes]
