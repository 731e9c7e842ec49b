"""Dataset loading: the built-in KarateClub, error cases, and Cora/CiteSeer when A2Q_DATA_ROOT has them."""
import os
import time
from pathlib import Path

import pytest
import torch

from a2q.data import KNOWN, DatasetError, canonical_name, karate_split, load_dataset, planetoid_raw_files

DATA_ROOT = os.environ.get("A2Q_DATA_ROOT")


def _has(name):
    return DATA_ROOT is not None and all((Path(DATA_ROOT) / name / "raw" / f).is_file()
                                         for f in planetoid_raw_files(name))


def test_karate_club_builtin_and_split():
    ds = load_dataset("karateclub")
    data, nf, nc, name = ds
    assert name == "KarateClub" and (nf, nc) == (34, 4)
    assert data.x.shape == (34, 34) and data.num_nodes == 34 and data.edge_index.shape == (2, 156)
    tr, va, te = data.train_mask, data.val_mask, data.test_mask
    assert (tr.sum(), va.sum(), te.sum()) == (16, 7, 11)
    assert not (tr & va).any() and not (tr & te).any() and not (va & te).any() and bool((tr | va | te).all())
    for c in range(4):  # stratified: every class is in the training set
        assert bool((data.y[tr] == c).any())
    again = load_dataset("KarateClub").data  # deterministic
    assert torch.equal(again.train_mask, tr) and torch.equal(again.test_mask, te)
    assert load_dataset("KarateClub")[0] is not None  # tuple access used by the exporter


def test_karate_split_other_seed_differs():
    y = torch.arange(40) % 2
    a, b = karate_split(y, seed=0), karate_split(y, seed=1)
    assert int(a[0].sum()) == 20 and not torch.equal(a[0], b[0])


def test_unknown_name_lists_known():
    with pytest.raises(DatasetError) as e:
        load_dataset("Coraa")
    for k in KNOWN:
        assert k in str(e.value)
    assert canonical_name("citeseer") == "CiteSeer"


def test_missing_files_fail_fast_with_root_and_files(tmp_path, monkeypatch):
    monkeypatch.setenv("A2Q_OFFLINE", "1")
    (tmp_path / "root" / "PubMed" / "raw").mkdir(parents=True)
    (tmp_path / "root" / "PubMed" / "raw" / "ind.pubmed.x").write_bytes(b"x")
    t0 = time.perf_counter()
    with pytest.raises(DatasetError) as e:
        load_dataset("PubMed", tmp_path / "root", cache_dir=tmp_path / "cache")
    assert time.perf_counter() - t0 < 5
    msg = str(e.value)
    assert str(tmp_path / "root" / "PubMed" / "raw") in msg and "ind.pubmed.allx" in msg
    assert "ind.pubmed.x," not in msg.split("(expected")[0]  # only the missing ones are listed as missing
    assert not (tmp_path / "root" / "PubMed" / "processed").exists()


def test_root_not_a_directory(tmp_path):
    with pytest.raises(DatasetError, match="not a directory"):
        load_dataset("Cora", tmp_path / "nope")


@pytest.mark.skipif(not _has("Cora"), reason="A2Q_DATA_ROOT unset or without Cora/raw")
def test_cora_public_split_and_root_stays_raw_only(tmp_path):
    before = sorted(p.name for p in (Path(DATA_ROOT) / "Cora").iterdir())
    ds = load_dataset("Cora", DATA_ROOT, cache_dir=tmp_path)
    d = ds.data
    assert (d.num_nodes, ds.num_features, ds.num_classes) == (2708, 1433, 7)
    assert d.edge_index.shape == (2, 10556)
    assert (int(d.train_mask.sum()), int(d.val_mask.sum()), int(d.test_mask.sum())) == (140, 500, 1000)
    rs = d.x.sum(1)  # row-normalised bag of words
    assert torch.allclose(rs[rs > 0], torch.ones_like(rs[rs > 0]))
    assert (tmp_path / "Cora" / "processed").is_dir()
    assert sorted(p.name for p in (Path(DATA_ROOT) / "Cora").iterdir()) == before
