"""Latency, not only cycles: microseconds per inference at a clock, and whether a config fits a part.

    from hw.latency import latency
    lat = latency(cycles, cfg, clock_mhz=None)   # measured Fmax if `a2q hw synth` ran for cfg, else raises
    lat = latency(cycles, cfg, clock_mhz=100)    # a stated clock, labelled as such

The clock is the Fmax of the place-and-route report that ``a2q hw synth`` wrote for *this* config
(reports are found by their ``config`` field under ``REPORT_DIRS``), else the caller's stated
``clock_mhz``, and the result says which (``clock_source``). "Fits" comes from that synthesis report
where there is one, else from an estimate that counts what no amount of logic optimisation changes:
the bits of the on-chip memories against the part's block RAM (labelled ``estimate``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .config import AcceleratorConfig

#: Where ``a2q hw synth`` reports are searched (relative to the working directory), plus $A2Q_SYNTH_REPORTS.
REPORT_DIRS = ("results/fpga", "build/synth")
#: Block RAM bits of the parts ``hw/synth.py`` targets (ECP5 DP16KD: 18 kbit each, 208 in an LFE5U-85F;
#: iCE40 UP5K: 30 x 4 kbit EBR + 4 x 256 kbit SPRAM; Artix-7 100T: 135 x 36 kbit).
BRAM_BITS = {"ecp5-85k": 208 * 18 * 1024, "ice40-up5k": 30 * 4096 + 4 * 256 * 1024, "xilinx": 135 * 36 * 1024}
DEFAULT_PART = "ecp5-85k"


def report_dirs() -> list[Path]:
    extra = os.environ.get("A2Q_SYNTH_REPORTS")
    return [Path(p) for p in ((extra.split(os.pathsep) if extra else []) + list(REPORT_DIRS))]


def find_synth_report(cfg: AcceleratorConfig, part: str = DEFAULT_PART, dirs=None) -> tuple[dict, Path] | None:
    """The newest ``a2q hw synth`` report for exactly ``cfg`` on ``part`` (None if it never ran).

    Only ``<dir>/report.json`` and ``<dir>/<run>/report.json`` count: deeper folders hold the history
    of earlier RTL (``results/fpga/timing_steps/step9_L16P16``, ...), whose Fmax is not this RTL's.
    Equal times (a fresh clone) fall back to the path, so the choice does not depend on the file system.
    Reports of the AXI wrapper (``--bus axi``) are skipped: its Fmax is the wrapper's, not the core's."""
    from .axi import DEFAULT_NAME as AXI_TOP

    want = cfg.to_json()
    found = []
    for d in (dirs if dirs is not None else report_dirs()):
        for path in [*Path(d).glob("report.json"), *Path(d).glob("*/report.json")] if Path(d).is_dir() else ():
            try:
                rep = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if rep.get("config") == want and rep.get("target") == part and rep.get("top") != AXI_TOP:
                found.append((path.stat().st_mtime, rep, path))
    if not found:
        return None
    _, rep, path = max(found, key=lambda t: (t[0], str(t[2])))
    return rep, path


def memory_bits(cfg: AcceleratorConfig) -> int:
    from . import memory_map as mm

    return sum(w * d for w, d in mm.memory_shapes(cfg).values())


def fits(cfg: AcceleratorConfig, part: str = DEFAULT_PART, report: dict | None = None) -> dict:
    """Whether ``cfg`` fits ``part``: from a synthesis report, else the on-chip memory estimate."""
    if report is not None:
        return {"part": part, "fits": bool(report["fits"]), "why": "; ".join(report.get("misfits", [])),
                "source": "a2q hw synth report"}
    need, have = memory_bits(cfg), BRAM_BITS[part]
    return {"part": part, "fits": need <= have, "source": "estimate: on-chip memory bits vs block RAM bits",
            "why": "" if need <= have else f"memories need {need / 1e6:.2f} Mbit, the part's block RAM holds "
                                           f"{have / 1e6:.2f} Mbit"}


def latency(cycles: int, cfg: AcceleratorConfig, clock_mhz: float | None = None, part: str = DEFAULT_PART,
            dirs=None) -> dict:
    """µs per inference for ``cycles`` on ``cfg``: at the measured Fmax where ``a2q hw synth`` placed
    and routed this config for ``part``, else at the stated ``clock_mhz`` (ValueError if neither)."""
    found = find_synth_report(cfg, part, dirs)
    rep, path = found if found else (None, None)
    if rep is not None and rep.get("fmax_mhz"):
        clock, source = float(rep["fmax_mhz"]), f"measured Fmax ({rep['part']}, {path})"
    elif clock_mhz is not None:
        clock, source = float(clock_mhz), "stated clock (--clock-mhz), not a measured Fmax"
    else:
        raise ValueError("no `a2q hw synth` report with an Fmax for this config: give --clock-mhz")
    return {"cycles": int(cycles), "clock_mhz": clock, "clock_source": source,
            "measured": source.startswith("measured"), "us": cycles / clock, "fit": fits(cfg, part, rep)}


def label(lat: dict) -> str:
    """Short text for tables: '6,361.3 µs @ 43.4 MHz (measured)'."""
    return f"{lat['us']:,.1f} µs @ {lat['clock_mhz']:g} MHz ({'measured' if lat['measured'] else 'stated'})"
