"""Node-level A2Q GIN: per-node quantizers on the layer inputs, an NNS pool on every MLP inner input.

The inner input (post-BatchNorm/ReLU) moves with every weight update; per-node ranges fitted only by the
Local Gradient trailed it (GIN-Cora 52.8 % against 70.6 % with the pool, docs/training.md). This guards
the structure and that the pool's rows are the nodes' own rows, selected every forward.
"""
import torch
from torch_geometric.datasets import KarateClub

from a2q.models import GIN
from a2q.quantizers import NNSQuantizer
from a2q.quantizers.node import NodeQuantizer


def test_node_level_gin_inner_inputs_take_an_nns_pool_and_layer_inputs_stay_per_node():
    data = KarateClub()[0]
    m = GIN(data.num_features, 4, task="node", num_nodes=data.num_nodes, hidden=8, layers=2, method="a2q")
    for conv in m.convs:
        assert isinstance(conv.inner_quantizer, NNSQuantizer)
        assert isinstance(conv.input_quantizer, NodeQuantizer) and not isinstance(conv.input_quantizer, NNSQuantizer)
        assert conv.input_quantizer.step.shape[0] == data.num_nodes
    m.train()
    loss = m(data).sum() + m.local_loss()  # the Local Gradient supervises the pool's steps
    loss.backward()
    for conv in m.convs:
        sel = conv.inner_quantizer.last_selection
        assert sel is not None and sel.shape == (data.num_nodes,)  # one pair per node, re-chosen each forward
        assert int(sel.max()) < conv.inner_quantizer.pool
        assert conv.inner_quantizer.row_bits().shape == (data.num_nodes,)
        grad = conv.inner_quantizer.log_step.grad
        assert grad is not None and grad.abs().sum() > 0  # the pool learns from the rows that chose it
    assert torch.isfinite(m(data)).all()


def test_reported_bits_are_the_selected_models_own():
    """An NNS layer's bits are its nodes' selections of the last forward. ``train_one`` returns the
    best-validation epoch's weights, so its row must report the bits that model selects, not those of the
    last epoch's forward (GIN-Cora rows once showed 2.53 bits, "target not met", for a model that meets it)."""
    from a2q.data import load_dataset
    from a2q.trainer import train_one

    data = load_dataset("KarateClub")
    model, row = train_one(data, "a2q", 1, target_bits=2.5, epochs=30, hidden=8, layers=2, model_kind="gin")
    assert row["best_epoch"] < 29  # (seed 1: epoch 27) so the last forward was another model's
    model.eval()
    with torch.no_grad():
        model(data)
    fresh = [float(b.detach().mean()) for b in model.bits_per_layer()]
    assert row["layer_avg_bits"] == fresh
