"""QGCNConv (folded GCN normalisation), the GCN models, the export hook contract and checkpoints."""
import numpy as np
import pytest
import torch

from a2q.checkpoint import load_checkpoint, save_checkpoint
from a2q.data import load_dataset
from a2q.models import aggregation_weight, build_model, default_weight_bits
from a2q.nn import QGCNConv, SparseRows, gcn_graph
from a2q.quant import NodeQuantizer, WeightQuantizer


def _dense_gcn(x, w, b, edge_index, n):
    """out = D^-1/2 ((A + I) (D^-1/2 x W) + b) with A[dst, src] (duplicates and self loops collapsed)."""
    a = torch.zeros(n, n)
    a[edge_index[1], edge_index[0]] = 1.0
    a.fill_diagonal_(1.0)
    dis = a.sum(1).pow(-0.5)
    return dis[:, None] * (a @ (dis[:, None] * (x @ w)) + b)


def test_gcn_graph_self_loops_duplicates_degree():
    ei = torch.tensor([[0, 0, 1, 2, 2], [1, 1, 0, 2, 0]])  # duplicate 0->1, existing self loop 2->2
    ei2, deg, dis = gcn_graph(ei, 4)
    assert ei2.shape[1] == 3 + 4  # 0->1, 1->0, 2->0 plus one self loop per node
    assert deg.tolist() == [3.0, 2.0, 1.0, 1.0]  # in-degree including the self loop
    assert torch.allclose(dis, deg.pow(-0.5))
    # aggregation weight of node j = d_j^-1/2 * sum over its out-edges (self loop included) of d_i^-1/2
    w = aggregation_weight(ei2, dis)
    assert w[2].item() == pytest.approx(1.0 * (3 ** -0.5 + 1.0))


def test_fp32_conv_matches_dense_formula_bias_inside():
    torch.manual_seed(0)
    ei = torch.tensor([[0, 1, 1, 2, 3], [1, 0, 2, 1, 1]])
    x = torch.randn(4, 3)
    conv = QGCNConv(3, 2)
    with torch.no_grad():
        conv.bias.copy_(torch.tensor([0.5, -1.0]))
    ei2, _, dis = gcn_graph(ei, 4)
    out = conv(x, ei2, dis)
    assert torch.allclose(out, _dense_gcn(x, conv.weight, conv.bias, ei, 4), atol=1e-6)


def test_quantized_conv_sparse_path_equals_dense_path():
    torch.manual_seed(1)
    n, f = 6, 10
    x = (torch.rand(n, f) < 0.3).float()
    x = x / x.sum(1, keepdim=True).clamp_min(1)
    ei = torch.tensor([[0, 1, 2, 3, 4, 5, 0], [1, 2, 3, 4, 5, 0, 3]])
    ei2, _, dis = gcn_graph(ei, n)
    conv = QGCNConv(f, 4, NodeQuantizer(n, init_bits=3.0), WeightQuantizer(4, 4))
    conv.train()
    conv(x, ei2, dis)  # initialise the quantizers
    conv.eval()
    dense = conv(x, ei2, dis)
    sparse = conv(SparseRows.from_dense(x), ei2, dis)
    assert torch.allclose(dense, sparse, atol=1e-6)
    # and the quantized layer is the dense formula applied to the quantized input and weight
    xq = conv.input_quant(x)
    ref = _dense_gcn(xq, conv.weight_quant(conv.weight), conv.bias, ei, n)
    assert torch.allclose(dense, ref, atol=1e-6)


@pytest.fixture(scope="module")
def karate():
    return load_dataset("KarateClub")


def _trained(method, karate, epochs=20, **kw):
    torch.manual_seed(0)
    d = karate.data
    m = build_model(method, karate.num_features, karate.num_classes, d.num_nodes, hidden=8, **kw)
    opt = None
    for _ in range(epochs):
        m.train()
        if opt is None:
            with torch.no_grad():
                m(d)
            opt = torch.optim.Adam(m.parameters(), lr=0.01)
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(m(d)[d.train_mask], d.y[d.train_mask])
        if m.local_loss() is not None:
            loss = loss + m.local_loss()
        loss.backward()
        opt.step()
        m.clamp_()
    m.eval()
    return m


@pytest.mark.parametrize("method,kw", [("a2q", {}), ("uniform", {"bits": 4})])
def test_export_layers_contract(method, kw, karate):
    m = _trained(method, karate, **kw)
    d = karate.data
    layers = m.export_layers(d)
    assert len(layers) == 2
    dims = [(34, 8), (8, 4)]
    for i, (L, (fi, fo)) in enumerate(zip(layers, dims)):
        assert set(L) == {"in_step", "in_bits", "in_signed", "weight", "weight_step", "weight_bits", "bias", "relu"}
        assert L["in_step"].dtype == np.float64 and L["in_step"].shape == (34,) and (L["in_step"] > 0).all()
        assert np.issubdtype(L["in_bits"].dtype, np.integer) and L["in_bits"].shape == (34,)
        assert L["in_bits"].min() >= 1 and L["in_bits"].max() <= 8
        assert L["in_signed"] is False  # karate features are non-negative; layer 2 follows a ReLU
        assert L["weight"].dtype == np.float64 and L["weight"].shape == (fi, fo)
        assert L["weight_step"].dtype == np.float64 and L["weight_step"].shape == (fo,)
        assert L["weight_bits"] == 4 and L["bias"].dtype == np.float64 and L["bias"].shape == (fo,)
        assert L["relu"] is (i == 0)
    if method == "uniform":
        assert (layers[0]["in_bits"] == 4).all() and np.unique(layers[0]["in_step"]).size == 1
    xi = m.quantized_input(d)
    assert xi.dtype == np.int64 and xi.shape == (34, 34)
    # exactly the fake-quant forward's integers: x_q = x_int * s
    xq = m.convs[0].input_quant(d.x)
    s = torch.as_tensor(layers[0]["in_step"], dtype=torch.float32)
    assert torch.equal(torch.as_tensor(xi, dtype=torch.float32) * s[:, None], xq)
    # weights quantized the exporter's way (floor(w/s + 0.5), clamped) reproduce the fake-quant weights
    w, ws = layers[0]["weight"], layers[0]["weight_step"]
    wi = np.clip(np.floor(w / ws[None, :] + 0.5), -8, 7)
    assert np.allclose(wi * ws[None, :], m.convs[0].quantized_weight().detach().numpy(), atol=1e-6)


def test_karate_identity_features_exact_at_one_bit(karate):
    m = _trained("a2q", karate, epochs=1)
    assert (m.layer_bits()[0] == 1).all()  # one-hot rows: exact at 1 bit, initialised there
    assert (m.quantized_input(karate.data) == np.eye(34, dtype=np.int64)).all()


def test_fp32_has_nothing_to_export(karate):
    m = build_model("fp32", 34, 4, 34)
    with pytest.raises(ValueError, match="FP32"):
        m.export_layers(karate.data)
    assert m.fakequant_logits(karate.data).shape == (34, 4)


def test_default_weight_bits():
    assert default_weight_bits("a2q", None) == 4
    assert default_weight_bits("uniform", 8) == 8 and default_weight_bits("uniform", 2) == 4
    with pytest.raises(ValueError, match="unknown method"):
        build_model("int3", 4, 2, 3)


def test_exported_program_agrees_with_fakequant(karate):
    """The exporter (another module) folds our layers into integers; predictions must agree."""
    from a2q import integer
    from a2q.export import build_program

    m = _trained("a2q", karate, epochs=40)
    d = karate.data
    prog = build_program(m.export_layers(d), m.quantized_input(d), d.edge_index.numpy(), 34)
    logits_int = integer.logits(prog).numpy()
    assert logits_int.shape == (34, 4)
    agree = (logits_int.argmax(1) == m.fakequant_logits(d).argmax(1).numpy()).mean()
    assert agree >= 0.9


def test_checkpoint_roundtrip_atomic(tmp_path, karate):
    m = _trained("a2q", karate, epochs=5)
    meta = {"dataset": "KarateClub", "method": "a2q", "hidden": 8, "seed": 0, "fakequant_test_acc": 0.5}
    path = save_checkpoint(tmp_path / "ck" / "model.pt", m, meta)
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]  # no temp file left behind
    m2, meta2 = load_checkpoint(path)
    assert meta2 == meta and not m2.training
    assert torch.equal(m2.fakequant_logits(karate.data), m.fakequant_logits(karate.data))
    for a, b in zip(m.export_layers(karate.data), m2.export_layers(karate.data)):
        assert all(np.array_equal(a[k], b[k]) for k in a)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError):
        load_checkpoint(tmp_path / "bad.pt")
