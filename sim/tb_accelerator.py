"""cocotb testbench of the generated accelerator: load a program, run it, check it bit for bit.

Driven by ``sim.simulate`` through environment variables (cocotb runs this module inside the
simulator): ``A2Q_PROGRAM`` (program dir), ``A2Q_CONFIG`` (config JSON), ``A2Q_REPORT`` (report JSON
to write) and ``A2Q_IO``: ``backdoor`` (default) writes the memory images straight into the design's
memory arrays and reads the results back the same way (``sim.backdoor``, no clock per word);
``port`` drives every word through the load port (one clock per word) and reads through ``mem_rdata``
(READ_LATENCY clocks per word; the test of the port itself). While the accelerator runs, the testbench just
waits for ``done``.
"""
from __future__ import annotations

import os
import time

import cocotb
import torch
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, Timer, with_timeout

from a2q import program as prog
from a2q.cycle_model import cycles_for_config
from a2q.jsonio import write_json as write_report
from hw import memory_map as mm
from hw.config import AcceleratorConfig
from hw.counters import COUNTERS
from sim import backdoor
from sim.clock import CLOCK_NS, start_clock
from sim.compare import compare_run


async def _write_words(dut, imgs) -> int:
    n = 0
    dut.mem_we.value = 1
    for sel, addr, word in mm.load_words(imgs):
        dut.mem_sel.value = sel
        dut.mem_addr.value = addr
        dut.mem_wdata.value = word
        await RisingEdge(dut.clk)
        n += 1
    dut.mem_we.value = 0
    return n


async def _read_words(dut, name: str, start: int, count: int, unresolved: list) -> list[int]:
    """Read ``count`` words of memory ``name`` from ``start``: READ_LATENCY clocks per address.

    A word with X/Z bits (never written, or computed from undefined state) reads as 0 and is listed
    in ``unresolved``, so it shows up as a mismatch instead of crashing the bench."""
    dut.mem_we.value = 0
    dut.mem_sel.value = mm.MEM_SEL[name]
    words = []
    for a in range(start, start + count):
        dut.mem_addr.value = a
        await ClockCycles(dut.clk, mm.READ_LATENCY)
        await FallingEdge(dut.clk)  # rdata settled after the edge that registered the address
        v = dut.mem_rdata.value
        if not v.is_resolvable:
            unresolved.append(f"{name}[{a}]")
            words.append(0)
        else:
            words.append(int(v))
    return words


@cocotb.test()
async def run_program(dut):
    """Load, start, wait for done, read back, compare with the integer reference and the cycle model."""
    t_setup = time.perf_counter()
    torch.set_num_threads(1)   # the integer reference (torch) shares the machine with the simulator
    program = prog.load(os.environ["A2Q_PROGRAM"])
    cfg = AcceleratorConfig.load(os.environ["A2Q_CONFIG"])
    model = cycles_for_config(program, cfg)
    imgs = mm.images(program, cfg)
    io = os.environ.get("A2Q_IO", "backdoor")
    if io not in ("backdoor", "port"):
        raise ValueError(f"A2Q_IO must be backdoor or port, got {io!r}")

    start_clock(dut)
    dut.rst.value = 1
    dut.start.value = 0
    dut.mem_we.value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await RisingEdge(dut.clk)

    t0, c0 = time.perf_counter(), time.process_time()
    t_setup = t0 - t_setup   # program, images and cycle model in Python, reset
    backdoor_writes = 0
    if io == "port":
        load_words = await _write_words(dut, imgs)
    else:
        mems = backdoor.memories(dut, mm.memory_shapes(cfg))
        zero_init = os.environ.get("A2Q_ZERO_INIT") == "1"  # memories start at 0: zero words need no write
        if zero_init:  # guard the guarantee: the last word of every memory and the image's first zero word
            for name, mem in mems.items():
                zeros = [a for a, w in enumerate(imgs.get(name, ())) if w == 0][:1]
                for a in [mem.depth - 1, *zeros]:
                    bad: list[str] = []
                    if mem.read(a, 1, bad) != [0] or bad:
                        raise AssertionError(f"{name}[{a}] is not 0 before loading: the build does not "
                                             "zero-initialise memories (rebuild with --x-initial 0)")
        backdoor_writes = sum(mems[name].write(words, skip_zero=zero_init) for name, words in imgs.items())
        load_words = sum(len(words) for words in imgs.values())
        await RisingEdge(dut.clk)
    t_load, c_load = time.perf_counter() - t0, time.process_time() - c0

    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0
    t1, c1 = time.perf_counter(), time.process_time()
    # generous bound: 4x the model plus slack, so a hang fails instead of running forever
    await with_timeout(RisingEdge(dut.done), (4 * model.total + 1000) * CLOCK_NS, "ns")
    t_run, c_run = time.perf_counter() - t1, time.process_time() - c1
    await Timer(1, "ns")
    counters = {name: int(v) if (v := getattr(dut, name).value).is_resolvable else -1 for name in COUNTERS}
    unresolved: list[str] = []

    t2, c2 = time.perf_counter(), time.process_time()
    lay = mm.layout(program, cfg)
    last = program.layers[-1]
    if io == "port":
        async def read(name, start, count):
            return await _read_words(dut, name, start, count, unresolved)
    else:
        async def read(name, start, count):
            return mems[name].read(start, count, unresolved)
    out_words = await read("out", 0, program.num_rows_out * -(-last.out_features // cfg.pes))
    n0 = lay[0].rows_in
    count_words = [int(c) for c in imgs["count"]]   # layer 0's counts were loaded
    count_words += await read("count", n0, sum(la.rows_in for la in lay[1:]))
    cf = mm.count_fields(cfg)
    feat_words = {}
    for i in range(1, program.num_layers):  # what each layer's packer wrote: row j's first count_j words
        bases = mm.node_bases(program, cfg, i)
        reserved = mm.region_words(program, cfg, i)
        for j, c in enumerate(count_words[lay[i].node_off:lay[i].node_off + lay[i].rows_in]):
            c = min(cf.get(c, "count"), int(reserved[j]))   # a count past the row's region is caught by the decoder
            if c:
                words = await read("feat", int(bases[j]), c)
                feat_words.update(zip(range(int(bases[j]), int(bases[j]) + c), words, strict=True))
    xw_words = await read("xw", 0, lay[-1].rows_in * lay[-1].t_out)
    t_read, c_read = time.perf_counter() - t2, time.process_time() - c2

    t_check = time.perf_counter()
    result = compare_run(program, cfg, out_words, feat_words, count_words, xw_words, counters, model)
    t_check = time.perf_counter() - t_check   # the integer reference and the comparison
    report = {
        **result,
        "simulator": os.environ.get("A2Q_SIMULATOR", "unknown"),
        "program": os.environ["A2Q_PROGRAM"],
        "config": cfg.to_json(),
        "error_flag": int(dut.error.value) if dut.error.value.is_resolvable else -1,
        "unresolved_words": len(unresolved),
        "first_unresolved": unresolved[:5],
        "io": io,
        "load_words": load_words,
        "backdoor_writes": backdoor_writes,
        "wall_s": {"load": t_load, "run": t_run, "read": t_read, "total": t_load + t_run + t_read,
                   "setup": t_setup, "check": t_check},
        # CPU time of the simulator process (Verilator and the testbench share it): what the wall time
        # would be on an idle core, whatever else the machine runs
        "cpu_s": {"load": c_load, "run": c_run, "read": c_read, "total": c_load + c_run + c_read},
        "sim_cycles_per_s": counters["cyc_total"] / t_run if t_run > 0 else None,
    }
    write_report(os.environ["A2Q_REPORT"], report)
    assert not unresolved, f"{len(unresolved)} words read back with X/Z bits, first {unresolved[:5]}"
    assert report["error_flag"] == 0, "the accelerator raised its error flag"
    assert result["mismatches"] == 0, f"{result['mismatches']} mismatches; first: {result['first_mismatch']}"
    assert result["cycles_match"], f"RTL cycles {result['rtl_cycles']} != model {result['model_cycles']}"
