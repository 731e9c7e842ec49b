"""Export folds float quantization parameters into integers that reproduce the fake-quant model."""
import numpy as np
import pytest
from torch_geometric.datasets import KarateClub

from a2q import fixedpoint as fp
from a2q import integer
from a2q.export import build_program, csr_with_self_loops, quantize_weight


def fake_quant_gcn(layers, x_int, row_ptr, col_idx):
    """Float model of docs/arithmetic.md: out_i = d_i^-1/2 (sum_j d_j^-1/2 xq_j Wq + b), round half up."""
    n = len(row_ptr) - 1
    inv = 1 / np.sqrt(np.maximum(np.diff(row_ptr), 1))
    xq = x_int * layers[0]["in_step"][:, None]
    for i, L in enumerate(layers):
        Wq = quantize_weight(L["weight"], L["weight_step"], L["weight_bits"]) * L["weight_step"][None, :]
        y = inv[:, None] * (xq @ Wq)
        agg = np.zeros((n, y.shape[1]))
        for r in range(n):
            agg[r] = y[col_idx[row_ptr[r]:row_ptr[r + 1]]].sum(0)
        out = inv[:, None] * (agg + L["bias"][None, :])
        if i + 1 < len(layers):
            nxt = layers[i + 1]
            q = np.clip(np.floor(out / nxt["in_step"][:, None] + 0.5), 0, 2.0 ** nxt["in_bits"][:, None] - 1)
            xq = q * nxt["in_step"][:, None]
        else:
            return out


def random_layers(rng, n, dims, bits_choices=(1, 2, 3, 4, 8)):
    layers = []
    for i in range(len(dims) - 1):
        W = rng.normal(0, 0.5, size=(dims[i], dims[i + 1]))
        layers.append({"in_step": rng.uniform(0.05, 0.3, size=n), "in_bits": rng.choice(bits_choices, size=n),
                       "in_signed": False, "weight": W, "weight_step": np.abs(W).max(0) / 7,
                       "weight_bits": 4, "bias": rng.normal(0, 0.1, size=dims[i + 1]),
                       "relu": i < len(dims) - 2})
    return layers


def test_csr_with_self_loops_dedups_and_adds_one_loop_per_node():
    ei = np.array([[0, 1, 1, 2, 2], [1, 0, 0, 2, 1]])  # duplicate 1->0, an existing self loop 2->2
    row_ptr, col = csr_with_self_loops(ei, 4)
    rows = [sorted(col[row_ptr[i]:row_ptr[i + 1]].tolist()) for i in range(4)]
    assert rows == [[0, 1], [0, 1, 2], [2], [3]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_integer_program_tracks_fake_quant_on_karate_club(seed):
    data = KarateClub()[0]
    rng = np.random.default_rng(seed)
    n = data.num_nodes
    layers = random_layers(rng, n, (data.num_features, 16, 4))
    x_int = rng.integers(0, 2, size=(n, data.num_features)) * (2 ** layers[0]["in_bits"][:, None] - 1)
    p = build_program(layers, x_int, data.edge_index.numpy(), n)
    ref = fake_quant_gcn(layers, x_int.astype(float), p.arrays["row_ptr"], p.arrays["col_idx"])
    tr = integer.run(p)
    # the scales put the largest |y| and |p| about one bit below saturation: full precision, no clipping
    for stage, bits in (("y", fp.Y_BITS), ("p", fp.P_BITS)):
        peak = int(getattr(tr[0], stage).abs().max())
        assert 2 ** (bits - 3) < peak < 2 ** (bits - 1) - 1, (stage, peak)
    logits = tr[-1].out.numpy() * p.meta["scales"][-1]["tau"]  # any positive scale keeps the argmax
    agree = (logits.argmax(1) == ref.argmax(1)).mean()
    assert agree >= 0.97, agree
    np.testing.assert_array_equal(p.arrays["expected_out"], tr[-1].out.numpy())


def test_binary_input_encoding_keeps_the_real_values_and_the_predictions():
    """Uniform codes of binary rows ({0, c_j} per row) re-encoded at one bit with step c_j * s: the
    first layer's reals are unchanged, so the integer logits agree up to multiplier rounding and the
    predictions agree; a row that is not binary keeps its bits."""
    from a2q.export import binary_input

    data = KarateClub()[0]
    rng = np.random.default_rng(3)
    n = data.num_nodes
    layers = random_layers(rng, n, (data.num_features, 16, 4), bits_choices=(4,))
    layers[0]["in_step"] = np.full(n, 0.1)
    c = rng.integers(1, 16, size=n)
    x_int = rng.integers(0, 2, size=(n, data.num_features)) * c[:, None]
    x_int[5, :3] = [1, 2, 3]                               # not binary: stays at 4 bits
    new_layers, x_bin, changed = binary_input(layers, x_int, n)
    assert changed == n - 1
    assert new_layers[0]["in_bits"][5] == 4 and (np.delete(new_layers[0]["in_bits"], 5) == 1).all()
    np.testing.assert_allclose(x_bin * new_layers[0]["in_step"][:, None], x_int * 0.1)
    a = build_program(layers, x_int, data.edge_index.numpy(), n)
    b = build_program(new_layers, x_bin, data.edge_index.numpy(), n)
    la, lb = integer.logits(a).numpy(), integer.logits(b).numpy()
    assert (la.argmax(1) == lb.argmax(1)).all()
    assert np.abs(la - lb).max() <= 2                     # multiplier rounding only
    # power-of-two codes fold into the shift exactly: the integers are identical
    pow2 = rng.integers(0, 2, size=(n, data.num_features)) * (1 << rng.integers(0, 4, size=n))[:, None]
    l2, x2, _ = binary_input(layers, pow2, n)
    np.testing.assert_array_equal(integer.logits(build_program(layers, pow2, data.edge_index.numpy(), n)).numpy(),
                                  integer.logits(build_program(l2, x2, data.edge_index.numpy(), n)).numpy())


def test_channel_scale_covers_a_bias_that_cancels_the_aggregate():
    """A BatchNorm fold over nearly constant inputs gives a huge weight scale and an opposite bias whose
    sum is small (seen on a REDDIT-BINARY GIN whose hidden inputs quantized to one constant row). A tau
    fitted to the sum alone saturated the 24-bit bias; fitted to every term, p stays exact to rounding."""
    import torch

    from a2q.export import _multipliers, _p_scale

    a = torch.tensor([[1000, 1001, 999], [1000, 1000, 1000]], dtype=torch.int64)
    sw = np.array([1e3, 2e3, 5e2])                                  # sigma * w_step per channel
    bias = -sw * 1000.0 + np.array([3.0, -2.0, 1.0])                # cancels the aggregate to a few units
    agg = sw[None, :] * a.numpy()
    pre = agg + bias[None, :]
    tau = _p_scale(agg, bias)
    mult, shift = _multipliers(sw / tau)
    b_int = np.floor(bias / tau + 0.5).astype(np.int64)
    lo, hi = fp.signed_range(fp.P_BITS)
    assert lo < b_int.min() and b_int.max() < hi                    # the bias is representable
    p = integer.channel_rescale(a, torch.as_tensor(mult.astype(np.int64)), torch.as_tensor(shift.astype(np.int64)),
                                torch.as_tensor(b_int))
    assert int(p.abs().max()) < hi
    # what is left is the 16-bit multiplier's rounding, relative to the largest term (not to the small sum)
    np.testing.assert_allclose(p.numpy() * tau, pre, atol=np.abs(agg).max() * 2.0 ** (1 - fp.MULT_BITS) + 3 * tau)
