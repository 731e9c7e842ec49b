"""The Verilator control file that makes only the testbench's signals public (sim/verilator_public.py),
and its place in the build (sim/runner.py): on generated Verilog and on small hand-written modules."""
from __future__ import annotations

import pytest

from hw import memory_map as mm
from hw.config import AcceleratorConfig
from sim import runner
from sim.verilator_public import HEADER, PublicError, control_file, memory_rules, top_ports

SMALL = AcceleratorConfig(lanes=4, pes=4, max_layers=3, max_features=16, max_nodes=16, max_row_len=16,
                          feat_words=512, node_words=48, weight_words=32, chan_words=8, edge_words=64,
                          xw_words=64, out_words=64)

HAND = """\
module top(clk, a, q);
  input clk;
  input [3:0] a;
  output [7:0] q;
  reg [7:0] mem_x [15:0];
  reg [7:0] mem_xy;
  \\top.mem_b  mem_b (.clk(clk));
endmodule

module \\top.mem_b (clk);
  input clk;
  reg [3:0] bank10 [3:0];
  reg [3:0] bank0 [3:0];
  reg [3:0] bank2 [3:0];
  reg [3:0] bank1 [3:0];
  reg [3:0] bank3 [3:0];
  reg [3:0] bank4 [3:0];
  reg [3:0] bank5 [3:0];
  reg [3:0] bank6 [3:0];
  reg [3:0] bank7 [3:0];
  reg [3:0] bank8 [3:0];
  reg [3:0] bank9 [3:0];
endmodule
"""


@pytest.fixture(scope="module")
def accel_verilog():
    from hw.generate import verilog

    return verilog(SMALL, "a2q_accel")


def test_hand_written_module():
    assert top_ports(HAND, "top") == ["clk", "a", "q"]
    assert memory_rules(HAND, "top", "x") == [("top", "mem_x")]
    # banks in numeric order; a scalar named like a memory is not an array
    assert memory_rules(HAND, "top", "b") == [("top.mem_b", f"bank{k}") for k in range(11)]
    with pytest.raises(PublicError, match="mem_xy"):
        memory_rules(HAND, "top", "xy")
    text = control_file(HAND, "top", ["x", "b"])
    lines = text.splitlines()
    assert lines[0] == HEADER
    assert 'public_flat_rw -module "top" -var "clk"' in lines
    assert 'public_flat_rw -module "top.mem_b" -var "bank10"' in lines
    assert sum(line.startswith("public_flat_rw") for line in lines) == 3 + 1 + 11


def test_missing_module_and_memory_are_named():
    with pytest.raises(PublicError, match="no module 'other'"):
        top_ports(HAND, "other")
    with pytest.raises(PublicError, match="memory 'nope'"):
        control_file(HAND, "top", ["nope"])


def test_generated_accelerator_exposes_every_memory(accel_verilog):
    """Every memory of the memory map is found: arrays in the top, banked ones as bank instances."""
    text = control_file(accel_verilog, "a2q_accel", mm.MEMORIES)
    rules = [line for line in text.splitlines() if line.startswith("public_flat_rw")]
    for name in mm.MEMORIES:
        assert any(f'-var "mem_{name}"' in r or f'-module "a2q_accel.mem_{name}"' in r for r in rules), name
    ports = top_ports(accel_verilog, "a2q_accel")
    assert {"clk", "rst", "start", "done", "error", "mem_sel", "mem_addr", "mem_wdata", "mem_rdata"} <= set(ports)
    assert {"cyc_total", "cyc_select"} <= set(ports)
    # only ports and memories: nothing inside the engines
    assert not [r for r in rules if '-module "a2q_accel.combine' in r or '-module "a2q_accel.aggregate' in r]
    assert len(rules) == len(ports) + sum(len(memory_rules(accel_verilog, "a2q_accel", n)) for n in mm.MEMORIES)


def test_build_dir_depends_on_public_memories(tmp_path, accel_verilog):
    ok, why = runner.simulator_available("verilator")
    if not ok:
        pytest.skip(why)
    v = tmp_path / "a2q_accel.v"
    v.write_text(accel_verilog)
    with_mems = runner.build_dir_for(v, "a2q_accel", "verilator", tmp_path, mm.MEMORIES)
    ports_only = runner.build_dir_for(v, "a2q_accel", "verilator", tmp_path)
    assert with_mems != ports_only
    assert with_mems == runner.build_dir_for(v, "a2q_accel", "verilator", tmp_path, list(mm.MEMORIES))
    with pytest.raises(PublicError):
        runner.build_dir_for(v, "a2q_accel", "verilator", tmp_path, ["no_such_memory"])
