"""Mutation fuzzing of a real exported program (KarateClub A2Q): every mutant loads or raises
ProgramError, and `a2q infer` / `a2q sim` answer it with exit 0, or exit 2 and one line, never a
traceback; `a2q sim` validates before it generates or builds anything. (scripts/fuzz_programs.py runs
thousands of mutants and also simulates loadable ones.)"""
from __future__ import annotations

import collections
import contextlib
import io

import numpy as np
import pytest

from a2q import cli, fuzz
from a2q import program as prog

COUNT = 240


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from a2q.export import export_checkpoint
    from a2q.trainer import parse_train_args, run_train

    root = tmp_path_factory.mktemp("fuzz")
    run_train(parse_train_args(["--dataset", "KarateClub", "--method", "a2q", "--epochs", "30", "--seeds", "0",
                                "--out", str(root / "run"), "--no-progress"]))
    return prog.save(export_checkpoint(root / "run" / "model.pt"), root / "program"), root


def _cli(argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(argv)  # an exception escaping here would be a traceback for the user
    return rc, err.getvalue().strip()


def test_mutants_load_or_raise_program_error_and_the_cli_never_tracebacks(exported, monkeypatch):
    import sim.simulate

    def no_build(*a, **k):
        raise AssertionError("a2q sim went on to generate Verilog for a program that does not load")

    monkeypatch.setattr(sim.simulate, "verilog_for", no_build)
    src, root = exported
    rng = np.random.default_rng(2024)
    seen = collections.Counter()
    for i in range(COUNT):
        kind = fuzz.KINDS[i % len(fuzz.KINDS)]  # every kind about equally often
        desc = fuzz.mutate(src, root / "m", rng, kind)
        verdict = fuzz.check(root / "m")  # anything but ProgramError propagates and fails the test
        seen[(kind, verdict)] += 1
        rc, err = _cli(["infer", str(root / "m"), "--out", str(root / "infer.json")])
        if verdict == "program_error":
            assert rc == 2 and len(err.splitlines()) == 1 and "program field" in err, (desc, err)
            rc, err = _cli(["sim", str(root / "m")])
            assert rc == 2 and len(err.splitlines()) == 1 and "program field" in err, (desc, err)
        else:
            assert rc == 0, (desc, err)
    # the mutations reach the checks: every kind was rejected at least once
    assert {k for (k, v) in seen if v == "program_error"} == set(fuzz.KINDS), seen
    assert sum(seen.values()) == COUNT


def test_restamped_mutants_get_past_the_hash_check(exported, tmp_path):
    """A re-stamped dtype change is caught by the dtype rule, not by the content hash."""
    src, _ = exported
    for seed in range(20):
        desc = fuzz.mutate(src, tmp_path / "m", np.random.default_rng(seed), "dtype")
        try:
            prog.load(tmp_path / "m")
        except prog.ProgramError as e:
            assert "content hash" not in str(e), desc
