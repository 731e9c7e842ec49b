"""Random but valid accelerator programs, for tests of the integer reference, the RTL and the testbench.

The graphs include what breaks hardware: empty rows (zero-degree nodes), self loops, duplicate edges
and one high-degree hub; node bits span 1..8; multipliers are random, so saturation can happen.
"""
from __future__ import annotations

import numpy as np

from . import fixedpoint as fp
from .program import LayerSpec, Program


def random_graph(rng: np.random.Generator, n: int, avg_degree: float = 3.0, hub: bool = True,
                 isolated: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """CSR (row_ptr, col_idx) with self loops on most nodes, a hub row and ``isolated`` empty rows."""
    rows = []
    for i in range(n):
        deg = int(rng.poisson(avg_degree))
        cols = list(rng.integers(0, n, size=deg))
        if rng.random() < 0.8:
            cols.append(i)
        rows.append(sorted(int(c) for c in cols))
    if hub and n > 2:
        rows[0] = sorted(set(range(n)) | {0})  # node 0 aggregates every node
    for i in range(1, 1 + min(isolated, n - 1)):
        rows[n - i] = []
    row_ptr = np.zeros(n + 1, dtype=np.int64)
    row_ptr[1:] = np.cumsum([len(r) for r in rows])
    col_idx = np.array([c for r in rows for c in r], dtype=np.int64)
    return row_ptr, col_idx


def random_multipliers(rng: np.random.Generator, size: int, lo_shift: int, hi_shift: int):
    mult = rng.integers(1 << (fp.MULT_BITS - 1), 1 << fp.MULT_BITS, size=size).astype(np.uint32)
    shift = rng.integers(lo_shift, hi_shift + 1, size=size).astype(np.uint8)
    return mult, shift


def random_program(seed: int = 0, n: int = 12, dims=(20, 8, 4), weight_bits: int = 4,
                   first_signed: bool = False, bits_range=(1, 8), avg_degree: float = 3.0,
                   hub: bool = True, isolated: int = 1) -> Program:
    """A program whose scales keep most values in range but let some saturate, as real data may."""
    rng = np.random.default_rng(seed)
    row_ptr, col_idx = random_graph(rng, n, avg_degree, hub, isolated)
    layers = []
    arrays: dict[str, np.ndarray] = {"row_ptr": row_ptr, "col_idx": col_idx}
    nl = len(dims) - 1
    for i in range(nl):
        f_in, f_out = dims[i], dims[i + 1]
        signed = first_signed if i == 0 else False
        layers.append(LayerSpec(f_in, f_out, signed, weight_bits, relu=i < nl - 1))
        bits = rng.integers(bits_range[0], bits_range[1] + 1, size=n).astype(np.uint8)
        wlo, whi = fp.signed_range(weight_bits)
        arrays[f"l{i}_bits"] = bits
        arrays[f"l{i}_weight"] = rng.integers(wlo, whi + 1, size=(f_in, f_out)).astype(np.int8)
        # acc is up to ~f_in*255*8; shifts of 14..20 bring y near the 16-bit range, sometimes past it.
        arrays[f"l{i}_src_mult"], arrays[f"l{i}_src_shift"] = random_multipliers(rng, n, 14, 20)
        arrays[f"l{i}_ch_mult"], arrays[f"l{i}_ch_shift"] = random_multipliers(rng, f_out, 12, 18)
        arrays[f"l{i}_bias"] = rng.integers(-2000, 2001, size=f_out).astype(np.int32)
        arrays[f"l{i}_dst_mult"], arrays[f"l{i}_dst_shift"] = random_multipliers(rng, n, 18, 26)
    bits0 = arrays["l0_bits"].astype(np.int64)
    lo, hi = fp.feature_range(bits0, first_signed)
    x = rng.integers(lo[:, None], hi[:, None] + 1, size=(n, dims[0]))
    arrays["x"] = x.astype(np.int16)
    return Program(layers=layers, arrays=arrays, meta={"source": "synth", "seed": seed})


# -- program format v2: GIN layers, dense layers, a pool over a batch of graphs, NNS pools ----------
def random_graph_batch(rng: np.random.Generator, sizes, avg_degree: float = 2.0, self_loops: bool = True):
    """A block-diagonal CSR over graphs of the given node counts (0 = an empty graph, 1 = a single node),
    each with random (possibly duplicate) edges inside it, plus its membership ``graph_ptr``."""
    graph_ptr = np.zeros(len(sizes) + 1, dtype=np.int64)
    graph_ptr[1:] = np.cumsum(sizes)
    rows = []
    for g, size in enumerate(sizes):
        base = int(graph_ptr[g])
        for i in range(size):
            cols = [base + int(c) for c in rng.integers(0, size, size=int(rng.poisson(avg_degree)))]
            if self_loops:
                cols.append(base + i)
            rows.append(sorted(cols))
    row_ptr = np.zeros(len(rows) + 1, dtype=np.int64)
    row_ptr[1:] = np.cumsum([len(r) for r in rows])
    col_idx = np.array([c for r in rows for c in r], dtype=np.int64)
    return row_ptr, col_idx, graph_ptr


def _nns_pool(rng: np.random.Generator, p: np.ndarray, size: int, signed: bool) -> dict[str, np.ndarray]:
    """A pool of ``size`` (bits, multipliers) pairs with thresholds at quantiles of the rows' max, so that
    the selection really varies (some rows exactly at a threshold, to exercise the tie rule)."""
    v = np.abs(p).max(axis=1, initial=0) if signed else np.clip(p, 0, None).max(axis=1, initial=0)
    thr = np.sort(np.quantile(v, np.linspace(0.15, 0.9, size - 1)).astype(np.int64)) if size > 1 and v.size \
        else np.sort(rng.integers(0, 1000, size=size - 1))
    bits = np.sort(rng.integers(1, 9, size=size)).astype(np.uint8)  # larger ranges tend to more bits
    mult, shift = random_multipliers(rng, size, 14, 20)
    dmult, dshift = random_multipliers(rng, size, 18, 26)
    return {"pool_bits": bits, "pool_src_mult": mult, "pool_src_shift": shift,
            "pool_dst_mult": dmult, "pool_dst_shift": dshift, "pool_thr": thr.astype(np.int32)}


def random_v2_program(seed: int = 0, sizes=(6, 1, 0, 9, 4), dims=(10, 8, 8, 8, 6, 3),
                      kinds=("gin", "dense", "pool", "dense", "dense"), pool_sizes=None,
                      weight_bits: int = 4, first_signed: bool = False, avg_degree: float = 2.0) -> Program:
    """A valid format-v2 program: a batch of graphs (``sizes``: 0 = empty graph, 1 = one node), layer
    ``kinds`` (gcn, gin, dense, pool) and an NNS pool of ``pool_sizes[i]`` pairs on every layer input
    that may take one (0 = static per-row bits; default: 4, or 1 for the first such layer, i.e. the
    single-pair pool). Thresholds sit at quantiles of the real row maxima, so selections vary."""
    from . import integer
    from .program import LayerSpec

    rng = np.random.default_rng(seed)
    row_ptr, col_idx, graph_ptr = random_graph_batch(rng, sizes, avg_degree)
    n, nl = int(graph_ptr[-1]), len(kinds)
    if len(dims) != nl + 1:
        raise ValueError(f"dims needs len(kinds) + 1 = {nl + 1} entries, got {len(dims)}")
    arrays: dict[str, np.ndarray] = {"row_ptr": row_ptr, "col_idx": col_idx}
    if "pool" in kinds:
        arrays["graph_ptr"] = graph_ptr
    if pool_sizes is None:
        poolable = [i for i in range(1, nl) if kinds[i - 1] != "gcn"]
        pool_sizes = [0] * nl
        for k, i in enumerate(poolable):
            pool_sizes[i] = 1 if k == 0 else 4
    layers: list = []
    rows = n
    wlo, whi = fp.signed_range(weight_bits)
    for i, kind in enumerate(kinds):
        signed = first_signed if i == 0 else False
        layers.append(LayerSpec(dims[i], dims[i + 1], signed, weight_bits, relu=i < nl - 1, kind=kind))
        arrays[f"l{i}_weight"] = rng.integers(wlo, whi + 1, size=(dims[i], dims[i + 1])).astype(np.int8)
        arrays[f"l{i}_ch_mult"], arrays[f"l{i}_ch_shift"] = random_multipliers(rng, dims[i + 1], 12, 18)
        arrays[f"l{i}_bias"] = rng.integers(-2000, 2001, size=dims[i + 1]).astype(np.int32)
        if not pool_sizes[i]:
            arrays[f"l{i}_bits"] = rng.integers(1, 9, size=rows).astype(np.uint8)
            arrays[f"l{i}_src_mult"], arrays[f"l{i}_src_shift"] = random_multipliers(rng, rows, 14, 20)
        rows = len(sizes) if kind == "pool" else rows
    bits0 = arrays["l0_bits"].astype(np.int64)
    lo, hi = fp.feature_range(bits0, first_signed)
    arrays["x"] = rng.integers(lo[:, None], hi[:, None] + 1, size=(n, dims[0])).astype(np.int16)
    # Pools and destination multipliers layer by layer: a pool's thresholds need the p before it.
    program = Program(layers=layers, arrays=arrays, meta={"source": "synth-v2", "seed": seed})
    x, sel = integer._t(arrays["x"]), None
    for i in range(nl):
        q = program.rows_out(i)
        if i + 1 < nl and pool_sizes[i + 1]:
            program.layers = layers[:i + 1]  # run layer i as if last, for its p
            arrays[f"l{i}_dst_mult"], arrays[f"l{i}_dst_shift"] = random_multipliers(rng, q, 18, 26)
            p = integer.run_layer(program, i, x, sel).p.numpy()
            del arrays[f"l{i}_dst_mult"], arrays[f"l{i}_dst_shift"]
            arrays.update({f"l{i + 1}_{k}": v for k, v in _nns_pool(rng, p, pool_sizes[i + 1], False).items()})
        else:
            arrays[f"l{i}_dst_mult"], arrays[f"l{i}_dst_shift"] = random_multipliers(rng, q, 18, 26)
        program.layers = layers
        t = integer.run_layer(program, i, x, sel)
        x, sel = t.out, t.sel
    return program
