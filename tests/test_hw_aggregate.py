"""The aggregation engine + requantizer + bit-plane packer against a2q.integer, for hidden layers
(next layer's bit-plane features, ReLU or signed clamp) and the last layer (16-bit logits), with
empty rows, a hub row, XW values at the 16-bit extremes, and the engine's exact stall count."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from a2q import cycle_model, integer, synth
from hw import memory_map as mm
from hw.config import AcceleratorConfig
from hw.sequencer import IDLE_STAGES
from hw.testing import AggregateHarness, run_engine, saturating_program, signed_hidden_program, sparse_program


def _reference(p, layer, y):
    """Layer output from y via a2q.integer's AGGREGATE and REQUANT phases."""
    t = lambda a: torch.as_tensor(np.asarray(a)).to(torch.int64)
    L = lambda name: t(p.layer(layer, name))
    a = integer.aggregate(t(y), t(p.arrays["row_ptr"]), t(p.arrays["col_idx"]))
    pp = integer.channel_rescale(a, L("ch_mult"), L("ch_shift"), L("bias"))
    last = layer == p.num_layers - 1
    out_bits = None if last else t(p.layer(layer + 1, "bits"))
    out_signed = False if last else p.layers[layer + 1].in_signed
    return integer.node_requant(pp, L("dst_mult"), L("dst_shift"), out_bits, out_signed).numpy(), a.numpy()


def _check(p, cfg, layer, y):
    want, a = _reference(p, layer, y)
    res = run_engine(AggregateHarness(cfg, p, layer, y))
    last = layer == p.num_layers - 1
    if last:
        got = mm.decode_output(res["mems"]["out"], p, cfg)
    else:
        got = mm.decode_features(res["mems"]["feat"], res["mems"]["count"], p, cfg, layer + 1)
        # the packer stored exactly the words the sparse layout keeps, and counted them
        _, counts = mm.stored_features(want, p.layer(layer + 1, "bits"), cfg)
        n = p.num_nodes
        assert res["mems"]["count"][(layer + 1) * n:(layer + 2) * n] == [int(c) for c in counts]
    np.testing.assert_array_equal(got, want)
    model = cycle_model.layer_cycles(p, layer, cfg.lanes, cfg.pes, edges=cfg.edges_per_cycle)
    rows = -(-np.maximum(p.row_lengths, 1) // cfg.edges_per_cycle)
    t_out = -(-p.layers[layer].out_features // cfg.pes)
    assert res["issuing"] == t_out * rows.sum()
    assert res["stalled"] == model.stall
    assert res["overrun"] == 0
    # the sequencer's idle register and hand-back cycle, counted in the model's requant phase
    assert res["busy"] + IDLE_STAGES + 1 == model.aggregate + model.stall + model.requant
    return a


@given(seed=st.integers(0, 10_000), lp=st.sampled_from([(4, 4), (8, 2), (2, 8), (4, 16), (1, 1)]),
       extreme=st.booleans(), sparse=st.booleans(), skip=st.sampled_from([0, 1]), edges=st.sampled_from([1, 2, 3]))
@settings(max_examples=12, deadline=None)
def test_random_layers(seed, lp, extreme, sparse, skip, edges):
    p = synth.random_program(seed=seed, n=8, dims=(5, 7, 3), isolated=2)
    if sparse:
        p = sparse_program(p, seed=seed)
    cfg = AcceleratorConfig.fit(p, lanes=lp[0], pes=lp[1], zero_skip=skip, edges_per_cycle=edges)
    rng = np.random.default_rng(seed)
    for layer in range(p.num_layers):
        shape = (p.num_nodes, p.layers[layer].out_features)
        y = rng.choice([-32768, 32767], size=shape) if extreme else rng.integers(-32768, 32768, size=shape)
        if sparse:
            y[rng.random(shape) < 0.7] = -32768      # many nodes requantize to 0 after ReLU
        _check(p, cfg, layer, y)


@pytest.mark.parametrize("edges", [1, 4])
def test_hub_row_drives_the_accumulator_to_its_bound(edges):
    p = synth.random_program(seed=1, n=12, dims=(4, 4, 3), hub=True)
    cfg = AcceleratorConfig.fit(p, lanes=4, pes=2, edges_per_cycle=edges)
    y = np.full((p.num_nodes, 3), -32768)
    a = _check(p, cfg, 1, y)
    hub = int(p.row_lengths.max())
    assert a.min() == -32768 * hub
    assert cfg.max_row_len == hub


def test_signed_next_layer_and_saturation():
    p = saturating_program(signed_hidden_program(seed=3, n=9, dims=(6, 5, 7, 3)), seed=3)
    cfg = AcceleratorConfig.fit(p, lanes=4, pes=4)
    traces = integer.run(p)
    assert (traces[1].x.numpy() < 0).any()                  # the signed clamp was exercised
    assert (np.abs(traces[0].p.numpy()) >= (1 << 23) - 1).any()  # 24-bit saturation was exercised
    for layer in range(p.num_layers):
        _check(p, cfg, layer, traces[layer].y.numpy())


def test_all_rows_empty():
    p = synth.random_program(seed=2, n=5, dims=(4, 4, 3), hub=False, isolated=4, avg_degree=0.0)
    p.arrays["row_ptr"][:] = 0
    p.arrays["col_idx"] = p.arrays["col_idx"][:0]
    cfg = AcceleratorConfig.fit(p, lanes=4, pes=4)
    for layer in range(p.num_layers):
        _check(p, cfg, layer, np.ones((5, p.layers[layer].out_features), dtype=np.int64))
