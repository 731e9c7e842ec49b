"""a2q.train: seeds parsing, argument errors, short KarateClub runs writing checkpoints and metrics.json."""
import argparse
import json
import os
from pathlib import Path

import pytest

from a2q.checkpoint import load_checkpoint
from a2q.data import planetoid_raw_files
from a2q.train import add_train_arguments, parse_seeds, run_train

REQUIRED = {"test_acc_mean", "test_acc_std", "avg_bits", "layer_avg_bits", "compression_ratio", "bits_histogram",
            "degree_bits_spearman", "per_seed", "wall_s", "threads", "torch_version", "dataset", "method",
            "seeds", "seconds_per_seed_mean", "test_acc_max_over_epochs_mean"}


def _args(*argv):
    p = argparse.ArgumentParser()
    add_train_arguments(p)
    return p.parse_args([*argv, "--no-progress"])


def test_parse_seeds():
    assert parse_seeds("3") == [3]
    assert parse_seeds("0-9") == list(range(10))
    assert parse_seeds("0,1,5") == [0, 1, 5]
    assert parse_seeds("0-2,7,1") == [0, 1, 2, 7]
    for bad in ("a", "5-2", "", "1-x"):
        with pytest.raises(ValueError):
            parse_seeds(bad)


def test_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="--bits"):
        run_train(_args("--dataset", "KarateClub", "--method", "uniform", "--out", str(tmp_path)))
    with pytest.raises(ValueError, match="--bits is for"):
        run_train(_args("--dataset", "KarateClub", "--method", "a2q", "--bits", "4", "--out", str(tmp_path)))
    with pytest.raises(ValueError, match="target"):
        run_train(_args("--dataset", "KarateClub", "--method", "fp32", "--target-bits", "2", "--out", str(tmp_path)))


@pytest.mark.parametrize("method", [["--method", "a2q", "--target-bits", "3"], ["--method", "uniform", "--bits", "8"],
                                    ["--method", "fp32"]])
def test_karate_training_writes_metrics_and_checkpoints(tmp_path, method):
    out = tmp_path / "run"
    m = run_train(_args("--dataset", "KarateClub", *method, "--seeds", "0,1", "--epochs", "30", "--hidden", "8",
                        "--out", str(out)))
    on_disk = json.loads((out / "metrics.json").read_text())
    assert REQUIRED <= set(on_disk)
    assert on_disk["test_acc_mean"] == pytest.approx(m["test_acc_mean"])
    assert 0.0 <= m["test_acc_mean"] <= 1.0 and m["threads"] == 1 and len(m["per_seed"]) == 2
    assert {p.name for p in out.iterdir()} >= {"seed0.pt", "seed1.pt", "model.pt", "metrics.json"}
    _model, meta = load_checkpoint(out / "model.pt")
    assert meta["dataset"] == "KarateClub" and meta["seed"] in (0, 1) and meta["hidden"] == 8
    assert meta["method"] == method[1] and "fakequant_test_acc" in meta
    if method[1] == "fp32":
        assert m["avg_bits"] == 32.0 and m["compression_ratio"] == 1.0
    else:
        bits = m["avg_bits"]
        assert 1.0 <= bits <= 8.0 and m["compression_ratio"] == pytest.approx(32.0 / bits)
        assert sum(m["bits_histogram"]["all"].values()) == 2 * 34
    if method[1] == "uniform":
        assert m["avg_bits"] == 8.0 and m["weight_bits"] == 8
    if method[1] == "a2q":
        assert m["penalty"]["unit"] == "bits" and m["penalty"]["target"] == 3.0
        assert all(r["avg_bits"] <= 3.0 for r in m["per_seed"] if r["constraint_met"])


ROOT = os.environ.get("A2Q_DATA_ROOT")


@pytest.mark.slow
@pytest.mark.skipif(ROOT is None or not all((Path(ROOT) / "Cora" / "raw" / f).is_file()
                                            for f in planetoid_raw_files("Cora")),
                    reason="A2Q_DATA_ROOT unset or without Cora/raw")
def test_cora_a2q_defaults_one_seed(tmp_path, monkeypatch):
    """The CLI defaults reach the target region on one seed (10-20 s)."""
    monkeypatch.setenv("A2Q_CACHE_DIR", str(tmp_path / "cache"))
    m = run_train(_args("--dataset", "Cora", "--method", "a2q", "--seeds", "0", "--out", str(tmp_path / "a2q")))
    assert m["avg_bits"] <= 2.0 and m["layer_avg_bits"][0] == 1.0
    assert m["test_acc_mean"] >= 0.78
