"""The accelerator program: the contract between a2q (exporter, integer reference), hw and sim.

A program is a directory with ``manifest.json`` and ``arrays.npz`` (see ``docs/program.md``).
``load`` validates everything and raises one ``ProgramError`` naming the field at fault;
``save`` writes into a temporary directory and renames it into place, so a crash never leaves a
half-written program and an existing program is only replaced by a complete one.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import fixedpoint as fp
from .jsonio import file_mode, write_json

FORMAT_VERSION = 2
#: Older versions that still load (version 1 = GCN only, same arrays; it is read as version 2).
READABLE_VERSIONS = (1, 2)
MODEL_KINDS = ("gcn", "gin")
#: Layer kinds (docs/program.md): which CSR the layer aggregates over, and its rows in -> out.
LAYER_KINDS = ("gcn", "gin", "dense", "pool")
AGGREGATING_KINDS = ("gcn", "gin")  # over the graph's CSR (row_ptr / col_idx)
#: Largest NNS pool a program may carry (the selection index is stored in 8 bits).
MAX_POOL = 64

#: Per-layer arrays: name -> (dtype, shape spec). Shape specs: R (the layer's input rows), Q (its output
#: rows: R, or G graphs for a pool layer), I / O (in / out features), M (NNS pool size), T (M - 1).
#: A layer's input is either static per row ("bits", "src_*": layer 0 always, host-selected) or an NNS
#: pool selected at run time by the previous layer's requantizer ("pool_*"); "dst_*" (per output row)
#: exists where the next layer's input is static or the layer is the last one.
STATIC_INPUT_ARRAYS = {
    "bits": (np.uint8, ("R",)),
    "src_mult": (np.uint32, ("R",)),
    "src_shift": (np.uint8, ("R",)),
}
POOL_INPUT_ARRAYS = {
    "pool_bits": (np.uint8, ("M",)),
    "pool_src_mult": (np.uint32, ("M",)),
    "pool_src_shift": (np.uint8, ("M",)),
    "pool_dst_mult": (np.uint32, ("M",)),
    "pool_dst_shift": (np.uint8, ("M",)),
    "pool_thr": (np.int32, ("T",)),
}
LINEAR_ARRAYS = {
    "weight": (np.int8, ("I", "O")),
    "ch_mult": (np.uint32, ("O",)),
    "ch_shift": (np.uint8, ("O",)),
    "bias": (np.int32, ("O",)),
}
OUTPUT_ARRAYS = {
    "dst_mult": (np.uint32, ("Q",)),
    "dst_shift": (np.uint8, ("Q",)),
}
LAYER_ARRAYS = {**STATIC_INPUT_ARRAYS, **LINEAR_ARRAYS, **OUTPUT_ARRAYS}  # a version-1 (GCN) layer
GRAPH_ARRAYS = {"row_ptr": np.int64, "col_idx": np.int64}
#: Graph membership of a batch of graphs (present iff a pool layer is): graph g owns nodes
#: graph_ptr[g] .. graph_ptr[g+1]-1 (PyG batches are contiguous).
MEMBERSHIP_ARRAY = "graph_ptr"
#: A layer entry of the manifest: field -> type (in LayerSpec's order); JSON types are checked strictly.
LAYER_FIELDS = {"in_features": int, "out_features": int, "in_signed": bool, "weight_bits": int, "relu": bool}
#: Provenance fields of ``meta`` that the tools print as numbers.
META_NUMBERS = ("fakequant_test_acc",)
OPTIONAL_ARRAYS = {"expected_out": np.int32, "labels": np.int64, "test_mask": np.bool_}


class ProgramError(ValueError):
    """A program that is malformed; the message names the offending field."""

    def __init__(self, field_name: str, problem: str):
        super().__init__(f"program field '{field_name}': {problem}")
        self.field = field_name


@dataclass
class LayerSpec:
    in_features: int
    out_features: int
    in_signed: bool
    weight_bits: int
    relu: bool
    kind: str = "gcn"

    @property
    def aggregates(self) -> bool:
        """Whether the layer walks the graph's CSR (gcn, gin); a pool walks the membership instead."""
        return self.kind in AGGREGATING_KINDS

    def to_json(self) -> dict:
        return {"kind": self.kind, "in_features": self.in_features, "out_features": self.out_features,
                "in_signed": self.in_signed, "weight_bits": self.weight_bits, "relu": self.relu}


@dataclass
class Program:
    """An in-memory accelerator program. ``arrays`` keys: graph arrays, ``x``, ``l{i}_<name>``."""

    layers: list[LayerSpec]
    arrays: dict[str, np.ndarray]
    meta: dict = field(default_factory=dict)  # provenance: dataset, method, accuracies, scales

    # -- convenient views -------------------------------------------------------------------------
    @property
    def num_nodes(self) -> int:
        return int(self.arrays["row_ptr"].shape[0] - 1)

    @property
    def nnz(self) -> int:
        return int(self.arrays["col_idx"].shape[0])

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def num_graphs(self) -> int | None:
        """G for a graph-level program (one with a pool layer), else None."""
        ptr = self.arrays.get(MEMBERSHIP_ARRAY)
        return None if ptr is None else int(ptr.shape[0] - 1)

    @property
    def model(self) -> str:
        return "gin" if any(s.kind != "gcn" for s in self.layers) else "gcn"

    def layer(self, i: int, name: str) -> np.ndarray:
        return self.arrays[f"l{i}_{name}"]

    def has_pool_input(self, i: int) -> bool:
        """Whether layer i's input rows take their (bits, step) from an NNS pool at run time."""
        return f"l{i}_pool_bits" in self.arrays

    def pool_size(self, i: int) -> int:
        return int(self.layer(i, "pool_bits").shape[0]) if self.has_pool_input(i) else 0

    def rows_in(self, i: int) -> int:
        """Rows of layer i's input: N nodes, or G graphs after a pool layer."""
        return self.num_nodes if not any(s.kind == "pool" for s in self.layers[:i]) else int(self.num_graphs)

    def rows_out(self, i: int) -> int:
        return int(self.num_graphs) if self.layers[i].kind == "pool" else self.rows_in(i)

    @property
    def num_rows_out(self) -> int:
        """Rows of the logits: nodes (node-level) or graphs (graph-level)."""
        return self.rows_out(self.num_layers - 1)

    def out_bits_of(self, i: int) -> np.ndarray | None:
        """Per-row bits of layer i's output (= layer i+1's input bits) when static; None for the last
        layer. A pool input's bits are known only at run time: ``a2q.integer.run(p)[i].out_bits``."""
        if i + 1 >= self.num_layers:
            return None
        if self.has_pool_input(i + 1):
            raise ValueError(f"layer {i + 1}'s input bits are selected at run time (NNS pool); "
                             "take them from a2q.integer.run(program)")
        return self.layer(i + 1, "bits")

    @property
    def row_lengths(self) -> np.ndarray:
        return np.diff(self.arrays["row_ptr"])

    def avg_bits(self) -> float:
        """Row-weighted average feature bitwidth over all layer inputs (run-time NNS selections
        included: those come from the integer reference)."""
        if not any(self.has_pool_input(i) for i in range(self.num_layers)):
            return float(np.mean([self.layer(i, "bits").mean() for i in range(self.num_layers)]))
        from . import integer

        return float(np.mean([t.bits.double().mean().item() for t in integer.run(self)]))

    def manifest(self) -> dict:
        m = {
            "format_version": FORMAT_VERSION,
            "model": self.model,
            "num_nodes": self.num_nodes,
            "nnz": self.nnz,
            "layers": [spec.to_json() for spec in self.layers],
            "y_bits": fp.Y_BITS,
            "p_bits": fp.P_BITS,
            "out_bits": fp.OUT_BITS,
            "mult_bits": fp.MULT_BITS,
            "max_shift": fp.MAX_SHIFT,
            "hashes": {k: _hash(v) for k, v in sorted(self.arrays.items())},
            "meta": self.meta,
        }
        if self.num_graphs is not None:
            m["num_graphs"] = self.num_graphs
        return m


def content_hash(program: Program) -> str:
    """SHA-256 of what the program computes: the manifest without ``meta`` (provenance such as the
    checkpoint path), i.e. layers, arithmetic constants and every array's hash. Training with the same
    seed, dataset, version and thread count gives the same hash (docs/program.md, "Determinism")."""
    manifest = program.manifest()
    manifest.pop("meta")
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def _hash(a: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


# -- writing ---------------------------------------------------------------------------------------
def save(program: Program, path: str | os.PathLike) -> Path:
    """Validate, then write atomically: a sibling temp dir, then rename over ``path``."""
    validate(program)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        os.chmod(tmp, file_mode(directory=True))  # mkdtemp makes it 0700
        np.savez(tmp / "arrays.npz", **program.arrays)
        write_json(tmp / "manifest.json", program.manifest())
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path



# -- reading and validation ------------------------------------------------------------------------
def load(path: str | os.PathLike) -> Program:
    """Read and validate a program directory; any problem raises a ``ProgramError``."""
    path = Path(path)
    mpath, apath = path / "manifest.json", path / "arrays.npz"
    if not mpath.is_file():
        raise ProgramError("manifest.json", f"missing in {path}")
    if not apath.is_file():
        raise ProgramError("arrays.npz", f"missing in {path}")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise ProgramError("manifest.json", f"not valid JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise ProgramError("manifest.json", "top level must be an object")
    version = manifest.get("format_version")
    if not _is_int(version) or version not in READABLE_VERSIONS:
        raise ProgramError("format_version", f"expected one of {READABLE_VERSIONS}, got {version!r}")
    if manifest.get("model") not in MODEL_KINDS:
        raise ProgramError("model", f"unknown model kind {manifest.get('model')!r}; known: {MODEL_KINDS}")
    for key, want in (("y_bits", fp.Y_BITS), ("p_bits", fp.P_BITS), ("out_bits", fp.OUT_BITS),
                      ("mult_bits", fp.MULT_BITS), ("max_shift", fp.MAX_SHIFT)):
        if not _is_int(manifest.get(key)) or manifest.get(key) != want:
            raise ProgramError(key, f"this version of the arithmetic needs {want}, got {manifest.get(key)!r} "
                                    "(docs/arithmetic.md); re-export the program from its checkpoint with `a2q export`")
    layers_json = manifest.get("layers")
    if not isinstance(layers_json, list) or not layers_json:
        raise ProgramError("layers", "must be a non-empty list")
    layers = []
    for i, lj in enumerate(layers_json):
        if not isinstance(lj, dict):
            raise ProgramError(f"layers[{i}]", f"must be an object, got {type(lj).__name__}")
        for key, kind in LAYER_FIELDS.items():
            if key not in lj:
                raise ProgramError(f"layers[{i}].{key}", "missing")
            if not (_is_int(lj[key]) if kind is int else isinstance(lj[key], bool)):
                raise ProgramError(f"layers[{i}].{key}", f"must be {'an integer' if kind is int else 'true or false'}, "
                                   f"got {lj[key]!r}")
        kind = lj.get("kind", "gcn")
        kinds = LAYER_KINDS if version >= 2 else ("gcn",)
        if kind not in kinds:
            raise ProgramError(f"layers[{i}].kind", f"unknown layer kind {kind!r} for format version {version}; "
                               f"known: {kinds}")
        layers.append(LayerSpec(*(lj[key] for key in LAYER_FIELDS), kind=kind))
    try:
        with np.load(apath, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # zipfile / format errors come in many types
        raise ProgramError("arrays.npz", f"cannot be read ({e})") from None
    meta = manifest.get("meta", {})
    if not isinstance(meta, dict):
        raise ProgramError("meta", f"must be an object, got {type(meta).__name__}")
    for key in META_NUMBERS:
        if meta.get(key) is not None and (isinstance(meta[key], bool) or not isinstance(meta[key], (int, float))):
            raise ProgramError(f"meta.{key}", f"must be a number or null, got {meta[key]!r}")
    program = Program(layers=layers, arrays=arrays, meta=meta)
    validate(program, manifest=manifest)
    return program


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_array(arrays, name, dtype, shape):
    if name not in arrays:
        raise ProgramError(name, "missing from arrays.npz")
    a = arrays[name]
    if a.dtype != np.dtype(dtype):
        raise ProgramError(name, f"dtype {a.dtype}, expected {np.dtype(dtype)}")
    if shape is not None and tuple(a.shape) != tuple(shape):
        raise ProgramError(name, f"shape {tuple(a.shape)}, expected {tuple(shape)}")
    return a


def _check_csr(row_ptr_name, row_ptr, nnz_name, nnz, what):
    if row_ptr.ndim != 1 or row_ptr.shape[0] < 1:
        raise ProgramError(row_ptr_name, f"must be 1-D with {what}+1 entries")
    if row_ptr[0] != 0:
        raise ProgramError(row_ptr_name, f"must start at 0, starts at {row_ptr[0]}")
    if np.any(np.diff(row_ptr) < 0):
        bad = int(np.argmax(np.diff(row_ptr) < 0))
        raise ProgramError(row_ptr_name, f"not monotone at row {bad}")
    if row_ptr[-1] != nnz:
        raise ProgramError(row_ptr_name, f"ends at {row_ptr[-1]} but {nnz_name} has {nnz}")


def _check_layer_array(arrays, i, name, dtype, shape):
    a = _check_array(arrays, f"l{i}_{name}", dtype, shape)
    if name.endswith("bits") and a.size and (a.min() < fp.MIN_NODE_BITS or a.max() > fp.MAX_NODE_BITS):
        raise ProgramError(f"l{i}_{name}", f"node bits must lie in [{fp.MIN_NODE_BITS}, "
                           f"{fp.MAX_NODE_BITS}], found [{a.min()}, {a.max()}]")
    if name.endswith("_mult") and a.size and a.max() >= (1 << fp.MULT_BITS):
        raise ProgramError(f"l{i}_{name}", f"multiplier {a.max()} exceeds {fp.MULT_BITS} bits")
    if name.endswith("_shift") and a.size and a.max() > fp.MAX_SHIFT:
        raise ProgramError(f"l{i}_{name}", f"shift {a.max()} exceeds max_shift {fp.MAX_SHIFT}")
    return a


def _check_kinds(layers, has_membership: bool) -> None:
    """Layer order: pool at most once, after it only dense layers; a pool needs graph_ptr."""
    pools = [i for i, s in enumerate(layers) if s.kind == "pool"]
    if len(pools) > 1:
        raise ProgramError(f"layers[{pools[1]}].kind", "a program has at most one pool layer")
    if pools:
        for j in range(pools[0] + 1, len(layers)):
            if layers[j].kind != "dense":
                raise ProgramError(f"layers[{j}].kind", f"after the pool layer rows are graphs: only "
                                   f"'dense' layers may follow it, got {layers[j].kind!r}")
        if not has_membership:
            raise ProgramError(MEMBERSHIP_ARRAY, "missing: a pool layer needs the graph membership")
    elif has_membership:
        raise ProgramError(MEMBERSHIP_ARRAY, "present but no layer is a pool layer")


def validate(program: Program, manifest: dict | None = None) -> None:
    """Check dtypes, shapes against layer dims and rows, bit ranges, multipliers, NNS pools, the CSR,
    the graph membership and hashes."""
    arrays, layers = program.arrays, program.layers
    if not layers:
        raise ProgramError("layers", "must be a non-empty list")
    row_ptr = _check_array(arrays, "row_ptr", np.int64, None)
    if row_ptr.ndim != 1 or row_ptr.shape[0] < 2:
        raise ProgramError("row_ptr", "must be 1-D with at least 2 entries (N+1)")
    n = row_ptr.shape[0] - 1
    col_idx = _check_array(arrays, "col_idx", np.int64, None)
    if col_idx.ndim != 1:
        raise ProgramError("col_idx", "must be 1-D")
    _check_csr("row_ptr", row_ptr, "col_idx", col_idx.shape[0], "N")
    if col_idx.size and (col_idx.min() < 0 or col_idx.max() >= n):
        raise ProgramError("col_idx", f"indices must lie in [0, {n}), found [{col_idx.min()}, {col_idx.max()}]")
    for i, spec in enumerate(layers):
        if spec.kind not in LAYER_KINDS:
            raise ProgramError(f"layers[{i}].kind", f"unknown layer kind {spec.kind!r}; known: {LAYER_KINDS}")
    _check_kinds(layers, MEMBERSHIP_ARRAY in arrays)
    if MEMBERSHIP_ARRAY in arrays:
        gptr = _check_array(arrays, MEMBERSHIP_ARRAY, np.int64, None)
        _check_csr(MEMBERSHIP_ARRAY, gptr, "the node count N", n, "G")
        if gptr.shape[0] < 2:
            raise ProgramError(MEMBERSHIP_ARRAY, "must hold at least one graph (G+1 >= 2 entries)")
        graph_of = np.repeat(np.arange(gptr.shape[0] - 1), np.diff(gptr))
        rows = np.repeat(np.arange(n), np.diff(row_ptr))
        cross = graph_of[rows] != graph_of[col_idx] if col_idx.size else np.zeros(0, bool)
        if cross.any():
            e = int(np.argmax(cross))
            raise ProgramError("col_idx", f"edge {e} ({col_idx[e]} -> {rows[e]}) joins graphs {graph_of[col_idx[e]]} "
                               f"and {graph_of[rows[e]]}: a batch must be block-diagonal")
    for i, spec in enumerate(layers):
        if spec.in_features < 1 or spec.out_features < 1:
            raise ProgramError(f"layers[{i}]", "in_features and out_features must be >= 1")
        if not 2 <= spec.weight_bits <= 8:
            raise ProgramError(f"layers[{i}].weight_bits", f"must lie in [2, 8], got {spec.weight_bits}")
        if i > 0 and layers[i - 1].out_features != spec.in_features:
            raise ProgramError(f"layers[{i}].in_features",
                               f"{spec.in_features} != previous layer's out_features {layers[i-1].out_features}")
        last = i == len(layers) - 1
        if last and spec.relu:
            raise ProgramError(f"layers[{i}].relu", "the last layer emits logits and takes no ReLU")
        if not last and spec.relu and layers[i + 1].in_signed:
            raise ProgramError(f"layers[{i + 1}].in_signed", "input after a ReLU must be unsigned")
        pooled = program.has_pool_input(i)
        if i == 0 and pooled:
            raise ProgramError("l0_pool_bits", "layer 0's inputs are known: the host selects their pool pair "
                               "(static l0_bits / l0_src_*)")
        if pooled and layers[i - 1].kind == "gcn":
            raise ProgramError(f"l{i}_pool_bits", "a gcn layer's requantizer has a per-row multiplier "
                               "(d_i^-1/2): it cannot feed a run-time NNS pool")
        m = program.pool_size(i)
        dims = {"R": program.rows_in(i), "Q": program.rows_out(i), "I": spec.in_features,
                "O": spec.out_features, "M": m, "T": max(m - 1, 0)}
        groups = [POOL_INPUT_ARRAYS if pooled else STATIC_INPUT_ARRAYS, LINEAR_ARRAYS]
        if last or not program.has_pool_input(i + 1):
            groups.append(OUTPUT_ARRAYS)
        for group in groups:
            for name, (dtype, shape) in group.items():
                _check_layer_array(arrays, i, name, dtype, tuple(dims[s] for s in shape))
        if pooled:
            if not 1 <= m <= MAX_POOL:
                raise ProgramError(f"l{i}_pool_bits", f"pool size must lie in [1, {MAX_POOL}], got {m}")
            thr = arrays[f"l{i}_pool_thr"].astype(np.int64)
            if np.any(np.diff(thr) < 0):
                raise ProgramError(f"l{i}_pool_thr", "thresholds must be ascending (non-decreasing)")
            if thr.size and (thr.min() < 0 or thr.max() > (1 << (fp.P_BITS - 1))):
                raise ProgramError(f"l{i}_pool_thr", f"thresholds must lie in [0, 2^{fp.P_BITS - 1}], "
                                   f"found [{thr.min()}, {thr.max()}]")
        w = arrays[f"l{i}_weight"].astype(np.int64)
        lo, hi = fp.signed_range(spec.weight_bits)
        if w.size and (w.min() < lo or w.max() > hi):
            raise ProgramError(f"l{i}_weight", f"values outside signed {spec.weight_bits}-bit range [{lo}, {hi}]")
        b = arrays[f"l{i}_bias"].astype(np.int64)
        lo, hi = fp.signed_range(fp.P_BITS)
        if b.size and (b.min() < lo or b.max() > hi):
            raise ProgramError(f"l{i}_bias", f"values outside signed {fp.P_BITS}-bit range")
    x = _check_array(arrays, "x", np.int16, (n, layers[0].in_features))
    bits0 = arrays["l0_bits"].astype(np.int64)
    lo, hi = fp.feature_range(bits0, layers[0].in_signed)
    if x.size and (np.any(x < lo[:, None]) or np.any(x > hi[:, None])):
        node = int(np.argmax(np.any((x < lo[:, None]) | (x > hi[:, None]), axis=1)))
        raise ProgramError("x", f"node {node} has features outside its {bits0[node]}-bit range")
    rows_out = program.num_rows_out
    for name, dtype in OPTIONAL_ARRAYS.items():
        if name in arrays:
            shape = (rows_out, layers[-1].out_features) if name == "expected_out" else (rows_out,)
            _check_array(arrays, name, dtype, shape)
    known = set(GRAPH_ARRAYS) | set(OPTIONAL_ARRAYS) | {"x", MEMBERSHIP_ARRAY} | {
        f"l{i}_{k}" for i in range(len(layers))
        for k in (*STATIC_INPUT_ARRAYS, *POOL_INPUT_ARRAYS, *LINEAR_ARRAYS, *OUTPUT_ARRAYS)}
    extra = sorted(set(arrays) - known)
    if extra:
        raise ProgramError(extra[0], "unknown array")
    surplus = sorted(k for k in arrays if re.match(r"l\d+_", k) and not _expected(program, k))
    if surplus:
        raise ProgramError(surplus[0], "not expected here (a layer's input is static or an NNS pool, not both; "
                           "dst_* only where the next input is static or the layer is last)")
    if manifest is not None:
        if manifest.get("num_nodes") != n:
            raise ProgramError("num_nodes", f"manifest says {manifest.get('num_nodes')}, row_ptr gives {n}")
        if manifest.get("num_graphs") != program.num_graphs and ("num_graphs" in manifest or program.num_graphs):
            raise ProgramError("num_graphs", f"manifest says {manifest.get('num_graphs')}, "
                               f"{MEMBERSHIP_ARRAY} gives {program.num_graphs}")
        if manifest.get("nnz") != col_idx.shape[0]:
            raise ProgramError("nnz", f"manifest says {manifest.get('nnz')}, col_idx has {col_idx.shape[0]}")
        hashes = manifest.get("hashes")
        if not isinstance(hashes, dict):
            raise ProgramError("hashes", "missing or not an object")
        for name, a in arrays.items():
            if hashes.get(name) != _hash(a):
                raise ProgramError(name, "content hash does not match the manifest (corrupted or edited)")
        missing = sorted(set(hashes) - set(arrays))
        if missing:
            raise ProgramError(missing[0], "listed in the manifest hashes but missing from arrays.npz")


def _expected(program: Program, name: str) -> bool:
    """Whether array ``l{i}_<field>`` belongs to this program's layer i (see the groups above)."""
    head, _, fieldname = name.partition("_")
    i = int(head[1:])
    if fieldname in LINEAR_ARRAYS:
        return True
    if fieldname in STATIC_INPUT_ARRAYS:
        return not program.has_pool_input(i)
    if fieldname in POOL_INPUT_ARRAYS:
        return program.has_pool_input(i)
    return i == program.num_layers - 1 or not program.has_pool_input(i + 1)
