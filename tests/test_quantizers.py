"""Hand-checked forward values and gradients of the quantizers and the memory penalty."""
import math

import pytest
import torch

from a2q.quant import MemoryPenalty, NodeQuantizer, UniformQuantizer, WeightQuantizer, fake_quantize
from a2q.quant.fake_quant import quantize_int, round_bits

LN2 = math.log(2.0)


def t(*v):
    return torch.tensor(v, dtype=torch.float32)


def test_round_half_up_like_the_accelerator():
    # 0.5 -> 1, -0.5 -> 0, 1.5 -> 2, -1.5 -> -1, 2.5 -> 3 (towards +inf, never to even)
    x = t(0.5, -0.5, 1.5, -1.5, 2.5, -2.5)
    q = fake_quantize(x, t(1.0), t(8.0), signed=True)
    assert q.tolist() == [1.0, 0.0, 2.0, -1.0, 3.0, -2.0]


def test_round_bits_clamped_to_1_8():
    assert round_bits(t(0.2, 1.49, 1.5, 2.5, 7.6, 9.0)).tolist() == [1, 1, 2, 3, 8, 8]


def test_unsigned_forward_and_gradients():
    # s = 0.5, b = 2 -> range [0, 3]; v = x / s = [0.2, 1.4, 2.5, 5.0, -1.0]
    x = t(0.1, 0.7, 1.25, 2.5, -0.5).requires_grad_()
    s = t(0.5).requires_grad_()
    b = t(2.2).requires_grad_()
    q = fake_quantize(x, s, b, signed=False)
    # q = clamp(floor(v + .5), 0, 3) = [0, 1, 3, 3(clipped), 0(clipped)]
    assert q.tolist() == pytest.approx([0.0, 0.5, 1.5, 1.5, 0.0])
    q.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]
    # ds: in range q - v = [-0.2, -0.4, 0.5]; above: qmax = 3; below: qmin = 0
    assert s.grad.item() == pytest.approx(-0.2 - 0.4 + 0.5 + 3 + 0)
    # db: only the clipped-above value: s * 2^bq * ln2 = 0.5 * 4 * ln2; below gives 0 (qmin = 0 fixed)
    assert b.grad.item() == pytest.approx(0.5 * 4 * LN2)


def test_signed_forward_and_gradients():
    # s = 1, b = 3 -> range [-4, 3]
    x = t(-6.0, -4.4, 2.6, 3.7).requires_grad_()
    s = t(1.0).requires_grad_()
    b = t(3.0).requires_grad_()
    q = fake_quantize(x, s, b, signed=True)
    # floor(v + .5) = [-6, -4, 3, 4] -> clamp [-4, -4, 3, 3]
    assert q.tolist() == [-4.0, -4.0, 3.0, 3.0]
    q.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 0.0]
    # ds: below qmin=-4, in range (-4 - -4.4 = 0.4), (3 - 2.6 = 0.4), above qmax=3
    assert s.grad.item() == pytest.approx(-4 + 0.4 + 0.4 + 3)
    # db: below: s * -2^(b-1) ln2 = -4 ln2; above: +4 ln2
    assert b.grad.item() == pytest.approx(-4 * LN2 + 4 * LN2)
    b.grad = None
    fake_quantize(x.detach(), s, b, signed=True)[3].backward()
    assert b.grad.item() == pytest.approx(4 * LN2)


def test_exact_step_derivative_mode():
    x = t(0.7, 5.0)
    s = t(0.5).requires_grad_()
    fake_quantize(x, s, t(2.0), signed=False, lsq=False).sum().backward()
    # in range: q = 1 (not q - v = -0.4); clipped: qmax = 3
    assert s.grad.item() == pytest.approx(1 + 3)


def test_per_node_broadcast_reduces_gradients_per_node():
    x = torch.tensor([[0.3, 0.9], [4.0, 1.0]])
    s = torch.tensor([[0.5], [1.0]], requires_grad=True)
    b = torch.tensor([[1.0], [2.0]], requires_grad=True)
    q = fake_quantize(x, s, b, signed=False)
    # node 0: range [0, 1], v = [0.6, 1.8] -> [1, 1(clip)]; node 1: range [0, 3], v = [4, 1] -> [3(clip), 1]
    assert q.view(-1).tolist() == pytest.approx([0.5, 0.5, 3.0, 1.0])
    q.sum().backward()
    assert s.grad.view(-1).tolist() == pytest.approx([(1 - 0.6) + 1, 3 + 0.0])
    assert b.grad.view(-1).tolist() == pytest.approx([0.5 * 2 * LN2, 1.0 * 4 * LN2])


def test_quantize_int_matches_fake_quant():
    x = torch.randn(20, 7)
    s, b = torch.rand(20, 1) + 0.1, torch.full((20, 1), 3.0)
    qi = quantize_int(x, s, b, signed=True)
    assert qi.dtype == torch.int64 and int(qi.min()) >= -4 and int(qi.max()) <= 3
    assert torch.equal(qi.float() * s, fake_quantize(x, s, b, signed=True))


def test_node_quantizer_init_and_local_gradient():
    q = NodeQuantizer(2, signed=False, init_bits=2.0)
    q(torch.tensor([[0.0, 0.6, 0.3], [0.0, 0.0, 0.0]]))
    # first training forward initialises s = max|x| / qmax = 0.6 / 3; the zero row takes the median (0.2)
    assert q.step.tolist() == pytest.approx([0.2, 0.2])
    with torch.no_grad():
        q.log_step.fill_(math.log(0.25))
    x = torch.tensor([[0.1, 0.55, 0.3], [0.0, 0.0, 4.0]], requires_grad=True)
    y = q(x)
    # node 0: v = [0.4, 2.2, 1.2] -> [0, 2, 1]; node 1: v = [0, 0, 16] -> [0, 0, 3 (clipped)]
    assert y.view(-1).tolist() == pytest.approx([0.0, 0.5, 0.25, 0.0, 0.0, 0.75])
    assert q.local_loss.item() == pytest.approx(0.1 + 0.05 + 0.05 + 3.25)
    # the task gradient reaches x (zero where clipped) but not the quantizer's parameters
    y.sum().backward()
    assert x.grad.view(-1).tolist() == [1, 1, 1, 1, 1, 0]
    assert q.log_step.grad is None and q.bits.grad is None
    # the L1 error trains the step (exact derivative q; all of node 0's errors are negative) and bits
    q.local_loss.backward()
    assert q.log_step.grad.tolist() == pytest.approx([0.25 * -(0 + 2 + 1), 0.25 * -3])
    assert q.bits.grad.tolist() == pytest.approx([0.0, -0.25 * 4 * LN2])  # clipped above: -s 2^b ln2


def test_node_quantizer_error_weight_and_sparse_rows():
    q = NodeQuantizer(2, init_bits=1.0)
    q.set_error_weight(torch.tensor([3.0, 1.0]))  # normalised to mean 1
    assert q.error_weight.tolist() == [1.5, 0.5]
    dense = torch.tensor([[0.0, 0.25, 0.5], [1.0, 0.0, 0.0]])
    rows, cols = dense.nonzero(as_tuple=True)
    vals = q(dense[rows, cols], rows=rows)
    assert q.step.tolist() == pytest.approx([0.5, 1.0])
    assert vals.tolist() == pytest.approx([0.5, 0.5, 1.0])  # 0.25/0.5 = 0.5 -> 1 (half up)
    assert q.local_loss.item() == pytest.approx(1.5 * 0.25)
    q.eval()
    assert torch.equal(q(dense), torch.tensor([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]]))
    assert q.quantize_int(dense).tolist() == [[0, 1, 1], [1, 0, 0]]


def test_node_quantizer_task_gradient_mode():
    q = NodeQuantizer(1, init_bits=2.0, local_grad=False)
    q(torch.tensor([[0.3]]))  # init s = 0.1
    q.zero_grad()
    q(torch.tensor([[0.5]])).sum().backward()  # v = 5 > 3: clipped
    assert q.log_step.grad.item() == pytest.approx(0.1 * 3)
    assert q.bits.grad.item() == pytest.approx(0.1 * 4 * LN2)


def test_node_quantizer_keeps_range_when_bits_drop():
    q = NodeQuantizer(1, init_bits=4.0)
    q(torch.tensor([[1.5]]))  # s = 1.5 / 15 = 0.1
    with torch.no_grad():
        q.bits.fill_(1.2)  # integer bits 4 -> 1: range 15 s -> 1 s', so s' = 1.5
    q.clamp_()
    assert q.step.item() == pytest.approx(1.5)
    assert q.int_bits().tolist() == [1]
    with torch.no_grad():
        q.bits.fill_(-3.0)
    q.clamp_()
    assert q.bits.item() == pytest.approx(0.51) and q.int_bits().tolist() == [1]


def test_uniform_quantizer():
    q = UniformQuantizer(3, bits=2, signed=False)
    x = torch.tensor([[0.0, 3.0], [1.2, 0.4], [2.0, 9.0]])
    y = q(x)  # init step = max / 3 = 3
    assert q.step.item() == pytest.approx(3.0)
    assert y.view(-1).tolist() == pytest.approx([0.0, 3.0, 0.0, 0.0, 3.0, 9.0])
    assert q.int_bits().tolist() == [2, 2, 2] and q.node_steps().tolist() == pytest.approx([3.0] * 3)
    with pytest.raises(ValueError):
        UniformQuantizer(3, bits=9)


def test_weight_quantizer_per_channel():
    w = torch.tensor([[0.7, -0.1], [-0.35, 0.05], [0.1, 0.2]], requires_grad=True)
    wq = WeightQuantizer(2, bits=3)  # range [-4, 3]; init step = max|w_o| / 3 = [0.7/3, 0.2/3]
    y = wq(w)
    s = wq.step.detach()
    assert s.tolist() == pytest.approx([0.7 / 3, 0.2 / 3])
    assert wq.quantize_int(w).tolist() == [[3, -1], [-1, 1], [0, 3]]  # w/s: [3, -1.5, 0.43], [-1.5, 0.75, 3]
    assert torch.allclose(y, wq.quantize_int(w).float() * s)


def test_memory_penalty_units():
    b1, b2 = torch.tensor([1.0, 1.0]), torch.tensor([3.0, 5.0])
    # kb: (2 * 1024 * 8 + 8 * 8 * 1024) bits... use F_in = [1024, 512]
    mem_kb = (2 * 1024 + 8 * 512) / 8 / 1024
    p = MemoryPenalty(2.0, 0.5, unit="kb")
    assert p.memory([b1, b2], [1024, 512]).item() == pytest.approx(mem_kb)
    assert p([b1, b2], [1024, 512]).item() == pytest.approx(2.0 * (mem_kb - 0.5) ** 2)
    p = MemoryPenalty(3.0, 2.0, unit="bits")  # node-weighted mean = 10 / 4 = 2.5
    bits = torch.tensor([1.0, 1.0, 3.0, 5.0], requires_grad=True)
    loss = p([bits[:2], bits[2:]], [1024, 512])
    assert loss.item() == pytest.approx(3.0 * 0.25)
    loss.backward()
    assert bits.grad.tolist() == pytest.approx([2 * 3.0 * 0.5 / 4] * 4)
    assert MemoryPenalty(1.0, 3.0)([bits[:2], bits[2:]], [1, 1]).item() == 0.0
    with pytest.raises(ValueError):
        MemoryPenalty(1.0, 1.0, unit="mb")
