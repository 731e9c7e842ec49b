"""hw/memory_map.py: images of a program, their layout, and the decoders back to arrays."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from a2q import fixedpoint as fp
from a2q import integer, synth
from hw import memory_map as mm
from hw.config import AcceleratorConfig, ConfigError


@given(st.data())
@settings(max_examples=25, deadline=None)
def test_feature_words_round_trip(data):
    lanes = data.draw(st.sampled_from([1, 2, 4, 16, 32, 64]))
    n, f = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 70))
    signed = data.draw(st.booleans())
    bits = np.array(data.draw(st.lists(st.integers(1, 8), min_size=n, max_size=n)))
    lo, hi = fp.feature_range(bits, signed)
    x = np.array([[data.draw(st.integers(int(lo[j]), int(hi[j]))) for _ in range(f)] for j in range(n)])
    words = mm.feature_words(x, bits, lanes)
    t = -(-f // lanes)
    assert len(words) == int(bits.sum()) * t          # node j: b_j * ceil(F/L) words
    assert all(0 <= int(w) < (1 << lanes) for w in words)
    if data.draw(st.booleans()):
        x[np.random.default_rng(n * f).random(x.shape) < 0.7] = 0     # sparse: many all-zero words
    p = synth.random_program(seed=0, n=n, dims=(f, 2), first_signed=signed)
    p.arrays["l0_bits"] = bits.astype(np.uint8)
    p.arrays["x"] = x.astype(np.int16)
    for skip in (0, 1):
        cfg = AcceleratorConfig.fit(p, lanes=lanes, pes=2, zero_skip=skip)
        imgs = mm.images(p, cfg)
        stored = [int(w) for w in mm.feature_words(x, bits, lanes) if not skip or w != 0]
        assert len(imgs["feat"]) == len(stored) == sum(imgs["count"]) == cfg.feat_words or not stored
        assert [mm.feat_fields(cfg).get(w, "lanes") for w in imgs["feat"]] == stored
        np.testing.assert_array_equal(mm.decode_features(imgs["feat"], imgs["count"], p, cfg, 0), x)


def test_images_layout_and_edge_stream():
    p = synth.random_program(seed=1, n=9, dims=(10, 6, 3), isolated=2)
    cfg = AcceleratorConfig.fit(p, lanes=4, pes=4)
    imgs = mm.images(p, cfg)
    assert set(imgs) == set(mm.MEMORIES)
    shapes = mm.memory_shapes(cfg)
    for name, words in imgs.items():
        width, depth = shapes[name]
        assert len(words) <= depth and all(0 <= w < (1 << width) for w in words), name
    assert imgs["xw"] == [] and imgs["out"] == []
    # the edge stream reproduces the CSR, one placeholder per empty row
    ef = mm.edge_fields(cfg)
    entries = [ef.unpack(w) for w in imgs["edge"]]
    rows, cur = [], []
    for e in entries:
        if not e["empty"]:
            cur.append(e["col"])
        if e["last"]:
            rows.append(cur)
            cur = []
    rp, ci = p.arrays["row_ptr"], p.arrays["col_idx"]
    assert rows == [list(ci[rp[i]:rp[i + 1]]) for i in range(p.num_nodes)]
    assert len(entries) == p.nnz + int((p.row_lengths == 0).sum())
    # descriptors
    df = mm.desc_fields(cfg)
    d = [df.unpack(w) for w in imgs["desc"]]
    assert [x["last"] for x in d] == [0, 1]
    assert d[0]["t_in"] == 3 and d[0]["t_out"] == 2 and d[0]["t_next"] == 2
    assert d[1]["node_off"] == 9 and d[0]["next_node_off"] == 9
    # node table: bases are contiguous in node order, layer 1's region after layer 0's
    nf = mm.node_fields(cfg)
    bases = [nf.get(w, "base") for w in imgs["node"]]
    assert bases[9] == len(imgs["feat"]) == sum(imgs["count"])
    assert imgs["count"] == [int(c) for c in mm.stored_features(p.arrays["x"], p.layer(0, "bits"), cfg)[1]]
    load = list(mm.load_words(imgs))
    assert len(load) == sum(len(v) for v in imgs.values())
    assert load[0][:2] == (mm.MEM_SEL["desc"], 0)


def test_edge_words_pack_e_entries_per_row_word():
    p = synth.random_program(seed=1, n=9, dims=(10, 6, 3), isolated=2)
    cfg = AcceleratorConfig.fit(p, lanes=4, pes=4, edges_per_cycle=3)
    words = mm.images(p, cfg)["edge"]
    ef, cw = mm.edge_fields(cfg), mm.edge_fields(cfg).offsets["col"][1] // 3
    rows, cur = [], []
    for w in words:
        f = ef.unpack(w)
        cur += [(f["col"] >> (cw * q)) & ((1 << cw) - 1) for q in range(3) if not (f["empty"] >> q) & 1]
        if f["last"]:
            rows.append(cur)
            cur = []
    rp, ci = p.arrays["row_ptr"], p.arrays["col_idx"]
    assert rows == [list(ci[rp[i]:rp[i + 1]]) for i in range(p.num_nodes)]
    assert len(words) == cfg.edge_words == sum(-(-max(int(n), 1) // 3) for n in p.row_lengths)


def test_decoders_of_result_memories():
    p = synth.random_program(seed=2, n=5, dims=(6, 7, 5))
    cfg = AcceleratorConfig.fit(p, lanes=4, pes=4)
    tr = integer.run(p)
    y = tr[1].y.numpy()
    np.testing.assert_array_equal(mm.decode_xw(mm.xw_image(y, cfg), p, cfg, 1), y)
    out = tr[-1].out.numpy()
    words = [sum((int(out[i, t * 4 + o]) & 0xFFFF) << (16 * o) for o in range(4) if t * 4 + o < 5)
             for i in range(5) for t in range(2)]
    np.testing.assert_array_equal(mm.decode_output(words, p, cfg), out)
    feat, count = mm.feature_image(p, cfg, [t.x for t in tr])
    np.testing.assert_array_equal(mm.decode_features(feat, count, p, cfg, 1), tr[1].x.numpy())


def test_images_refuse_a_program_that_does_not_fit():
    p = synth.random_program(seed=0, n=10, dims=(20, 8, 4))
    cfg = AcceleratorConfig.fit(p, lanes=4, pes=4).replace(max_nodes=8, node_words=20)
    try:
        mm.images(p, cfg)
    except ConfigError as e:
        assert "'max_nodes' needs 10, config has 8" in str(e)
    else:
        raise AssertionError("expected ConfigError")


def test_load_port_widths():
    cfg = AcceleratorConfig(lanes=16, pes=16, weight_bits=4)
    w = mm.load_port_widths(cfg)
    assert w["mem_data"] == 16 * 16 * 4 == mm.word_widths(cfg)["weight"]
    assert w["mem_sel"] == 4          # 9 memories


def test_decode_features_chunks_dicts_and_bad_tags(monkeypatch):
    """The vectorised decoder gives the same features from a list or an {address: word} dict and in
    chunks of any size; a count past the row's words or a tag outside its tiles/planes is named."""
    import pytest

    p = synth.random_program(seed=3, n=7, dims=(9, 6, 3))
    cfg = AcceleratorConfig.fit(p, lanes=4, pes=2)
    tr = integer.run(p)
    feat, count = mm.feature_image(p, cfg, [t.x for t in tr])
    want = tr[1].x.numpy()
    monkeypatch.setattr(mm, "DECODE_CHUNK", 3)
    np.testing.assert_array_equal(mm.decode_features(feat, count, p, cfg, 1), want)
    np.testing.assert_array_equal(mm.decode_features(dict(enumerate(feat)), count, p, cfg, 1), want)
    lay, ff, cf = mm.layout(p, cfg)[1], mm.feat_fields(cfg), mm.count_fields(cfg)
    j = next(j for j in range(lay.rows_in) if cf.get(count[lay.node_off + j], "count"))
    base = int(mm.node_bases(p, cfg, 1)[j])
    bad = list(feat)
    bad[base] = ff.pack(lanes=ff.get(feat[base], "lanes"), tile=lay.t_in, plane=0)
    with pytest.raises(ValueError, match=rf"layer 1 node {j} word 0: tag \(tile {lay.t_in}, plane 0\) is outside"):
        mm.decode_features(bad, count, p, cfg, 1)
    big = list(count)
    big[lay.node_off + j] = cf.pack(count=int(p.layer(1, "bits")[j]) * lay.t_in + 1)
    with pytest.raises(ValueError, match=rf"layer 1 node {j}: count \d+ exceeds its \d+ words"):
        mm.decode_features(feat, big, p, cfg, 1)
