"""``a2q flow``, the main job, end to end on KarateClub: train, export, generate Verilog, price, simulate."""
from __future__ import annotations

import argparse
import json

import pytest

from a2q.cycle_model import cycles
from a2q.flow import add_flow_arguments, run_flow
from a2q.program import load


def _flow(tmp_path, *extra):
    p = argparse.ArgumentParser()
    add_flow_arguments(p)
    args = p.parse_args(["--dataset", "KarateClub", "--seeds", "0", "--epochs", "20", "--lanes", "4", "--pes", "4",
                         "--out", str(tmp_path), *extra])
    return run_flow(args)


def test_flow_without_simulation_prices_both_programs(tmp_path):
    s = _flow(tmp_path, "--sim", "none")
    assert json.loads((tmp_path / "flow.json").read_text())["results"].keys() == {"a2q", "int4", "int4-bin"}
    assert (tmp_path / "a2q_accel.v").stat().st_size > 0
    res = s["results"]
    for name in ("a2q", "int4", "int4-bin"):
        program = load(tmp_path / name / "program")
        assert res[name]["cycles"] == cycles(program, 4, 4).total
        assert res[name]["avg_bits"] == pytest.approx(program.avg_bits())
    # KarateClub's input is one-hot: the fair baseline stores it at one bit, with the same integer accuracy
    naive, fair = load(tmp_path / "int4" / "program"), load(tmp_path / "int4-bin" / "program")
    assert (naive.layer(0, "bits") == 4).all() and (fair.layer(0, "bits") == 1).all()
    assert (naive.layer(1, "bits") == fair.layer(1, "bits")).all()
    assert res["int4"]["int_test_acc"] == res["int4-bin"]["int_test_acc"]
    assert res["int4"]["avg_bits"] == 4.0 and res["a2q"]["avg_bits"] <= 2.0
    for b in ("int4", "int4-bin"):
        assert res["a2q"]["speedup"][b]["total"] == pytest.approx(res[b]["cycles"] / res["a2q"]["cycles"])
        assert res[b]["speedup"][b]["total"] == 1.0 and res[b]["speedup"][b]["layers"] == [1.0, 1.0]
    assert res["int4-bin"]["cycles"] < res["int4"]["cycles"]
    table = (tmp_path / "flow.md").read_text()
    assert "| a2q |" in table and "not simulated" in table and "vs INT4 (binary input)" in table


def test_flow_runs_degree_quant_against_the_uniform_baseline(tmp_path):
    s = _flow(tmp_path, "--method", "dq", "--bits", "4", "--sim", "none", "--no-skip")
    assert list(s["results"]) == ["dq4", "dq4-bin", "int4", "int4-bin"]
    # without skipping, the same bits on the same graph cost the same cycles, whatever trained them
    assert s["results"]["dq4"]["cycles"] == s["results"]["int4"]["cycles"]
    assert s["results"]["dq4-bin"]["cycles"] == s["results"]["int4-bin"]["cycles"]


@pytest.mark.rtl
def test_flow_on_verilator_is_bit_exact(tmp_path):
    s = _flow(tmp_path, "--sim", "verilator")
    for name, r in s["results"].items():
        assert r["bit_exact"], name
        assert r["cycles_match"], name
        assert r["cycles"] == r["rtl_cycles"]["total"] == r["model_cycles"]["cyc_total"]
