"""The whole accelerator in amaranth.sim: load a program through the load port (one clock per word),
start, wait for done, read the output memory back through the read port, and compare bit for bit with
``integer.run(p)[-1].out``; the cycle counters must equal the cycle model exactly."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from a2q import cycle_model, integer, synth
from hw import memory_map as mm
from hw.amaranth_sim import run_program
from hw.config import AcceleratorConfig
from hw.testing import saturating_program, signed_hidden_program, sparse_program, with_bits


def _check(p, cfg, **kw):
    res = run_program(p, cfg, read=("feat",), **kw)
    traces = integer.run(p)
    np.testing.assert_array_equal(res.out, traces[-1].out.numpy())
    for layer in range(1, p.num_layers):   # every hidden layer's packed output, too
        np.testing.assert_array_equal(res.features(p, cfg, layer), traces[layer].x.numpy())
    model = cycle_model.cycles_for_config(p, cfg)
    assert res.counters == model.counters()
    assert res.busy_cycles == model.total
    assert res.error == 0
    # no consumed read hits the word being written (the memories' COLLISION_DONT_CARE: hw/memories.py)
    assert not any(res.collisions.values()), res.collisions
    return res


def test_small_program_through_the_load_port():
    p = synth.random_program(seed=0, n=10, dims=(20, 8, 4))
    cfg = AcceleratorConfig.fit(p, lanes=4, pes=4)
    res = _check(p, cfg)
    imgs = mm.images(p, cfg)
    assert res.load_cycles == sum(len(v) for v in imgs.values())   # one clock per word


@given(seed=st.integers(0, 10_000), lp=st.sampled_from([(4, 4), (8, 4), (4, 8), (16, 2), (2, 16), (1, 1)]),
       signed=st.booleans(), dims=st.sampled_from([(9, 6, 3), (5, 17, 2), (3, 4, 5, 2), (7, 3)]),
       sparse=st.booleans(), skip=st.sampled_from([0, 1]), edges=st.sampled_from([1, 2, 4]))
@settings(max_examples=8, deadline=None)
def test_random_programs(seed, lp, signed, dims, sparse, skip, edges):
    p = synth.random_program(seed=seed, n=7, dims=dims, first_signed=signed, isolated=2)
    if sparse:
        p = sparse_program(p, seed=seed)
    _check(p, AcceleratorConfig.fit(p, lanes=lp[0], pes=lp[1], zero_skip=skip, edges_per_cycle=edges))


@pytest.mark.parametrize("skip", [0, 1])
def test_sparse_program_with_empty_nodes(skip):
    """Sparse inputs, nodes without any stored word in layer 0 and (after ReLU) in the hidden layer:
    bit-exact, counters == model, with skipping on and off; skipping saves combine cycles."""
    p = sparse_program(synth.random_program(seed=21, n=9, dims=(13, 6, 3)), seed=21, density=0.15)
    assert (integer.run(p)[1].x.numpy() == 0).all(axis=1).any()    # a hidden node with no word
    res = _check(p, AcceleratorConfig.fit(p, lanes=4, pes=2, zero_skip=skip))
    dense = cycle_model.cycles(p, 4, 2, skip=False).combine
    assert (res.counters["cyc_combine"] < dense) == bool(skip)


def test_two_edges_per_cycle_halve_the_aggregation_walk():
    """E = 2: bit-exact, counters == model, and the walk takes ceil(len/2) cycles per row and tile."""
    p = synth.random_program(seed=22, n=10, dims=(9, 6, 3), hub=True, isolated=1)
    res = _check(p, AcceleratorConfig.fit(p, lanes=4, pes=4, edges_per_cycle=2))
    one = cycle_model.cycles(p, 4, 4, edges=1)
    assert res.counters["cyc_aggregate"] < one.aggregate


def test_signed_hidden_layer_with_saturation():
    p = saturating_program(signed_hidden_program(seed=4, n=8, dims=(9, 6, 5, 3)), seed=4)
    _check(p, AcceleratorConfig.fit(p, lanes=8, pes=4))


def test_one_and_eight_bit_nodes_on_a_bigger_config():
    p = synth.random_program(seed=9, n=6, dims=(10, 5, 3))
    bits = [np.array([1, 8, 1, 8, 2, 7]), np.array([8, 1, 8, 1, 3, 5])]
    p = with_bits(p, bits)
    cfg = AcceleratorConfig.fit(p, lanes=4, pes=4).replace(feat_words=600, xw_words=64, max_layers=4,
                                                           max_features=32, max_row_len=40)
    _check(p, cfg)


def test_run_twice_and_read_memories_back():
    p = synth.random_program(seed=11, n=6, dims=(6, 5, 3))
    cfg = AcceleratorConfig.fit(p, lanes=4, pes=2)
    res = run_program(p, cfg, runs=2, read=("desc", "node", "weight", "chan", "edge", "feat"))
    np.testing.assert_array_equal(res.out, integer.run(p)[-1].out.numpy())
    assert res.counters == cycle_model.cycles_for_config(p, cfg).counters()
    imgs = mm.images(p, cfg)
    for name in ("desc", "node", "weight", "chan", "edge", "feat"):
        assert res.words[name][:len(imgs[name])] == imgs[name], name


def test_load_port_writes_while_busy_are_ignored():
    """``mem_we`` is ignored while busy (hw/accelerator.py's port table): a random write to a random memory
    in every busy cycle of two runs changes neither the result nor any loaded memory."""
    p = synth.random_program(seed=21, n=9, dims=(10, 6, 3), first_signed=True)
    cfg = AcceleratorConfig.fit(p, lanes=4, pes=2)
    loaded = ("desc", "node", "weight", "chan", "edge", "pool", "thr")
    res = run_program(p, cfg, runs=2, hammer=5, read=loaded, read_via="direct")
    np.testing.assert_array_equal(res.out, integer.run(p)[-1].out.numpy())
    assert res.counters == cycle_model.cycles_for_config(p, cfg).counters()
    imgs = mm.images(p, cfg)
    for name in loaded:
        assert res.words[name][:len(imgs[name])] == imgs[name], name


def test_load_port_reads_every_memory_as_stored():
    """The load port's read-back (READ_LATENCY clocks, the XW buffer through the aggregation engine's S2
    registers) returns what the memories hold after a run, engine-written memories included."""
    p = synth.random_program(seed=13, n=7, dims=(6, 5, 3))
    cfg = AcceleratorConfig.fit(p, lanes=4, pes=2)
    names = tuple(n for n in mm.MEMORIES if n != "out")
    port = run_program(p, cfg, read=names)
    direct = run_program(p, cfg, read=names, read_via="direct")
    assert any(port.words["xw"]), "the XW buffer holds values after a run"
    for name in names + ("out",):
        assert port.words[name] == direct.words[name], name


@pytest.mark.parametrize("read_via", ["direct"])
def test_preloaded_memories(read_via):
    p = synth.random_program(seed=12, n=9, dims=(12, 4, 3), first_signed=True)
    _check(p, AcceleratorConfig.fit(p, lanes=8, pes=8), load="init", read_via=read_via)


def test_wide_lanes_for_big_programs():
    # L = 64 lanes (a 4096-bit weight word, banked per PE) with P = 16 < L: per-chunk packer writes
    p = synth.random_program(seed=80, n=5, dims=(70, 20, 5), first_signed=True)
    _check(p, AcceleratorConfig.fit(p, lanes=64, pes=16), load="init", read_via="direct")


# -- no dependence on unwritten memory ---------------------------------------------------------------
# Real memories power up with garbage (and a 4-state simulator starts them at X): every word the
# engines read must have been loaded by the testbench or written by the hardware first. These runs
# start with every memory full of random words; only the program's images overwrite them.

def _padded(cfg):
    """``cfg`` with spare words in every memory, so reads past a program's regions hit garbage too."""
    return cfg.replace(max_layers=cfg.max_layers + 2, feat_words=cfg.feat_words + 37,
                       node_words=cfg.node_words + 7, weight_words=cfg.weight_words + 3,
                       chan_words=cfg.chan_words + 3, edge_words=cfg.edge_words + 11,
                       xw_words=cfg.xw_words + 9, out_words=cfg.out_words + 5)


def test_garbage_memories_on_the_icarus_repro_program():
    # the program of the Icarus X report (hub node 0 whose first hidden tile requantizes to 0),
    # loaded through the port like the cocotb bench, on the exact-fit and on a padded config
    p = synth.random_program(seed=1, n=12, dims=(20, 8, 4))
    cfg = AcceleratorConfig.fit(p, lanes=4, pes=4)
    _check(p, cfg, garbage=1)
    _check(p, _padded(cfg), garbage=2, load="init", read_via="direct")


@given(seed=st.integers(0, 10_000), lp=st.sampled_from([(4, 4), (8, 4), (4, 8), (16, 2), (2, 16), (1, 1)]),
       signed=st.booleans(), dims=st.sampled_from([(9, 6, 3), (5, 17, 2), (3, 4, 5, 2)]))
@settings(max_examples=5, deadline=None)
def test_garbage_memories_random_programs(seed, lp, signed, dims):
    # P < L (per-chunk packer writes, padding lanes), P > L (partial last group), padding channels
    p = synth.random_program(seed=seed, n=7, dims=dims, first_signed=signed, isolated=2)
    cfg = AcceleratorConfig.fit(p, lanes=lp[0], pes=lp[1])
    _check(p, _padded(cfg), garbage=seed, load="init", read_via="direct")


def test_garbage_memories_catch_a_dependence_on_zeroed_memory(monkeypatch):
    # control: a loader that skips all-zero words is harmless on zeroed memories, and caught on garbage
    import hw.amaranth_sim as asim

    p = synth.random_program(seed=5, n=7, dims=(9, 6, 3), isolated=2)
    cfg = AcceleratorConfig.fit(p, lanes=4, pes=4)
    load_words = asim.mm.load_words
    monkeypatch.setattr(asim.mm, "load_words", lambda imgs: ((s, a, w) for s, a, w in load_words(imgs) if w))
    _check(p, cfg)
    with pytest.raises(AssertionError):
        _check(p, cfg, garbage=3)


def test_collision_monitor_flags_a_consumed_read_of_the_word_being_written():
    """The check behind COLLISION_DONT_CARE (hw/memories.py): a read counts when an engine consumes it
    and it addresses a word written in the same cycle, not when the addresses differ, nothing is
    written, or the word is not consumed."""
    from amaranth import Elaboratable, Module, Signal
    from amaranth.sim import Simulator

    from hw.amaranth_sim import _collisions

    class Taps(Elaboratable):
        def __init__(self):
            self.ra, self.wa, self.we, self.own = Signal(4), Signal(4), Signal(), Signal()
            self.read_taps = [("m", self.ra, self.own), ("n", self.ra, 1)]
            self.write_taps = [("m", self.wa, self.we)]

        def elaborate(self, platform):
            return Module()

    dut, seen = Taps(), []

    async def bench(ctx):
        for ra, wa, we, own in [(3, 3, 1, 1), (3, 3, 0, 1), (2, 3, 1, 1), (3, 3, 1, 0)]:
            ctx.set(dut.ra, ra), ctx.set(dut.wa, wa), ctx.set(dut.we, we), ctx.set(dut.own, own)
            seen.append(_collisions(ctx, dut))
            await ctx.delay(1e-9)

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [{"m"}, set(), set(), set()]

