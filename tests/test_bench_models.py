"""scripts/bench_models.py: a tagged variant gets its own rows and run folders, its extra training arguments
reach `a2q train`, and the A2Q-TG method trains without the Local Gradient (KarateClub, 2 epochs)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from a2q.ckpt import load_checkpoint

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_models.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_models", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tagged_variant_rows_and_arguments(tmp_path):
    bench = load_bench()
    common = ["--node", "KarateClub:gin", "--seeds", "0", "--epochs", "2", "--threads", "1", "--out", str(tmp_path)]
    assert bench.main([*common, "--methods", "FP32"]) == 0
    assert bench.main([*common, "--methods", "FP32,A2Q-TG", "--tag", "h8", "--train-args", "--hidden 8",
                       "--a2q-args", "--init-bits 3"]) == 0
    runs = json.loads((tmp_path / "bench_models.json").read_text())["runs"]
    assert set(runs) == {"gin/KarateClub/FP32", "gin/KarateClub[h8]/FP32", "gin/KarateClub[h8]/A2Q-TG"}
    assert "--hidden" not in runs["gin/KarateClub/FP32"]["argv"]
    assert runs["gin/KarateClub[h8]/FP32"]["hidden"] == 8
    tg = runs["gin/KarateClub[h8]/A2Q-TG"]
    assert {"--no-local-gradient", "--init-bits", "--hidden"} <= set(tg["argv"])
    assert "--init-bits" not in runs["gin/KarateClub[h8]/FP32"]["argv"]
    assert (tmp_path / "runs_models" / "gin-KarateClub[h8]-A2Q-TG" / "metrics.json").exists()
    model, _ = load_checkpoint(tmp_path / "runs_models" / "gin-KarateClub[h8]-A2Q-TG" / "model.pt")
    assert model.config["local_gradient"] is False and model.config["hidden"] == 8
    md = (tmp_path / "bench_models.md").read_text()
    assert "| gin | KarateClub[h8] | A2Q-TG |" in md
    assert "gin KarateClub[h8], A2Q-TG at" in md
