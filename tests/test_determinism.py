"""Determinism: the same seed, dataset and version (and thread count) give the same program hash, in this
process and in a fresh one through the CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from a2q import program as prog

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["--dataset", "KarateClub", "--method", "a2q", "--target-bits", "2", "--epochs", "40", "--seeds", "0",
         "--threads", "1"]


def _train_export(out: Path) -> prog.Program:
    from a2q.export import export_checkpoint
    from a2q.trainer import parse_train_args, run_train

    run_train(parse_train_args([*TRAIN, "--out", str(out), "--no-progress"]))
    return export_checkpoint(out / "model.pt")


def test_same_seed_gives_the_same_program_hash(tmp_path):
    a, b = _train_export(tmp_path / "a"), _train_export(tmp_path / "b")
    assert a.meta["checkpoint"] != b.meta["checkpoint"]  # provenance differs, the hash ignores it
    assert prog.content_hash(a) == prog.content_hash(b)
    other = _train_export_seed(tmp_path / "c", seed=1)
    assert prog.content_hash(other) != prog.content_hash(a)  # the hash does see a different model


def _train_export_seed(out: Path, seed: int) -> prog.Program:
    from a2q.export import export_checkpoint
    from a2q.trainer import parse_train_args, run_train

    argv = [*TRAIN[:-4], "--seeds", str(seed), "--threads", "1", "--out", str(out), "--no-progress"]
    run_train(parse_train_args(argv))
    return export_checkpoint(out / "model.pt")


def test_a_fresh_process_through_the_cli_gives_the_same_hash(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run = lambda *argv: subprocess.run([sys.executable, "-m", "a2q.cli", *argv], env=env, cwd=ROOT,  # noqa: E731
                                       capture_output=True, text=True, check=True, timeout=300)
    run("train", *TRAIN, "--out", str(tmp_path / "cli"), "--no-progress")
    run("export", str(tmp_path / "cli" / "model.pt"), "-o", str(tmp_path / "program"))
    here = _train_export(tmp_path / "here")
    assert prog.content_hash(prog.load(tmp_path / "program")) == prog.content_hash(here)
    saved = prog.load(prog.save(here, tmp_path / "saved"))
    assert prog.content_hash(saved) == prog.content_hash(here)  # save/load keeps it
