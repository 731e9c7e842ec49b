"""Pareto front on a hand-made table, and the sweep's CSV columns and resume bookkeeping."""
from pathlib import Path

import pytest

from a2q.pareto import dominates_all, pareto_front
from a2q.sweep import COLUMNS, Point, grid, parse_configs, read_rows, train_args, write_rows


def test_front_on_hand_made_table():
    #            cost  acc
    table = [(100, 0.80),   # A: on the front (cheapest)
             (200, 0.82),   # B: on the front
             (250, 0.81),   # C: dominated by B (costs more, less accurate)
             (200, 0.79),   # D: dominated by B (same cost, less accurate)
             (400, 0.82),   # E: dominated by B (same accuracy, costs more)
             (500, 0.85)]   # F: on the front (most accurate)
    front = pareto_front([c for c, _ in table], [a for _, a in table])
    assert front == [True, True, False, False, False, True]
    assert pareto_front([5, 5], [0.5, 0.5]) == [True, True]  # equal points do not dominate each other


def test_dominates_all():
    assert dominates_all([(1, 0.9)], [(2, 0.8), (1, 0.9)])
    assert not dominates_all([(1, 0.7)], [(2, 0.8)])


def test_grid_and_configs():
    pts = grid(["Cora"], ["fp32", "a2q", "int4", "dq3"], ["1.5", "2"])
    assert [p.key[:3] for p in pts] == [("Cora", "fp32", "32"), ("Cora", "a2q", "1.5"), ("Cora", "a2q", "2"),
                                        ("Cora", "int4", "4"), ("Cora", "dq3", "3")]
    assert {p.key[3] for p in pts} == {"16"}
    wide = grid(["Cora"], ["a2q", "int4"], ["2"], hiddens=[16, 64])
    assert [(p.method, p.hidden) for p in wide] == [("a2q", 16), ("int4", 16), ("a2q", 64), ("int4", 64)]
    assert wide[2].slug == "Cora-a2q-2-h64" and train_args(wide[2], "0", 10, Path("r"), None, 1).hidden == 64
    args = [train_args(p, "0", 10, Path("run"), None, 1) for p in pts[3:]]
    assert [(a.method, a.bits) for a in args] == [("uniform", 4), ("dq", 3)]
    with pytest.raises(ValueError, match="unknown method 'int9'"):
        grid(["Cora"], ["int9"], ["2"])
    assert Point("Cora", "a2q", "1.5").slug == "Cora-a2q-1p5"
    assert parse_configs("16x16,32X8") == [(16, 16), (32, 8)]


def test_csv_round_trip_keeps_columns(tmp_path):
    path = tmp_path / "sweep.csv"
    write_rows(path, [{"dataset": "Cora", "method": "a2q", "target": "2", "status": "ok", "acc_mean": 0.8}])
    rows = read_rows(path)
    assert list(rows[0]) == COLUMNS and rows[0]["acc_mean"] == "0.8"
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_tiny_sweep_on_karate_club_resumes_and_records_crashes(tmp_path):
    """Two points on KarateClub: rows per config, then a rerun skips them; a bad point is a row, not a crash."""
    from a2q.sweep import run_grid, summarise

    points = grid(["KarateClub"], ["a2q", "int4"], ["2"])
    rows = run_grid(points, [(4, 4), (8, 4)], tmp_path, seeds="0", epochs=15, progress=False)
    ok = [r for r in rows if r["status"] == "ok"]
    # A2Q, INT4 as trained and INT4 with the binary-input encoding, on both configs
    assert len(ok) == 6 and {(r["lanes"], r["pes"]) for r in ok} == {(4, 4), (8, 4)}
    assert {r["method"] for r in ok} == {"a2q", "int4", "int4-bin"}
    on_disk = read_rows(tmp_path / "sweep.csv")
    assert list(on_disk[0]) == COLUMNS and len(on_disk) == 6
    assert all(float(r["cycles_total"]) > 0 and float(r["avg_bits"]) > 0 for r in on_disk)
    by = {(r["method"], r["lanes"]): r for r in on_disk}
    assert float(by[("int4-bin", "4")]["cycles_total"]) < float(by[("int4", "4")]["cycles_total"])
    assert by[("int4-bin", "4")]["int_acc"] == by[("int4", "4")]["int_acc"]
    mtime = (tmp_path / "sweep.csv").stat().st_mtime_ns
    again = run_grid(points, [(4, 4), (8, 4)], tmp_path, seeds="0", epochs=15, progress=False)
    assert len(again) == 6 and (tmp_path / "sweep.csv").stat().st_mtime_ns == mtime  # nothing re-run
    summarise(again, tmp_path)
    a2q = [r for r in again if r["method"] == "a2q" and r["lanes"] == "4"][0]
    assert a2q["speedup_vs_int4-bin"] == pytest.approx(float(by[("int4-bin", "4")]["cycles_total"]) /
                                                       float(a2q["cycles_total"]))
    assert len(a2q["speedup_layers_vs_int4"]) == 2
    assert "vs INT4 (binary input)" in (tmp_path / "sweep.md").read_text()
    bad = run_grid([Point("NoSuchSet", "a2q", "2")], [(4, 4)], tmp_path, seeds="0", epochs=15, progress=False)
    crash = [r for r in bad if r["status"] == "error"]
    assert len(crash) == 1 and "unknown dataset" in crash[0]["error"]
    summary = summarise(bad, tmp_path)
    assert (tmp_path / "sweep.png").exists() and (tmp_path / "sweep.md").exists()
    assert "KarateClub" in summary["datasets"]
