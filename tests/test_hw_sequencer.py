"""The layer sequencer in amaranth.sim: its decoded phase flags (registers since timing step 16) equal the
decode of ``phase`` in every cycle, through layers with and without a select pass, and each engine is
started exactly once per phase, in the phase's first cycle."""
import random

from amaranth.sim import Simulator

from hw.config import AcceleratorConfig
from hw.sequencer import Phase, Sequencer


def test_phase_flags_equal_the_decoded_phase_every_cycle():
    seq = Sequencer(AcceleratorConfig(lanes=4, pes=4, max_nodes=16, max_features=8))
    rng = random.Random(7)
    layers = [(bool(rng.getrandbits(1)), k == 3) for k in range(4)]   # (select pass, last) per layer
    seen = {"phases": [], "starts": []}

    async def bench(ctx):
        ctx.set(seq.start, 1)
        await ctx.tick()
        ctx.set(seq.start, 0)
        comb_left = agg_left = 0
        for _ in range(400):
            phase = Phase(ctx.get(seq.phase))
            layer = ctx.get(seq.layer)
            select, last = layers[min(layer, len(layers) - 1)]
            ctx.set(seq.desc_select, select)
            ctx.set(seq.desc_last, last)
            assert ctx.get(seq.in_combine) == (phase == Phase.COMBINE), phase
            assert ctx.get(seq.in_walk) == (phase in (Phase.AGGREGATE, Phase.SELECT)), phase
            assert ctx.get(seq.in_select) == (phase == Phase.SELECT), phase
            if not seen["phases"] or seen["phases"][-1] != (layer, phase):
                seen["phases"].append((layer, phase))
            # the engines: busy for a few random cycles after their start
            if ctx.get(seq.comb_start):
                seen["starts"].append((layer, "comb", phase))
                comb_left = rng.randint(1, 5)
            if ctx.get(seq.agg_start):
                seen["starts"].append((layer, "agg", phase))
                agg_left = rng.randint(1, 5)
            ctx.set(seq.comb_busy, comb_left > 0)
            ctx.set(seq.agg_busy, agg_left > 0)
            comb_left, agg_left = max(0, comb_left - 1), max(0, agg_left - 1)
            if ctx.get(seq.done):
                break
            await ctx.tick()
        assert ctx.get(seq.done) and Phase(ctx.get(seq.phase)) == Phase.IDLE
        assert not (ctx.get(seq.in_combine) or ctx.get(seq.in_walk) or ctx.get(seq.in_select))

    sim = Simulator(seq)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    want = []
    for k, (select, _) in enumerate(layers):
        want += [(k, Phase.DESC), (k, Phase.COMBINE)] + ([(k, Phase.SELECT)] if select else []) + [(k, Phase.AGGREGATE)]
    assert seen["phases"] == want + [(len(layers) - 1, Phase.IDLE)]
    want_starts = []
    for k, (select, _) in enumerate(layers):
        want_starts += [(k, "comb", Phase.COMBINE)] + ([(k, "agg", Phase.SELECT)] if select else []) \
            + [(k, "agg", Phase.AGGREGATE)]
    assert seen["starts"] == want_starts
