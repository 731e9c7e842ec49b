"""Quantizers: forward values and gradients against hand-computed cases."""
import math

import pytest
import torch

from a2q.quantizers import (
    DegreeQuantQuantizer,
    MemoryPenalty,
    NodeQuantizer,
    UniformQuantizer,
    WeightQuantizer,
    round_half_up_ste,
)
from a2q.quantizers.ste import fake_quant, fake_quant_autograd, qrange


def test_round_half_up_forward_and_straight_through_backward():
    v = torch.tensor([-1.5, -0.5, 0.5, 1.5, 2.4], requires_grad=True)
    y = round_half_up_ste(v)
    assert y.tolist() == [-1.0, 0.0, 1.0, 2.0, 2.0]
    y.sum().backward()
    assert v.grad.tolist() == [1.0] * 5


def test_qrange_and_bit_gradient():
    b = torch.tensor([1.0, 3.0], requires_grad=True)
    lo, hi = qrange(b, signed=False)
    assert lo.tolist() == [0, 0] and hi.tolist() == [1, 7]
    hi.sum().backward()  # d(2^b - 1)/db = 2^b ln 2
    assert b.grad.tolist() == pytest.approx([2 * math.log(2), 8 * math.log(2)])
    lo, hi = qrange(torch.tensor([1.0, 4.0]), signed=True)
    assert lo.tolist() == [-1, -8] and hi.tolist() == [0, 7]


def test_fake_quant_lsq_gradients_by_hand():
    # step 0.5, range [0, 3]: 0.6 -> code 1 (inside), 2.0 -> code 4 clipped to 3
    x = torch.tensor([0.6, 2.0], requires_grad=True)
    s = torch.tensor(0.5, requires_grad=True)
    qmax = torch.tensor(3.0, requires_grad=True)
    y = fake_quant(x, s, torch.tensor(0.0), qmax)
    assert y.tolist() == pytest.approx([0.5, 1.5])
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 0.0]                   # STE inside, zero where clipped
    assert float(s.grad) == pytest.approx((1 - 1.2) + 3.0)  # round(v) - v inside, qmax where clipped
    assert float(qmax.grad) == pytest.approx(0.5)           # the clipped value moves with qmax * step


@pytest.mark.parametrize("case", ["per_row", "per_channel_weight", "scalar_step", "no_grad_x"])
def test_fused_fake_quant_equals_the_autograd_form(case):
    """The one-pass fake quantizer: the same values bit for bit, the same gradients up to rounding, for every
    broadcast the quantizers use (NNS/node rows, per-channel weights, one step, a constant input)."""
    g = torch.Generator().manual_seed(0)
    n, f = 40, 24
    x0 = torch.randn(n, f, generator=g) * 3
    bits = torch.randint(1, 8, (n, 1), generator=g).float()
    if case == "per_row":
        step0, (lo0, hi0) = torch.rand(n, 1, generator=g) * 0.5 + 0.05, qrange(bits, signed=True)
    elif case == "per_channel_weight":
        step0, lo0, hi0 = torch.rand(1, f, generator=g) * 0.3 + 0.05, torch.tensor(-8.0), torch.tensor(7.0)
    else:
        step0, lo0, hi0 = torch.tensor(0.37), torch.tensor(0.0), torch.tensor(15.0)
    x0[0, :3] = step0.flatten()[0] * torch.tensor([2.5, 15.0, -0.5])  # ties and the range end exactly
    grads = {}
    for name, fq in (("fused", fake_quant), ("autograd", fake_quant_autograd)):
        ts = [t.clone().requires_grad_(not (case == "no_grad_x" and i == 0))
              for i, t in enumerate((x0, step0, lo0, hi0))]
        y = fq(*ts)
        (y * torch.linspace(-1, 2, y.numel()).reshape(y.shape)).sum().backward()
        grads[name] = (y.detach(), [t.grad for t in ts])
    (yf, gf), (ya, ga) = grads["fused"], grads["autograd"]
    assert torch.equal(yf, ya)
    for a, b in zip(gf, ga, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.shape == b.shape and torch.allclose(a, b, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # the forward-only path
        assert torch.equal(fake_quant(x0, step0, lo0, hi0), ya)


def test_node_quantizer_per_node_bits_and_exact_binary_rows():
    q = NodeQuantizer(4, signed=False, init_bits=4.0, local_gradient=False)
    x = torch.tensor([[0.0, 0.25, 0.25], [0.5, 0.0, 0.5], [0.0, 0.0, 0.0], [0.9, 0.3, 0.0]])
    q.init_from(x)
    q.eval()
    # binary row-normalised rows are exact at one bit and start there; [0.9, 0.3] needs 2 bits (codes
    # 3 and 1); an all-zero row is exact at any width
    assert q.int_bits().tolist() == [1.0, 1.0, 1.0, 2.0]
    assert torch.allclose(q.step, torch.tensor([0.25, 0.5, 1.0, 0.3]))
    assert torch.allclose(q(x), x)
    assert q.codes(x).tolist() == [[0, 1, 1], [1, 0, 1], [0, 0, 0], [3, 1, 0]]
    with torch.no_grad():
        q.bits.copy_(torch.tensor([0.2, 2.5, 9.7, 4.0]))  # clamped to [1, 8] and rounded half up
    assert q.int_bits().tolist() == [1.0, 3.0, 8.0, 4.0]
    q_plain = NodeQuantizer(1, init_bits=4.0, exact_init=False)
    q_plain.init_from(x[:1])
    assert q_plain.int_bits().tolist() == [4.0] and float(q_plain.step.detach()) == pytest.approx(0.25 / 15)


def test_signed_node_quantizer_fits_both_ends():
    q = NodeQuantizer(4, signed=True, init_bits=4.0)
    # [-0.8, 0.4]: 2 bits code -2..1 with step 0.4, exact; [0.6, 0.0]: a positive value needs qmax >= 1,
    # so not one bit (-1..0) but 2 bits, step 0.6; [-0.4, 0.3] needs 3 bits (-4..3), step 0.1;
    # [-0.3, 0.1] is exact at no width below 4: step max(0.1 / 7, 0.3 / 8)
    x = torch.tensor([[-0.8, 0.4], [0.6, 0.0], [-0.4, 0.3], [-0.3, 0.1]])
    q.init_from(x)
    assert q.int_bits().tolist() == [2.0, 2.0, 3.0, 4.0]
    assert q.step.tolist() == pytest.approx([0.4, 0.6, 0.1, 0.0375], rel=1e-6)
    q.eval()
    assert torch.allclose(q(x)[:3], x[:3], atol=1e-6)
    assert q.codes(x).tolist() == [[-2, 1], [1, 0], [-4, 3], [-8, 3]]   # 0.1 / 0.0375 = 2.67 rounds to 3


def test_local_gradient_by_hand_exact_step_derivative():
    q = NodeQuantizer(2, init_bits=2.0, local_gradient=True, local_norm="l1")
    x = torch.tensor([[1.0, 0.3], [0.2, 0.1]], requires_grad=True)
    q.init_from(x)                     # neither row is exact at 1 bit: 2 bits, steps 1/3 and 0.2/3
    assert q.int_bits().tolist() == [2.0, 2.0]
    with torch.no_grad():
        q.bits.fill_(1.0)              # forced to 1 bit at the same steps: codes clip at 1
    q.train()
    y = q(x)
    y.sum().backward()                 # task loss: reaches x, not the quantizer
    assert q.bits.grad is None and q.log_step.grad is None and x.grad is not None
    loss = q.local_loss()              # sum |x_q - x| = |1/3 - 1| + |1/3 - 0.3| + |0.2/3 - 0.2| + |0.2/3 - 0.1|
    assert loss.item() == pytest.approx(2 / 3 + 1 / 30 + 0.4 / 3 + 0.1 / 3, rel=1e-5)
    loss.backward()
    ln2, s1 = math.log(2), 0.2 / 3
    # d|q s - x|/ds = sign * q with q held (not LSQ's q - v): node 0 has -1 + 1, node 1 has -1 - 1
    assert q.log_step.grad.tolist() == pytest.approx([0.0, s1 * -2.0], abs=1e-6)
    # only codes above qmax move with b: -s * 2^b ln2 per clipped value (0.3/(1/3) = 0.9 rounds to 1: not clipped)
    assert q.bits.grad.tolist() == pytest.approx([-(1 / 3) * 2 * ln2, -2 * s1 * 2 * ln2], rel=1e-5)


def test_local_gradient_l2_by_hand():
    q = NodeQuantizer(1, init_bits=2.0, local_norm="l2")
    x = torch.tensor([[0.2, 0.1]])
    q.init_from(x)                      # step 0.2/3 at 2 bits
    with torch.no_grad():
        q.bits.fill_(1.0)               # codes clip at 1: x_q = [s, s], errors s - 0.2 and s - 0.1
    q.train()
    q(x)
    s = 0.2 / 3
    assert q.local_loss().item() == pytest.approx((s - 0.2) ** 2 + (s - 0.1) ** 2, rel=1e-5)
    q.local_loss().backward()
    # d/ds sum (q s - x)^2 = sum 2 (q s - x) q with q = 1; log-step chain rule multiplies by s
    assert q.log_step.grad.item() == pytest.approx(s * 2 * ((s - 0.2) + (s - 0.1)), rel=1e-5)
    with pytest.raises(ValueError):
        NodeQuantizer(1, local_norm="l3")


def test_bit_change_keeps_the_node_range():
    q = NodeQuantizer(2, init_bits=3.0, exact_init=False)
    q.init_from(torch.tensor([[0.7, 0.1], [1.4, 0.3]]))   # range = max |x|: steps 0.1, 0.2
    with torch.no_grad():
        q.bits.copy_(torch.tensor([1.6, 9.7]))        # node 0 drops to 2 bits, node 1 is clamped to 8
    q.clamp_()
    assert q.bits.tolist() == pytest.approx([1.6, 8.49])
    assert q.int_bits().tolist() == [2.0, 8.0]
    # range s * (2^b - 1) is unchanged: 0.1 * 7 = s0 * 3 and 0.2 * 7 = s1 * 255
    assert q.step.tolist() == pytest.approx([0.7 / 3, 1.4 / 255], rel=1e-5)


@pytest.mark.parametrize("space", ["log", "linear"])
def test_weight_quantizer_per_channel_range(space):
    wq = WeightQuantizer(2, bits=4, step_space=space)
    w = torch.tensor([[0.7, -0.04], [-0.35, 0.08]])
    out = wq(w)
    step = wq.step.detach()
    assert step.tolist() == pytest.approx([0.7 / 7, 0.08 / 7], rel=1e-6)
    assert torch.allclose(out, torch.clamp(torch.floor(w / step + 0.5), -8, 7) * step)
    with pytest.raises(ValueError, match="bits"):
        WeightQuantizer(2, bits=1)
    with pytest.raises(ValueError, match="step space"):
        WeightQuantizer(2, step_space="exp")


def test_weight_step_log_space_moves_relative_to_its_size():
    """Adam moves a parameter by ~lr per update: a linear step of 0.7/127 grows severalfold in a few
    updates, the log step by a few percent (the NCI1 INT8 collapse, docs/training.md)."""
    w = torch.tensor([[0.7, -0.35], [-0.35, 0.7]])
    grown = {}
    for space in ("log", "linear"):
        wq = WeightQuantizer(2, bits=8, step_space=space)
        wq.init_from(w)
        s0 = wq.step.detach().clone()
        opt = torch.optim.Adam(wq.parameters(), lr=0.02)
        for _ in range(5):
            opt.zero_grad()
            (wq(w) - 2 * w).pow(2).sum().backward()  # a loss that pulls every step up
            opt.step()
        grown[space] = float((wq.step.detach() / s0).max())
    assert grown["log"] < 1.2 < 3 < grown["linear"]


def test_weight_quantizer_loads_a_checkpoint_from_before_the_log_step():
    from a2q.models import build_model

    old = {"step": torch.tensor([0.1, 0.2]), "initialised": torch.tensor(True)}
    wq = WeightQuantizer(2, step_space="linear")
    wq.load_state_dict(old)
    assert wq.step.tolist() == pytest.approx([0.1, 0.2])
    gcn = build_model({"num_nodes": 3, "in_features": 4, "num_classes": 2, "method": "uniform"})
    assert gcn.config["weight_step"] == "linear" and gcn.convs[0].weight_quantizer.step_space == "linear"


def test_uniform_quantizer_shares_one_step_and_exports_equal_bits():
    uq = UniformQuantizer(4)
    x = torch.rand(5, 7)
    y = uq(x)
    step = float(uq.step.detach())
    assert torch.allclose(y, torch.clamp(torch.floor(x / step + 0.5), 0, 15) * step)
    e = uq.export_for(5)
    assert set(e["in_bits"].tolist()) == {4} and len(set(e["in_step"].tolist())) == 1
    with pytest.raises(ValueError):
        UniformQuantizer(9)


def test_memory_penalty_values_and_gradient():
    bits = [torch.tensor([2.0, 4.0], requires_grad=True), torch.tensor([1.0, 1.0], requires_grad=True)]
    pen = MemoryPenalty(target=1.5, weight=2.0, unit="bits")
    # average bits = (3 + 1) / 2 = 2 -> 2 * (2 - 1.5)^2 = 0.5
    assert pen(bits, [10, 10]).item() == pytest.approx(0.5)
    assert MemoryPenalty(3.0, 2.0)(bits, [10, 10]).item() == 0.0       # below target: no penalty
    kb = MemoryPenalty.memory_kb([b.detach() for b in bits], [1024, 8])
    assert float(kb) == pytest.approx((6 * 1024 + 2 * 8) / 8 / 1024)
    pen(bits, [10, 10]).backward()
    assert bits[0].grad.tolist() == pytest.approx([0.5, 0.5])  # 2*2*0.5 * (1/2 layers) * (1/2 nodes)
    # the margin aims below the target; ``met`` checks the target itself
    aimed = MemoryPenalty(target=2.0, weight=2.0, unit="bits", margin=0.1)  # aims at 1.8
    assert aimed(bits, [10, 10]).item() == pytest.approx(2.0 * 0.2 ** 2)
    assert aimed.met(bits, [10, 10]) and not MemoryPenalty(1.9, 1.0).met(bits, [10, 10])
    for bad in (dict(target=0.0, weight=1.0), dict(target=2.0, weight=1.0, margin=1.0),
                dict(target=2.0, weight=1.0, unit="bytes")):
        with pytest.raises(ValueError):
            MemoryPenalty(**bad)


def test_degree_quant_protects_hubs_in_training_only():
    dq = DegreeQuantQuantizer(2, p_min=0.0, p_max=1.0, percentile=1.0, momentum=0.5)
    dq.set_protection(torch.tensor([1.0, 7.0, 3.0]))
    assert dq.protect_prob.tolist() == [0.0, 1.0, 0.5]     # linear in the in-degree rank
    x = torch.tensor([[0.3, 0.9], [0.2, 0.45], [0.6, 0.1]])
    dq.init_from(x)                                          # range = max |x| = 0.9: step 0.3
    assert float(dq.step) == pytest.approx(0.3)
    dq.eval()
    assert torch.allclose(dq(x), torch.tensor([[0.3, 0.9], [0.3, 0.6], [0.6, 0.0]]))
    torch.manual_seed(0)
    dq.train()
    y = dq(x)
    assert torch.equal(y[1], x[1])                           # the hub (p = 1) keeps full precision
    assert torch.allclose(y[0], torch.tensor([0.3, 0.9]))    # the leaf (p = 0) is quantized
    assert not any(p.requires_grad for p in dq.parameters())   # the range is tracked, not learned
    with pytest.raises(ValueError):
        DegreeQuantQuantizer(4, p_min=0.5, p_max=0.1)
