"""Lane-sliced floorplan on ECP5: fix every block RAM and multiplier of the core to a site (``BEL``).

Why: left to itself, nextpnr's placer spreads a PE's weight banks, its rescaler's multiplier and the
requantizer lane that follows over the whole die, and the logic between them follows, so the routes
across it decide Fmax (docs/hardware.md, "Timing closure": 6-9 ns of routing in a 10 ns cycle, and a
seed spread of 8 MHz). A hardware designer would floorplan: here lane ``o`` of every engine gets the
same slice of the die's width, and each engine its own row of block RAM or DSP sites, in the order the
data flows:

    DP16KD row 22   the weight banks (PE o) and the feature memory (centre: every PE reads it)
    DSP row 34      the PEs' source rescalers and the requantizer's node rescalers (lane o)
    DP16KD row 46   the XW buffer (its banks by bit position, i.e. by lane), node, edge, count and
                    output memories (centre: the sequencer, walker and packer use them)
    DSP row 58      the requantizer's channel rescalers (lane o)
    DP16KD row 70   the channel table (bank o)

Only the hard blocks are fixed (``BEL`` attributes in the JSON netlist, which nextpnr honours: "Placed N
cells based on constraints"); the placer puts the logic around them. Within a row, the cells are sorted by
the x they aim at and matched to sites in order, at the least total distance (a small dynamic program).

Sites (LFE5U-85F, read from nextpnr's placement of a netlist that fills every block RAM and DSP site):
13 column groups of 9 tiles (x 4, 13, .. 58, then 69, .. 114: the die's centre has no such group), block
RAM rows at y 22, 46, 70, 82 (EBR0-3 at x + 0, 2, 4, 6), DSP rows at y 10, 34, 58 (MULT18_0, 1, 4, 5 at
x + 0, 1, 4, 5).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .config import ConfigError

BRAM, DSP = "DP16KD", "MULT18X18D"
#: The part whose sites the plan knows (every speed grade and package of it)
PART = "LFE5U-85F"
_GROUP_X = [4 + 9 * i for i in range(7)] + [69 + 9 * i for i in range(6)]
_SLOTS = {BRAM: [(0, "EBR0"), (2, "EBR1"), (4, "EBR2"), (6, "EBR3")],
          DSP: [(0, "MULT18_0"), (1, "MULT18_1"), (4, "MULT18_4"), (5, "MULT18_5")]}
ROWS_85K = {BRAM: (22, 46, 70, 82), DSP: (10, 34, 58)}

#: Cell group -> (site type, preferred row). A group that does not fit its row whole goes to the
#: nearest row of the same type that still has room.
PLAN = {
    "weight": (BRAM, 22), "feat": (BRAM, 22),
    "src_rescale": (DSP, 34), "node_rescale": (DSP, 34),
    "xw": (BRAM, 46), "node": (BRAM, 46), "edge": (BRAM, 46), "count": (BRAM, 46), "out": (BRAM, 46),
    "chan_rescale": (DSP, 58),
    "chan": (BRAM, 70),
}
#: Groups every lane reads or writes: placed at the centre of their row.
CENTRED = ("feat", "node", "edge", "count", "out")

# The names synth_ecp5 gives the core's cells, under any prefix (``core.`` in the AXI wrapper):
_BANKED = re.compile(r"(?:^|\.)mem_(\w+?)\.bank(\d+)\.\d+\.\d+$")     # mem_weight.bank3.0.1: bank 3 of P
_PLAIN = re.compile(r"(?:^|\.)mem_(\w+?)\.\d+\.\d+$")                  # mem_feat.0.7: one memory's pieces
_RESCALER = re.compile(r"\.(\w+_rescale)(\d+)\.mul(?:_lo|_hi)?$")     # requant.node_rescale5.mul_hi


class FloorplanError(ConfigError):
    """The floorplan cannot be made for this netlist or part."""


def covers(part: str) -> bool:
    """Whether the plan knows ``part``'s sites (a synth target's part name, e.g. LFE5U-85F-6BG381C)."""
    return part.startswith(PART)


@dataclass(frozen=True)
class Placement:
    """Which cells the floorplan fixed where (``bels``), how many in each row, and what it left to the placer."""
    bels: dict[str, str]
    rows: dict[str, int]
    free: list[str]

    def summary(self) -> dict:
        return {"cells_fixed": len(self.bels), "cells_free": sorted(self.free), "rows": dict(sorted(self.rows.items()))}


def sites_85k(kind: str) -> dict[int, list[tuple[int, str]]]:
    """Row y -> [(x, BEL name)] of the LFE5U-85F's ``kind`` sites, left to right."""
    return {y: [(gx + dx, f"X{gx + dx}/Y{y}/{slot}") for gx in _GROUP_X for dx, slot in _SLOTS[kind]]
            for y in ROWS_85K[kind]}


def classify(name: str, cell_type: str) -> tuple[str, int | None] | None:
    """(group, lane) of a block RAM or multiplier cell (lane None: a memory all lanes share), or None if no
    rule covers it."""
    if cell_type == BRAM:
        if m := _BANKED.search(name):
            return m.group(1), int(m.group(2))
        if m := _PLAIN.search(name):
            return m.group(1), None
    elif cell_type == DSP and (m := _RESCALER.search(name)):
        return m.group(1), int(m.group(2))
    return None


def match_in_order(targets: list[tuple[str, float]], sites: list[tuple[int, str]]) -> dict[str, str]:
    """Cells sorted by target x, matched in order to a subset of ``sites`` (sorted by x) at the least total
    |x_cell - x_site|: the classic O(n m) dynamic program."""
    cells = sorted(targets, key=lambda c: (c[1], c[0]))
    n, m = len(cells), len(sites)
    if n > m:
        raise FloorplanError(f"{n} cells for {m} sites")
    inf = float("inf")
    cost = [[0.0] * (m + 1)] + [[inf] * (m + 1) for _ in range(n)]
    for i in range(1, n + 1):
        for j in range(i, m + 1):
            cost[i][j] = min(cost[i][j - 1], cost[i - 1][j - 1] + abs(cells[i - 1][1] - sites[j - 1][0]))
    out, i, j = {}, n, m
    while i > 0:
        if j > i and cost[i][j] == cost[i][j - 1]:
            j -= 1
        else:
            out[cells[i - 1][0]] = sites[j - 1][1]
            i, j = i - 1, j - 1
    return out


def plan(cells: dict[str, dict]) -> Placement:
    """The lane-sliced floorplan of a ``synth_ecp5`` netlist's cells (name -> Yosys cell) on the LFE5U-85F."""
    groups: dict[str, list[tuple[str, int | None]]] = {}
    free = []
    for name, cell in cells.items():
        if cell["type"] not in (BRAM, DSP):
            continue
        c = classify(name, cell["type"])
        if c is None or c[0] not in PLAN:
            free.append(name)
            continue
        groups.setdefault(c[0], []).append((name, c[1]))
    if not groups:
        raise FloorplanError("no block RAM or multiplier of the netlist has a name the plan knows")
    sites = {kind: sites_85k(kind) for kind in (BRAM, DSP)}
    room = {(kind, y): len(s) for kind in sites for y, s in sites[kind].items()}
    per_row: dict[tuple[str, int], list[tuple[str, float]]] = {}
    for group in PLAN:                            # PLAN's order (the data flow's) claims the rows
        members = groups.get(group, [])
        if not members:
            continue
        kind, want = PLAN[group]
        row = next((y for y in sorted(ROWS_85K[kind], key=lambda y: abs(y - want)) if room[(kind, y)] >= len(members)),
                   None)
        if row is None:
            raise FloorplanError(f"{group}: {len(members)} {kind} cells, no row of the part has that many free sites")
        room[(kind, row)] -= len(members)
        xs = [x for x, _ in sites[kind][row]]
        lanes = 1 + max((i for _, i in members if i is not None), default=0)
        for name, i in members:
            frac = 0.5 if group in CENTRED or i is None else (i + 0.5) / lanes
            per_row.setdefault((kind, row), []).append((name, xs[0] + frac * (xs[-1] - xs[0])))
    bels, rows = {}, {}
    for (kind, y), targets in sorted(per_row.items()):
        bels.update(match_in_order(targets, sites[kind][y]))
        rows[f"{kind} y{y}"] = len(targets)
    return Placement(bels=bels, rows=rows, free=free)


def apply_floorplan(path: str | Path, top: str) -> dict:
    """Fix the cells of the JSON netlist at ``path`` (rewritten atomically) to the floorplan's sites with
    ``BEL`` attributes; returns the summary for the report."""
    from a2q.jsonio import write_json

    design = json.loads(Path(path).read_text())
    if top not in design.get("modules", {}):
        raise FloorplanError(f"{path}: no module {top!r} in the netlist")
    cells = design["modules"][top]["cells"]
    placement = plan(cells)
    for name, bel in placement.bels.items():
        cells[name].setdefault("attributes", {})["BEL"] = bel
    write_json(path, design, indent=None)
    return placement.summary()


def main(argv=None) -> dict:
    """``python -m hw.floorplan NETLIST TOP``: fix a ``synth_ecp5`` JSON netlist's block RAMs and multipliers
    to the lane-sliced plan in place (as ``a2q hw synth`` does before nextpnr) and print the summary."""
    from .bram_outreg import netlist_pass_main

    return netlist_pass_main("python -m hw.floorplan", main.__doc__, apply_floorplan, argv)


if __name__ == "__main__":
    main()
