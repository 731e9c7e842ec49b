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
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import fixedpoint as fp
from .jsonio import file_mode, write_json

FORMAT_VERSION = 1
MODEL_KINDS = ("gcn",)

#: Per-layer arrays: name -> (dtype, shape spec). Shape specs use N (nodes), I (in), O (out features).
LAYER_ARRAYS = {
    "bits": (np.uint8, ("N",)),
    "weight": (np.int8, ("I", "O")),
    "src_mult": (np.uint32, ("N",)),
    "src_shift": (np.uint8, ("N",)),
    "ch_mult": (np.uint32, ("O",)),
    "ch_shift": (np.uint8, ("O",)),
    "bias": (np.int32, ("O",)),
    "dst_mult": (np.uint32, ("N",)),
    "dst_shift": (np.uint8, ("N",)),
}
GRAPH_ARRAYS = {"row_ptr": np.int64, "col_idx": np.int64}
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

    def to_json(self) -> dict:
        return {"kind": "gcn", "in_features": self.in_features, "out_features": self.out_features,
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

    def layer(self, i: int, name: str) -> np.ndarray:
        return self.arrays[f"l{i}_{name}"]

    def out_bits_of(self, i: int) -> np.ndarray | None:
        """Per-node bits of layer i's output (= layer i+1's input bits); None for the last layer."""
        return self.layer(i + 1, "bits") if i + 1 < self.num_layers else None

    @property
    def row_lengths(self) -> np.ndarray:
        return np.diff(self.arrays["row_ptr"])

    def avg_bits(self) -> float:
        """Node-weighted average feature bitwidth over all layer inputs."""
        return float(np.mean([self.layer(i, "bits").mean() for i in range(self.num_layers)]))

    def manifest(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "model": "gcn",
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
    if not _is_int(version) or version != FORMAT_VERSION:
        raise ProgramError("format_version", f"expected {FORMAT_VERSION}, got {version!r}")
    if manifest.get("model") not in MODEL_KINDS:
        raise ProgramError("model", f"unknown model kind {manifest.get('model')!r}; known: {MODEL_KINDS}")
    for key, want in (("y_bits", fp.Y_BITS), ("p_bits", fp.P_BITS), ("out_bits", fp.OUT_BITS),
                      ("mult_bits", fp.MULT_BITS), ("max_shift", fp.MAX_SHIFT)):
        if not _is_int(manifest.get(key)) or manifest.get(key) != want:
            raise ProgramError(key, f"this version of the arithmetic needs {want}, got {manifest.get(key)!r}")
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
        spec = LayerSpec(*(lj[key] for key in LAYER_FIELDS))
        if lj.get("kind", "gcn") != "gcn":
            raise ProgramError(f"layers[{i}].kind", f"unknown layer kind {lj.get('kind')!r}")
        layers.append(spec)
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


def validate(program: Program, manifest: dict | None = None) -> None:
    """Check dtypes, shapes against layer dims, bit ranges, multipliers, the CSR and hashes."""
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
    if row_ptr[0] != 0:
        raise ProgramError("row_ptr", f"must start at 0, starts at {row_ptr[0]}")
    if np.any(np.diff(row_ptr) < 0):
        bad = int(np.argmax(np.diff(row_ptr) < 0))
        raise ProgramError("row_ptr", f"not monotone at row {bad}")
    if row_ptr[-1] != col_idx.shape[0]:
        raise ProgramError("row_ptr", f"ends at {row_ptr[-1]} but col_idx has nnz={col_idx.shape[0]}")
    if col_idx.size and (col_idx.min() < 0 or col_idx.max() >= n):
        raise ProgramError("col_idx", f"indices must lie in [0, {n}), found [{col_idx.min()}, {col_idx.max()}]")
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
        dims = {"N": n, "I": spec.in_features, "O": spec.out_features}
        for name, (dtype, shape) in LAYER_ARRAYS.items():
            a = _check_array(arrays, f"l{i}_{name}", dtype, tuple(dims[s] for s in shape))
            if name == "bits" and a.size and (a.min() < fp.MIN_NODE_BITS or a.max() > fp.MAX_NODE_BITS):
                raise ProgramError(f"l{i}_bits", f"node bits must lie in [{fp.MIN_NODE_BITS}, "
                                   f"{fp.MAX_NODE_BITS}], found [{a.min()}, {a.max()}]")
            if name.endswith("_mult") and a.size and a.max() >= (1 << fp.MULT_BITS):
                raise ProgramError(f"l{i}_{name}", f"multiplier {a.max()} exceeds {fp.MULT_BITS} bits")
            if name.endswith("_shift") and a.size and a.max() > fp.MAX_SHIFT:
                raise ProgramError(f"l{i}_{name}", f"shift {a.max()} exceeds max_shift {fp.MAX_SHIFT}")
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
    for name, dtype in OPTIONAL_ARRAYS.items():
        if name in arrays:
            shape = (n, layers[-1].out_features) if name == "expected_out" else (n,)
            _check_array(arrays, name, dtype, shape)
    known = set(GRAPH_ARRAYS) | set(OPTIONAL_ARRAYS) | {"x"} | {
        f"l{i}_{k}" for i in range(len(layers)) for k in LAYER_ARRAYS}
    extra = sorted(set(arrays) - known)
    if extra:
        raise ProgramError(extra[0], "unknown array")
    if manifest is not None:
        if manifest.get("num_nodes") != n:
            raise ProgramError("num_nodes", f"manifest says {manifest.get('num_nodes')}, row_ptr gives {n}")
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
