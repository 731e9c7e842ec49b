"""GIN export to program format v2: node-level (KarateClub) and graph-level (MUTAG) programs whose integer
accuracy equals the fake-quant accuracy, the fake-quant selection with the exported integer thresholds,
the BatchNorm fold of the weight codes, and the refusals."""
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from a2q import integer
from a2q.export import (
    UnsupportedModelError,
    build_program_v2,
    csr_with_multiplicity,
    export_checkpoint,
    pool_ranges,
    pool_thresholds,
)
from a2q.program import load, save
from a2q.quantizers import NNSQuantizer
from a2q.trainer import parse_train_args, run_train

ROOT = os.environ.get("A2Q_DATA_ROOT")
HAVE_MUTAG = bool(ROOT) and (Path(ROOT) / "TU" / "MUTAG" / "raw" / "MUTAG_A.txt").is_file()
needs_mutag = pytest.mark.skipif(not HAVE_MUTAG, reason="MUTAG raw files not found under $A2Q_DATA_ROOT/TU")


def _train(tmp_path, dataset, method, *extra):
    argv = ["--model", "gin", "--dataset", dataset, "--out", str(tmp_path), "--no-progress", "--method", method,
            "--threads", "1", *extra]
    if dataset == "KarateClub":
        argv += ["--epochs", "15", "--seeds", "0"]
    else:
        argv += ["--folds", "1", "--epochs", "2", "--layers", "2", "--hidden", "16"]
    return run_train(parse_train_args(argv))


def test_csr_with_multiplicity_keeps_duplicates_and_adds_one_self_loop():
    ei = np.array([[0, 0, 1, 2], [1, 1, 0, 2]])  # 0->1 twice, a stored self loop 2->2
    row_ptr, col = csr_with_multiplicity(ei, 3)
    rows = [sorted(col[row_ptr[i]:row_ptr[i + 1]].tolist()) for i in range(3)]
    assert rows == [[0, 1], [0, 0, 1], [2, 2]]


def test_set_thresholds_selects_like_the_integer_comparison():
    q = NNSQuantizer(pool=3, signed=False, init_bits=2)
    q.init_from(torch.tensor([[1.0], [2.0], [3.0]]))
    with torch.no_grad():  # pool index 0 has the largest range: the sorted order is a permutation
        q.log_step.copy_(torch.tensor([4.0, 1.0, 2.0]).log())
    order = q.sorted_order()
    assert order.tolist() == [1, 2, 0]
    tau = 0.5
    thr = pool_thresholds(pool_ranges(q.step[order].detach().double().numpy(), q.int_bits()[order].detach().numpy(),
                                      False), tau)
    q.set_thresholds(thr, tau)
    # sorted pair k <=> #{t: v >= (thr[t] + 1/2) tau}: a row exactly there goes up, just below stays
    edges = (thr + 0.5) * tau
    rows = torch.tensor([[0.0], [edges[0] - 1e-6], [edges[0]], [edges[1] - 1e-6], [edges[1]], [1e3]])
    assert q.select(rows).tolist() == [order[k] for k in (0, 0, 1, 1, 2, 2)]
    # the integer reference takes the same pairs where max|x| / tau rounds half up to v
    v = torch.floor(rows / tau + 0.5).long()
    assert integer.nns_select(v, torch.as_tensor(thr).long(), False).tolist() == [0, 0, 1, 1, 2, 2]
    q.set_thresholds(None)  # back to the float midpoints
    assert q.select(torch.tensor([[0.0]])).tolist() == [order[0]]


def test_node_level_gin_exports_and_integer_accuracy_equals_fake_quant(tmp_path):
    _train(tmp_path, "KarateClub", "a2q")
    report = {}
    program = export_checkpoint(tmp_path / "model.pt", report=report)
    kinds = [s.kind for s in program.layers]
    assert kinds == ["gin", "dense", "gin", "dense", "dense", "dense"] and program.num_graphs is None
    # per-node (static) inputs where the model has per-node quantizers, NNS pools for the MLP inner inputs
    assert [program.has_pool_input(i) for i in range(6)] == [False, True, False, True, False, False]
    assert report["integer_acc"] == report["fakequant_acc"] == integer.accuracy(program)
    assert report["prediction_differ"] == 0
    assert report["selection_rows"] == 2 * program.num_nodes
    assert report["selection_differ"] == len(report["selection_differences"]) <= 1
    save(program, tmp_path / "prog")
    again = load(tmp_path / "prog")
    assert torch.equal(integer.logits(again), torch.as_tensor(program.arrays["expected_out"]).long())


@needs_mutag
@pytest.mark.parametrize("method,extra", [("a2q", []), ("a2q", ["--head-bits", "3"]), ("dq", ["--bits", "4"]),
                                          ("a2q", ["--head-bits", "3", "--readout", "mean"]),
                                          ("uniform", ["--bits", "4", "--readout", "mean"])])
def test_graph_level_gin_exports_a_block_diagonal_batch(tmp_path, method, extra):
    _train(tmp_path, "MUTAG", method, *extra)
    report = {}
    program = export_checkpoint(tmp_path / "fold0.pt", graphs=6, report=report)
    assert [s.kind for s in program.layers] == ["gin", "dense", "gin", "dense", "pool", "dense"]
    assert program.num_graphs == 6 and program.arrays["test_mask"].all() and len(program.arrays["labels"]) == 6
    assert program.meta["graph_ids"] and program.meta["fold"] == 0
    pooled = [program.has_pool_input(i) for i in range(6)]
    if method == "a2q":  # --head-bits: the head's per-graph input is one static INT-k step, not a pool
        assert pooled == [False] + [True] * 4 + [not extra]
    elif method == "uniform":
        assert pooled == [False] * 6
    else:
        assert pooled == [False] * 6
        assert all((program.layer(i, "bits") == 4).all() for i in range(6))
    if extra[:1] == ["--head-bits"]:
        assert (program.layer(5, "bits") == 3).all()
    assert report["integer_acc"] == report["fakequant_acc"] == integer.accuracy(program)
    assert report["prediction_differ"] == 0
    # the selection differences (if any) are listed row by row with the integer row max and thresholds
    for d in report["selection_differences"]:
        assert {"layer", "row", "fakequant_pair", "integer_pair", "integer_row_max"} <= set(d)
    if "mean" in extra:  # the pool layer's per-graph factor holds 1/n_g: its ratio to the sum's is n_g
        n_g = np.diff(program.arrays["graph_ptr"])
        dm, ds = program.layer(4, "dst_mult").astype(float), program.layer(4, "dst_shift").astype(float)
        factor = dm * 2.0 ** -ds
        np.testing.assert_allclose(factor * n_g, (factor * n_g)[0], rtol=2e-4)
    save(program, tmp_path / "prog")
    assert load(tmp_path / "prog").num_graphs == 6


@needs_mutag
def test_one_hot_input_is_binary_for_the_fair_uniform_baseline(tmp_path):
    _train(tmp_path, "MUTAG", "uniform", "--bits", "4")
    a = export_checkpoint(tmp_path / "fold0.pt", graphs=4)
    b = export_checkpoint(tmp_path / "fold0.pt", graphs=4, binary=True)
    assert (a.layer(0, "bits") == 4).all() and (b.layer(0, "bits") == 1).all()  # one-hot node labels
    assert b.meta["input_encoding"] == "binary" and b.meta["binary_input_nodes"] == b.num_nodes
    assert integer.accuracy(a) == integer.accuracy(b)


def test_mean_readout_with_an_nns_head_input_is_refused_naming_the_layer(tmp_path):
    from a2q.ckpt import save_checkpoint
    from a2q.models import GIN

    model = GIN(3, 2, task="graph", hidden=8, layers=1, readout="mean")
    save_checkpoint(tmp_path / "m.pt", model, {"dataset": "MUTAG", "method": "a2q", "task": "graph"})
    with pytest.raises(UnsupportedModelError, match=r"layer head1 \(the 'mean' readout.*--head-bits K"):
        export_checkpoint(tmp_path / "m.pt")


def test_mean_readout_divides_the_head_linear_and_its_bias_by_the_node_count():
    """(sum_i xq_i W + b) / n_g, an empty graph's row the bias alone: what the pool layer's 1/n_g computes."""
    from torch_geometric.data import Data

    from a2q.models import GIN

    torch.manual_seed(0)
    s, m = (GIN(3, 2, task="graph", hidden=8, layers=1, readout=r, method="fp32", dropout=0.0) for r in ("sum", "mean"))
    m.load_state_dict(s.state_dict())
    s.eval(), m.eval()
    batch = torch.tensor([0, 0, 0, 2, 2])  # graph 1 is empty
    data = Data(x=torch.randn(5, 3), edge_index=torch.tensor([[0, 1, 3], [1, 2, 4]]), batch=batch, num_graphs=3)
    seen = {}

    def recording(model, name):
        linear = model._linear

        def _linear(lin, i, x):
            if i == 1:
                seen[name] = x
            return linear(lin, i, x)
        return _linear

    for name, model in (("sum", s), ("mean", m)):
        model._linear = recording(model, name)
        model(data)
    n = torch.tensor([3.0, 1.0, 2.0])
    # head2's input is relu(head1 pre-activation); relu(z / n) = relu(z) / n for n > 0
    torch.testing.assert_close(seen["mean"], seen["sum"] / n[:, None])
    assert torch.equal(GIN.graph_sizes(data), n)


def test_batchnorm_fold_of_weight_codes_is_exact_and_raises_bits_for_a_negated_minimum():
    from a2q.models import GIN

    torch.manual_seed(0)
    model = GIN(3, 2, task="node", num_nodes=5, hidden=4, layers=1, method="uniform")
    c = model.convs[0]
    wq = c.weight1_quantizer
    wq.init_from(c.weight1.detach())
    with torch.no_grad():
        c.bn1.weight.copy_(torch.tensor([1.5, -2.0, 0.5, -1.0]))
        c.bn1.running_mean.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
        c.bn1.running_var.copy_(torch.tensor([2.0, 0.5, 1.0, 4.0]))
        c.weight1[0, 1] = -100.0  # channel 1 (negative BN scale) now has the code -8
        wq.init_from(c.weight1.detach())
        c.weight1[0, 1] = -wq.step[1] * 8
    model.eval()
    codes, step, bits, bias = model._folded_weights("convs.0.1")
    x = torch.randn(6, 3)
    ref = c.bn1(x @ wq(c.weight1) + c.bias1).double()
    folded = x.double() @ torch.as_tensor(codes * step[None, :]) + torch.as_tensor(bias)
    assert torch.allclose(folded, ref, atol=1e-5)
    assert codes[0, 1] == 8 and bits == 4  # the negated -8: the exporter gives the layer one more bit
    layer = {"kind": "dense", "weight_codes": codes, "weight_step": step, "weight_bits": bits, "bias": bias,
             "relu": False, "in_signed": True, "input": "static", "in_step": np.full(2, 0.1), "in_bits": np.full(2, 4)}
    p = build_program_v2([layer], np.zeros((2, 3), np.int64), np.array([0, 1, 2]), np.array([0, 1]))
    assert p.layers[0].weight_bits == 5 and p.meta["weight_bits_raised"] == [0]
