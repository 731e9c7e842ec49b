"""The combination engine (P bit-serial PEs + SRC_RESCALE into the XW buffer) against a2q.integer,
layer by layer, with its cycle count: 1 start + 2 setup (FIRST_ISSUE) + T_out*sum_j max(words_j, 1) issue + DRAIN (14),
with and without zero-word skipping."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from a2q import cycle_model, integer, synth
from a2q import fixedpoint as fp
from hw import memory_map as mm
from hw.combine import DRAIN, FIRST_ISSUE
from hw.config import AcceleratorConfig
from hw.sequencer import IDLE_STAGES
from hw.testing import CombineHarness, run_engine, saturating_program, sparse_program, worst_case_program


def _check_layer(p, cfg, layer, traces=None):
    traces = traces or integer.run(p)
    images = mm.feature_image(p, cfg, [t.x for t in traces])
    res = run_engine(CombineHarness(cfg, p, layer, images))
    y = mm.decode_xw(res["mems"]["xw"], p, cfg, layer)
    np.testing.assert_array_equal(y, traces[layer].y.numpy())
    model = cycle_model.cycles_for_config(p, cfg).layers[layer]
    t_out = -(-p.layers[layer].out_features // cfg.pes)
    words = np.array(images[1][layer * p.num_nodes:(layer + 1) * p.num_nodes])
    assert model.words == words.sum()
    assert res["busy"] == FIRST_ISSUE + t_out * np.maximum(words, 1).sum() + DRAIN
    # the sequencer sees the idle flag through its register and adds one cycle to hand back: the cycle
    # model's combine phase
    assert res["busy"] + IDLE_STAGES + 1 == model.combine
    return y


@given(seed=st.integers(0, 10_000), lp=st.sampled_from([(4, 4), (8, 2), (2, 8), (16, 4), (1, 2)]),
       signed=st.booleans(), sparse=st.booleans(), skip=st.sampled_from([0, 1]))
@settings(max_examples=10, deadline=None)
def test_random_programs_every_layer(seed, lp, signed, sparse, skip):
    p = synth.random_program(seed=seed, n=7, dims=(11, 6, 5), first_signed=signed)
    if sparse:
        p = sparse_program(p, seed=seed)
    cfg = AcceleratorConfig.fit(p, lanes=lp[0], pes=lp[1], zero_skip=skip)
    traces = integer.run(p)
    for layer in range(p.num_layers):
        _check_layer(p, cfg, layer, traces)


@pytest.mark.parametrize("signed", [False, True])
def test_worst_case_accumulator(signed):
    p = worst_case_program(n=3, dims=(40, 4), signed=signed)
    cfg = AcceleratorConfig.fit(p, lanes=8, pes=4)
    traces = integer.run(p)
    acc = traces[0].acc.numpy()
    bound = 40 * (128 if signed else 255) * 8
    assert np.abs(acc).max() == bound          # the accumulator really reaches its bound
    _check_layer(p, cfg, 0, traces)


def test_src_rescale_saturates():
    p = saturating_program(synth.random_program(seed=5, n=8, dims=(12, 6, 3)))
    traces = integer.run(p)
    y = traces[0].y.numpy()
    lo, hi = fp.signed_range(fp.Y_BITS)
    assert (y == lo).any() or (y == hi).any()
    _check_layer(p, AcceleratorConfig.fit(p, lanes=4, pes=4), 0, traces)


@pytest.mark.parametrize("skip", [0, 1])
def test_zero_words_cost_no_cycle(skip):
    """Sparse features: with skipping the engine issues only the non-zero words (and one cycle per output
    tile for a node without any), without it every word; y is the same."""
    p = sparse_program(synth.random_program(seed=4, n=6, dims=(20, 6, 3)), seed=4, density=0.1, empty_nodes=2)
    cfg = AcceleratorConfig.fit(p, lanes=4, pes=4, zero_skip=skip)
    traces = integer.run(p)
    _check_layer(p, cfg, 0, traces)
    words = cycle_model.stored_words(p, 4, bool(skip))[0]
    dense = p.layer(0, "bits").astype(np.int64) * 5
    if skip:
        assert (words[:2] == 0).all() and words.sum() < dense.sum() // 2
    else:
        assert (words == dense).all()
