"""Mutation fuzzing of program directories: every bad program must raise ``ProgramError``, never crash.

``mutate(src, dst, rng)`` copies a saved program and applies one random mutation of a kind in ``KINDS``:
raw damage to either file (corrupted bytes, truncation, a file missing), edits of the manifest's JSON,
and array edits that are *re-stamped* (the manifest's hashes recomputed) so that they reach the checks
behind the hash: dtype and shape changes, values out of range, arrays missing or extra. ``check``
runs the loader on the result; ``scripts/fuzz_programs.py`` and ``tests/test_program_fuzz.py`` also
run ``a2q infer`` and ``a2q sim`` on it.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from . import program as prog

KINDS = ("corrupt_npz", "corrupt_manifest", "truncate_npz", "truncate_manifest", "drop_file", "json_edit",
         "dtype", "shape", "value", "missing_array", "extra_array")
_DTYPES = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.float32, np.float64, np.bool_]


def mutate(src: Path, dst: Path, rng: np.random.Generator, kind: str | None = None) -> str:
    """Copy program ``src`` to ``dst`` with one mutation; returns a description (kind: detail)."""
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    kind = kind or str(rng.choice(KINDS))
    return f"{kind}: {_MUTATORS[kind](dst, rng)}"


def check(path: Path) -> str:
    """``"loaded"`` or ``"program_error"``; any other exception propagates (that is a bug)."""
    try:
        prog.load(path)
    except prog.ProgramError:
        return "program_error"
    return "loaded"


# -- raw damage --------------------------------------------------------------------------------------
def _corrupt(path: Path, rng) -> str:
    data = bytearray(path.read_bytes())
    n = int(rng.integers(1, 9))
    for _ in range(n):
        i = int(rng.integers(0, len(data)))
        data[i] = int(rng.integers(0, 256))
    path.write_bytes(bytes(data))
    return f"{n} random bytes of {path.name}"


def _truncate(path: Path, rng) -> str:
    data = path.read_bytes()
    k = int(rng.integers(0, len(data)))
    path.write_bytes(data[:k])
    return f"{path.name} cut to {k} of {len(data)} bytes"


def _drop_file(d: Path, rng) -> str:
    name = str(rng.choice(["manifest.json", "arrays.npz"]))
    (d / name).unlink()
    return name


# -- manifest edits ----------------------------------------------------------------------------------
def _random_value(rng):
    choices = [None, True, False, 0, -1, 1, 2, 8, 2**31, 2**63, -(2**40), 0.5, float("nan"), float("inf"),
               "", "x", "16", [], [1, 2], {}, {"a": 1}]
    return choices[int(rng.integers(0, len(choices)))]


def _paths(obj, prefix=()):
    """Every (container path, key) in a JSON value."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


def _json_edit(d: Path, rng) -> str:
    m = json.loads((d / "manifest.json").read_text())
    paths = list(_paths(m))
    path = paths[int(rng.integers(0, len(paths)))]
    parent = m
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1]
    op = str(rng.choice(["set", "delete", "add"] if isinstance(parent, dict) else ["set", "delete", "append"]))
    if op == "set":
        parent[key] = _random_value(rng)
    elif op == "delete":
        del parent[key]
    elif op == "add":
        parent[f"extra{int(rng.integers(0, 100))}"] = _random_value(rng)
    else:
        parent.append(_random_value(rng))
    (d / "manifest.json").write_text(json.dumps(m))
    return f"{op} {'/'.join(map(str, path))}"


# -- re-stamped array edits --------------------------------------------------------------------------
def _arrays(d: Path) -> dict[str, np.ndarray]:
    with np.load(d / "arrays.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _restamp(d: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` and recompute the manifest's hashes, so the edit gets past the hash check."""
    np.savez(d / "arrays.npz", **arrays)
    m = json.loads((d / "manifest.json").read_text())
    m["hashes"] = {k: prog._hash(v) for k, v in sorted(arrays.items())}
    (d / "manifest.json").write_text(json.dumps(m))


def _pick(arrays, rng) -> str:
    names = sorted(arrays)
    return names[int(rng.integers(0, len(names)))]


def _dtype(d: Path, rng) -> str:
    a = _arrays(d)
    name = _pick(a, rng)
    dt = np.dtype(_DTYPES[int(rng.integers(0, len(_DTYPES)))])
    with np.errstate(all="ignore"):
        a[name] = a[name].astype(dt)
    _restamp(d, a)
    return f"{name} as {dt}"


def _shape(d: Path, rng) -> str:
    a = _arrays(d)
    name = _pick(a, rng)
    x = a[name]
    op = str(rng.choice(["drop_last", "append", "flatten", "add_axis", "transpose", "empty", "scalar"]))
    if op == "drop_last" and x.shape and x.shape[0]:
        x = x[:-1]
    elif op == "append" and x.ndim:
        x = np.concatenate([x, x[:1]]) if x.shape[0] else x
    elif op == "flatten":
        x = x.reshape(-1)
    elif op == "add_axis":
        x = x[None]
    elif op == "transpose":
        x = np.ascontiguousarray(x.T)
    elif op == "empty":
        x = x[:0]
    elif op == "scalar":
        x = np.asarray(x.reshape(-1)[0] if x.size else 0, dtype=x.dtype)
    a[name] = x
    _restamp(d, a)
    return f"{name} {op} -> {x.shape}"


def _value(d: Path, rng) -> str:
    a = _arrays(d)
    name = _pick(a, rng)
    x = a[name].copy()
    if x.size == 0:
        return f"{name} empty, unchanged"
    i = int(rng.integers(0, x.size))
    if x.dtype == np.bool_:
        v = not bool(x.flat[i])
    else:
        info = np.iinfo(x.dtype)
        v = int(rng.choice([info.min, info.max, 0, -1 if info.min < 0 else 1, int(x.flat[i]) + 1,
                            int(rng.integers(info.min, int(info.max) + 1, dtype=np.int64))
                            if info.max < 2**62 else 7]))
        v = min(max(v, info.min), info.max)
    x.flat[i] = v
    a[name] = x
    _restamp(d, a)
    return f"{name}.flat[{i}] = {v}"


def _missing_array(d: Path, rng) -> str:
    a = _arrays(d)
    name = _pick(a, rng)
    del a[name]
    _restamp(d, a)
    return name


def _extra_array(d: Path, rng) -> str:
    a = _arrays(d)
    name = str(rng.choice(["extra", "l9_bits", "l0_extra", "x2", "row_ptr2"]))
    a[name] = rng.integers(0, 4, size=int(rng.integers(0, 5))).astype(np.int64)
    _restamp(d, a)
    return name


_MUTATORS = {
    "corrupt_npz": lambda d, rng: _corrupt(d / "arrays.npz", rng),
    "corrupt_manifest": lambda d, rng: _corrupt(d / "manifest.json", rng),
    "truncate_npz": lambda d, rng: _truncate(d / "arrays.npz", rng),
    "truncate_manifest": lambda d, rng: _truncate(d / "manifest.json", rng),
    "drop_file": _drop_file,
    "json_edit": _json_edit,
    "dtype": _dtype,
    "shape": _shape,
    "value": _value,
    "missing_array": _missing_array,
    "extra_array": _extra_array,
}
