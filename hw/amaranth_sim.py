"""Run a program on the accelerator in amaranth.sim (Python simulation; small programs only).

    res = run_program(program, config)          # loads through the load port, starts, reads back
    res.out                                     # int64 logits [N, F_out]
    res.counters                                # {"cyc_total": ..., ...} as the RTL counted them
    res.collisions                              # {memory: busy cycles a read hit the word being written}

This is the reference harness for tests and debugging; the cocotb testbench (sim/) does the same on
the generated Verilog with Verilator or Icarus.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from . import memory_map as mm
from .config import AcceleratorConfig
from .counters import COUNTERS


class SimTimeout(RuntimeError):
    pass


@dataclass
class SimResult:
    out: np.ndarray                      # decoded logits [N, F_out]
    counters: dict[str, int]             # RTL counters after the run
    busy_cycles: int                     # cycles the testbench saw busy high
    error: int                           # the top level's sticky error flag
    load_cycles: int                     # clocks spent loading (one per word)
    words: dict[str, list[int]] = field(default_factory=dict)   # read-back memories (see ``read``)
    collisions: dict[str, int] = field(default_factory=dict)     # see ``_collisions``

    def features(self, program, config, layer: int) -> np.ndarray:
        return mm.decode_features(self.words["feat"], self.words["count"], program, config, layer)


def garbage_images(config: AcceleratorConfig, seed: int) -> dict[str, list[int]]:
    """Every word of every memory filled with random bits (``seed``): what real memories may hold at
    power-up. ``run_program(..., garbage=seed)`` starts from these, so a result that depends on a word
    the testbench did not load (or the engines did not write first) shows up as a mismatch."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, (width, depth) in mm.memory_shapes(config).items():
        chunks = rng.integers(0, 1 << 32, size=(depth, -(-width // 32)), dtype=np.uint64)
        mask = (1 << width) - 1
        out[name] = [sum(int(c) << (32 * k) for k, c in enumerate(row)) & mask for row in chunks]
    return out


def _collisions(ctx, dut) -> set[str]:
    """Memories in which, this cycle, a read whose word an engine consumes (``dut.read_taps``) addresses
    the word being written (``dut.write_taps``). The memories carry ``COLLISION_DONT_CARE``
    (hw/memories.py): on an FPGA such a read may return anything, so ``run_program`` counts these
    cycles and the tests require none."""
    written = {}
    for name, addr, en in dut.write_taps:
        if ctx.get(en):
            written.setdefault(name, set()).add(ctx.get(addr))
    return {name for name, addr, owned in dut.read_taps
            if name in written and ctx.get(owned) and ctx.get(addr) in written[name]}


def run_program(program, config: AcceleratorConfig | None = None, *, load: str = "port",
                read: tuple[str, ...] = ("out",), read_via: str = "port", runs: int = 1,
                garbage: int | None = None, hammer: int | None = None, max_cycles: int = 2_000_000) -> SimResult:
    """Simulate ``program`` on ``config`` (default: ``AcceleratorConfig.fit(program, 4, 4)``).

    ``load``: "port" writes every word through the load port (one clock per word, as a testbench
    must), "init" preloads the memories (faster). ``read``: memories to read back after the run
    ("out" is always decoded); ``read_via``: "port" (mem_rdata, READ_LATENCY clocks per word) or "direct".
    ``runs``: start the accelerator this many times in a row (results of the last run are returned;
    earlier runs must leave the loaded program intact). ``garbage``: if given, every memory starts
    filled with random words (``garbage_images(config, garbage)``) instead of zeros; the program's
    images then overwrite only the words they hold, as a testbench loading real hardware would.
    ``hammer``: if given (a seed), the load port writes a random word to a random address of a random
    memory in every cycle of every run (``mem_we`` high while busy), which the accelerator must ignore.
    """
    import sys

    from amaranth.sim import Simulator

    from .accelerator import Accelerator


    cfg = config or AcceleratorConfig.fit(program, lanes=4, pes=4)
    # pysim writes constants in decimal; a very wide load port (P*L*wb bits: 16384 at 64x64x4)
    # exceeds Python's default limit on int-to-str digits
    if mm.load_port_widths(cfg)["mem_data"] > 4000 and sys.get_int_max_str_digits():
        sys.set_int_max_str_digits(0)
    imgs = mm.images(program, cfg)
    if garbage is not None:
        init = garbage_images(cfg, garbage)
        if load == "init":
            for name, words in imgs.items():
                init[name][:len(words)] = [int(w) for w in words]
    else:
        init = imgs if load == "init" else None
    dut = Accelerator(cfg, sim_init=init)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    read = tuple(dict.fromkeys(("out",) + tuple(read) + (("count",) if "feat" in read else ())))
    n_words = {name: cfg.depth(name) for name in read}
    n_words["out"] = program.num_rows_out * -(-program.layers[-1].out_features // cfg.pes)
    state: dict = {}
    rng = None if hammer is None else random.Random(hammer)

    async def bench(ctx):
        load_cycles = 0
        if load == "port":
            ctx.set(dut.mem_we, 1)
            for sel, addr, word in mm.load_words(imgs):
                ctx.set(dut.mem_sel, sel)
                ctx.set(dut.mem_addr, addr)
                ctx.set(dut.mem_wdata, word)
                await ctx.tick()
                load_cycles += 1
            ctx.set(dut.mem_we, 0)
        for _ in range(runs):
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            busy = 0
            collisions = dict.fromkeys(dut.mems, 0)
            while True:
                busy += ctx.get(dut.busy)
                if ctx.get(dut.busy):
                    for name in _collisions(ctx, dut):
                        collisions[name] += 1
                    if rng is not None:
                        name = rng.choice(mm.MEMORIES)
                        ctx.set(dut.mem_we, 1)
                        ctx.set(dut.mem_sel, mm.MEM_SEL[name])
                        ctx.set(dut.mem_addr, rng.randrange(cfg.depth(name)))
                        ctx.set(dut.mem_wdata, rng.getrandbits(len(dut.mem_wdata)))
                if ctx.get(dut.done):
                    ctx.set(dut.mem_we, 0)
                    break
                if busy > max_cycles:
                    raise SimTimeout(f"no done after {max_cycles} cycles")
                await ctx.tick()
        state["busy"] = busy
        state["collisions"] = collisions
        state["load_cycles"] = load_cycles
        state["counters"] = {name: ctx.get(getattr(dut, name)) for name in COUNTERS}
        state["error"] = ctx.get(dut.error)
        words = {}
        for name in read:
            if read_via == "port":
                ctx.set(dut.mem_sel, mm.MEM_SEL[name])
                vals = []
                for a in range(n_words[name]):
                    ctx.set(dut.mem_addr, a)
                    await ctx.tick().repeat(mm.READ_LATENCY)
                    vals.append(ctx.get(dut.mem_rdata))
            else:
                vals = [dut.peek(ctx, name, a) for a in range(n_words[name])]
            words[name] = vals
        state["words"] = words

    sim.add_testbench(bench)
    sim.run()
    return SimResult(out=mm.decode_output(state["words"]["out"], program, cfg), counters=state["counters"],
                     busy_cycles=state["busy"], error=state["error"], load_cycles=state["load_cycles"],
                     words=state["words"], collisions=state["collisions"])
