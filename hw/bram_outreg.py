"""Block RAM output registers on ECP5: move the flip-flops that take a DP16KD's read word into the block RAM.

An ECP5 block RAM read without its output register (``REGMODE = "NOREG"``, all ``synth_ecp5`` infers)
has 5.83 ns clock-to-out, then the route to the fabric flip-flop that takes the word: most of a 10 ns
cycle before any logic. With ``REGMODE = "OUTREG"`` the block RAM registers the word itself (0.96 ns
clock-to-out, measured), one clock later: the same cycle as that fabric flip-flop. Vivado absorbs such
registers on its own; Yosys does not, so ``hw/synth.py`` runs this pass on the synthesised netlist
before nextpnr (docs/hardware.md, "Timing closure", step 31).

A read port is absorbed only when the move changes nothing a simulation could see: every used bit of its
word drives exactly one flip-flop's data input and nothing else (not a port, not a LUT), and those
flip-flops all take the block RAM port's clock, have no clock enable (the block RAM's ``OCE`` stays 1),
no set or reset (the block RAM's ``RST`` stays 0: its effect on the word in flight under ``OUTREG`` is not
documented well enough to rely on) and power up at 0, like the output register. The RTL is written for
it (the aggregation engine's S2 registers, ``hw/aggregate.py``); any other read port is left as it is and
counted with the reason.
"""
from __future__ import annotations

from collections import defaultdict

#: A DP16KD's ports: data output pins, and the pins and parameters of the port's output register. Yosys
#: writes the 36-bit pseudo-dual-port form as a DP16KD with 36-bit data widths, its word on both ports'
#: outputs (and ``OCEA`` tied low); such ports are left alone.
DP16KD_PORTS = [{"do": [f"DO{side}{i}" for i in range(18)], "clk": f"CLK{side}", "clkmux": f"CLK{side}MUX",
                 "oce": f"OCE{side}", "rst": f"RST{side}", "regmode": f"REGMODE_{side}",
                 "width": f"DATA_WIDTH_{side}"} for side in "AB"]
FF = "TRELLIS_FF"


def _param(cell: dict, name: str, default: str = "") -> str:
    return str(cell["parameters"].get(name, default)).strip()


def _const(cell: dict, pin: str, value: str) -> bool:
    """Pin tied to ``value`` ("0"/"1"), or absent."""
    bits = cell["connections"].get(pin)
    return bits is None or bits == [value]


def _ff_problem(ff: dict, clk_net) -> str | None:
    """Why flip-flop ``ff`` cannot become the output register of a port clocked by ``clk_net`` (None: it can)."""
    if ff["connections"].get("CLK") != [clk_net] or _param(ff, "CLKMUX", "CLK") != "CLK":
        return "flip-flop on another clock or edge"
    cemux = _param(ff, "CEMUX", "1")
    if not (cemux == "1" or (cemux == "CE" and _const(ff, "CE", "1"))):
        return "flip-flop with a clock enable"
    lsrmux = _param(ff, "LSRMUX", "LSR")
    if not (lsrmux == "0" or (lsrmux == "LSR" and _const(ff, "LSR", "0"))):
        return "flip-flop with a set or reset"
    if _param(ff, "REGSET", "RESET") != "RESET":
        return "flip-flop that powers up at 1"
    return None


def absorb_output_registers(netlist: dict, top: str) -> dict:
    """Rewrite ``netlist`` (Yosys JSON, after ``synth_ecp5``) in place: each DP16KD read port (up to 18
    bits) whose word goes only to plain flip-flops gets ``REGMODE_x = "OUTREG"`` and drives those flip-flops' outputs
    itself; the flip-flops are removed. Returns counts: ports absorbed, flip-flops removed, and the ports
    left as they were, by reason."""
    mod = netlist["modules"][top]
    cells = mod["cells"]
    sinks: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for name, cell in cells.items():
        for pin, bits in cell["connections"].items():
            if cell["port_directions"].get(pin) == "input":
                for b in bits:
                    if isinstance(b, int):
                        sinks[b].append((name, pin))
    top_ports = {b for port in mod["ports"].values() for b in port["bits"] if isinstance(b, int)}

    stats = {"ports_absorbed": 0, "registers_removed": 0, "ports_kept": defaultdict(int)}
    removed: list[str] = []
    for cell in list(cells.values()):
        for pins in DP16KD_PORTS if cell["type"] == "DP16KD" else ():
            used = [(pin, cell["connections"][pin][0]) for pin in pins["do"]
                    if pin in cell["connections"] and isinstance(cell["connections"][pin][0], int)
                    and sinks.get(cell["connections"][pin][0])]
            if not used:
                continue   # a write-only port
            why = None
            if int(_param(cell, pins["width"], "18"), 2) > 18:
                why = "36-bit word (pseudo-dual-port mode)"
            elif _param(cell, pins["regmode"], "NOREG") != "NOREG":
                why = "already registered"
            elif _param(cell, pins["clkmux"], pins["clk"]) != pins["clk"]:
                why = "inverted block RAM clock"
            elif not (_const(cell, pins["oce"], "1") and _const(cell, pins["rst"], "0")):
                why = "block RAM output enable or reset in use"
            clk = cell["connections"].get(pins["clk"], [None])[0]
            ffs = []
            for pin, net in used:
                if why:
                    break
                loads = sinks[net]
                if net in top_ports or len(loads) != 1 or cells[loads[0][0]]["type"] != FF or loads[0][1] != "DI":
                    why = "word also drives logic, a port or several loads"
                    break
                ff = cells[loads[0][0]]
                why = _ff_problem(ff, clk)
                ffs.append((pin, loads[0][0]))
            if why:
                stats["ports_kept"][why] += 1
                continue
            for pin, ff_name in ffs:
                cell["connections"][pin] = list(cells[ff_name]["connections"]["Q"])
                removed.append(ff_name)
            cell["parameters"][pins["regmode"]] = "OUTREG"
            stats["ports_absorbed"] += 1
            stats["registers_removed"] += len(ffs)
    for ff_name in removed:
        del cells[ff_name]
    stats["ports_kept"] = dict(stats["ports_kept"])
    return stats


def rewrite_netlist(path, top: str) -> dict:
    """``absorb_output_registers`` on the JSON netlist file at ``path``, rewritten in place (atomically);
    returns the counts."""
    import json
    from pathlib import Path

    from a2q.jsonio import write_json

    design = json.loads(Path(path).read_text())
    stats = absorb_output_registers(design, top)
    write_json(path, design, indent=None)
    return stats


def netlist_pass_main(prog: str, description: str, rewrite, argv=None) -> dict:
    """The command line of a pass on a ``synth_ecp5`` JSON netlist (``PROG NETLIST TOP``): run
    ``rewrite(netlist, top)`` and print the counts it returns as JSON."""
    import argparse
    import json

    ap = argparse.ArgumentParser(prog=prog, description=description)
    ap.add_argument("netlist")
    ap.add_argument("top")
    args = ap.parse_args(argv)
    stats = rewrite(args.netlist, args.top)
    print(json.dumps(stats))
    return stats


def main(argv=None) -> dict:
    """``python -m hw.bram_outreg NETLIST TOP``: rewrite a ``synth_ecp5`` JSON netlist in place (as
    ``a2q hw synth`` does between Yosys and nextpnr) and print the counts."""
    return netlist_pass_main("python -m hw.bram_outreg", main.__doc__, rewrite_netlist, argv)


if __name__ == "__main__":
    main()
