"""RTL benchmark of a graph-level format-v2 program at REDDIT-BINARY scale: a random batch of G graphs
(~``--nodes`` nodes each, ~``--degree`` edges per node plus self loops), ``--features`` wide layers
gin/dense (``--gin-layers`` of them, alternating), a pool, ``--head`` dense layers, NNS pools of 4 pairs
on every run-time input (``a2q.synth.random_v2_program``). Generates the Verilog, builds, loads, runs
and reads back on Verilator (or Icarus), checks bit-exactness and cycles == model, and reports the
build / load / run / read-back wall times, cycles per phase and per layer, and what the select pass
costs. Writes ``<out>/bench_rtl_v2.json`` and ``.md``.

    nice -n 10 python scripts/bench_rtl_v2.py --graphs 64 --nodes 400 --features 64 --lanes 16 --pes 16
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from a2q.cycle_model import cycles_for_config  # noqa: E402
from a2q.jsonio import write_json, write_text  # noqa: E402
from a2q.program import save  # noqa: E402
from a2q.synth import random_v2_program  # noqa: E402
from hw.config import AcceleratorConfig  # noqa: E402
from sim.simulate import simulate  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graphs", type=int, default=64)
    ap.add_argument("--nodes", type=int, default=400, help="mean nodes per graph (sizes drawn in +-50%%)")
    ap.add_argument("--degree", type=float, default=2.3, help="mean random edges per node (plus the self loop)")
    ap.add_argument("--features", type=int, default=64)
    ap.add_argument("--in-features", type=int, default=16)
    ap.add_argument("--gin-layers", type=int, default=5, help="gin/dense layers before the pool (alternating)")
    ap.add_argument("--head", type=int, default=2, help="dense layers after the pool")
    ap.add_argument("--classes", type=int, default=2)
    ap.add_argument("--lanes", type=int, default=16)
    ap.add_argument("--pes", type=int, default=16)
    ap.add_argument("--sim", default="verilator", choices=["verilator", "icarus"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="results")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    rng = np.random.default_rng(args.seed)
    sizes = rng.integers(args.nodes // 2, args.nodes * 3 // 2 + 1, size=args.graphs).tolist()
    kinds = tuple(("gin", "dense")[k % 2] for k in range(args.gin_layers)) + ("pool",) + ("dense",) * args.head
    dims = (args.in_features,) + (args.features,) * (len(kinds) - 1) + (args.classes,)
    t0 = time.perf_counter()
    program = random_v2_program(seed=args.seed, sizes=sizes, dims=dims, kinds=kinds, avg_degree=args.degree)
    t_make = time.perf_counter() - t0
    out = Path(args.out)
    cfg = AcceleratorConfig.fit(program, lanes=args.lanes, pes=args.pes)
    model = cycles_for_config(program, cfg)
    with tempfile.TemporaryDirectory(prefix="a2q-bench-v2-") as tmp:   # the program is data: not kept
        path = save(program, Path(tmp) / "program")
        t0 = time.perf_counter()
        rep = simulate(path, config=cfg, sim=args.sim)
        t_sim = time.perf_counter() - t0
    nns = [i for i in range(program.num_layers - 1) if program.has_pool_input(i + 1)]
    # design (b) (replay buffer instead of the select pass), estimated: no select phase, a drain of
    # about T_out + 9 cycles per NNS layer
    alt_b = model.total - model.select + sum(-(-program.layers[i].out_features // args.pes) + 9 for i in nns)
    layers = [{"layer": i, "kind": s.kind, "rows_in": program.rows_in(i), "rows_out": program.rows_out(i),
               "pool": program.pool_size(i), **lc.to_json()}
              for i, (s, lc) in enumerate(zip(program.layers, model.layers, strict=True))]
    result = {
        "threads": 1, "simulator": args.sim, "graphs": args.graphs, "nodes": program.num_nodes, "nnz": program.nnz,
        "kinds": list(kinds), "dims": list(dims), "lanes": args.lanes, "pes": args.pes,
        "mismatches": rep["mismatches"], "cycles_match": rep["cycles_match"], "rtl_cycles": rep["rtl_cycles"],
        "select_share": rep["rtl_cycles"]["select"] / rep["rtl_cycles"]["total"],
        "estimate_replay_design_total": alt_b,
        "wall_s": {"make_program": t_make, "build": rep["wall_s"]["build"], "load": rep["wall_s"]["load"],
                   "run": rep["wall_s"]["run"], "read": rep["wall_s"]["read"], "simulate_total": t_sim},
        "cpu_s": rep.get("cpu_s"), "sim_cycles_per_s": rep["sim_cycles_per_s"], "layers": layers,
        "config": cfg.to_json(),
    }
    write_json(out / "bench_rtl_v2.json", result)
    lines = [f"# RTL benchmark, graph-level v2 program ({args.graphs} graphs, {program.num_nodes} nodes, "
             f"{program.nnz} edges, L = {args.lanes}, P = {args.pes}, {args.sim}, 1 thread)", "",
             f"bit-exact: {rep['mismatches'] == 0}, cycles == model: {rep['cycles_match']}", "",
             "| layer | kind | rows | combine | select | aggregate | stall | requant | total |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in layers:
        lines.append(f"| {r['layer']} | {r['kind']} | {r['rows_in']} -> {r['rows_out']} | {r['combine']:,} | "
                     f"{r['select']:,} | {r['aggregate']:,} | {r['stall']:,} | {r['requant']:,} | {r['total']:,} |")
    c = rep["rtl_cycles"]
    lines += [f"| all | | | {c['combine']:,} | {c['select']:,} | {c['aggregate']:,} | {c['stall']:,} | "
              f"{c['requant']:,} | {c['total']:,} |", "",
              "| wall time (s) | " + " | ".join(result["wall_s"]) + " |",
              "|---" * (len(result["wall_s"]) + 1) + "|",
              "| | " + " | ".join(f"{v:.1f}" for v in result["wall_s"].values()) + " |", "",
              f"select pass: {result['select_share']:.1%} of the cycles; the replay design (b) would take about "
              f"{alt_b:,} cycles (model estimate)"]
    write_text(out / "bench_rtl_v2.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if rep["mismatches"] == 0 and rep["cycles_match"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
