"""Format v2 on the accelerator in amaranth.sim: gin / dense / pool layers, a batch of graphs (a 1-node
graph, an empty graph), NNS pools selected at run time by the select pass (a single-pair pool, a
signed pool input), loaded through the port or from garbage memories. Every hidden layer's packed
output, the selected pair of every row and the logits are compared with ``a2q.integer.run``; the
counters must equal the cycle model phase by phase."""
import numpy as np
import pytest

from a2q import cycle_model, integer
from a2q.synth import random_program, random_v2_program
from hw import memory_map as mm
from hw.amaranth_sim import run_program
from hw.config import AcceleratorConfig, ConfigError
from hw.select import latency as select_latency
from hw.sequencer import IDLE_STAGES
from hw.testing import run_selector, signed_nns_program


def _check(p, cfg, **kw):
    res = run_program(p, cfg, read=("feat",), **kw)
    traces = integer.run(p)
    np.testing.assert_array_equal(res.out, traces[-1].out.numpy())
    assert res.out.shape == (p.num_rows_out, p.layers[-1].out_features)
    for layer in range(1, p.num_layers):
        np.testing.assert_array_equal(res.features(p, cfg, layer), traces[layer].x.numpy())
        # the bits the hardware selected (sel beside the count) are the reference's
        np.testing.assert_array_equal(mm.row_bits(p, cfg, layer, res.words["count"]), traces[layer].bits.numpy())
    model = cycle_model.cycles_for_config(p, cfg)
    assert res.counters == model.counters()
    assert res.busy_cycles == model.total and res.error == 0
    assert not any(res.collisions.values()), res.collisions     # COLLISION_DONT_CARE (hw/memories.py)
    return res, model


@pytest.mark.parametrize("lp,kw", [((4, 4), {}), ((4, 2), {}), ((2, 8), {}), ((4, 4), {"zero_skip": 0}),
                                   ((4, 4), {"edges_per_cycle": 2})])
def test_graph_level_gin_program(lp, kw):
    """gin, dense, pool, dense, dense over 5 graphs (sizes 6, 1, 0, 9, 4): a single-pair pool on layer 1,
    4-pair pools after; P < L, P = L, P > L, no skipping, E = 2."""
    p = random_v2_program(seed=0)
    assert p.pool_size(1) == 1 and p.num_graphs == 5
    res, model = _check(p, AcceleratorConfig.fit(p, lp[0], lp[1], **kw))
    sel = [integer.run(p)[i].sel for i in range(p.num_layers - 1)]
    assert any(len(set(s.tolist())) > 1 for s in sel if s is not None)   # selections really vary
    assert res.counters["cyc_select"] > 0


@pytest.mark.parametrize("seed", [1, 2])
def test_signed_nns_input(seed):
    """A signed pool input (no ReLU before it): the selector's |p| path and the signed clamp."""
    p = signed_nns_program(random_v2_program(seed=seed))
    _check(p, AcceleratorConfig.fit(p, 4, 4))


@pytest.mark.parametrize("case", [
    {"kinds": ("gin", "gin", "dense"), "dims": (10, 8, 8, 4), "sizes": (5, 1, 3)},          # node-level GIN
    {"kinds": ("gcn", "gin", "dense"), "dims": (10, 8, 8, 4), "sizes": (5, 1, 3)},
    {"kinds": ("pool", "dense"), "dims": (10, 8, 4), "sizes": (3, 0, 1, 4)},                 # pool first
    {"kinds": ("gin", "pool", "dense"), "dims": (10, 8, 6, 4), "sizes": (3, 0, 1, 4),
     "pool_sizes": [0, 0, 0]},                                                                # static inputs
    {"kinds": ("dense", "gin", "pool"), "dims": (10, 20, 9, 5), "sizes": (2, 2, 0)},         # pool last
    # node-level GIN as trained: pools on the MLP inner inputs only, 4 + 4 pairs (a power of two fills the
    # pool address), then per-node inputs: those layers' pool offsets must not point past the table
    {"kinds": ("gin", "dense", "gin", "dense", "dense"), "dims": (10, 8, 8, 8, 8, 4), "sizes": (5, 1, 3),
     "pool_sizes": [0, 4, 0, 4, 0]},
])
def test_layer_kind_mixes(case):
    p = random_v2_program(seed=7, **case)
    _check(p, AcceleratorConfig.fit(p, 4, 4))


def test_garbage_memories_v2():
    """Every memory starts full of random words: sel fields, pool table and thresholds included."""
    p = random_v2_program(seed=3)
    _check(p, AcceleratorConfig.fit(p, 4, 4), garbage=5)
    cfg = AcceleratorConfig.fit(p, 4, 4)
    spare = cfg.replace(max_pool=cfg.max_pool + 3, pool_words=cfg.pool_words + 5, edge_words=cfg.edge_words + 9,
                        node_words=cfg.node_words + 4)
    _check(p, spare, garbage=6, load="init")


def test_static_programs_pay_no_selection():
    """A program without NNS pools has no select pass (uniform / DQ programs do not pay for it), and a
    version-1 GCN program keeps its counts."""
    p = random_v2_program(seed=4, pool_sizes=[0, 0, 0, 0, 0])
    res, model = _check(p, AcceleratorConfig.fit(p, 4, 4))
    assert res.counters["cyc_select"] == 0 and all(layer.select == 0 for layer in model.layers)
    g = random_program(seed=2, n=9, dims=(7, 5, 3))
    assert cycle_model.cycles(g, 4, 4).select == 0


def test_cycle_model_of_each_kind():
    """dense: no aggregation cycles, its group stream in requant; pool: its walk is the membership;
    select pass: SELECT_FIXED + select_extra(P) + T_out * sum_i A_i."""
    p = random_v2_program(seed=0)
    cfg = AcceleratorConfig.fit(p, 4, 4)
    rep = cycle_model.cycles_for_config(p, cfg)
    t_out = [-(-s.out_features // 4) for s in p.layers]
    sizes = np.diff(p.arrays["graph_ptr"])
    rows = np.diff(p.arrays["row_ptr"])
    for i, (layer, spec) in enumerate(zip(rep.layers, p.layers, strict=True)):
        if spec.kind == "dense":
            assert layer.aggregate == 0
            assert layer.requant >= cycle_model.AGGREGATE_FIXED + t_out[i] * p.rows_out(i) + cycle_model.REQUANT_FIXED
        walk = t_out[i] * {"gin": np.maximum(rows, 1).sum(), "pool": np.maximum(sizes, 1).sum(),
                           "dense": p.rows_out(i)}[spec.kind]
        if spec.kind != "dense":
            assert layer.aggregate == cycle_model.AGGREGATE_FIXED + walk
        if i + 1 < p.num_layers and p.has_pool_input(i + 1):
            assert layer.select == cycle_model.SELECT_FIXED + cycle_model.select_extra(4) + walk


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("pes,pool", [(4, 4), (2, 1), (8, 16)])
def test_selector_against_the_reference(signed, pes, pool):
    """The NNS selector alone: random p (rows exactly at a threshold for the tie rule), P lanes, T_out
    tiles per row; pairs == integer.nns_select; one group per cycle plus its latency (3 + the lane-max tree)."""
    import torch

    rng = np.random.default_rng(pes * 10 + pool)
    q, f = 9, 7
    p = rng.integers(-(1 << 23), 1 << 23, size=(q, f))
    p[0] = 0
    p[1, 3] = -(1 << 23)                               # |p| = 2^23, the largest v
    thr = np.sort(rng.integers(0, 1 << 22, size=pool - 1))
    if pool > 1:
        p[2, 1] = thr[0]                                # exactly at a threshold: the lower pair
        p[3, 5] = -int(thr[-1])
    cfg = AcceleratorConfig(lanes=4, pes=pes, max_pool=max(pool, 2), max_nodes=16, max_features=8)
    sel, cycles = run_selector(cfg, p, thr, signed)
    want = integer.nns_select(torch.as_tensor(p), torch.as_tensor(thr, dtype=torch.int64), signed).numpy()
    np.testing.assert_array_equal(sel, want)
    assert cycles == q * -(-f // pes) + select_latency(pes)


def test_v2_config_errors_name_the_resource():
    p = random_v2_program(seed=0)
    cfg = AcceleratorConfig.fit(p, 4, 4)
    for field, small in (("max_pool", cfg.max_pool - 1), ("pool_words", cfg.pool_words - 1),
                         ("edge_words", cfg.edge_words - 1), ("node_words", cfg.node_words - 1),
                         ("out_words", cfg.out_words - 1), ("max_row_len", 8)):
        with pytest.raises(ConfigError, match=f"'{field}' needs"):
            mm.images(p, cfg.replace(**{field: small}))
    assert cfg.out_words == p.num_graphs * 1 and cfg.max_row_len == 9   # logits of 5 graphs; the 9-node graph
    # the graph stream, then the membership stream (graph sizes 6, 1, 0, 9, 4: the empty graph takes one word)
    assert cfg.edge_words == int(np.maximum(np.diff(p.arrays["row_ptr"]), 1).sum()) + 6 + 1 + 1 + 9 + 4


def test_feature_image_round_trip_with_selected_bits():
    """feature_image with the reference's selections decodes back to every layer's input."""
    p = random_v2_program(seed=5)
    cfg = AcceleratorConfig.fit(p, 4, 4)
    tr = integer.run(p)
    sels = [None] + [tr[i - 1].sel for i in range(1, p.num_layers)]
    feat, counts = mm.feature_image(p, cfg, [t.x.numpy() for t in tr], sels)
    for layer in range(p.num_layers):
        np.testing.assert_array_equal(mm.decode_features(feat, counts, p, cfg, layer), tr[layer].x.numpy())


def test_combine_engine_reads_the_selected_pair():
    """The combination engine alone on NNS-pool inputs (the 1-pair pool and 4-pair pools, rows = nodes
    or graphs): bits and Ms/Ss come from the pair stored beside each row's count; y and cycles exact."""
    from hw.testing import CombineHarness, run_engine

    p = random_v2_program(seed=0)
    cfg = AcceleratorConfig.fit(p, 4, 4)
    tr = integer.run(p)
    images = mm.feature_image(p, cfg, [t.x.numpy() for t in tr], [None] + [tr[i - 1].sel for i in range(1, 5)])
    model = cycle_model.cycles_for_config(p, cfg)
    for layer in range(1, p.num_layers):
        assert p.has_pool_input(layer)
        res = run_engine(CombineHarness(cfg, p, layer, images))
        np.testing.assert_array_equal(mm.decode_xw(res["mems"]["xw"], p, cfg, layer), tr[layer].y.numpy())
        assert res["busy"] + IDLE_STAGES + 1 == model.layers[layer].combine
