"""hw/bram_outreg.py: which block RAM read ports take their word in the block RAM's own output register.

Hand-made netlists in Yosys' JSON form cover each rule; the small config's real ``synth_ecp5`` netlist
(tests/test_hw_fpga.py) covers the aggregation engine's S2 registers, which the RTL writes for it.
"""
from __future__ import annotations

import json

import pytest

from hw.bram_outreg import absorb_output_registers, main

CLK, LSR, DO0, Q0 = 2, 3, 10, 20


def _bram(width=18, **conn):
    pins = {f"DOB{i}": [DO0 + i] for i in range(2)} | {"CLKB": [CLK], "OCEB": ["1"], "RSTB": ["0"], "WEB": ["0"],
                                                       "ADB4": [4]}
    pins.update(conn)
    return {"type": "DP16KD", "parameters": {"REGMODE_A": "NOREG", "REGMODE_B": "NOREG", "CLKBMUX": "CLKB",
                                              "DATA_WIDTH_B": format(width, "032b")},
            "port_directions": {p: "output" if p.startswith("DO") else "input" for p in pins}, "connections": pins}


def _ff(d, q, clk=CLK, **params):
    return {"type": "TRELLIS_FF", "parameters": {"CEMUX": "1 ", "CLKMUX": "CLK", "GSR": "DISABLED",
                                                  "LSRMUX": "LSR", "REGSET": "RESET"} | params,
            "port_directions": {"CLK": "input", "DI": "input", "LSR": "input", "Q": "output"},
            "connections": {"CLK": [clk], "DI": [d], "LSR": ["0"], "Q": [q]}}


def _netlist(bram=None, ffs=None, extra=None, ports=None):
    cells = {"ram": bram or _bram()}
    cells |= ffs if ffs is not None else {f"ff{i}": _ff(DO0 + i, Q0 + i) for i in range(2)}
    cells |= extra or {}
    return {"modules": {"top": {"ports": ports or {"q": {"direction": "output", "bits": [Q0, Q0 + 1]}},
                                "cells": cells, "netnames": {}}}}


def test_plain_registers_move_into_the_block_ram():
    n = _netlist()
    stats = absorb_output_registers(n, "top")
    assert stats == {"ports_absorbed": 1, "registers_removed": 2, "ports_kept": {}}
    cells = n["modules"]["top"]["cells"]
    assert set(cells) == {"ram"}
    ram = cells["ram"]
    assert ram["parameters"]["REGMODE_B"] == "OUTREG" and ram["parameters"]["REGMODE_A"] == "NOREG"
    assert ram["connections"]["DOB0"] == [Q0] and ram["connections"]["DOB1"] == [Q0 + 1]  # bit for bit


@pytest.mark.parametrize("case,why", [
    ("reset", "flip-flop with a set or reset"),
    ("enable", "flip-flop with a clock enable"),
    ("clock", "flip-flop on another clock or edge"),
    ("set", "flip-flop that powers up at 1"),
    ("logic", "word also drives logic, a port or several loads"),
    ("port", "word also drives logic, a port or several loads"),
    ("wide", "36-bit word (pseudo-dual-port mode)"),
    ("rst", "block RAM output enable or reset in use"),
])
def test_ports_that_cannot_move_are_left_with_the_reason(case, why):
    ffs = {f"ff{i}": _ff(DO0 + i, Q0 + i) for i in range(2)}
    bram, extra, ports = _bram(), {}, None
    if case == "reset":
        ffs["ff1"]["connections"]["LSR"] = [LSR]
    elif case == "enable":
        ffs["ff0"]["parameters"]["CEMUX"] = "CE"
        ffs["ff0"]["connections"]["CE"] = [LSR]
    elif case == "clock":
        ffs["ff1"]["connections"]["CLK"] = [LSR]
    elif case == "set":
        ffs["ff0"]["parameters"]["REGSET"] = "SET"
    elif case == "logic":
        extra = {"lut": {"type": "LUT4", "parameters": {}, "port_directions": {"A": "input", "Z": "output"},
                         "connections": {"A": [DO0], "Z": [30]}}}
    elif case == "port":
        ports = {"q": {"direction": "output", "bits": [Q0, Q0 + 1]}, "raw": {"direction": "output", "bits": [DO0]}}
    elif case == "wide":
        bram = _bram(width=36)
    elif case == "rst":
        bram = _bram(RSTB=[LSR])
    n = _netlist(bram, ffs, extra, ports)
    before = json.dumps(n, sort_keys=True)
    assert absorb_output_registers(n, "top") == {"ports_absorbed": 0, "registers_removed": 0,
                                                 "ports_kept": {why: 1}}
    assert json.dumps(n, sort_keys=True) == before      # nothing changed


def test_command_line_rewrites_the_file(tmp_path, capsys):
    path = tmp_path / "net.json"
    path.write_text(json.dumps(_netlist()))
    assert main([str(path), "top"])["ports_absorbed"] == 1
    assert json.loads(capsys.readouterr().out)["registers_removed"] == 2
    assert json.loads(path.read_text())["modules"]["top"]["cells"]["ram"]["parameters"]["REGMODE_B"] == "OUTREG"
