"""The bit-plane packer: groups of P requantized values -> the next layer's tagged bit-plane words at
each node's own bitwidth, compacted (all-zero words left out with skipping) with the node's count
(P < L, P = L, P > L), back to back at the tightest spacing the aggregation engine allows, and the
last layer's output words."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from a2q import cycle_model
from a2q import fixedpoint as fp
from hw import memory_map as mm
from hw.config import AcceleratorConfig, ceil_div
from hw.packer import Packer
from hw.testing import simulate


def _drive(cfg, q, bits, last, f_out):
    """Feed every group (i, t_o) W_g cycles apart; return the written feature, count and output words."""
    L, P = cfg.lanes, cfg.pes
    n = q.shape[0]
    t_out, t_next = ceil_div(f_out, P), ceil_div(f_out, L)
    qp = np.zeros((n, t_out * P), dtype=np.int64)
    qp[:, :f_out] = q
    bases = np.concatenate([[0], np.cumsum(bits * t_next)[:-1]])
    if last:
        w = np.ones(n * t_out, dtype=np.int64)
    else:
        w = cycle_model.pack_words(bits, f_out, L, P)
    dut = Packer(cfg)
    feat, count, out, overrun = {}, {}, {}, []

    async def bench(ctx):
        def sample():
            if ctx.get(dut.feat_en):
                a = ctx.get(dut.feat_addr)
                assert a not in feat, f"feature word {a} written twice"
                feat[a] = ctx.get(dut.feat_data)
            if ctx.get(dut.count_en):
                count[ctx.get(dut.count_addr)] = ctx.get(dut.count_data)
            if ctx.get(dut.out_en):
                out[ctx.get(dut.out_addr)] = ctx.get(dut.out_data)
            overrun.append(ctx.get(dut.overrun))

        g = 0
        for i in range(n):
            for to in range(t_out):
                word = sum((int(qp[i, to * P + o]) & 0xFFFF) << (16 * o) for o in range(P))
                for name, v in (("q", word), ("bits", int(bits[i])), ("base", int(bases[i])), ("t_o", to),
                                ("index", g), ("cnt_addr", 100 + i), ("t_out", t_out), ("t_next", t_next),
                                ("last", int(last)), ("valid", 1)):
                    ctx.set(getattr(dut, name), v)
                sample()
                await ctx.tick()
                ctx.set(dut.valid, 0)
                for _ in range(int(w[g]) - 1):
                    sample()
                    await ctx.tick()
                g += 1
        for _ in range(int(w.max()) + 2):
            sample()
            await ctx.tick()

    simulate(dut, bench)
    assert not any(overrun)
    return feat, count, out, bases


@pytest.mark.parametrize("lanes,pes,f_out", [(4, 4, 7), (8, 2, 13), (4, 1, 5), (2, 8, 13), (4, 16, 8), (4, 8, 3)])
@pytest.mark.parametrize("skip", [0, 1])
def test_hidden_layer_words(lanes, pes, f_out, skip):
    rng = np.random.default_rng(lanes * 100 + pes + f_out)
    cfg = AcceleratorConfig(lanes=lanes, pes=pes, max_features=32, node_words=1024, zero_skip=skip)
    n = 6
    for signed in (False, True):
        bits = rng.integers(1, 9, size=n)
        bits[0], bits[1] = 1, 8
        lo, hi = fp.feature_range(bits, signed)
        q = rng.integers(lo[:, None], hi[:, None] + 1, size=(n, f_out))
        q[rng.random(q.shape) < 0.6] = 0       # sparse, as after a ReLU
        q[2] = 0                               # a node without any non-zero word
        feat, count, _, bases = _drive(cfg, q, bits, last=False, f_out=f_out)
        words, counts = mm.stored_features(q, bits, cfg)
        assert count == {100 + i: int(counts[i]) for i in range(n)}
        if skip:
            assert counts[2] == 0
        else:
            assert (counts == bits * ceil_div(f_out, lanes)).all()
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        want = {int(bases[i]) + k: words[starts[i] + k] for i in range(n) for k in range(counts[i])}
        assert feat == want                    # every stored word at its compacted address, nothing else

@pytest.mark.parametrize("lanes,pes", [(4, 4), (2, 8), (8, 2)])
def test_zero_planes_skipped_nonzero_planes_stored(lanes, pes):
    """Hand-made planes: each stored word's (tile, plane) tag is exactly a non-zero plane of its tile, in
    slot order, including a tile whose only non-zero plane is the top one and an all-zero node between
    two others (the store decision reads the registered per-(tile, plane) flags, timing step 15)."""
    cfg = AcceleratorConfig(lanes=lanes, pes=pes, max_features=32, node_words=1024, zero_skip=1)
    f_out = 8
    q = np.zeros((3, f_out), dtype=np.int64)
    q[0, 0] = 0b001                       # tile 0: plane 0 only
    q[0, f_out - 1] = 0b100               # last tile: plane 2 only (the top plane at 3 bits)
    q[2, 1] = 0b110                       # node 2: planes 1, 2 of tile 0; node 1 all zero
    bits = np.array([3, 3, 3])
    feat, count, _, bases = _drive(cfg, q, bits, last=False, f_out=f_out)
    ff = mm.feat_fields(cfg)
    last_tile = (f_out - 1) // lanes
    want_tags = {0: [(0, 0), (last_tile, 2)], 1: [], 2: [(0, 1), (0, 2)]}
    assert count == {100 + i: len(t) for i, t in want_tags.items()}
    for i, tags in want_tags.items():
        got = [(int(ff.unpack(feat[int(bases[i]) + k])["tile"]), int(ff.unpack(feat[int(bases[i]) + k])["plane"]))
               for k in range(len(tags))]
        assert got == tags, (i, got)
    assert len(feat) == sum(len(t) for t in want_tags.values())


@given(st.data())
@settings(max_examples=6, deadline=None)
def test_last_layer_output_words(data):
    pes = data.draw(st.sampled_from([1, 2, 4, 8]))
    lanes = data.draw(st.sampled_from([1, 4, 16]))
    f_out = data.draw(st.integers(1, 12))
    n = data.draw(st.integers(1, 4))
    cfg = AcceleratorConfig(lanes=lanes, pes=pes, max_features=16)
    q = np.array(data.draw(st.lists(st.lists(st.integers(-(1 << 15), (1 << 15) - 1), min_size=f_out,
                                             max_size=f_out), min_size=n, max_size=n)))
    feat, count, out, _ = _drive(cfg, q, np.full(n, 8), last=True, f_out=f_out)
    assert not feat and not count
    t_out = ceil_div(f_out, pes)
    words = [out[a] for a in range(n * t_out)]
    prog = type("P", (), {"num_nodes": n, "num_rows_out": n, "layers": [type("S", (), {"out_features": f_out})()]})()
    assert (mm.decode_output(words, prog, cfg) == q).all()
