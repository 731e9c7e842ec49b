"""Program save/load round trip, and one deliberately broken program per validation rule."""
import json

import numpy as np
import pytest

from a2q import program as prog
from a2q.program import ProgramError
from a2q.synth import random_program


@pytest.fixture
def saved(tmp_path):
    p = random_program(seed=3, n=10, dims=(9, 5, 3))
    path = prog.save(p, tmp_path / "prog")
    return p, path


def test_round_trip_is_exact(saved):
    p, path = saved
    q = prog.load(path)
    assert q.layers == p.layers and q.meta == p.meta
    assert sorted(q.arrays) == sorted(p.arrays)
    for k in p.arrays:
        assert q.arrays[k].dtype == p.arrays[k].dtype
        np.testing.assert_array_equal(q.arrays[k], p.arrays[k])
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format_version"] == prog.FORMAT_VERSION and manifest["num_nodes"] == 10


def test_save_replaces_atomically_and_leaves_no_temp(saved, tmp_path):
    p, path = saved
    p2 = random_program(seed=4, n=7, dims=(9, 5, 3))
    prog.save(p2, path)
    assert prog.load(path).num_nodes == 7
    assert sorted(x.name for x in tmp_path.iterdir()) == ["prog"]


def test_invalid_program_is_not_written(saved, tmp_path):
    p, path = saved
    bad = random_program(seed=5, n=7, dims=(9, 5, 3))
    bad.arrays["l0_bits"][0] = 9
    with pytest.raises(ProgramError, match="l0_bits"):
        prog.save(bad, path)
    assert prog.load(path).num_nodes == 10  # the old program survives untouched
    assert sorted(x.name for x in tmp_path.iterdir()) == ["prog"]


def _rewrite(path, arrays=None, manifest_edit=None, rehash=True):
    """Write a broken variant in place, re-hashing so that the intended rule (not the hash) fires."""
    manifest = json.loads((path / "manifest.json").read_text())
    if arrays is not None:
        np.savez(path / "arrays.npz", **arrays)
        if rehash:
            manifest["hashes"] = {k: prog._hash(v) for k, v in arrays.items()}
    if manifest_edit:
        manifest_edit(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


def _arrays(p, **changes):
    a = {k: v.copy() for k, v in p.arrays.items()}
    for k, v in changes.items():
        if v is None:
            del a[k]
        else:
            a[k] = v
    return a


BROKEN_ARRAYS = [
    # (description, function of the original arrays -> changes, field named in the error)
    ("bits above 8", lambda a: {"l1_bits": np.full_like(a["l1_bits"], 9)}, "l1_bits"),
    ("bits of 0", lambda a: {"l0_bits": np.zeros_like(a["l0_bits"])}, "l0_bits"),
    ("bits wrong dtype", lambda a: {"l0_bits": a["l0_bits"].astype(np.int32)}, "l0_bits"),
    ("weight shape", lambda a: {"l0_weight": a["l0_weight"][:, :-1]}, "l0_weight"),
    ("weight out of range", lambda a: {"l0_weight": np.full_like(a["l0_weight"], 8)}, "l0_weight"),
    ("missing array", lambda a: {"l1_dst_mult": None}, "l1_dst_mult"),
    ("unknown array", lambda a: {"junk": np.zeros(3)}, "junk"),
    ("multiplier too wide", lambda a: {"l0_src_mult": np.full_like(a["l0_src_mult"], 1 << 16)}, "l0_src_mult"),
    ("shift too large", lambda a: {"l1_ch_shift": np.full_like(a["l1_ch_shift"], 49)}, "l1_ch_shift"),
    ("row_ptr not monotone", lambda a: {"row_ptr": np.r_[a["row_ptr"][:3], a["row_ptr"][2] - 1,
                                                         a["row_ptr"][4:]]}, "row_ptr"),
    ("row_ptr end != nnz", lambda a: {"col_idx": a["col_idx"][:-1]}, "row_ptr"),
    ("row_ptr start", lambda a: {"row_ptr": a["row_ptr"] + 1, "col_idx": np.r_[a["col_idx"], 0]}, "row_ptr"),
    ("col_idx out of range", lambda a: {"col_idx": np.where(np.arange(len(a["col_idx"])) == 0, 10,
                                                            a["col_idx"])}, "col_idx"),
    ("negative col_idx", lambda a: {"col_idx": np.where(np.arange(len(a["col_idx"])) == 1, -1,
                                                        a["col_idx"])}, "col_idx"),
    ("x exceeds its node's bits", lambda a: {"x": np.full_like(a["x"], 300)}, "x"),
    ("x shape", lambda a: {"x": a["x"][:-1]}, "x"),
    ("bias too wide", lambda a: {"l0_bias": np.full_like(a["l0_bias"], 1 << 24)}, "l0_bias"),
    ("expected_out shape", lambda a: {"expected_out": np.zeros((3, 3), np.int32)}, "expected_out"),
]


@pytest.mark.parametrize("what,change,field", BROKEN_ARRAYS, ids=[b[0] for b in BROKEN_ARRAYS])
def test_each_broken_array_names_its_field(saved, what, change, field):
    p, path = saved
    _rewrite(path, arrays=_arrays(p, **change(p.arrays)))
    with pytest.raises(ProgramError) as e:
        prog.load(path)
    assert e.value.field == field, str(e.value)


def _set(key, value):
    return lambda m: m.__setitem__(key, value)


BROKEN_MANIFESTS = [
    ("format version", _set("format_version", 3), "format_version"),
    ("model kind", _set("model", "transformer"), "model"),
    ("y_bits", _set("y_bits", 12), "y_bits"),
    ("empty layers", _set("layers", []), "layers"),
    ("layer without dims", lambda m: m["layers"][0].pop("in_features"), "layers[0].in_features"),
    ("layer not an object", lambda m: m["layers"].__setitem__(0, 5), "layers[0]"),
    ("dims not integers", lambda m: m["layers"][0].__setitem__("in_features", 9.5), "layers[0].in_features"),
    ("infinite dims", lambda m: m["layers"][0].__setitem__("out_features", float("inf")), "layers[0].out_features"),
    ("relu not a bool", lambda m: m["layers"][0].__setitem__("relu", "false"), "layers[0].relu"),
    ("version true", _set("format_version", True), "format_version"),
    ("meta a number", _set("meta", 0), "meta"),
    ("meta a list", _set("meta", []), "meta"),
    ("meta accuracy a string", _set("meta", {"fakequant_test_acc": "high"}), "meta.fakequant_test_acc"),
    ("dims disagree", lambda m: m["layers"][1].__setitem__("in_features", 4), "layers[1].in_features"),
    ("weight bits", lambda m: m["layers"][0].__setitem__("weight_bits", 12), "layers[0].weight_bits"),
    ("relu on the last layer", lambda m: m["layers"][1].__setitem__("relu", True), "layers[1].relu"),
    ("signed after relu", lambda m: m["layers"][1].__setitem__("in_signed", True), "layers[1].in_signed"),
    ("num_nodes", _set("num_nodes", 11), "num_nodes"),
    ("nnz", _set("nnz", 1), "nnz"),
]


@pytest.mark.parametrize("what,edit,field", BROKEN_MANIFESTS, ids=[b[0] for b in BROKEN_MANIFESTS])
def test_each_broken_manifest_names_its_field(saved, what, edit, field):
    _, path = saved
    _rewrite(path, manifest_edit=edit)
    with pytest.raises(ProgramError) as e:
        prog.load(path)
    assert e.value.field == field, str(e.value)


def test_content_hash_detects_edits(saved):
    p, path = saved
    arrays = _arrays(p, l0_bias=p.arrays["l0_bias"] + 1)
    _rewrite(path, arrays=arrays, rehash=False)
    with pytest.raises(ProgramError, match="hash") as e:
        prog.load(path)
    assert e.value.field == "l0_bias"


@pytest.mark.parametrize("damage", ["no_manifest", "no_arrays", "bad_json", "bad_npz"])
def test_unreadable_files(saved, damage):
    _, path = saved
    if damage == "no_manifest":
        (path / "manifest.json").unlink()
    elif damage == "no_arrays":
        (path / "arrays.npz").unlink()
    elif damage == "bad_json":
        (path / "manifest.json").write_text("{not json")
    else:
        (path / "arrays.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ProgramError, match="manifest.json|arrays.npz"):
        prog.load(path)


def test_a_program_made_for_the_16_bit_y_is_refused_with_how_to_re_export(saved):
    """Programs exported before the y widening (y_bits 16) cannot run on this arithmetic."""
    _, path = saved
    _rewrite(path, manifest_edit=_set("y_bits", 16))
    with pytest.raises(ProgramError, match=r"needs 24, got 16.*a2q export") as e:
        prog.load(path)
    assert e.value.field == "y_bits"
