"""Cycle-model prediction and bandwidth per phase for graphs beyond on-chip memory (docs/scaling.md).

    python scripts/scaling_model.py            # PubMed from $A2Q_DATA_ROOT, Reddit from its published statistics

Runs ``a2q.cycle_model.layer_cycles`` (the closed-form model the RTL matches cycle for cycle) on graph
*statistics*: CSR row lengths (with the self loops GCN adds) and per-node bits. PubMed's rows are the real
graph's; Reddit (232,965 nodes, 114,615,892 edges, 602 features, 41 classes) is absent here, so its row
lengths are drawn from a log-normal with the published mean degree (stated in the output). A2Q's bits per
node are drawn to match the per-layer means of the Cora A2Q program measured in results/bench_rtl.json
(layer 0: 1.00 bits, layer 1: 2.12 bits); INT4 is 4 bits everywhere. GCN with 16 hidden channels.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from a2q.cycle_model import layer_cycles  # noqa: E402
from a2q.jsonio import write_json, write_text  # noqa: E402

LANES = PES = 16
HIDDEN = 16
A2Q_LAYER_BITS = (243_720 / 90 / 2708, 5_730 / 2708)  # Cora A2Q, from results/bench_rtl.json model_layers
CLOCK_MHZ = 100.0


@dataclass
class Spec:
    in_features: int
    out_features: int
    kind: str = "gcn"


class GraphStats:
    """What the cycle model reads from a program: dims, rows, per-node bits (no weights, no features)."""

    def __init__(self, rows: np.ndarray, dims: list[int], bits: list[np.ndarray]):
        self.num_nodes = len(rows)
        self.layers = [Spec(dims[i], dims[i + 1]) for i in range(len(dims) - 1)]
        self.num_layers = len(self.layers)
        self.arrays = {"row_ptr": np.concatenate([[0], np.cumsum(rows)])}
        self._bits = bits

    def layer(self, i: int, name: str):
        assert name == "bits"
        return self._bits[i]

    def out_bits_of(self, i: int):
        return self._bits[i + 1] if i + 1 < self.num_layers else None

    def has_pool_input(self, i: int) -> bool:   # GCN layers: static per-node bits only
        return False

    def rows_in(self, i: int) -> int:
        return self.num_nodes

    rows_out = rows_in


def bits_with_mean(n: int, mean: float, rng) -> np.ndarray:
    lo = int(np.floor(mean))
    return (lo + (rng.random(n) < mean - lo)).astype(np.int64).clip(1, 8)


def pubmed_rows() -> tuple[np.ndarray, int, int, str]:
    from a2q.data import load_dataset

    d = load_dataset("PubMed")
    deg = np.bincount(d.edge_index[1].numpy(), minlength=d.num_nodes) + 1  # + self loop
    return deg, d.num_features, int(d.y.max()) + 1, "real graph (Planetoid PubMed)"


def synthetic_rows(rng, n: int, e: int, sigma: float = 1.2) -> tuple[np.ndarray, str]:
    """Log-normal in-degrees scaled to ``e`` edges over ``n`` nodes, plus the self loop."""
    mean = e / n
    raw = rng.lognormal(mean=np.log(mean) - 0.5 * sigma ** 2, sigma=sigma, size=n)
    deg = np.maximum(1, np.round(raw * (e / raw.sum()))).astype(np.int64) + 1
    return deg, f"synthesised: log-normal degrees (sigma {sigma}), mean {mean:.1f}, published N and E"


def reddit_rows(rng) -> tuple[np.ndarray, int, int, str]:
    deg, how = synthetic_rows(rng, 232_965, 114_615_892)
    return deg, 602, 41, how


def predict(rows, f_in, classes, method, rng) -> dict:
    n = len(rows)
    dims = [f_in, HIDDEN, classes]
    if method == "A2Q":
        bits = [bits_with_mean(n, m, rng) for m in A2Q_LAYER_BITS]
    else:
        bits = [np.full(n, 4, dtype=np.int64) for _ in A2Q_LAYER_BITS]
    prog = GraphStats(rows, dims, bits)
    layers = []
    for i, spec in enumerate(prog.layers):
        lc = layer_cycles(prog, i, LANES, PES)
        t_in, t_out = -(-spec.in_features // LANES), -(-spec.out_features // PES)
        t_next = -(-spec.out_features // LANES)
        nnz = int(rows.sum())
        # bytes each phase moves if its operands stream from external memory
        feat_bytes = int(bits[i].sum()) * t_in * LANES // 8 * t_out          # bit-plane words read by combine
        xw_write = n * t_out * PES * 2                                        # 16-bit y per (node, channel)
        edge_bytes = nnz * 4                                                  # one 32-bit edge entry
        xw_gather = nnz * t_out * PES * 2                                     # y row per edge entry
        out_write = (int(bits[i + 1].sum()) * t_next * LANES // 8 if i + 1 < len(bits)
                     else n * t_out * PES * 2)
        comb_s = lc.combine / (CLOCK_MHZ * 1e6)
        agg_s = (lc.aggregate + lc.stall) / (CLOCK_MHZ * 1e6)
        layers.append({"combine": lc.combine, "aggregate": lc.aggregate, "stall": lc.stall, "requant": lc.requant,
                       "total": lc.total, "feat_read_MB": feat_bytes / 1e6, "xw_write_MB": xw_write / 1e6,
                       "edge_read_MB": edge_bytes / 1e6, "xw_gather_MB": xw_gather / 1e6,
                       "out_write_MB": out_write / 1e6,
                       "combine_GBps": (feat_bytes + xw_write) / comb_s / 1e9,
                       "aggregate_GBps": (edge_bytes + xw_gather + out_write) / agg_s / 1e9})
    total = sum(lc["total"] for lc in layers)
    return {"cycles": total, "ms_at_100MHz": total / (CLOCK_MHZ * 1e3), "layers": layers,
            "avg_bits": [float(b.mean()) for b in bits]}


def main() -> int:
    rng = np.random.default_rng(0)
    graphs = {}
    try:
        graphs["PubMed"] = pubmed_rows()
    except Exception as e:  # noqa: BLE001 -- dataset absent: say so and use the published statistics
        print(f"PubMed not loadable ({str(e)[:80]}...); using its published statistics")
        deg, how = synthetic_rows(rng, 19_717, 88_648)
        graphs["PubMed"] = (deg, 500, 3, how)
    graphs["Reddit"] = reddit_rows(rng)
    out = {}
    for name, (rows, f_in, classes, source) in graphs.items():
        out[name] = {"nodes": len(rows), "entries": int(rows.sum()), "features": f_in, "classes": classes,
                     "rows": source, **{m: predict(rows, f_in, classes, m, rng) for m in ("A2Q", "INT4")}}
    write_json("results/scaling.json", out)
    lines = ["| graph | nodes | CSR entries | method | cycles | ms @ 100 MHz | combine | aggregate+stall | "
             "combine GB/s | aggregate GB/s |", "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for name, g in out.items():
        for m in ("A2Q", "INT4"):
            p = g[m]
            comb = sum(lc["combine"] for lc in p["layers"])
            agg = sum(lc["aggregate"] + lc["stall"] for lc in p["layers"])
            lines.append(f"| {name} | {g['nodes']:,} | {g['entries']:,} | {m} | {p['cycles']:,} | "
                         f"{p['ms_at_100MHz']:,.2f} | {comb:,} | {agg:,} | "
                         f"{max(lc['combine_GBps'] for lc in p['layers']):.2f} | "
                         f"{max(lc['aggregate_GBps'] for lc in p['layers']):.2f} |")
    md = "\n".join(lines) + "\n"
    write_text("results/scaling.md", md)
    print(md)
    print(json.dumps({k: v["rows"] for k, v in out.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
