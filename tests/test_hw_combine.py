"""The combination engine (P bit-serial PEs + SRC_RESCALE into the XW buffer) against a2q.integer,
layer by layer, with its cycle count: 1 start + 1 setup + sum_j b_j*T_in*T_out issue + 5 drain."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from a2q import cycle_model, integer, synth
from hw import memory_map as mm
from hw.combine import DRAIN
from hw.config import AcceleratorConfig
from hw.testing import CombineHarness, run_engine, saturating_program, worst_case_program


def _check_layer(p, cfg, layer, traces=None):
    traces = traces or integer.run(p)
    feat = mm.feature_image(p, cfg, [t.x for t in traces])
    res = run_engine(CombineHarness(cfg, p, layer, feat))
    y = mm.decode_xw(res["mems"]["xw"], p, cfg, layer)
    np.testing.assert_array_equal(y, traces[layer].y.numpy())
    ideal = cycle_model.layer_cycles(p, layer, cfg.lanes, cfg.pes).combine_ideal
    assert res["busy"] == 2 + ideal + DRAIN
    # the sequencer adds one cycle to hand back: the cycle model's combine phase
    assert res["busy"] + 1 == cycle_model.layer_cycles(p, layer, cfg.lanes, cfg.pes).combine
    return y


@given(seed=st.integers(0, 10_000), lp=st.sampled_from([(4, 4), (8, 2), (2, 8), (16, 4), (1, 2)]),
       signed=st.booleans())
@settings(max_examples=8, deadline=None)
def test_random_programs_every_layer(seed, lp, signed):
    p = synth.random_program(seed=seed, n=7, dims=(11, 6, 5), first_signed=signed)
    cfg = AcceleratorConfig.fit(p, lanes=lp[0], pes=lp[1])
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
    assert (np.abs(y) == 32768).any() or (y == 32767).any()
    _check_layer(p, AcceleratorConfig.fit(p, lanes=4, pes=4), 0, traces)
