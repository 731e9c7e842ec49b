"""The lane-sliced ECP5 floorplan (hw/floorplan.py): site table, in-order matching, the plan's rows, BEL attributes."""
from __future__ import annotations

import itertools
import json
import re

import pytest

from hw import floorplan as fpl


def test_site_table_of_the_85k():
    """208 block RAM and 156 DSP sites (the LFE5U-85F's counts), unique, with BEL names nextpnr placed cells at
    when it filled every site (the module docstring)."""
    bram, dsp = fpl.sites_85k(fpl.BRAM), fpl.sites_85k(fpl.DSP)
    names = [b for rows in (bram, dsp) for sites in rows.values() for _, b in sites]
    assert sum(map(len, bram.values())) == 208 and sum(map(len, dsp.values())) == 156
    assert len(set(names)) == len(names)
    for seen in ("X10/Y22/EBR3", "X100/Y22/EBR2", "X120/Y82/EBR3", "X100/Y10/MULT18_4", "X5/Y34/MULT18_1",
                 "X119/Y58/MULT18_5"):
        assert seen in names
    for rows in (bram, dsp):
        for sites in rows.values():
            assert [x for x, _ in sites] == sorted(x for x, _ in sites)


def _brute(targets, sites):
    best = None
    cells = sorted(targets, key=lambda c: (c[1], c[0]))
    for pick in itertools.combinations(range(len(sites)), len(cells)):
        cost = sum(abs(c[1] - sites[j][0]) for c, j in zip(cells, pick, strict=True))
        best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_in_order_matching_is_optimal(seed):
    """The dynamic program's total distance equals the best over every order-preserving choice of sites, and
    it keeps the cells' order (lane o left of lane o + 1)."""
    import random

    rng = random.Random(seed)
    sites = [(x, f"s{x}") for x in sorted(rng.sample(range(40), 9))]
    targets = [(f"c{i}", rng.uniform(0, 40)) for i in range(rng.randint(1, 7))]
    got = fpl.match_in_order(targets, sites)
    x_of = dict((b, x) for x, b in sites)
    assert len(set(got.values())) == len(targets)
    cost = sum(abs(t - x_of[got[c]]) for c, t in targets)
    assert cost == pytest.approx(_brute(targets, sites))
    order = [got[c] for c, _ in sorted(targets, key=lambda c: (c[1], c[0]))]
    assert [x_of[b] for b in order] == sorted(x_of[b] for b in order)


def test_more_cells_than_sites_is_refused():
    with pytest.raises(fpl.FloorplanError, match="3 cells for 2 sites"):
        fpl.match_in_order([("a", 1), ("b", 2), ("c", 3)], [(0, "s0"), (5, "s5")])


def _default_like_cells(pes=16):
    """Cell names as synth_ecp5 gives them for the default config (L = P = 16)."""
    cells = {}
    for k in range(pes):
        for mem in ("weight", "chan"):
            for j in range(2):
                cells[f"mem_{mem}.bank{k}.0.{j}"] = {"type": fpl.BRAM}
        cells[f"combine.src_rescale{k}.mul_lo"] = {"type": fpl.DSP}
        for unit in ("chan", "node"):
            for half in ("lo", "hi"):
                cells[f"requant.{unit}_rescale{k}.mul_{half}"] = {"type": fpl.DSP}
    for k in range(22):
        cells[f"mem_xw.bank{k}.0.0"] = {"type": fpl.BRAM}
    for mem, n in (("feat", 11), ("out", 15), ("edge", 3)):
        for j in range(n):
            cells[f"mem_{mem}.0.{j}"] = {"type": fpl.BRAM}
    cells["mem_node.1.0"] = {"type": fpl.BRAM}
    cells["mem_mystery.bankx"] = {"type": fpl.BRAM}
    cells["pe0.tree_r_TRELLIS_FF_Q"] = {"type": "TRELLIS_FF"}
    return cells


def test_plan_puts_each_engine_in_its_row_and_each_lane_in_its_slice():
    p = fpl.plan(_default_like_cells())
    xy = {n: tuple(map(int, re.match(r"X(\d+)/Y(\d+)/", b).groups())) for n, b in p.bels.items()}
    assert p.free == ["mem_mystery.bankx"]            # no rule for it: left to the placer, and listed
    assert {xy[f"mem_weight.bank{k}.0.{j}"][1] for k in range(16) for j in range(2)} == {22}
    assert {xy[f"combine.src_rescale{k}.mul_lo"][1] for k in range(16)} == {34}
    assert {xy[f"requant.chan_rescale{k}.mul_hi"][1] for k in range(16)} == {58}
    assert {xy[f"mem_chan.bank{k}.0.0"][1] for k in range(16)} == {70}
    for unit in ("mem_weight.bank{}.0.0", "combine.src_rescale{}.mul_lo", "requant.node_rescale{}.mul_lo",
                 "mem_chan.bank{}.0.1"):
        xs = [xy[unit.format(k)][0] for k in range(16)]
        assert xs == sorted(xs) and xs[0] < 15 and xs[-1] > 105     # lane order, across the width
    # lane 3's weight banks, source rescaler and channel table share a slice of the width (one column
    # group of 9 tiles is a slice and a bit: 13 groups for 16 lanes)
    lane3 = [xy[n][0] for n in ("mem_weight.bank3.0.0", "combine.src_rescale3.mul_lo", "mem_chan.bank3.0.0")]
    assert max(lane3) - min(lane3) <= 9
    feat = [xy[f"mem_feat.0.{j}"][0] for j in range(11)]
    assert 40 < sum(feat) / len(feat) < 85                       # shared memories at the centre
    assert len(set(p.bels.values())) == len(p.bels)


def test_the_axi_wrappers_prefix_is_understood_and_a_netlist_without_known_cells_refused():
    """In the AXI wrapper the core's cells are named ``core.mem_weight.bank0.0.0`` etc.: the same plan. A
    netlist none of whose hard blocks the rules know is refused (``--floorplan auto`` then places without)."""
    cells = _default_like_cells()
    bare, wrapped = fpl.plan(cells), fpl.plan({f"core.{n}": c for n, c in cells.items()})
    assert {f"core.{n}": b for n, b in bare.bels.items()} == wrapped.bels
    with pytest.raises(fpl.FloorplanError, match="no block RAM or multiplier"):
        fpl.plan({"mem_mystery.bankx": {"type": fpl.BRAM}, "x": {"type": "TRELLIS_FF"}})


def test_a_group_that_overflows_its_row_moves_whole_to_the_nearest_row_with_room():
    cells = _default_like_cells()
    for j in range(30):                               # out: 15 -> 45 pieces, row 46 cannot take them
        cells[f"mem_out.0.{j}"] = {"type": fpl.BRAM}
    p = fpl.plan(cells)
    ys = {re.match(r"X\d+/Y(\d+)/", p.bels[f"mem_out.0.{j}"]).group(1) for j in range(30)}
    assert len(ys) == 1 and ys != {"46"}


def test_a_part_too_small_for_a_group_is_a_clear_error():
    cells = {f"mem_xw.bank{k}.0.0": {"type": fpl.BRAM} for k in range(60)}
    with pytest.raises(fpl.FloorplanError, match="xw: 60 DP16KD cells, no row of the part has that many"):
        fpl.plan(cells)


def _netlist(tmp_path, cells, top="top"):
    """A JSON netlist file of ``cells`` (no attributes yet) as module ``top``."""
    path = tmp_path / "net.json"
    path.write_text(json.dumps({"modules": {top: {"cells": {n: {**c, "attributes": {}} for n, c in cells.items()}}}}))
    return path


def test_apply_writes_bel_attributes_and_refuses_an_unknown_top(tmp_path):
    path = _netlist(tmp_path, _default_like_cells(), "a2q_accel")
    before = path.read_text()
    with pytest.raises(fpl.FloorplanError, match="no module 'other'"):
        fpl.apply_floorplan(path, "other")
    assert path.read_text() == before                 # nothing half-written
    summary = fpl.apply_floorplan(path, "a2q_accel")
    cells = json.loads(path.read_text())["modules"]["a2q_accel"]["cells"]
    bels = {n: c["attributes"]["BEL"] for n, c in cells.items() if "BEL" in c["attributes"]}
    assert summary["cells_fixed"] == len(bels) == len(_default_like_cells()) - 2
    assert summary["cells_free"] == ["mem_mystery.bankx"]


def test_synth_applies_the_floorplan_where_it_applies(tmp_path):
    """`a2q hw synth --floorplan`: auto is lanes on the LFE5U-85F (both speed grades) and none elsewhere; a
    plan that cannot be made is an error under lanes, and under auto a stated fallback to none."""
    from hw import synth

    good = _netlist(tmp_path, _default_like_cells())
    for target in ("ecp5-85k", "ecp5-85k-8"):
        rep = synth.floorplan_netlist("auto", synth.TARGETS[target], good, "top")
        assert rep["floorplan"] == "lanes" and rep["floorplan_cells"]["cells_fixed"] == len(_default_like_cells()) - 2
    assert synth.floorplan_netlist("auto", synth.TARGETS["ice40-up5k"], good, "top") == {"floorplan": "none"}
    assert synth.floorplan_netlist("none", synth.TARGETS["ecp5-85k"], good, "top") == {"floorplan": "none"}
    (tmp_path / "big").mkdir()
    big = _netlist(tmp_path / "big", {f"mem_xw.bank{k}.0.0": {"type": fpl.BRAM} for k in range(60)})
    before = big.read_text()
    rep = synth.floorplan_netlist("auto", synth.TARGETS["ecp5-85k"], big, "top")
    assert rep["floorplan"] == "none" and "xw: 60 DP16KD cells" in rep["floorplan_skipped"]
    with pytest.raises(fpl.FloorplanError, match="xw: 60 DP16KD cells"):
        synth.floorplan_netlist("lanes", synth.TARGETS["ecp5-85k"], big, "top")
    assert big.read_text() == before
    with pytest.raises(synth.ConfigError, match="LFE5U-85F only"):
        synth.synth(synth.AcceleratorConfig(), "xilinx", tmp_path, floorplan="lanes")
    with pytest.raises(synth.ConfigError, match="unknown floorplan 'rows'"):
        synth.synth(synth.AcceleratorConfig(), "ecp5-85k", tmp_path, floorplan="rows")


def test_command_line_rewrites_the_netlist(tmp_path, capsys):
    """`python -m hw.floorplan NETLIST TOP`, the command `a2q hw synth` lists in its report."""
    path = _netlist(tmp_path, _default_like_cells())
    summary = fpl.main([str(path), "top"])
    assert json.loads(capsys.readouterr().out) == summary and summary["cells_fixed"] == len(_default_like_cells()) - 2
    cells = json.loads(path.read_text())["modules"]["top"]["cells"]
    x, y = re.match(r"X(\d+)/Y(\d+)/EBR", cells["mem_weight.bank0.0.0"]["attributes"]["BEL"]).groups()
    assert y == "22" and int(x) < 15                 # PE 0's weights: the weight row, the left-most slice
