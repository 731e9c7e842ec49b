"""Simulation helpers for the component tests (amaranth.sim): a streaming driver for pipelined units
and harnesses that surround one engine with the memories it reads and writes.
"""
from __future__ import annotations

import numpy as np
from amaranth import Cat, Module, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from . import memory_map as mm
from .aggregate import AggregateEngine
from .combine import CombineEngine
from .config import AcceleratorConfig
from .packer import Packer
from .requant import Requantizer


def simulate(dut, bench) -> None:
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def stream(dut, inputs: list[dict], outputs: tuple[str, ...], *, valid="valid", out_valid="out_valid",
           expect: int | None = None, max_cycles: int = 10_000) -> list[dict]:
    """Feed one ``inputs`` entry per cycle (with ``valid`` high), collect ``outputs`` whenever
    ``out_valid`` is high, until ``expect`` (default: one per input) results; returns them in order."""
    got: list[dict] = []
    expect = len(inputs) if expect is None else expect

    async def bench(ctx):
        def collect():
            if ctx.get(getattr(dut, out_valid)):
                got.append({name: ctx.get(getattr(dut, name)) for name in outputs})

        for entry in inputs:
            for name, value in entry.items():
                ctx.set(getattr(dut, name), value)
            ctx.set(getattr(dut, valid), 1)
            await ctx.tick()
            collect()
        ctx.set(getattr(dut, valid), 0)
        for _ in range(max_cycles):
            if len(got) >= expect:
                break
            await ctx.tick()
            collect()

    simulate(dut, bench)
    return got


def _layer_desc(program, cfg: AcceleratorConfig, layer: int) -> dict:
    df = mm.desc_fields(cfg)
    return df.unpack(mm.descriptors(program, cfg)[layer])


class CombineHarness(wiring.Component):
    """CombineEngine + node/count/feature/weight memories (preloaded) + the XW buffer, for one layer.
    ``images``: (feature words, count words) of every layer, ``memory_map.feature_image``."""

    def __init__(self, cfg: AcceleratorConfig, program, layer: int, images: tuple[list[int], list[int]]):
        self.cfg, self.program, self.layer_index = cfg, program, layer
        imgs = mm.images(program, cfg)
        shapes = mm.memory_shapes(cfg)
        feat_image, count_image = images
        self.mems = {name: Memory(shape=unsigned(shapes[name][0]), depth=shapes[name][1], init=init)
                     for name, init in (("node", imgs["node"]), ("count", count_image), ("feat", feat_image),
                                        ("weight", imgs["weight"]), ("xw", []), ("pool", imgs["pool"]))}
        super().__init__({"start": In(1), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        for name, mem in self.mems.items():
            m.submodules[name] = mem
        eng = m.submodules.engine = CombineEngine(self.cfg)
        desc = _layer_desc(self.program, self.cfg, self.layer_index)
        rn, rc, rf, rw = (self.mems[k].read_port() for k in ("node", "count", "feat", "weight"))
        rp = self.mems["pool"].read_port(domain="comb")
        wx = self.mems["xw"].write_port()
        m.d.comb += [
            eng.start.eq(self.start), self.busy.eq(eng.busy),
            eng.t_in.eq(desc["t_in"]), eng.t_out.eq(desc["t_out"]), eng.in_signed.eq(desc["in_signed"]),
            eng.n_nodes.eq(desc["n_nodes"]), eng.node_off.eq(desc["node_off"]), eng.w_off.eq(desc["w_off"]),
            eng.pool_in.eq(desc["pool_in"]), eng.pool_off.eq(desc["pool_off"]),
            rp.addr.eq(eng.pool_addr), eng.pool_data.eq(rp.data),
            rn.addr.eq(eng.node_addr), eng.node_data.eq(rn.data),
            rc.addr.eq(eng.node_addr), eng.count_data.eq(rc.data),
            rf.addr.eq(eng.feat_addr), eng.feat_data.eq(rf.data),
            rw.addr.eq(eng.w_addr[:len(rw.addr)]), eng.w_data.eq(rw.data),     # bank 0's copy
            wx.addr.eq(eng.xw_addr), wx.data.eq(eng.xw_data), wx.en.eq(eng.xw_en),
        ]
        return m


class AggregateHarness(wiring.Component):
    """AggregateEngine -> Requantizer -> Packer with the node/edge/chan memories, the XW buffer
    preloaded with ``y`` and the feature/output memories they write, for one layer."""

    def __init__(self, cfg: AcceleratorConfig, program, layer: int, y):
        self.cfg, self.program, self.layer_index = cfg, program, layer
        imgs = mm.images(program, cfg)
        shapes = mm.memory_shapes(cfg)
        inits = {"node": imgs["node"], "edge": imgs["edge"], "chan": imgs["chan"],
                 "xw": mm.xw_image(y, cfg), "feat": [], "out": [], "count": []}
        self.mems = {name: Memory(shape=unsigned(shapes[name][0]), depth=shapes[name][1], init=init)
                     for name, init in inits.items()}
        super().__init__({"start": In(1), "busy": Out(1), "stalled": Out(1), "issuing": Out(1),
                          "overrun": Out(1)})

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        for name, mem in self.mems.items():
            m.submodules[name] = mem
        agg = m.submodules.agg = AggregateEngine(cfg)
        payload = (agg.g_bits, agg.g_base, agg.g_t_o, agg.g_index, agg.g_cnt_addr)
        pay = Cat(*payload)
        req = m.submodules.req = Requantizer(cfg, payload_bits=len(pay))
        pk = m.submodules.packer = Packer(cfg)
        d = _layer_desc(self.program, cfg, self.layer_index)
        rn, rb = self.mems["node"].read_port(), self.mems["node"].read_port()
        re, rc = (self.mems[k].read_port() for k in ("edge", "chan"))
        rxs = [self.mems["xw"].read_port() for _ in range(cfg.edges_per_cycle)]
        xaw, nxb = len(rxs[0].addr), len(agg.xw_bank_widths)
        wf, wo, wc = (self.mems[k].write_port() for k in ("feat", "out", "count"))
        m.d.comb += [
            agg.start.eq(self.start),
            self.busy.eq(agg.busy | req.busy | pk.busy), self.stalled.eq(agg.stalled),
            self.issuing.eq(agg.issuing), self.overrun.eq(pk.overrun),
            agg.t_out.eq(d["t_out"]), agg.t_next.eq(d["t_next"]), agg.last.eq(d["last"]),
            agg.n_nodes.eq(d["n_nodes"]), agg.node_off.eq(d["node_off"]),
            agg.next_node_off.eq(d["next_node_off"]), agg.ch_off.eq(d["ch_off"]),
            # static inputs only here (the NNS select pass needs the whole accelerator: test_hw_v2)
            agg.n_rows.eq(d["n_rows"]), agg.edge_off.eq(d["edge_off"]), agg.dense.eq(d["dense"]),
            re.addr.eq(agg.edge_addr), agg.edge_data.eq(re.data),
            rn.addr.eq(agg.node_addr), agg.node_data.eq(rn.data),
            rb.addr.eq(agg.next_addr), agg.next_data.eq(rb.data),
            *[rx.addr.eq(agg.xw_addr[q * nxb * xaw:(q * nxb + 1) * xaw]) for q, rx in enumerate(rxs)],  # bank 0's copy
            agg.xw_data.eq(Cat(*[rx.data for rx in rxs])),
            rc.addr.eq(agg.chan_addr[:len(rc.addr)]), agg.chan_data.eq(rc.data),
            req.valid.eq(agg.g_valid), req.sums.eq(agg.g_sum), req.chan.eq(agg.g_chan),
            req.dst_mult.eq(agg.g_dst_mult), req.dst_shift.eq(agg.g_dst_shift), req.bits.eq(agg.g_bits),
            req.out_signed.eq(d["out_signed"]), req.last.eq(d["last"]), req.payload.eq(pay),
        ]
        o, parts = 0, []
        for sig in payload:
            parts.append(req.out_payload[o:o + len(sig)])
            o += len(sig)
        m.d.comb += [
            pk.valid.eq(req.out_valid), pk.q.eq(req.q), pk.bits.eq(parts[0]), pk.base.eq(parts[1]),
            pk.t_o.eq(parts[2]), pk.index.eq(parts[3]), pk.cnt_addr.eq(parts[4]), pk.t_out.eq(d["t_out"]),
            pk.t_next.eq(d["t_next"]), pk.last.eq(d["last"]),
            wf.addr.eq(pk.feat_addr), wf.data.eq(pk.feat_data), wf.en.eq(pk.feat_en),
            wc.addr.eq(pk.count_addr), wc.data.eq(pk.count_data), wc.en.eq(pk.count_en),
            wo.addr.eq(pk.out_addr), wo.data.eq(pk.out_data), wo.en.eq(pk.out_en),
        ]
        return m


def run_engine(harness, *, extra=("stalled", "issuing", "overrun"), max_cycles: int = 200_000) -> dict:
    """Start a harness, run until it is idle; count busy cycles and the given 1-bit outputs."""
    counts = {name: 0 for name in extra if hasattr(harness, name)}
    result = {}

    async def bench(ctx):
        ctx.set(harness.start, 1)
        await ctx.tick()
        ctx.set(harness.start, 0)
        busy = 1  # the start cycle
        for _ in range(max_cycles):
            if not ctx.get(harness.busy):
                break
            for name in counts:
                counts[name] += ctx.get(getattr(harness, name))
            busy += 1
            await ctx.tick()
        else:
            raise RuntimeError("engine did not finish")
        result["busy"] = busy
        result.update(counts)
        result["mems"] = {name: [ctx.get(mem.data[a]) for a in range(mem.depth)]
                          for name, mem in harness.mems.items()}

    simulate(harness, bench)
    return result


def signed_lanes(word: int, lanes: int, bits: int) -> np.ndarray:
    """Split a word into ``lanes`` signed ``bits``-wide values (lane 0 least significant)."""
    v = np.array([(int(word) >> (bits * k)) & ((1 << bits) - 1) for k in range(lanes)], dtype=np.int64)
    return np.where(v >= (1 << (bits - 1)), v - (1 << bits), v)



# -- programs that stress the datapath --------------------------------------------------------------
def _copy(program):
    from a2q.program import LayerSpec, Program

    layers = [LayerSpec(s.in_features, s.out_features, s.in_signed, s.weight_bits, s.relu, kind=s.kind)
              for s in program.layers]
    return Program(layers=layers, arrays={k: v.copy() for k, v in program.arrays.items()}, meta=dict(program.meta))


def clip_inputs(program):
    """Clip layer 0's features into each node's (possibly changed) bit range."""
    bits = program.layer(0, "bits").astype(np.int64)
    from a2q import fixedpoint as fp

    lo, hi = fp.feature_range(bits, program.layers[0].in_signed)
    program.arrays["x"] = np.clip(program.arrays["x"].astype(np.int64), lo[:, None], hi[:, None]).astype(np.int16)
    return program


def with_bits(program, bits_per_layer):
    """A copy of ``program`` with the given per-node bits (one array per layer), inputs clipped."""
    p = _copy(program)
    for i, b in enumerate(bits_per_layer):
        p.arrays[f"l{i}_bits"] = np.asarray(b, dtype=np.uint8)
    return clip_inputs(p)


def worst_case_program(n: int = 3, dims=(40, 4), weight_bits: int = 4, signed: bool = False, seed: int = 0):
    """All-max features (8-bit 255, or -128 signed) and most negative weights, so the combine
    accumulator reaches its worst-case bound; multipliers scale it down without saturating."""
    from a2q import fixedpoint as fp
    from a2q import synth

    p = _copy(synth.random_program(seed=seed, n=n, dims=dims, weight_bits=weight_bits, first_signed=signed))
    wlo, _ = fp.signed_range(weight_bits)
    for i in range(p.num_layers):
        p.arrays[f"l{i}_bits"][:] = 8
        p.arrays[f"l{i}_weight"][:] = wlo
        bound = dims[i] * (128 if (signed and i == 0) else 255) * (1 << (weight_bits - 1))
        shift = max(0, int(bound).bit_length() - 15)
        p.arrays[f"l{i}_src_mult"][:] = 1 << 15
        p.arrays[f"l{i}_src_shift"][:] = 15 + shift
    p.arrays["x"][:] = -128 if signed else 255
    return p


def saturating_program(program, seed: int = 0):
    """A copy of ``program`` where some nodes/channels saturate SRC_RESCALE (Y_BITS), the channel
    rescale (24 bits), the node clamp and the 16-bit logits."""
    from a2q import fixedpoint as fp

    rng = np.random.default_rng(seed)
    p = _copy(program)
    n = p.num_nodes
    lo24, hi24 = fp.signed_range(fp.P_BITS)
    for i in range(p.num_layers):
        some = rng.random(n) < 0.4
        p.arrays[f"l{i}_src_shift"][some] = rng.integers(0, 3, size=int(some.sum()))
        f_out = p.layers[i].out_features
        ch = rng.random(f_out) < 0.5
        p.arrays[f"l{i}_bias"][ch] = rng.choice([lo24, hi24], size=int(ch.sum()))
        p.arrays[f"l{i}_ch_shift"][ch] = 0
        dst = rng.random(n) < 0.4
        p.arrays[f"l{i}_dst_shift"][dst] = rng.integers(0, 4, size=int(dst.sum()))
    return p


def signed_hidden_program(seed: int = 0, n: int = 8, dims=(9, 6, 5, 3), **kw):
    """A program whose hidden layer 1 takes signed input (layer 0 has no ReLU): the requantizer's
    signed clamp and the combine engine's sign plane on a hardware-written layer."""
    from a2q import synth

    p = _copy(synth.random_program(seed=seed, n=n, dims=dims, **kw))
    p.layers[0].relu = False
    p.layers[1].in_signed = True
    return p


def sparse_program(program, seed: int = 0, density: float = 0.2, empty_nodes: int = 2):
    """A copy of ``program`` whose layer-0 features are mostly zero (density ``density``) and whose
    first ``empty_nodes`` nodes are all zero, plus a strongly negative bias in the hidden layers so
    ReLU zeroes many outputs: exercises zero-word skipping, nodes without any stored word (layer 0 and
    the packer's hidden layers) and compacted words on every (L, P)."""
    rng = np.random.default_rng(seed)
    p = _copy(program)
    x = p.arrays["x"].astype(np.int64)
    x[rng.random(x.shape) >= density] = 0
    x[:empty_nodes] = 0
    p.arrays["x"] = x.astype(np.int16)
    for i in range(p.num_layers - 1):
        p.arrays[f"l{i}_bias"] = (p.arrays[f"l{i}_bias"].astype(np.int64) - 3000).astype(np.int32)
    return p


def signed_nns_program(program):
    """A copy of a v2 ``program`` in which the first NNS pool input after a non-pool layer is signed
    (that layer loses its ReLU): the selector's ``|p|`` path and a signed run-time-selected input."""
    from a2q.program import validate

    p = _copy(program)
    for k in range(1, p.num_layers):
        if p.has_pool_input(k) and p.layers[k - 1].kind != "pool":
            p.layers[k - 1].relu = False
            p.layers[k].in_signed = True
            validate(p)
            return p
    raise ValueError("the program has no NNS pool input to make signed")


class SelectorHarness(wiring.Component):
    """NNSSelector + a count memory it writes and the threshold word it compares with (for tests)."""

    def __init__(self, cfg: AcceleratorConfig, thr_word: int):
        from .select import NNSSelector

        self.cfg, self.thr_word = cfg, thr_word
        self.sel = NNSSelector(cfg)
        self.mem = Memory(shape=unsigned(mm.count_fields(cfg).width), depth=cfg.depth("count"), init=[])
        super().__init__({"valid": In(1), "p": In(self.sel.p.shape()), "signed": In(1),
                          "t_o": In(self.sel.t_o.shape()), "t_out": In(self.sel.t_out.shape()),
                          "cnt_addr": In(self.sel.cnt_addr.shape()), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.sel, m.submodules.mem = self.sel, self.mem
        wp = self.mem.write_port()
        s = self.sel
        m.d.comb += [s.valid.eq(self.valid), s.p.eq(self.p), s.signed.eq(self.signed), s.t_o.eq(self.t_o),
                     s.t_out.eq(self.t_out), s.cnt_addr.eq(self.cnt_addr), s.thr.eq(self.thr_word),
                     wp.addr.eq(s.count_addr), wp.data.eq(s.count_data), wp.en.eq(s.count_en),
                     self.busy.eq(s.busy)]
        return m


def run_selector(cfg: AcceleratorConfig, p: np.ndarray, thresholds, signed: bool) -> tuple[np.ndarray, int]:
    """Stream ``p`` [Q, F_out] through the selector group by group (one (row, tile) per cycle, as the
    select pass does); returns the pair written for every row and the cycles until it is idle."""
    P = cfg.pes
    q, f = p.shape
    t_out = -(-f // P)
    thr = [mm.THR_UNUSED] * max(1, cfg.max_pool - 1)
    thr[:len(thresholds)] = [int(t) for t in thresholds]
    h = SelectorHarness(cfg, sum(v << (mm.THR_BITS * t) for t, v in enumerate(thr)))
    pad = np.zeros((q, t_out * P), dtype=np.int64)
    pad[:, :f] = p
    state = {}

    async def bench(ctx):
        ctx.set(h.signed, int(signed))
        ctx.set(h.t_out, t_out)
        cycles = 0
        for r in range(q):
            for to in range(t_out):
                word = sum((int(v) & ((1 << mm.THR_BITS) - 1)) << (mm.THR_BITS * o)
                           for o, v in enumerate(pad[r, to * P:(to + 1) * P]))
                ctx.set(h.p, word)
                ctx.set(h.t_o, to)
                ctx.set(h.cnt_addr, r)
                ctx.set(h.valid, 1)
                await ctx.tick()
                cycles += 1
        ctx.set(h.valid, 0)
        while ctx.get(h.busy):
            await ctx.tick()
            cycles += 1
        cf = mm.count_fields(cfg)
        state["sel"] = [cf.get(ctx.get(h.mem.data[r]), "sel") for r in range(q)]
        state["cycles"] = cycles

    simulate(h, bench)
    return np.array(state["sel"], dtype=np.int64), state["cycles"]
