"""The sweep's executors and its resume: local and Ray give the same rows, and a sweep killed with
SIGKILL in the middle of a point resumes without losing, duplicating or half-keeping a row."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from a2q import sweep

ROOT = Path(__file__).resolve().parents[1]
GRID = dict(datasets=["KarateClub"], methods=["fp32", "int4", "a2q"], targets=["2"])
RUN = dict(configs=[(4, 4)], seeds="0", epochs=40, progress=False)


def _rows(out: Path) -> list[dict]:
    """The CSV's rows without the wall time, in grid order."""
    rows = [{k: v for k, v in r.items() if k != "wall_s"} for r in sweep.read_rows(out / "sweep.csv")]
    return sorted(rows, key=lambda r: (r["dataset"], r["method"], r["target"], r["lanes"], r["pes"]))


@pytest.fixture(scope="module")
def local_rows(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    sweep.run_grid(sweep.grid(**GRID), out=out, **RUN)
    rows = _rows(out)
    assert [r["status"] for r in rows] == ["ok"] * 4, rows   # fp32, a2q, int4 and int4 (binary input)
    return rows


def test_resume_skips_finished_points(local_rows, tmp_path):
    out = tmp_path / "s"
    sweep.run_grid(sweep.grid(**{**GRID, "methods": ["fp32"]}), out=out, **RUN)
    first = (out / "sweep.csv").read_text()
    rows = sweep.run_grid(sweep.grid(**GRID), out=out, **RUN)
    assert len(rows) == 4 and (out / "sweep.csv").read_text().startswith(first)
    assert _rows(out) == local_rows


def test_half_written_rows_are_dropped(tmp_path, local_rows):
    out = tmp_path / "s"
    out.mkdir()
    sweep.write_rows(out / "sweep.csv", local_rows)
    text = (out / "sweep.csv").read_text()
    (out / "sweep.csv").write_text(text[: len(text) - 20])  # a torn last line
    rows = sweep.read_rows(out / "sweep.csv")
    assert len(rows) == 3 and all(len(r) == len(sweep.COLUMNS) for r in rows)


def test_sigkill_mid_point_resumes_without_lost_duplicated_or_torn_rows(local_rows, tmp_path):
    """Really SIGKILL a sweep while its second point trains, then resume it."""
    out = tmp_path / "s"
    cmd = [sys.executable, "-m", "a2q.cli", "sweep", "--datasets", "KarateClub", "--methods", "fp32,int4,a2q",
           "--targets", "2", "--configs", "4x4", "--seeds", "0", "--epochs", "400", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    points = out / "points"
    deadline = time.monotonic() + 120
    try:
        # the second point's directory appears once the first point's rows are in the CSV
        while not (points.is_dir() and len(list(points.iterdir())) >= 2):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the sweep never reached its second point"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed = sweep.read_rows(out / "sweep.csv")
    assert [(r["method"], r["status"]) for r in killed] == [("fp32", "ok")]  # finished point kept, no torn row
    lines = (out / "sweep.csv").read_text().splitlines()
    assert len(lines) == 2 and lines[0] == ",".join(sweep.COLUMNS)
    # resume with the same epochs as the reference so the numbers can be compared
    resumed = sweep.run_grid(sweep.grid(**GRID), out=out, **{**RUN, "epochs": 400})
    assert sorted(r["method"] for r in resumed) == ["a2q", "fp32", "int4", "int4-bin"]  # once each
    ref = tmp_path / "ref"
    sweep.run_grid(sweep.grid(**GRID), out=ref, **{**RUN, "epochs": 400})
    assert _rows(out) == _rows(ref)


def test_ray_missing_gives_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(sweep.SweepError, match=r"pip install -e '\.\[cluster\]'"):
        sweep.run_grid(sweep.grid(**GRID), out=tmp_path, executor="ray", **RUN)


@pytest.mark.slow
def test_ray_executor_gives_the_local_rows(local_rows, tmp_path, monkeypatch):
    # a single-machine Ray on loopback only (read when Ray is imported)
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = pytest.importorskip("ray", reason="Ray is the optional extra: pip install -e '.[cluster]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}})
    try:
        rows = sweep.run_grid(sweep.grid(**GRID), out=tmp_path, executor="ray", **RUN)
    finally:
        ray.shutdown()
    assert all(r["status"] == "ok" for r in rows), rows
    assert _rows(tmp_path) == local_rows  # same seeds, same numbers


def test_rows_carry_latency_at_the_stated_clock_and_fit(local_rows, tmp_path):
    """Every priced row has µs per inference = model cycles / clock (no routed Fmax exists for a fitted
    KarateClub config, so the clock is the stated one) and whether its config fits the default part;
    the markdown shows both, and a CSV written before these columns still reads."""
    priced = [r for r in local_rows if r["method"] != "fp32"]
    assert priced
    for r in priced:
        assert float(r["clock_mhz"]) == sweep.DEFAULT_CLOCK_MHZ and r["clock_source"] == "stated"
        assert float(r["us_per_inference"]) == pytest.approx(float(r["cycles_total"]) / sweep.DEFAULT_CLOCK_MHZ)
        assert r["fits"] == "ecp5-85k: yes"
    md = sweep.markdown_table(priced, {"datasets": {}})
    assert "µs/inference" in md and f"@ {sweep.DEFAULT_CLOCK_MHZ:g} MHz (stated)" in md
    old = tmp_path / "sweep.csv"
    cols = sweep.COLUMNS_BEFORE_LATENCY
    old.write_text(",".join(cols) + "\n" + ",".join(str(local_rows[0].get(c, "")) for c in cols) + "\n")
    (row,) = sweep.read_rows(old)
    assert "us_per_inference" not in row and "| - | - |" in sweep.markdown_table([row], {"datasets": {}})
