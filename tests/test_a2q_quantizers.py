"""Quantizers: forward values and gradients against hand-computed cases."""
import math

import pytest
import torch

from a2q.quantizers import MemoryPenalty, NodeQuantizer, UniformQuantizer, WeightQuantizer, round_half_up_ste
from a2q.quantizers.ste import fake_quant, qrange


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


def test_node_quantizer_per_node_bits_and_exact_binary_rows():
    q = NodeQuantizer(3, signed=False, init_bits=1.0, local_gradient=False)
    x = torch.tensor([[0.0, 0.25, 0.25], [0.5, 0.0, 0.5], [0.0, 0.0, 0.0]])
    q.init_from(x)
    q.eval()
    # a binary row-normalised input is exact at one bit: the step absorbs 1/rowsum
    assert torch.allclose(q(x), x)
    assert q.codes(x).tolist() == [[0, 1, 1], [1, 0, 1], [0, 0, 0]]
    with torch.no_grad():
        q.bits.copy_(torch.tensor([0.2, 2.5, 9.7]))  # clamped to [1, 8] and rounded half up
    assert q.int_bits().tolist() == [1.0, 3.0, 8.0]


def test_local_gradient_trains_quantizer_on_its_error_only():
    q = NodeQuantizer(2, init_bits=2.0, local_gradient=True)
    x = torch.tensor([[1.0, 0.3], [0.2, 0.1]], requires_grad=True)
    q.init_from(x)
    with torch.no_grad():
        q.bits.fill_(1.0)  # 1 bit: 0.3 rounds to 0 -> error, bits must want to grow
    q.train()
    y = q(x)
    y.sum().backward()                 # task loss: reaches x, not the quantizer
    assert q.bits.grad is None and q.log_alpha.grad is None and x.grad is not None
    q.local_loss().backward()          # local loss: reaches the quantizer
    assert q.bits.grad[0] < 0          # more bits would lower node 0's error
    assert q.log_alpha.grad is not None


def test_weight_quantizer_per_channel_range():
    wq = WeightQuantizer(2, bits=4)
    w = torch.tensor([[0.7, -0.04], [-0.35, 0.08]])
    out = wq(w)
    step = torch.tensor([0.7 / 7, 0.08 / 7])
    assert torch.allclose(out, torch.clamp(torch.floor(w / step + 0.5), -8, 7) * step)
    with pytest.raises(ValueError):
        WeightQuantizer(2, bits=1)


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
    assert float(pen(bits, [10, 10])) == pytest.approx(0.5)
    assert float(MemoryPenalty(3.0, 2.0)(bits, [10, 10])) == 0.0       # below target: no penalty
    kb = MemoryPenalty.memory_kb([b.detach() for b in bits], [1024, 8])
    assert float(kb) == pytest.approx((6 * 1024 + 2 * 8) / 8 / 1024)
    pen(bits, [10, 10]).backward()
    assert bits[0].grad.tolist() == pytest.approx([0.5, 0.5])  # 2*2*0.5 * (1/2 layers) * (1/2 nodes)
