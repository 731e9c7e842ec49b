"""cocotb runs of the generated Verilog (Verilator, and Icarus as the second simulator).

Each run loads a program (through the memory arrays' backdoor, and for some through the load port,
which that run tests), runs it to done, reads every result back and must be bit-exact with the integer
reference and cycle-exact with the cycle model, or the test fails. All
Verilator programs share one config, so the design is compiled once (builds are cached by hash).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from a2q import program as prog
from a2q.synth import random_program, random_v2_program
from hw.config import AcceleratorConfig
from hw.testing import saturating_program, signed_hidden_program, signed_nns_program, sparse_program, worst_case_program
from sim import runner
from sim.simulate import simulate

pytestmark = [pytest.mark.rtl]
LANES, PES = 4, 4


def _with_bits(p, lo, hi, seed):
    rng = np.random.default_rng(seed)
    for i in range(p.num_layers):
        p.arrays[f"l{i}_bits"] = rng.integers(lo, hi + 1, size=p.num_nodes).astype(np.uint8)
    from hw.testing import clip_inputs
    return clip_inputs(p)


PROGRAMS = {
    "mixed_bits_hub_isolated": lambda: random_program(seed=11, n=24, dims=(20, 8, 4), isolated=2),
    "signed_input": lambda: random_program(seed=12, n=16, dims=(12, 6, 3), first_signed=True),
    "all_1bit": lambda: _with_bits(random_program(seed=13, n=16, dims=(9, 5, 3)), 1, 1, 13),
    "all_8bit": lambda: _with_bits(random_program(seed=14, n=16, dims=(9, 5, 3)), 8, 8, 14),
    "signed_hidden": lambda: signed_hidden_program(seed=15),
    "saturating": lambda: saturating_program(random_program(seed=16, n=12, dims=(20, 8, 4))),
    "worst_case": lambda: worst_case_program(),
    # zero-word skipping: mostly-zero inputs, nodes without any stored word (layer 0, and after ReLU)
    "sparse_empty_nodes": lambda: sparse_program(random_program(seed=17, n=20, dims=(24, 8, 4)), seed=17),
}
#: Format v2 (in the same covering config, so each simulator compiles one design): mixed layer kinds,
#: a batch of graphs with a 1-node and an empty graph, NNS pools selected at run time (a single-pair
#: pool, a signed pool input).
V2_PROGRAMS = {
    "v2_graph_level_gin": lambda: random_v2_program(seed=0),   # gin, dense, pool, dense, dense; sizes 6,1,0,9,4
    "v2_signed_pool_input": lambda: signed_nns_program(random_v2_program(seed=1)),
    "v2_node_level_mix": lambda: random_v2_program(seed=2, kinds=("gcn", "gin", "dense"), dims=(10, 8, 8, 4),
                                                   sizes=(5, 1, 3)),
    "v2_pool_first": lambda: random_v2_program(seed=3, kinds=("pool", "dense"), dims=(10, 8, 4), sizes=(3, 0, 1, 4)),
    # a pool layer whose next input is static: a per-graph destination factor (the mean readout's 1/n_g,
    # --head-bits' one step), no run-time selection after the pool
    "v2_pool_static_head": lambda: random_v2_program(seed=4, kinds=("gin", "pool", "dense"), dims=(10, 8, 8, 3),
                                                     sizes=(5, 1, 0, 7), pool_sizes=(0, 1, 0)),
}


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    root = tmp_path_factory.mktemp("programs")
    built = {name: make() for name, make in {**PROGRAMS, **V2_PROGRAMS}.items()}
    paths = {name: prog.save(p, root / name) for name, p in built.items()}
    return paths, AcceleratorConfig.covering(list(built.values()), lanes=LANES, pes=PES)


def _check(rep):
    assert rep["unresolved_words"] == 0, rep["first_unresolved"]
    assert rep["mismatches"] == 0, rep["first_mismatch"]
    assert rep["rtl_cycles"] == rep["model_cycles"]
    assert rep["rtl_cycles"]["total"] > 0 and rep["error_flag"] == 0


def _require(sim):
    ok, why = runner.simulator_available(sim)
    if not ok:
        pytest.skip(why)


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_verilator_bit_and_cycle_exact(programs, name, tmp_path):
    _require("verilator")
    paths, cfg = programs
    rep = simulate(paths[name], config=cfg, sim="verilator", out=tmp_path / "report.json")
    _check(rep)
    assert (tmp_path / "report.json").exists()
    # the report says where every check looked
    assert {c["phase"] for c in rep["checked"]} >= {"out", "y"}


@pytest.mark.parametrize("name", ["mixed_bits_hub_isolated", "worst_case"])
def test_verilator_load_port(programs, name, tmp_path):
    """The load and read port itself: every word in and out through mem_sel/mem_addr/mem_wdata/mem_rdata."""
    _require("verilator")
    paths, cfg = programs
    rep = simulate(paths[name], config=cfg, sim="verilator", io="port")
    _check(rep)
    assert rep["io"] == "port"
    back = simulate(paths[name], config=cfg, sim="verilator", io="backdoor")
    assert back["io"] == "backdoor" and back["load_words"] == rep["load_words"]
    assert 0 < back["backdoor_writes"] <= back["load_words"]  # all-zero words skipped (memories start at 0)
    assert back["rtl_cycles"] == rep["rtl_cycles"]


@pytest.mark.parametrize("name,skip,edges,io", [("mixed_bits_hub_isolated", 1, 1, "backdoor"),
                                                ("mixed_bits_hub_isolated", 1, 1, "port"),
                                                ("sparse_empty_nodes", 1, 2, "backdoor"),
                                                ("sparse_empty_nodes", 0, 1, "backdoor")])
def test_icarus_bit_and_cycle_exact(programs, tmp_path, name, skip, edges, io):
    """Icarus: the port and the backdoor; zero-word skipping on and off; E = 2 edges per cycle."""
    _require("icarus")
    paths, cfg = programs
    fit = AcceleratorConfig.fit(prog.load(paths[name]), LANES, PES, zero_skip=skip, edges_per_cycle=edges)
    cfg = cfg.replace(zero_skip=skip, edges_per_cycle=edges, feat_words=max(cfg.feat_words, fit.feat_words),
                      edge_words=max(cfg.edge_words, fit.edge_words))
    rep = simulate(paths[name], config=cfg, sim="icarus", out=tmp_path / "r.json", io=io)
    _check(rep)
    assert rep["io"] == io


def test_karate_club_a2q_program_on_verilator(tmp_path):
    """Train a small A2Q GCN on KarateClub, export it, and run the program on the RTL."""
    _require("verilator")
    from a2q.export import export_checkpoint
    from a2q.trainer import parse_train_args, run_train

    run_train(parse_train_args(["--dataset", "KarateClub", "--method", "a2q", "--epochs", "60", "--seeds", "0",
                            "--out", str(tmp_path / "run"), "--no-progress"]))
    program = export_checkpoint(tmp_path / "run" / "model.pt")
    path = prog.save(program, tmp_path / "program")
    rep = simulate(path, lanes=LANES, pes=PES, sim="verilator")
    _check(rep)
    assert len(set(program.layer(1, "bits").tolist())) >= 1 and program.num_nodes == 34


def _check_v2(rep, program):
    _check(rep)
    out = [c for c in rep["checked"] if c["layer"] == program.num_layers - 1 and c["phase"] == "out"]
    assert out and out[0]["values"] == program.num_rows_out * program.layers[-1].out_features   # G rows
    assert {(c["layer"], c["phase"]) for c in rep["checked"]} >= {(i, "out") for i in range(program.num_layers)}


@pytest.mark.parametrize("name", list(V2_PROGRAMS))
def test_verilator_v2_bit_and_cycle_exact(programs, name, tmp_path):
    _require("verilator")
    paths, cfg = programs
    program = prog.load(paths[name])
    rep = simulate(paths[name], config=cfg, sim="verilator", out=tmp_path / "report.json")
    _check_v2(rep, program)
    if any(program.has_pool_input(i) for i in range(program.num_layers)):
        assert rep["rtl_cycles"]["select"] > 0


@pytest.mark.parametrize("name,io", [("v2_graph_level_gin", "backdoor"), ("v2_signed_pool_input", "port")])
def test_icarus_v2_bit_and_cycle_exact(programs, name, io, tmp_path):
    _require("icarus")
    paths, cfg = programs
    rep = simulate(paths[name], config=cfg, sim="icarus", io=io)
    _check_v2(rep, prog.load(paths[name]))
    assert rep["io"] == io


@pytest.mark.parametrize("sim,name", [("verilator", "saturating"), ("verilator", "v2_graph_level_gin"),
                                      ("icarus", "mixed_bits_hub_isolated")])
def test_ecp5_primitives_bit_and_cycle_exact(programs, sim, name):
    """The Verilog that `a2q hw synth` builds for ECP5 (every rescaler multiply a MULT18X18D holding the
    product in its own output register, hw/primitives.py), simulated on hw/sim_models: bit-exact and
    cycle-exact like the plain RTL, so the netlist that is timed is the design that is checked."""
    _require(sim)
    paths, cfg = programs
    rep = simulate(paths[name], config=cfg, sim=sim, primitives="ecp5")
    _check(rep)
    assert rep["primitives"] == "ecp5"
    text = Path(rep["verilog"]).read_text()
    assert text.count("MULT18X18D #(") >= cfg.pes and '.REG_OUTPUT_CLK("CLK0")' in text
