"""``a2q flow --model gin``: node-level on KarateClub (trains), graph-level on MUTAG (reuses checkpoints)."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from a2q import integer
from a2q.flow import add_flow_arguments, run_flow
from a2q.flow_gin import feature_kb, label, parse_ckpts
from a2q.program import load

ROOT = os.environ.get("A2Q_DATA_ROOT")
HAVE_MUTAG = bool(ROOT) and (Path(ROOT) / "TU" / "MUTAG" / "raw" / "MUTAG_A.txt").is_file()


def _flow(tmp_path, *extra):
    p = argparse.ArgumentParser()
    add_flow_arguments(p)
    return run_flow(p.parse_args(["--model", "gin", "--lanes", "4", "--pes", "4", "--sim", "none",
                                  "--out", str(tmp_path), *extra]))


def _check_priced(s, tmp_path):
    """Cycles where the hardware step runs these programs; else the reason is recorded and the table says so."""
    from a2q.cycle_model import cycles

    if s["hardware_error"] is not None:
        assert "does not run these programs yet" in s["hardware_error"]
        assert "Cycles not priced" in (tmp_path / "flow.md").read_text()
        return
    for name, r in s["results"].items():
        assert r["cycles"] == cycles(load(tmp_path / name / "program"), 4, 4).total
        assert r["speedup"].keys() == set(s["baselines"])


def test_node_level_gin_flow_on_karate_club(tmp_path):
    s = _flow(tmp_path, "--dataset", "KarateClub", "--epochs", "15", "--seeds", "0")
    res = s["results"]
    # KarateClub's one-hot input is binary: the uniform models get the fair one-bit variant too
    assert set(res) == {"a2q", "int4", "int4-bin", "dq4", "dq4-bin"} and s["task"] == "node"
    for name, r in res.items():
        program = load(tmp_path / name / "program")
        assert r["int_acc"] == r["fakequant_acc"] == integer.accuracy(program)
        assert r["feature_kb"] == pytest.approx(feature_kb(program)) and r["feature_kb"] > 0
        assert r["avg_bits"] == pytest.approx(program.avg_bits())
    assert res["int4"]["avg_bits"] == 4.0 and res["int4-bin"]["avg_bits"] < 4.0
    assert res["a2q"]["selection_rows"] == 2 * 34  # the two MLP inner inputs are NNS pools
    _check_priced(s, tmp_path)
    table = (tmp_path / "flow.md").read_text()
    assert "| A2Q |" in table and "| DQ-INT4 (binary input) |" in table
    assert json.loads((tmp_path / "flow.json").read_text())["model"] == "gin"


@pytest.mark.skipif(not HAVE_MUTAG, reason="MUTAG raw files not found under $A2Q_DATA_ROOT/TU")
def test_graph_level_gin_flow_reuses_checkpoints(tmp_path):
    from a2q.trainer import parse_train_args, run_train

    ckpts = []
    for name, margs in (("a2q", ["--method", "a2q"]), ("int4", ["--method", "uniform", "--bits", "4"]),
                        ("dq4", ["--method", "dq", "--bits", "4"])):
        run_train(parse_train_args(["--model", "gin", "--dataset", "MUTAG", "--fold", "1", "--epochs", "2",
                                    "--layers", "2", "--hidden", "16", "--no-progress", "--out",
                                    str(tmp_path / "t" / name), *margs]))
        assert not (tmp_path / "t" / name / "fold0.pt").exists()  # --fold 1 trains fold 1 only
        ckpts += ["--ckpt", f"{name}={tmp_path / 't' / name / 'fold1.pt'}"]
    s = _flow(tmp_path / "f", "--dataset", "MUTAG", "--graphs", "5", "--fold", "1", *ckpts)
    assert s["graphs"] == 5 and s["fold"] == 1 and len(s["graph_ids"]) == 5
    for name, r in s["results"].items():
        assert not r["trained"]
        program = load(tmp_path / "f" / name / "program")
        assert program.num_graphs == 5 and program.layers[-2].kind == "pool"
        assert r["int_acc"] == integer.accuracy(program)
        assert r["prediction_differ"] == len(r["agreement"]["prediction_differences"])
    _check_priced(s, tmp_path / "f")


def test_ckpt_arguments_are_checked(tmp_path):
    (tmp_path / "m.pt").write_bytes(b"x")
    assert parse_ckpts([str(tmp_path / "m.pt"), f"dq4={tmp_path / 'm.pt'}"]) == {
        "a2q": str(tmp_path / "m.pt"), "dq4": str(tmp_path / "m.pt")}
    with pytest.raises(ValueError, match="NAME must be one of a2q, int4, dq4"):
        parse_ckpts([f"int8={tmp_path / 'm.pt'}"])
    with pytest.raises(ValueError, match="no checkpoint at"):
        parse_ckpts(["a2q=/nonexistent.pt"])
    assert [label(n) for n in ("a2q", "int4", "dq4-bin")] == ["A2Q", "INT4", "DQ-INT4 (binary input)"]
