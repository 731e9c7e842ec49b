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
