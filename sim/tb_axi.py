"""cocotb testbench of the AXI wrapper (``hw/axi.py``): the program bench of ``sim/tb_accelerator.py``,
but every access goes over AXI with cocotbext-axi's bus masters.

Images are written through the AXI4 memory window (one burst sequence per memory), the run is started
and polled over AXI4-Lite, the counters are read from their registers and the results back through
the window. Driven by ``sim.simulate`` with the same environment variables as the bare-core bench.
"""
from __future__ import annotations

import os
import time

import cocotb
import torch
from cocotb.triggers import ClockCycles
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiMaster

from a2q import program as prog
from a2q.cycle_model import cycles as model_cycles
from a2q.jsonio import write_json as write_report
from hw import axi
from hw import memory_map as mm
from hw.config import AcceleratorConfig
from hw.counters import COUNTERS
from sim.clock import start_clock
from sim.compare import compare_run

REG = {name: off for off, (name, _, _) in axi.REGISTERS.items()}


async def read_reg(lite: AxiLiteMaster, name: str) -> int:
    return int.from_bytes((await lite.read(REG[name], 4)).data, "little")


async def read_words(bus: AxiMaster, win: dict, name: str, start: int, count: int) -> list[int]:
    mem = win["memories"][name]
    if count == 0:
        return []
    data = (await bus.read(mem["base"] + start * mem["word_bytes"], count * mem["word_bytes"])).data
    return axi.bytes_to_words(bytes(data), mem)


@cocotb.test()
async def run_program_axi(dut):
    """Load over AXI4, start and poll over AXI4-Lite, read back over AXI4, compare bit for bit."""
    torch.set_num_threads(1)   # the integer reference (torch) shares the machine with the simulator
    program = prog.load(os.environ["A2Q_PROGRAM"])
    cfg = AcceleratorConfig.load(os.environ["A2Q_CONFIG"])
    model = model_cycles(program, cfg.lanes, cfg.pes)
    imgs = mm.images(program, cfg)
    win = axi.window(cfg)

    start_clock(dut)
    lite = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
    bus = AxiMaster(AxiBus.from_prefix(dut, "s_axi"), dut.clk, dut.rst)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)

    ident = {name: await read_reg(lite, name) for name in ("ID", "VERSION", "CONFIG_ID", "WINDOW", "STATUS")}
    assert ident["ID"] == axi.MAGIC, f"ID register {ident['ID']:#x}"
    assert ident["VERSION"] == axi.BUS_VERSION
    assert ident["CONFIG_ID"] == axi.config_id(cfg), "CONFIG_ID differs from the config's"
    assert ident["WINDOW"] & 0xFF == win["region_bits"]
    assert ident["STATUS"] == 0, f"STATUS after reset {ident['STATUS']:#x}"

    # refused beats: partial byte strobes, and a word beyond the memory's depth (both dropped, SLVERR)
    desc = win["memories"]["desc"]
    partial = await bus.write(desc["base"] + 1, b"\x01")
    assert int(partial.resp) == axi.SLVERR, f"partial-strobe write answered {partial.resp}"
    beyond = desc["base"] + desc["depth"] * desc["word_bytes"]
    if beyond < desc["base"] + (1 << win["region_bits"]):
        r = await bus.write(beyond, bytes(desc["word_bytes"]))
        assert int(r.resp) == axi.SLVERR, f"write beyond the depth answered {r.resp}"

    t0 = time.perf_counter()
    load_bytes = 0
    for name, words in imgs.items():
        if not words:
            continue
        mem = win["memories"][name]
        data = axi.image_bytes(words, mem)
        resp = await bus.write(mem["base"], data)
        assert int(resp.resp) == 0, f"write of {name} answered {resp.resp}"
        load_bytes += len(data)
    t_load = time.perf_counter() - t0

    await lite.write(REG["CONTROL"], (1).to_bytes(4, "little"))
    t1 = time.perf_counter()
    # the memories belong to the engines while busy: the window refuses access
    busy_read = await bus.read(win["memories"]["out"]["base"], 4)
    assert int(busy_read.resp) == axi.SLVERR, f"read while busy answered {busy_read.resp}, not SLVERR"
    # poll STATUS.done, bounded by 4x the model's cycles plus slack (a hang fails instead of running on)
    polls, limit = 0, (4 * model.total + 1000)
    while True:
        status = await read_reg(lite, "STATUS")
        if status & 0b10:
            break
        polls += 1
        assert polls * 8 < limit, "no done within 4x the model's cycles"
        await ClockCycles(dut.clk, max(1, model.total // 64))
    t_run = time.perf_counter() - t1
    assert int(dut.irq.value) == 1, "irq is not high with done"
    counters = {}
    for name in COUNTERS:
        lo, hi = await read_reg(lite, f"{name.upper()}_LO"), await read_reg(lite, f"{name.upper()}_HI")
        counters[name] = lo | (hi << 32)

    t2 = time.perf_counter()
    lay = mm.layout(program, cfg)
    last = program.layers[-1]
    out_words = await read_words(bus, win, "out", 0, program.num_rows_out * -(-last.out_features // cfg.pes))
    n0 = lay[0].rows_in
    count_words = [int(c) for c in imgs["count"]]   # layer 0's counts were loaded
    count_words += await read_words(bus, win, "count", n0, sum(la.rows_in for la in lay[1:]))
    feat_words = {}   # each hidden region read whole, then the words the packer stored (first count_j per row)
    for i in range(1, program.num_layers):
        region = await read_words(bus, win, "feat", lay[i].feat_base, lay[i].feat_words)
        for a in mm.feature_addresses(count_words, program, cfg, i):
            if 0 <= a - lay[i].feat_base < len(region):
                feat_words[a] = region[a - lay[i].feat_base]
    xw_words = await read_words(bus, win, "xw", 0, lay[-1].rows_in * lay[-1].t_out)
    t_read = time.perf_counter() - t2

    result = compare_run(program, cfg, out_words, feat_words, count_words, xw_words, counters, model)
    report = {
        **result,
        "bus": "axi",
        "simulator": os.environ.get("A2Q_SIMULATOR", "unknown"),
        "program": os.environ["A2Q_PROGRAM"],
        "config": cfg.to_json(),
        "registers": {k: f"{v:#010x}" for k, v in ident.items()},
        "error_flag": (status >> 2) & 1,
        "unresolved_words": 0,
        "first_unresolved": [],
        "load_bytes": load_bytes,
        "wall_s": {"load": t_load, "run": t_run, "read": t_read, "total": t_load + t_run + t_read},
        "sim_cycles_per_s": counters["cyc_total"] / t_run if t_run > 0 else None,  # incl. STATUS polling
    }
    write_report(os.environ["A2Q_REPORT"], report)
    assert report["error_flag"] == 0, "the accelerator raised its error flag"
    assert result["mismatches"] == 0, f"{result['mismatches']} mismatches; first: {result['first_mismatch']}"
    assert result["cycles_match"], f"RTL cycles {result['rtl_cycles']} != model {result['model_cycles']}"
