"""``a2q sweep --models gcn,gin``: GIN points (graph-level on a TU set), and old GCN-only CSVs still resume."""
import csv
import os
from pathlib import Path

import pytest

from a2q import sweep

ROOT = os.environ.get("A2Q_DATA_ROOT")
HAVE_MUTAG = bool(ROOT) and (Path(ROOT) / "TU" / "MUTAG" / "raw" / "MUTAG_A.txt").is_file()


def test_grid_pairs_models_with_the_datasets_they_support():
    pts = sweep.grid(["KarateClub", "MUTAG"], ["int4"], ["2"], hiddens=None, models=["gcn", "gin"], graphs=8)
    assert [(p.model, p.dataset, p.hidden) for p in pts] == [
        ("gcn", "KarateClub", 16), ("gin", "KarateClub", 64), ("gin", "MUTAG", 64)]  # no GCN on a TU set
    assert pts[2].graph_level and pts[2].graphs == 8 and pts[2].slug == "gin-MUTAG-int4-4-h64"
    assert sweep.panel(pts[2]) == "MUTAG (gin)" and sweep.panel(pts[0]) == "KarateClub"
    args = sweep.train_args(pts[2], "0", 3, Path("r"), None, 1)
    assert args.model == "gin" and args.fold == 0
    with pytest.raises(ValueError, match="no point: models gcn support none of MUTAG"):
        sweep.grid(["MUTAG"], ["int4"], ["2"], models=["gcn"])
    with pytest.raises(ValueError, match="unknown model 'gat'"):
        sweep.grid(["Cora"], ["int4"], ["2"], models=["gat"])


def test_a_csv_written_before_the_model_column_resumes_as_gcn_rows(tmp_path):
    path = tmp_path / "sweep.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(sweep.COLUMNS_GCN_ONLY)
        w.writerow(["Cora" if c == "dataset" else "a2q" if c == "method" else "2" if c == "target" else
                    "ok" if c == "status" else "" for c in sweep.COLUMNS_GCN_ONLY])
    rows = sweep.read_rows(path)
    assert rows[0]["model"] == "gcn" and sweep.row_key(rows[0]) == ("Cora", "a2q", "2", "16", "gcn", "")
    assert sweep.row_key(rows[0]) == sweep.Point("Cora", "a2q", "2").key


def test_graph_level_rows_from_before_the_graphs_column_run_again(tmp_path):
    """Graph-level rows written before the stratified sample priced the lowest test ids: their key matches
    no point, so a resumed sweep reruns them instead of mixing two subsets in one table."""
    path = tmp_path / "sweep.csv"
    old = sweep.COLUMNS_BEFORE_GRAPHS
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(old)
        w.writerow({"dataset": "MUTAG", "method": "int4", "target": "4", "hidden": "64", "status": "ok",
                    "model": "gin"}.get(c, "") for c in old)
    (row,) = sweep.read_rows(path)
    point = sweep.Point("MUTAG", "int4", "4", 64, "gin", graphs=8)
    assert point.graphs_tag == "stratified:8" and sweep.row_key(row) != point.key
    assert sweep.row_key({**row, "graphs": "stratified:8"}) == point.key
    assert sweep.Point("Cora", "a2q", "2").graphs_tag == ""


def test_rtl_points_are_selected_by_dataset_method_target_hidden():
    keys = sweep.parse_rtl("Cora:a2q:2,MUTAG:int4:4:64")
    assert sweep.Point("Cora", "a2q", "2").key[:4] in keys
    assert sweep.Point("MUTAG", "int4", "4", 64, "gin").key[:4] in keys
    assert sweep.Point("Cora", "int4", "4").key[:4] not in keys
    with pytest.raises(ValueError, match="not dataset:method:target"):
        sweep.parse_rtl("Cora:a2q")


@pytest.mark.skipif(not HAVE_MUTAG, reason="MUTAG raw files not found under $A2Q_DATA_ROOT/TU")
def test_graph_level_gin_points_on_mutag(tmp_path):
    points = sweep.grid(["MUTAG"], ["int4", "a2q"], ["4"], hiddens=[16], models=["gin"], graphs=6)
    rows = sweep.run_grid(points, [(4, 4)], tmp_path, seeds="0", epochs=2, progress=False)
    assert all(r["status"] == "ok" and r["model"] == "gin" for r in rows), [r["error"] for r in rows]
    assert {r["method"] for r in rows} == {"int4", "int4-bin", "a2q"}  # one-hot labels: a binary input
    for r in rows:
        assert 0 <= r["int_acc"] <= 1 and r["avg_bits"] > 0 and r["feature_kb"] > 0
        # priced by the cycle model once it runs format-v2 programs; until then the reason is recorded
        assert r.get("cycles_total") or r["error"].startswith("not priced")
    sweep.summarise(rows, tmp_path)
    table = (tmp_path / "sweep.md").read_text()
    assert "| MUTAG (gin) |" in table
    again = sweep.run_grid(points, [(4, 4)], tmp_path, seeds="0", epochs=2, progress=False)
    assert len(again) == len(rows)  # resumed: nothing re-ran
