"""Dataset loading (real Planetoid files when present, KarateClub always) and short training runs."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from a2q.data import DatasetError, load_dataset
from a2q.trainer import parse_seeds, parse_train_args, run_train

ROOT = os.environ.get("A2Q_DATA_ROOT")
HAVE_CORA = bool(ROOT) and (Path(ROOT) / "Cora" / "raw" / "ind.cora.x").is_file()
HAVE_MUTAG = bool(ROOT) and (Path(ROOT) / "TU" / "MUTAG" / "raw" / "MUTAG_A.txt").is_file()


def test_karate_club_needs_no_files_and_has_a_split():
    d = load_dataset("KarateClub")
    assert d.num_nodes == 34 and d.num_classes == 4
    assert int(d.train_mask.sum()) == 4
    assert not (d.train_mask & d.val_mask).any() and not (d.val_mask & d.test_mask).any()
    assert int((d.train_mask | d.val_mask | d.test_mask).sum()) == 34


def test_unknown_and_missing_datasets_say_what_is_wrong(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset 'cora'.*Cora"):
        load_dataset("cora", tmp_path)
    with pytest.raises(DatasetError, match=r"missing ind\.pubmed\.x.*" + str(tmp_path)):
        load_dataset("PubMed", tmp_path)


@pytest.mark.skipif(not HAVE_CORA, reason="Cora raw files not found under $A2Q_DATA_ROOT")
def test_cora_public_split_without_writing_into_the_data_root():
    before = sorted(p.name for p in (Path(ROOT) / "Cora").iterdir())
    d = load_dataset("Cora")
    assert (d.num_nodes, d.num_features, d.num_classes) == (2708, 1433, 7)
    assert (int(d.train_mask.sum()), int(d.val_mask.sum()), int(d.test_mask.sum())) == (140, 500, 1000)
    assert sorted(p.name for p in (Path(ROOT) / "Cora").iterdir()) == before  # raw stays raw-only


@pytest.mark.skipif(not HAVE_MUTAG, reason="MUTAG raw files not found under $A2Q_DATA_ROOT/TU")
def test_a_job_waits_for_the_processing_lock_before_pyg_reads_the_cache(tmp_path, monkeypatch):
    """PyG writes its processed file in place: a second job that started meanwhile read it half-written
    (two benchmark jobs on a fresh cache). While one job holds the lock, another neither reads nor writes."""
    import time

    from a2q import data

    monkeypatch.setattr(data, "CACHE", tmp_path)
    required = [f"MUTAG_{s}.txt" for s in ("A", "graph_indicator", "graph_labels")]
    cache_root = data._raw_copy(Path(ROOT), "TU", "MUTAG", required)  # the folder the job will use
    code = ("import torch_geometric.datasets; from a2q.data import load_graph_set; "
            "print('ready', flush=True); print(load_graph_set('MUTAG').num_graphs)")
    job = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ, A2Q_CACHE=str(tmp_path)),
                           stdout=subprocess.PIPE, text=True)
    try:
        with data.processing_lock(cache_root):
            assert job.stdout.readline().strip() == "ready"
            time.sleep(3)  # MUTAG processes in well under a second once the job may go on
            assert job.poll() is None and not (cache_root / "MUTAG" / "processed").exists()
        assert job.communicate(timeout=120)[0].split() == ["188"] and job.returncode == 0
    finally:
        job.kill()


def test_parse_seeds():
    assert parse_seeds("0-3") == [0, 1, 2, 3] and parse_seeds("7") == [7] and parse_seeds("0,2,5") == [0, 2, 5]
    assert parse_seeds("0-2,7,1") == [0, 1, 2, 7]
    for bad in (",", "x", "3-1", "1-"):
        with pytest.raises(ValueError, match="seeds"):
            parse_seeds(bad)


def _train(tmp_path, *extra):
    return run_train(parse_train_args(["--dataset", "KarateClub", "--epochs", "40", "--seeds", "0-1", "--out",
                                   str(tmp_path), "--no-progress", *extra]))


@pytest.mark.parametrize("method", [["--method", "a2q", "--target-bits", "2.5"],
                                    ["--method", "uniform", "--bits", "3"], ["--method", "dq", "--bits", "3"],
                                    ["--method", "fp32"]])
def test_training_writes_metrics_and_checkpoints(tmp_path, method):
    m = _train(tmp_path, *method)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("test_acc_mean", "test_acc_std", "avg_bits", "per_seed", "wall_s", "threads", "seeds"):
        assert key in on_disk
    assert (tmp_path / "model.pt").exists() and (tmp_path / "seed0.pt").exists() and (tmp_path / "seed1.pt").exists()
    assert len(m["per_seed"]) == 2 and 0.0 <= m["test_acc_mean"] <= 1.0
    if method[1] == "a2q":
        assert m["avg_bits"] <= 2.5 + 1e-6
        for key in ("compression_ratio", "bits_histogram", "degree_bits_spearman", "layer_avg_bits"):
            assert key in m
        assert sum(m["bits_histogram"].values()) == 2 * 34
    if method[1] in ("uniform", "dq"):
        assert m["avg_bits"] == 3.0 and m["bits"] == 3


def test_feature_memory_target_in_kb(tmp_path):
    # KarateClub: 34 one-hot rows (exact at one bit: 34 * 34 bits) and 16 hidden features per node;
    # 0.30 KB leaves the hidden layer about 2.4 bits per node
    m = _train(tmp_path, "--method", "a2q", "--target-kb", "0.30")
    for row in m["per_seed"]:
        assert row["target_met"] and row["feature_kb"] <= 0.30 + 1e-9
        assert row["layer_avg_bits"][0] == 1.0
        assert row["feature_kb"] == pytest.approx(34 * (34 + 16 * row["layer_avg_bits"][1]) / 8 / 1024)


@pytest.mark.parametrize("method", [["--method", "a2q", "--target-bits", "3"], ["--method", "dq", "--bits", "4"]])
def test_exported_program_agrees_with_fake_quant(tmp_path, method):
    """Integer-only inference of the exported program against the fake-quant model (KarateClub)."""
    import torch

    from a2q import integer
    from a2q.ckpt import load_checkpoint
    from a2q.export import export_checkpoint

    _train(tmp_path, *method)
    program = export_checkpoint(tmp_path / "model.pt")
    model, meta = load_checkpoint(tmp_path / "model.pt")
    fq = model.fakequant_logits(load_dataset("KarateClub")).argmax(1).numpy()
    ints = integer.logits(program).argmax(1).numpy()
    assert (fq == ints).mean() >= 0.97
    mask = program.arrays["test_mask"]
    assert abs(integer.accuracy(program) - float((fq[mask] == program.arrays["labels"][mask]).mean())) <= 0.05
    np.testing.assert_array_equal(program.arrays["expected_out"], integer.logits(program).numpy())
    assert torch.equal(torch.as_tensor(program.arrays["x"]).long(),
                       torch.as_tensor(model.quantized_input(load_dataset("KarateClub"))))


@pytest.mark.skipif(not HAVE_CORA, reason="Cora raw files not found under $A2Q_DATA_ROOT")
def test_cora_integer_program_matches_fake_quant_accuracy(tmp_path):
    from a2q import integer
    from a2q.export import export_checkpoint

    m = run_train(parse_train_args(["--dataset", "Cora", "--epochs", "100", "--seeds", "0", "--out", str(tmp_path),
                                "--no-progress"]))
    program = export_checkpoint(tmp_path / "model.pt")
    assert abs(integer.accuracy(program) - m["per_seed"][0]["test_acc"]) <= 0.003
