"""Nearest Neighbour Strategy, TU graph sets (pre-collated batches, stratified folds) and a graph-level run."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from a2q.quantizers import NNSQuantizer, nns_select, pair_ranges

ROOT = os.environ.get("A2Q_DATA_ROOT")
HAVE_MUTAG = bool(ROOT) and (Path(ROOT) / "TU" / "MUTAG" / "raw" / "MUTAG_A.txt").is_file()


def test_nns_select_picks_the_nearest_range_and_the_lower_one_on_a_tie():
    ranges = torch.tensor([4.0, 1.0, 2.0])  # pool order is not range order
    rows = torch.tensor([0.1, 1.5, 1.6, 3.0, 3.1, 100.0, 2.0])
    #                    1    tie->1 2    tie->2 4    4      2
    assert nns_select(rows, ranges).tolist() == [1, 1, 2, 2, 0, 0, 2]
    # equal ranges: the lower pool index
    assert nns_select(torch.tensor([1.0, 5.0]), torch.tensor([3.0, 1.0, 1.0])).tolist() == [1, 0]


def test_pair_ranges_signed_and_unsigned():
    step, bits = torch.tensor([0.5, 0.25]), torch.tensor([3.0, 4.0])
    assert pair_ranges(step, bits, signed=True).tolist() == [0.5 * 3, 0.25 * 7]
    assert pair_ranges(step, bits, signed=False).tolist() == [0.5 * 7, 0.25 * 15]


def _pool(steps, bits, signed=False):
    q = NNSQuantizer(len(steps), signed=signed)
    with torch.no_grad():
        q.log_step.copy_(torch.tensor(steps).log())
        q.bits.copy_(torch.tensor(bits))
        q.last_bits.copy_(torch.tensor(bits))
        q.initialised.fill_(True)
    return q


def test_nns_quantizer_quantizes_each_hand_made_row_with_its_pair():
    # unsigned ranges: 0.1 * 3 = 0.3 (2 bits), 0.05 * 15 = 0.75 (4 bits), 1.0 * 1 = 1.0 (1 bit)
    q = _pool([0.1, 0.05, 1.0], [2.0, 4.0, 1.0]).eval()
    x = torch.tensor([[0.0, 0.29, 0.11],    # max 0.29 -> 0.3
                      [0.7, 0.02, 0.0],     # max 0.7 -> 0.75
                      [0.9, 0.4, 0.2],      # max 0.9 -> 1.0
                      [0.525, 0.1, 0.0]])   # max 0.525 = midpoint of 0.3 and 0.75 -> the lower, 0.3
    out = q(x)
    assert q.last_selection.tolist() == [0, 1, 2, 0]
    assert q.row_bits().tolist() == [2.0, 4.0, 1.0, 2.0]
    expect = torch.stack([torch.clamp(torch.floor(x[0] / 0.1 + 0.5), 0, 3) * 0.1,
                          torch.clamp(torch.floor(x[1] / 0.05 + 0.5), 0, 15) * 0.05,
                          torch.clamp(torch.floor(x[2] / 1.0 + 0.5), 0, 1) * 1.0,
                          torch.clamp(torch.floor(x[3] / 0.1 + 0.5), 0, 3) * 0.1])
    torch.testing.assert_close(out, expect)
    assert torch.equal(q.codes(x), torch.round(expect / torch.tensor([0.1, 0.05, 1.0, 0.1])[:, None]).long())


def test_nns_local_gradient_reaches_only_the_selected_pairs():
    q = _pool([0.1, 0.05, 1.0], [2.0, 4.0, 1.0]).train()
    x = torch.tensor([[0.0, 0.29, 0.13], [0.7, 0.03, 0.0]], requires_grad=True)
    q(x).sum().backward(retain_graph=True)
    assert q.log_step.grad is None and q.bits.grad is None  # the task loss does not train the pool
    q.local_loss().backward()
    assert q.log_step.grad[0] != 0 and q.log_step.grad[1] != 0 and q.log_step.grad[2] == 0
    # the memory penalty reaches the bits through row_bits
    q.bits.grad = None
    q(x.detach())
    q.row_bits().sum().backward()
    assert q.bits.grad.tolist() == [1.0, 1.0, 0.0]


def test_a_dead_pair_moves_back_to_its_rows_and_a_live_one_stays():
    """Pair 0 (1 bit, range 100) serves rows of max |x| about 1: every code is 0, so its step gets no
    Local Gradient (d(q s)/ds = q = 0). ``reseed_dead_`` gives it the rows' geometric-mean max |x|;
    pair 1 (range 200, never selected) and a pair whose rows have non-zero codes stay where they are."""
    q = _pool([100.0, 200.0], [1.0, 1.0]).train()
    x = torch.tensor([[0.5, 1.0], [2.0, 0.1], [0.0, 0.0]])
    assert (q.codes(x) == 0).all()
    q(x)
    q.local_loss().backward()
    assert q.log_step.grad[0] == 0              # the dead zone: no gradient can bring the step back
    before = q.step.detach().clone()
    assert q.reseed_dead_() == 1
    # sqrt(1 * 2): the all-zero row is left out of the geometric mean
    torch.testing.assert_close(q.step[0].detach(), torch.tensor(2.0 ** 0.5))
    assert q.step[1] == before[1]
    q(x)
    assert q.last_selection.tolist()[:2] == [0, 0] and (q.codes(x)[:2] != 0).any(1).all()
    live = q.step.detach().clone()
    assert q.reseed_dead_() == 0 and torch.equal(q.step.detach(), live)   # now live: not moved again
    q.eval()
    q(x * 1000)   # evaluation rows do not count
    assert q.reseed_dead_() == 0 and torch.equal(q.step.detach(), live)


@pytest.mark.parametrize("norm", ["l2", "l1"])
def test_zero_code_rows_get_the_lsq_surrogate_step_gradient(norm):
    """With ``zero_rows`` a row whose codes are all 0 trains its step with d x_q/ds = -x/s (the l2 error
    sum x^2 gives 2 w sum x^2 / s, pushing the step down); every other row keeps the exact q, bit for
    bit, and x_q and the loss do not change."""
    from a2q.quantizers.fused import fused_local_fake_quant

    g = torch.Generator().manual_seed(1)
    x = torch.randn(12, 5, generator=g).abs()
    step = torch.full((12, 1), 0.4)
    step[:4] = 50.0                                            # rows 0-3: every code is 0
    step[4] = 3.0 * float(x[4].max()) + 1.0                    # row 4 too, by a wider margin
    w = torch.rand(12, 1, generator=g)
    qmin, qmax = torch.zeros(12, 1), torch.full((12, 1), 7.0)
    outs = {}
    for zero_rows in (False, True):
        s = step.clone().requires_grad_()
        xq, loss = fused_local_fake_quant(x, s, qmin, qmax, w, norm, zero_rows=zero_rows)
        loss.backward()
        outs[zero_rows] = (xq, loss, s.grad.clone())
    (xq0, l0, g0), (xq1, l1, g1) = outs[False], outs[True]
    assert torch.equal(xq0, xq1) and torch.equal(l0, l1)
    assert (g0[:5] == 0).all() and torch.equal(g0[5:], g1[5:]) and (g0[5:] != 0).any()
    ref = (2 * w * (x ** 2).sum(1, keepdim=True) if norm == "l2" else w * x.sum(1, keepdim=True)) / step
    torch.testing.assert_close(g1[:5], ref[:5])
    assert (g1[:5] > 0).all()                                 # descent shrinks the step toward the rows


def test_zero_row_grad_brings_a_pair_stuck_above_its_rows_back():
    """The pair of the dead-pair test (1 bit, range 100, rows of max |x| about 1) learns its way back
    with the surrogate gradient alone: after Adam steps on the Local Gradient its rows have codes."""
    q = _pool([100.0, 200.0], [1.0, 1.0]).train()
    q.zero_row_grad = True
    x = torch.tensor([[0.5, 1.0], [2.0, 0.1], [0.0, 0.0]])
    unused = q.log_step[1].item()
    opt = torch.optim.Adam([q.log_step], lr=0.3)
    for _ in range(40):
        opt.zero_grad()
        q(x)
        q.local_loss().backward()
        opt.step()
    assert (q.codes(x)[:2] != 0).any(1).all()
    assert q.log_step[1].item() == unused                      # never selected: no gradient, not moved


def test_node_quantizer_zero_row_grad_dense_and_sparse_agree():
    """Per-node quantizers: a node whose codes are all 0 gets the surrogate step gradient with
    ``zero_row_grad`` (none without); the sparse (values, rows) input gives the same gradients as the dense."""
    from a2q.quantizers import NodeQuantizer

    g = torch.Generator().manual_seed(2)
    x = torch.rand(6, 8, generator=g) * (torch.rand(6, 8, generator=g) < 0.5)
    grads = {}
    for flag in (False, True):
        for sparse in (False, True):
            q = NodeQuantizer(6, signed=False, init_bits=2.0).train()
            q.init_from(x)
            with torch.no_grad():
                q.log_step[:2] = 5.0                       # nodes 0 and 1: every code 0
            q.zero_row_grad = flag
            if sparse:
                rows, cols = x.nonzero(as_tuple=True)
                q(x[rows, cols], rows=rows)
            else:
                q(x)
            q.local_loss().backward()
            grads[flag, sparse] = q.log_step.grad.clone()
    torch.testing.assert_close(grads[True, False], grads[True, True])
    torch.testing.assert_close(grads[False, False], grads[False, True])
    assert (grads[False, False][:2] == 0).all() and (grads[True, False][:2] > 0).all()
    torch.testing.assert_close(grads[True, False][2:], grads[False, False][2:])


def test_stratified_folds_partition_and_hold_out_validation():
    from a2q.data import stratified_folds

    y = torch.tensor([0] * 63 + [1] * 125)
    folds = stratified_folds(y, 10, seed=3)
    tests = torch.cat([f[2] for f in folds])
    assert sorted(tests.tolist()) == list(range(188))
    for train, val, test in folds:
        assert not set(train.tolist()) & set(val.tolist()) and not set(train.tolist()) & set(test.tolist())
        assert not set(val.tolist()) & set(test.tolist())
        assert len(train) + len(val) + len(test) == 188
        for c, total in ((0, 63), (1, 125)):
            assert abs(int((y[test] == c).sum()) - total / 10) <= 1
    again = stratified_folds(y, 10, seed=3)
    assert all(torch.equal(a[2], b[2]) and torch.equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))


def test_degree_features_one_hot_or_standardised(monkeypatch):
    import a2q.data as D

    ei = torch.tensor([[1, 2, 3, 0], [0, 0, 0, 1]])
    x, how = D.degree_features(ei, 4)
    assert how.startswith("one-hot") and x.shape == (4, 4) and x[0, 3] == 1 and x[2, 0] == 1
    monkeypatch.setattr(D, "ONE_HOT_MAX_DEGREE", 2)
    x, how = D.degree_features(ei, 4)
    assert how.startswith("standardised") and x.shape == (4, 1) and abs(float(x.mean())) < 1e-6


@pytest.mark.skipif(not HAVE_MUTAG, reason="MUTAG raw files not found under $A2Q_DATA_ROOT/TU")
def test_pre_collated_batch_equals_pyg_collation():
    from torch_geometric.data import Batch

    from a2q.data import load_graph_set

    gs = load_graph_set("MUTAG")
    ids = torch.tensor([5, 0, 187, 42])
    b = gs.batch(ids)
    graphs = []
    for i in ids.tolist():
        n0, n1 = int(gs.node_ptr[i]), int(gs.node_ptr[i + 1])
        e0, e1 = int(gs.edge_ptr[i]), int(gs.edge_ptr[i + 1])
        from torch_geometric.data import Data
        graphs.append(Data(x=gs.x[n0:n1], edge_index=gs.edge_index[:, e0:e1] - n0, y=gs.y[i:i + 1]))
    ref = Batch.from_data_list(graphs)
    assert torch.equal(b.x, ref.x) and torch.equal(b.edge_index, ref.edge_index)
    assert torch.equal(b.batch, ref.batch) and torch.equal(b.y, ref.y)


@pytest.mark.skipif(not HAVE_MUTAG, reason="MUTAG raw files not found under $A2Q_DATA_ROOT/TU")
@pytest.mark.parametrize("method", [["--method", "a2q"], ["--method", "dq", "--bits", "4"]])
def test_mutag_two_folds_train_eval_and_resume(tmp_path, method):
    from a2q.trainer import parse_train_args, run_train

    argv = ["--model", "gin", "--dataset", "MUTAG", "--folds", "2", "--epochs", "3", "--layers", "2", "--hidden",
            "16", "--out", str(tmp_path), "--no-progress", *method]
    m = run_train(parse_train_args(argv))
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert [r["fold"] for r in on_disk["per_fold"]] == [0, 1] and on_disk["folds_run"] == [0, 1]
    for r in m["per_fold"]:
        assert 0 <= r["test_acc"] <= 1 and r["n_test"] in (18, 19) and 1 <= r["avg_bits"] <= 8
        assert r["best_epoch"] in (0, 1, 2) and r["s_per_epoch"] > 0
    assert m["compression_ratio"] == pytest.approx(32 / m["avg_bits"])
    if method[1] == "a2q":
        assert m["pool"] == 16 and sum(m["per_fold"][0]["bits_histogram"].values()) > 0
    else:
        assert m["avg_bits"] == 4.0
    assert (tmp_path / "fold0.pt").exists() and (tmp_path / "model.pt").exists()
    again = run_train(parse_train_args([*argv, "--resume"]))  # reuses both folds, trains nothing
    assert [r["test_acc"] for r in again["per_fold"]] == [r["test_acc"] for r in m["per_fold"]]
    assert np.isclose(again["test_acc_mean"], m["test_acc_mean"])


@pytest.mark.skipif(not HAVE_MUTAG, reason="MUTAG raw files not found under $A2Q_DATA_ROOT/TU")
def test_graph_training_records_history_and_decays_the_learning_rate(tmp_path, monkeypatch):
    """Each fold row carries one history entry per epoch; --lr-decay-step N multiplies every optimizer
    group's lr by the factor each N epochs (the schedule of Degree-Quant and the official A2Q script)."""
    from a2q import graph_trainer
    from a2q.trainer import parse_train_args, run_train

    seen = []
    real_step = graph_trainer.train_step

    def spy(model, data, opt, pen, local_weight):
        seen.append([g["lr"] for g in opt.param_groups])
        return real_step(model, data, opt, pen, local_weight)

    monkeypatch.setattr(graph_trainer, "train_step", spy)
    argv = ["--model", "gin", "--dataset", "MUTAG", "--folds", "1", "--epochs", "4", "--layers", "2", "--hidden",
            "16", "--batch-size", "256", "--out", str(tmp_path), "--no-progress", "--method", "a2q",
            "--lr-decay-step", "2", "--lr-decay-factor", "0.25"]
    m = run_train(parse_train_args(argv))
    hist = m["per_fold"][0]["history"]
    assert [h["epoch"] for h in hist] == [0, 1, 2, 3]
    assert all(0 <= h["val_acc"] <= 1 and h["train_loss"] > 0 and 1 <= h["val_avg_bits"] <= 8 for h in hist)
    assert len(seen) == 4  # one batch per epoch (batch 256 > the fold's training graphs)
    for k, lrs in enumerate(seen):
        assert lrs == pytest.approx([lr * 0.25 ** (k // 2) for lr in seen[0]]), (k, lrs)
    assert m["lr_decay_step"] == 2 and m["lr_decay_factor"] == 0.25


@pytest.mark.parametrize("norm", ["l2", "l1"])
def test_fused_local_fake_quant_equals_the_autograd_form(norm):
    from a2q.quantizers.fused import fused_local_fake_quant
    from a2q.quantizers.ste import clip, fake_quant

    g = torch.Generator().manual_seed(0)
    x = (torch.randn(30, 9, generator=g) * 2).requires_grad_()
    step = (torch.rand(30, 1, generator=g) * 0.3 + 0.05).requires_grad_()
    qmin = torch.full((30, 1), -8.0, requires_grad=True)
    qmax = torch.full((30, 1), 7.0, requires_grad=True)
    w = torch.rand(30, 1, generator=g)
    xq, loss = fused_local_fake_quant(x, step, qmin, qmax, w, norm)
    # reference: NodeQuantizer's two passes (error with the rounding held fixed; output with detached ranges)
    xd = x.detach()
    e = clip(torch.floor(xd / step + 0.5).detach(), qmin, qmax) * step - xd
    ref_loss = ((e ** 2 if norm == "l2" else e.abs()) * w).sum()
    ref_xq = fake_quant(x, step.detach(), qmin.detach(), qmax.detach())
    torch.testing.assert_close(xq, ref_xq)
    torch.testing.assert_close(loss, ref_loss)
    up = torch.randn(30, 9, generator=g)
    got = torch.autograd.grad((xq * up).sum() + 3 * loss, (x, step, qmin, qmax))
    ref = torch.autograd.grad((ref_xq * up).sum() + 3 * ref_loss, (x, step, qmin, qmax))
    assert float(ref[2].abs().sum()) > 0 and float(ref[3].abs().sum()) > 0  # both ends clip somewhere
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_exactly_represented_rows_give_no_local_gradient():
    """Row-normalised bag-of-words rows are exact at one bit; the float residual of x/s must not train the
    step (Adam would scale a 1e-9 gradient to a full step and clip the row)."""
    from a2q.quantizers import NodeQuantizer

    g = torch.Generator().manual_seed(0)
    x = (torch.rand(50, 300, generator=g) < 0.03).float()
    x[:, 0] = 1.0
    x = x / x.sum(1, keepdim=True)
    q = NodeQuantizer(50, signed=False, init_bits=4.0).train()
    q.init_from(x)
    assert q.int_bits().tolist() == [1.0] * 50
    q(x)
    q.local_loss().backward()
    assert float(q.local_loss()) == 0.0 and not q.log_step.grad.any()


class _DenseMaskFusedLocal(torch.autograd.Function):
    """The fused Local Gradient before the clip-row version: [N, F] masks for both range ends on every row.
    Kept here as the reference the faster one must equal bit for bit."""

    @staticmethod
    def forward(ctx, x, step, qmin, qmax, weight, l2):
        from a2q.quantizers.node import EXACT_TOL

        r = torch.mul(x, 1.0 / step).add_(0.5).floor_()
        below, above = r < qmin, r > qmax
        q = r.clamp_(qmin, qmax)
        xq = q * step
        e = xq - x
        e.masked_fill_(e.abs() <= EXACT_TOL * step, 0.0)
        de = e * (2.0 * weight) if l2 else torch.sign(e).mul_(weight)
        loss = torch.dot(e.view(-1), de.view(-1)) / 2 if l2 else torch.dot(e.view(-1), de.view(-1))
        g_step = q.mul_(de).sum(1, keepdim=True)
        g_qmax = torch.mul(de, above, out=e).sum(1, keepdim=True) * step
        g_qmin = torch.mul(de, below, out=e).sum(1, keepdim=True) * step
        ctx.save_for_backward(~(below | above), g_step, g_qmin, g_qmax)
        return xq, loss

    @staticmethod
    def backward(ctx, g_xq, g_loss):
        inside, g_step, g_qmin, g_qmax = ctx.saved_tensors
        return g_xq * inside, g_step * g_loss, g_qmin * g_loss, g_qmax * g_loss, None, None


@pytest.mark.parametrize("norm", ["l2", "l1"])
@pytest.mark.parametrize("signed,clip_frac", [(True, 0.3), (False, 0.05), (False, 0.0)])
def test_clip_row_fused_local_equals_the_dense_mask_form_bit_for_bit(norm, signed, clip_frac):
    """The training hot path was made faster (masks only on the rows that clip, no bool->float copies,
    row extremes shared with the NNS selection); outputs, loss and every gradient must stay identical."""
    from a2q.quantizers.fused import fused_local_fake_quant
    from a2q.quantizers.nns import row_extremes

    g = torch.Generator().manual_seed(1)
    n, f = 400, 16
    x = torch.randn(n, f, generator=g) * torch.rand(n, 1, generator=g) * 4
    if not signed:
        x = x.relu()
    x[:20] = torch.round(x[:20] * 4) / 4  # rows exactly on the grid of step 1/4 (the EXACT_TOL residuals)
    bits = torch.randint(1, 9, (n, 1), generator=g).float()
    qmin, qmax = (-2 ** (bits - 1), 2 ** (bits - 1) - 1) if signed else (torch.zeros_like(bits), 2 ** bits - 1)
    top = torch.maximum(x.amax(1, keepdim=True), -x.amin(1, keepdim=True)).clamp_min(1e-3)
    clips = torch.rand(n, 1, generator=g) < clip_frac  # these rows' ranges end below their largest value
    step = top / torch.where(clips, qmax.clamp_min(1) * 0.5, qmax.clamp_min(1))
    step[:20] = 0.25
    w = torch.rand(n, 1, generator=g)
    up = torch.randn(n, f, generator=g)
    results = []
    for fn in ("new", "ref"):
        xs, st = x.clone().requires_grad_(), step.clone().requires_grad_()
        lo, hi = qmin.clone().requires_grad_(), qmax.clone().requires_grad_()
        if fn == "new":
            mn, mx, _ = row_extremes(xs)
            xq, loss = fused_local_fake_quant(xs, st, lo, hi, w, norm, mn[:, None], mx[:, None])
        else:
            xq, loss = _DenseMaskFusedLocal.apply(xs, st, lo, hi, w, norm == "l2")
        grads = torch.autograd.grad((xq * up).sum() + 3 * loss, (xs, st, lo, hi))
        results.append((xq, loss, *grads))
    if clip_frac:
        assert results[1][4].abs().sum() + results[1][5].abs().sum() > 0  # some range end clips
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)


def test_row_extremes_max_abs_equals_the_inf_norm():
    from a2q.quantizers.nns import row_extremes

    x = torch.randn(300, 7, generator=torch.Generator().manual_seed(2))
    mn, mx, ab = row_extremes(x)
    assert torch.equal(ab, torch.linalg.vector_norm(x, float("inf"), dim=1))
    assert torch.equal(mn, x.amin(1)) and torch.equal(mx, x.amax(1))
    assert row_extremes(torch.zeros(3, 0))[2].tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("extra,message", [
    (["--dataset", "KarateClub", "--head-bits", "4"], "--head-bits: graph-level"),
    (["--dataset", "KarateClub", "--lr-decay-step", "50"], "--lr-decay-step: graph-level"),
    (["--dataset", "MUTAG", "--head-bits", "9"], "--head-bits must be 0"),
    (["--dataset", "MUTAG", "--lr-decay-step", "-1"], "--lr-decay-step must be >= 0"),
    (["--dataset", "MUTAG", "--head-bits", "4", "--method", "uniform"], "--head-bits applies to --method a2q"),
])
def test_graph_only_options_are_refused_where_they_do_not_apply(tmp_path, extra, message):
    from a2q.trainer import parse_train_args, run_train

    with pytest.raises(ValueError, match=message):
        run_train(parse_train_args(["--model", "gin", "--out", str(tmp_path), "--no-progress", *extra]))
