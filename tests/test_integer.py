"""The int64 reference against an independent, loop-by-loop Python-int model of docs/arithmetic.md.

The naive model computes the combination bit-serially (plane by plane, the sign plane subtracting),
as the accelerator does, so the two agree only if the bit-plane decomposition is right too.
"""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from a2q import fixedpoint as fp
from a2q import integer
from a2q.synth import random_program


def planes(v: int, bits: int) -> list[int]:
    """Two's complement bit-planes of v (low plane first)."""
    return [(v >> p) & 1 for p in range(bits)]


def naive_layer(x, bits, signed, W, ms, ss, mc, sc, bias, md, sd, row_ptr, col_idx, out_bits, out_signed):
    n, f_out = len(x), len(W[0])
    y = [[0] * f_out for _ in range(n)]
    for j in range(n):
        b = int(bits[j])
        for o in range(f_out):
            acc = 0
            for p in range(b):
                s = sum(planes(int(x[j][k]), b)[p] * int(W[k][o]) for k in range(len(W)))
                acc += -(s << p) if (signed and p == b - 1) else (s << p)
            assert acc == sum(int(x[j][k]) * int(W[k][o]) for k in range(len(W)))
            y[j][o] = fp.saturate_signed(fp.rescale(acc, int(ms[j]), int(ss[j])), fp.Y_BITS)
    out = [[0] * f_out for _ in range(n)]
    for i in range(n):
        for o in range(f_out):
            a = sum(y[int(col_idx[e])][o] for e in range(int(row_ptr[i]), int(row_ptr[i + 1])))
            p_ = fp.saturate_signed(fp.rescale(a, int(mc[o]), int(sc[o])) + int(bias[o]), fp.P_BITS)
            r = fp.rescale(p_, int(md[i]), int(sd[i]))
            if out_bits is None:
                out[i][o] = fp.saturate_signed(r, fp.OUT_BITS)
            else:
                lo, hi = fp.feature_range(int(out_bits[i]), out_signed)
                out[i][o] = max(lo, min(hi, r))
    return out


def naive_run(p):
    x = p.arrays["x"].tolist()
    for i in range(p.num_layers):
        last = i == p.num_layers - 1
        L = lambda k, i=i: p.layer(i, k)  # noqa: E731
        x = naive_layer(x, L("bits"), p.layers[i].in_signed, L("weight").tolist(), L("src_mult"),
                        L("src_shift"), L("ch_mult"), L("ch_shift"), L("bias"), L("dst_mult"),
                        L("dst_shift"), p.arrays["row_ptr"], p.arrays["col_idx"],
                        None if last else p.layer(i + 1, "bits"),
                        False if last else p.layers[i + 1].in_signed)
    return np.array(x)


@given(seed=st.integers(0, 10_000), signed=st.booleans(), n=st.integers(2, 9),
       dims=st.sampled_from([(5, 3, 2), (17, 4), (3, 6, 5, 2)]), wb=st.sampled_from([2, 4, 8]))
@settings(max_examples=25, deadline=None)
def test_reference_matches_naive_bit_serial_model(seed, signed, n, dims, wb):
    p = random_program(seed=seed, n=n, dims=dims, weight_bits=wb, first_signed=signed)
    np.testing.assert_array_equal(integer.logits(p).numpy(), naive_run(p))


def test_extremes_saturate_exactly_as_specified():
    """All-max features and weights with large multipliers drive every stage into saturation."""
    p = random_program(seed=1, n=6, dims=(40, 3), weight_bits=4)
    p.arrays["x"][:] = 255
    p.arrays["l0_bits"][:] = 8
    p.arrays["l0_weight"][:] = 7
    p.arrays["l0_src_shift"][:] = 0  # y saturates at +2**(Y_BITS-1)-1
    p.arrays["l0_ch_shift"][:] = 0   # p saturates at 2**23-1
    tr = integer.run(p)[0]
    assert int(tr.acc.max()) == 40 * 255 * 7
    assert int(tr.y.max()) == 2**(fp.Y_BITS - 1) - 1
    assert int(tr.p.max()) == 2**23 - 1
    assert int(tr.out.max()) <= 2**15 - 1
    np.testing.assert_array_equal(tr.out.numpy(), naive_run(p))


def test_empty_rows_give_bias_only_and_hub_sums_everything():
    p = random_program(seed=2, n=8, dims=(4, 3), hub=True, isolated=2)
    tr = integer.run(p)[0]
    assert np.diff(p.arrays["row_ptr"])[-1] == 0
    assert (tr.a[-1] == 0).all()
    np.testing.assert_array_equal(tr.a[0].numpy(), tr.y.sum(0).numpy())


def test_first_mismatch_locates_layer_phase_node_channel():
    p = random_program(seed=4, n=5, dims=(6, 4, 3))
    ref = integer.run(p)
    got = ref[1].y.clone()
    got[3, 2] += 1
    m = integer.first_mismatch(ref, 1, "y", got)
    assert m == {"layer": 1, "phase": "y", "node": 3, "channel": 2, "expected": int(ref[1].y[3, 2]),
                 "got": int(ref[1].y[3, 2]) + 1, "count": 1}
    assert integer.first_mismatch(ref, 0, "out", ref[0].out) is None


def test_accuracy_uses_labels_and_test_mask():
    p = random_program(seed=6, n=9, dims=(5, 3))
    pred = integer.logits(p).argmax(1).numpy()
    p.arrays["labels"] = pred.astype(np.int64)
    p.arrays["test_mask"] = np.ones(9, bool)
    assert integer.accuracy(p) == 1.0
    p.arrays["labels"] = (pred + 1).astype(np.int64)
    assert integer.accuracy(p) == 0.0
