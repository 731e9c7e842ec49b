"""GIN and GAT layers and models: FP32 equality with PyG, the BatchNorm fold, export refusal."""
import pytest
import torch
from torch import nn
from torch_geometric.datasets import KarateClub
from torch_geometric.nn import GINConv

from a2q.layers import QGINConv, fold_batchnorm
from a2q.quantizers import WeightQuantizer
from a2q.trainer import parse_train_args, run_train


def _graph(n=40, e=160, f=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, e), generator=g)
    return torch.randn(n, f, generator=g), ei


@pytest.mark.parametrize("training", [True, False])
def test_qgin_conv_equals_pyg_ginconv_in_fp32(training):
    torch.manual_seed(0)
    x, ei = _graph()
    q = QGINConv(12, 8)
    mlp = nn.Sequential(nn.Linear(12, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 8), nn.BatchNorm1d(8), nn.ReLU())
    ref = GINConv(mlp, eps=0.0, train_eps=False)
    with torch.no_grad():
        mlp[0].weight.copy_(q.weight1.T)
        mlp[0].bias.copy_(torch.randn(8))
        q.bias1.copy_(mlp[0].bias)
        mlp[3].weight.copy_(q.weight2.T)
        mlp[3].bias.copy_(q.bias2)
        for bn_q, bn_r in ((q.bn1, mlp[1]), (q.bn2, mlp[4])):
            stats = (torch.randn(8), torch.rand(8) + 0.5, torch.randn(8), torch.randn(8))
            for t, s in zip((bn_q, bn_r), (stats, stats), strict=True):
                t.running_mean.copy_(s[0])
                t.running_var.copy_(s[1])
                t.weight.copy_(s[2])
                t.bias.copy_(s[3])
    q.train(training)
    ref.train(training)
    out_q, out_r = q(x, ei), ref(x, ei)
    assert out_r.abs().max() > 0.1
    torch.testing.assert_close(out_q, out_r, atol=1e-5, rtol=1e-5)


def test_batchnorm_fold_keeps_the_outputs_and_the_weight_codes():
    torch.manual_seed(1)
    lin = nn.Linear(10, 6)
    bn = nn.BatchNorm1d(6).eval()
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(6))
        bn.running_var.copy_(torch.rand(6) + 0.2)
        bn.weight.copy_(torch.rand(6) + 0.3)  # gamma > 0: the codes must be unchanged
        bn.bias.copy_(torch.randn(6))
    x = torch.randn(50, 10)
    w, b = lin.weight.T, lin.bias
    wq = WeightQuantizer(6, 4)
    wq.init_from(w.detach())
    w_f, b_f, s_f = fold_batchnorm(w, b, bn, wq.step)
    torch.testing.assert_close(x @ w_f + b_f, bn(x @ w + b), atol=1e-5, rtol=1e-5)
    codes = torch.clamp(torch.floor(w / wq.step + 0.5), -8, 7)
    codes_f = torch.clamp(torch.floor(w_f / s_f + 0.5), -8, 7)
    assert torch.equal(codes, codes_f)


def _karate(tmp_path, model, method, *extra):
    return run_train(parse_train_args(["--model", model, "--dataset", "KarateClub", "--epochs", "15", "--seeds", "0",
                                       "--out", str(tmp_path), "--no-progress", "--method", method, *extra]))


@pytest.mark.parametrize("model", ["gin", "gat"])
@pytest.mark.parametrize("method", ["a2q", "dq", "fp32"])
def test_node_level_gin_and_gat_train_and_reload(tmp_path, model, method):
    from a2q.ckpt import load_checkpoint
    from a2q.data import load_dataset

    m = _karate(tmp_path, model, method)
    assert m["model"] == model and len(m["per_seed"]) == 1 and 0 <= m["test_acc_mean"] <= 1
    if method == "a2q":
        assert m["avg_bits"] <= 2.0 + 1e-6 or not m["per_seed"][0]["target_met"]
    reloaded, meta = load_checkpoint(tmp_path / "model.pt")
    assert reloaded.kind == model and meta["model"] == model
    data = load_dataset("KarateClub")
    acc = float((reloaded.fakequant_logits(data).argmax(1)[data.test_mask] == data.y[data.test_mask]).float().mean())
    assert acc == pytest.approx(m["per_seed"][0]["test_acc"], abs=1e-6)


@pytest.mark.parametrize("model,match", [("gat", r"GAT model cannot be exported: layer conv1 \(QGATConv\).*softmax")])
def test_export_of_gat_is_refused(tmp_path, capsys, model, match):
    from a2q.cli import main
    from a2q.export import UnsupportedModelError, export_checkpoint

    _karate(tmp_path, model, "a2q")
    with pytest.raises(UnsupportedModelError, match=match):
        export_checkpoint(tmp_path / "model.pt")
    assert main(["export", str(tmp_path / "model.pt"), "-o", str(tmp_path / "prog")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot be exported" in err[0]
    assert not (tmp_path / "prog").exists()


@pytest.mark.parametrize("argv,match", [
    (["--model", "gat", "--dataset", "MUTAG"], "gat does not support the graph-level dataset MUTAG.*supported: "
                                               "gcn: node-level; gin: node/graph-level; gat: node-level"),
    (["--model", "gcn", "--dataset", "PROTEINS"], "gcn does not support the graph-level dataset PROTEINS"),
])
def test_cli_refuses_model_dataset_combinations(tmp_path, capsys, argv, match):
    import re

    from a2q.cli import main

    assert main(["train", *argv, "--out", str(tmp_path), "--epochs", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(match, err), err


def test_gin_graph_model_has_a_quantizer_on_every_linear_input():
    from a2q.models import GIN
    from a2q.quantizers import NNSQuantizer

    m = GIN(7, 2, task="graph", layers=3, hidden=8, method="a2q")
    qs = [q for q, _ in m.feature_quantizers()]
    assert len(qs) == 2 * 3 + 2 and all(isinstance(q, NNSQuantizer) for q in qs)
    data = KarateClub()[0]
    data.x = data.x[:, :7]
    data.batch = torch.zeros(data.num_nodes, dtype=torch.long)
    data.num_graphs = 1
    m.eval()
    assert m(data).shape == (1, 2)
