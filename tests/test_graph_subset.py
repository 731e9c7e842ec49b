"""Which test graphs a graph-level program runs on (``a2q.data.graph_subset``).

Regression: TU files store their graphs sorted by class, and the exporter took the lowest ``--graphs``
test ids of a fold, so a REDDIT-BINARY 64-graph program held 51 graphs of class 1 (all from the file's
first run) and 13 of class 0, and PROTEINS, IMDB-BINARY and NCI1 programs a single class: accuracies
on it said nothing about the model (docs/training.md, "Which test graphs")."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from a2q.data import graph_subset, stratified_folds

ROOT = os.environ.get("A2Q_DATA_ROOT")
HAVE_MUTAG = bool(ROOT) and (Path(ROOT) / "TU" / "MUTAG" / "raw" / "MUTAG_A.txt").is_file()


def _class_sorted_labels():
    """A REDDIT-BINARY-like file: 50 of class 1, 100 of class 0, 50 of class 1, in that order."""
    return torch.tensor([1] * 50 + [0] * 100 + [1] * 50)


def test_first_ids_of_a_class_sorted_fold_are_one_class_and_the_stratified_sample_is_not():
    y = _class_sorted_labels()
    test = stratified_folds(y, 10, 12345)[0][2]
    k = int((test < 50).sum())  # the fold's graphs in the file's first run
    assert 3 <= k < len(test) // 2
    first = graph_subset(test, y, k, order="first")
    assert first.tolist() == sorted(test.tolist())[:k]
    assert set(y[first].tolist()) == {1}  # the bug: k graphs of class 1, all from the first run
    for n in range(1, len(test) + 1):  # every size: each class in proportion, within one graph
        sub = graph_subset(test, y, n)
        counts = torch.bincount(y[sub], minlength=2).numpy()
        share = np.bincount(y[test].numpy(), minlength=2) / len(test)
        assert np.all(np.abs(counts - n * share) <= 1), (n, counts)
        assert len(set(sub.tolist())) == n and set(sub.tolist()) <= set(test.tolist())
        assert sub.tolist() == sorted(sub.tolist())
    # inside class 1 the sample reaches both runs of the file (not only the lowest ids)
    ones = graph_subset(test, y, 10)
    ones = ones[y[ones] == 1]
    assert (ones < 50).any() and (ones >= 150).any()


def test_graph_subset_is_fixed_by_the_seed_whole_set_when_n_covers_it_and_refuses_bad_input():
    y = _class_sorted_labels()
    test = stratified_folds(y, 10, 12345)[1][2]
    assert graph_subset(test, y, 8, seed=3).tolist() == graph_subset(test, y, 8, seed=3).tolist()
    assert graph_subset(test, y, None).tolist() == graph_subset(test, y, 10 ** 6).tolist() == sorted(test.tolist())
    with pytest.raises(ValueError, match="graph order"):
        graph_subset(test, y, 4, order="random")
    with pytest.raises(ValueError, match=">= 1"):
        graph_subset(test, y, 0)


@pytest.mark.skipif(not HAVE_MUTAG, reason="MUTAG raw files not found under $A2Q_DATA_ROOT/TU")
def test_exported_graph_batch_is_the_stratified_sample(tmp_path):
    from a2q.export import export_checkpoint
    from a2q.trainer import parse_train_args, run_train

    run_train(parse_train_args(["--model", "gin", "--dataset", "MUTAG", "--out", str(tmp_path), "--no-progress",
                                "--method", "uniform", "--bits", "4", "--threads", "1", "--folds", "1",
                                "--epochs", "1", "--layers", "1", "--hidden", "8"]))
    from a2q.data import load_graph_set

    y = load_graph_set("MUTAG", ROOT).y
    test = stratified_folds(y, 10, 12345)[0][2]
    program = export_checkpoint(tmp_path / "fold0.pt", graphs=9)
    assert program.meta["graph_ids"] == graph_subset(test, y, 9).tolist()
    assert program.meta["graph_order"] == "stratified"
    assert program.arrays["labels"].tolist() == y[program.meta["graph_ids"]].tolist()
    assert sorted(np.bincount(program.arrays["labels"], minlength=2).tolist()) == [3, 6]  # fold 0: 6 and 12
    legacy = export_checkpoint(tmp_path / "fold0.pt", graphs=9, graph_order="first")
    assert legacy.meta["graph_ids"] == sorted(test.tolist())[:9]
