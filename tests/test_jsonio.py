"""Atomic writes: readers never see half a file, and the result has an ordinary file's permissions."""
import os
import stat

import pytest

from a2q import program as prog
from a2q.jsonio import write_json, write_text
from a2q.synth import random_program


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, want", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mask, want):
    umask(mask)
    assert _mode(write_text(tmp_path / "a.v", "module a; endmodule\n")) == want
    assert _mode(write_json(tmp_path / "a.json", {"x": 1})) == want


def test_rewrite_replaces_a_private_file_with_a_normal_one(tmp_path, umask):
    path = tmp_path / "old.json"
    path.write_text("{}")
    path.chmod(0o600)  # e.g. written by an older version
    write_json(path, {"x": 2})
    assert _mode(path) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["old.json"]  # no temp file left


def test_program_directory_and_files_are_readable_by_others(tmp_path, umask):
    path = prog.save(random_program(seed=1, n=6, dims=(5, 4, 3)), tmp_path / "prog")
    assert _mode(path) == 0o755
    assert {p.name: _mode(p) for p in path.iterdir()} == {"arrays.npz": 0o644, "manifest.json": 0o644}


def test_hw_generate_output_is_world_readable(tmp_path, umask):
    """The case from the issue: `a2q hw generate -o build/a2q_accel.v` gave -rw-------."""
    from hw.config import AcceleratorConfig
    from hw.generate import generate

    res = generate(AcceleratorConfig(lanes=2, pes=2, max_nodes=8, max_features=4, feat_words=64,
                                     node_words=16, edge_words=32, xw_words=16, out_words=16),
                   tmp_path / "build" / "a2q_accel.v")
    assert _mode(res["verilog"]) == 0o644 and _mode(res["sidecar"]) == 0o644
