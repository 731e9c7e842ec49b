"""Turn a trained (fake-quant) model into an accelerator program.

``build_program`` is pure numpy + the integer reference: it folds the GCN normalisation, node steps,
weight steps and bias into the fixed-point multipliers of ``docs/arithmetic.md``, layer by layer,
calibrating each layer's scales (sigma, tau) on the integers the previous layer really produces.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from . import fixedpoint as fp
from . import integer
from .jsonio import write_json
from .program import LayerSpec, Program, save
from .quantizers import NNSQuantizer

#: Calibrated maxima land at 2**(B-2): one bit of headroom below saturation.
HEADROOM_BITS = 2


def csr_with_self_loops(edge_index: np.ndarray, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR of A + I with rows = destinations (PyG's edge_index[1]); duplicate edges removed."""
    src, dst = np.asarray(edge_index[0], np.int64), np.asarray(edge_index[1], np.int64)
    keep = src != dst
    src = np.concatenate([src[keep], np.arange(num_nodes)])
    dst = np.concatenate([dst[keep], np.arange(num_nodes)])
    key = np.unique(dst * num_nodes + src)
    dst, src = key // num_nodes, key % num_nodes
    row_ptr = np.zeros(num_nodes + 1, dtype=np.int64)
    np.add.at(row_ptr, dst + 1, 1)
    return np.cumsum(row_ptr), src.astype(np.int64)


def _multipliers(real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vector ``quantize_multiplier``; factors above the representable range saturate.

    Only a node whose accumulator is all zero can ask for such a factor (see docs/arithmetic.md),
    and then the multiplier does not matter.
    """
    limit = float((1 << fp.MULT_BITS) - 1)
    mult = np.empty(real.shape, np.uint32)
    shift = np.empty(real.shape, np.uint8)
    for k, r in enumerate(np.asarray(real, np.float64).ravel()):
        m, s = fp.quantize_multiplier(r) if r < (1 << (fp.MULT_BITS - 1)) else (int(min(round(r), limit)), 0)
        mult.flat[k], shift.flat[k] = m, s
    return mult, shift


def _scale_for(max_abs: float, bits: int) -> float:
    return max(float(max_abs), 1e-30) / float(1 << (bits - HEADROOM_BITS))


def _y_scale(acc: np.ndarray, factor: np.ndarray) -> float:
    """The scale sigma of a layer's y (SRC_RESCALE output): real(y) = sigma * y.

    As fine as the Y_BITS range allows (the largest |acc * factor| about one bit below saturation), but
    no finer than the unsigned MULT_BITS node multiplier can reach: every row with a non-zero
    accumulator needs its gain factor / sigma <= 2**MULT_BITS - 1, else its multiplier would saturate
    and its y would shrink. With a 16-bit y the range bound always wins; with a 24-bit y a row of
    small codes (1-bit features, few inputs) can make the gain bound win.
    """
    acc = np.abs(np.asarray(acc, np.float64))
    factor = np.asarray(factor, np.float64)
    sigma = _scale_for((acc * factor[:, None]).max(initial=0.0), fp.Y_BITS)
    live = acc.max(axis=1, initial=0.0) > 0
    if live.any():
        sigma = max(sigma, float(factor[live].max()) / float((1 << fp.MULT_BITS) - 1))
    return sigma


def _p_scale(scaled_agg: np.ndarray, bias: np.ndarray) -> float:
    """The channel scale tau of a layer's p = sat(rescale(a, Mc, Sc) + B): real(p) = tau * p.

    It covers each term of the sum, not only the sum: after a BatchNorm fold a channel whose inputs
    barely vary (e.g. a constant row set) gets a large weight scale and a large opposite bias that
    nearly cancel, and a tau fitted to the small sum alone would saturate B (or the rescaled aggregate)
    at P_BITS and break the arithmetic. Such a channel then keeps fewer significant bits instead.
    """
    scaled_agg, bias = np.asarray(scaled_agg, np.float64), np.asarray(bias, np.float64)
    peak = max(np.abs(scaled_agg + bias[None, :]).max(initial=0.0), np.abs(scaled_agg).max(initial=0.0),
               np.abs(bias).max(initial=0.0))
    return _scale_for(peak, fp.P_BITS)


def quantize_weight(weight: np.ndarray, step: np.ndarray, bits: int) -> np.ndarray:
    lo, hi = fp.signed_range(bits)
    return np.clip(np.floor(weight / step[None, :] + 0.5), lo, hi).astype(np.int8)


def binary_input(layers: list[dict], x_int: np.ndarray, num_nodes: int) -> tuple[list[dict], np.ndarray, int]:
    """The exact one-bit encoding of a binary input layer, for any quantizer (the fair baseline).

    A node whose layer-0 codes take only the values {0, c_j} (a bag-of-words row under a uniform step:
    every non-zero entry of a row-normalised binary row is the same code) is stored as the bits
    ``x > 0`` with 1 bit and the per-node step ``c_j * s_j``; the real values ``x * s`` are unchanged,
    so the exporter folds ``c_j`` into the node's source multiplier. A2Q learns this encoding; a uniform
    INT-k program gets it here. Signed inputs and other rows are left as they are. Returns the new
    layers, codes and the number of nodes re-encoded.
    """
    L0 = dict(layers[0])
    x = np.asarray(x_int, np.int64)
    if L0["in_signed"]:
        return layers, x_int, 0
    c = x.max(axis=1, initial=0)
    binary = ((x == 0) | (x == c[:, None])).all(axis=1)
    bits = np.broadcast_to(np.asarray(L0["in_bits"]), (num_nodes,)).astype(np.int64)
    step = np.broadcast_to(np.asarray(L0["in_step"], np.float64), (num_nodes,)).astype(np.float64)
    change = binary & (bits > 1)
    L0["in_bits"] = np.where(change, 1, bits)
    L0["in_step"] = np.where(change & (c > 0), step * np.maximum(c, 1), step)
    x = np.where(change[:, None], (x > 0).astype(np.int64), x)
    return [L0, *layers[1:]], x, int(change.sum())


def build_program(layers: list[dict], x_int: np.ndarray, edge_index: np.ndarray, num_nodes: int,
                  labels: np.ndarray | None = None, test_mask: np.ndarray | None = None,
                  meta: dict | None = None) -> Program:
    """Fold a model's float quantization parameters into an integer program (see module doc)."""
    row_ptr, col_idx = csr_with_self_loops(edge_index, num_nodes)
    deg = np.diff(row_ptr).astype(np.float64)
    inv_sqrt = 1.0 / np.sqrt(np.maximum(deg, 1.0))
    specs, arrays, scales = [], {"row_ptr": row_ptr, "col_idx": col_idx, "x": x_int.astype(np.int16)}, []
    x = torch.as_tensor(x_int, dtype=torch.int64)
    t = lambda a: torch.as_tensor(np.asarray(a).astype(np.int64))  # noqa: E731
    for i, L in enumerate(layers):
        last = i == len(layers) - 1
        spec = LayerSpec(int(L["weight"].shape[0]), int(L["weight"].shape[1]), bool(L["in_signed"]),
                         int(L["weight_bits"]), bool(L["relu"]) and not last)
        specs.append(spec)
        s = np.asarray(L["in_step"], np.float64)
        w_step = np.asarray(L["weight_step"], np.float64)
        bias = np.asarray(L["bias"], np.float64)
        W = quantize_weight(np.asarray(L["weight"], np.float64), w_step, spec.weight_bits)
        acc = integer.combine(x, t(W)).numpy().astype(np.float64)
        node_factor = s * inv_sqrt                          # real(y) = acc * s_j d_j^-1/2 (in units of w_o)
        sigma = _y_scale(acc, node_factor)
        src_mult, src_shift = _multipliers(node_factor / sigma)
        y = integer.src_rescale(t(acc), t(src_mult), t(src_shift))
        a = integer.aggregate(y, t(row_ptr), t(col_idx)).numpy().astype(np.float64)
        tau = _p_scale(sigma * w_step[None, :] * a, bias)   # sum = d_i^1/2 * layer output
        ch_mult, ch_shift = _multipliers(sigma * w_step / tau)
        lo, hi = fp.signed_range(fp.P_BITS)
        bias_int = np.clip(np.floor(bias / tau + 0.5), lo, hi).astype(np.int32)
        p = integer.channel_rescale(t(a), t(ch_mult), t(ch_shift), t(bias_int))
        if last:
            out_real = inv_sqrt[:, None] * tau * p.numpy()
            s_next = np.full(num_nodes, _scale_for(np.abs(out_real).max(initial=0.0), fp.OUT_BITS))
        else:
            s_next = np.asarray(layers[i + 1]["in_step"], np.float64)
        dst_mult, dst_shift = _multipliers(inv_sqrt * tau / s_next)
        arrays.update({f"l{i}_bits": np.asarray(L["in_bits"]).astype(np.uint8), f"l{i}_weight": W,
                       f"l{i}_src_mult": src_mult, f"l{i}_src_shift": src_shift,
                       f"l{i}_ch_mult": ch_mult, f"l{i}_ch_shift": ch_shift, f"l{i}_bias": bias_int,
                       f"l{i}_dst_mult": dst_mult, f"l{i}_dst_shift": dst_shift})
        out_bits = None if last else t(np.asarray(layers[i + 1]["in_bits"]))
        out_signed = False if last else bool(layers[i + 1]["in_signed"])
        x = integer.node_requant(p, t(dst_mult), t(dst_shift), out_bits, out_signed)
        scales.append({"sigma": sigma, "tau": tau})
    arrays["expected_out"] = x.numpy().astype(np.int32)
    if labels is not None:
        arrays["labels"] = np.asarray(labels, np.int64)
    if test_mask is not None:
        arrays["test_mask"] = np.asarray(test_mask, bool)
    return Program(layers=specs, arrays=arrays, meta={**(meta or {}), "scales": scales})


def csr_with_multiplicity(edge_index: np.ndarray, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR of the sum aggregation ``x_i + sum_{j -> i} x_j`` (GIN-0, rows = destinations): every edge as
    often as it occurs (a duplicate edge counts twice, a stored self loop too, as in the fake-quant
    model's sparse product) plus one self loop per node for the self term."""
    src, dst = np.asarray(edge_index[0], np.int64), np.asarray(edge_index[1], np.int64)
    src = np.concatenate([src, np.arange(num_nodes)])
    dst = np.concatenate([dst, np.arange(num_nodes)])
    order = np.lexsort((src, dst))
    row_ptr = np.zeros(num_nodes + 1, dtype=np.int64)
    np.add.at(row_ptr, dst + 1, 1)
    return np.cumsum(row_ptr), src[order].astype(np.int64)


def pool_ranges(step: np.ndarray, bits: np.ndarray, signed: bool) -> np.ndarray:
    """Range ``s_k * top(b_k)`` of each NNS pair (top = 2^b - 1 unsigned, 2^(b-1) - 1 signed)."""
    bits = np.asarray(bits, np.float64)
    top = 2.0 ** (bits - 1) - 1 if signed else 2.0 ** bits - 1
    return np.asarray(step, np.float64) * top


def pool_thresholds(ranges_sorted: np.ndarray, tau: float) -> np.ndarray:
    """Integer thresholds of a pool sorted by range, in units of the previous layer's tau:
    ``floor(mid_t / tau)`` clipped to [0, 2^23] (docs/arithmetic.md, "NNS selection")."""
    mid = (ranges_sorted[1:] + ranges_sorted[:-1]) / 2
    return np.clip(np.floor(mid / tau), 0, 1 << (fp.P_BITS - 1)).astype(np.int32)


def _sorted_pool(L: dict) -> tuple[np.ndarray, np.ndarray]:
    order = np.asarray(L.get("pool_order", np.argsort(pool_ranges(L["pool_step"], L["pool_bits"], L["in_signed"]),
                                                        kind="stable")))
    return np.asarray(L["pool_step"], np.float64)[order], np.asarray(L["pool_bits"], np.int64)[order]


def build_program_v2(layers: list[dict], x_int: np.ndarray, row_ptr: np.ndarray, col_idx: np.ndarray,
                     graph_ptr: np.ndarray | None = None, labels: np.ndarray | None = None,
                     test_mask: np.ndarray | None = None, meta: dict | None = None) -> Program:
    """Fold a model of any layer kinds (gcn, gin, dense, pool) into a format-v2 program.

    ``layers[i]``: ``kind``, ``weight_codes`` [F_in, F_out] (signed ``weight_bits`` integers),
    ``weight_step`` [F_out], ``bias`` [F_out] (BatchNorm folded), ``relu``, ``in_signed`` and the input:
    ``input="static"`` with per-row ``in_step``/``in_bits``, or ``input="pool"`` (i >= 1) with the NNS pool
    ``pool_step``/``pool_bits`` (and optionally ``pool_order``, the pairs sorted by range). As
    ``build_program``, each layer's sigma and tau are calibrated on the integers the previous layer
    really produces; a pool input's thresholds are ``floor(mid / tau)`` with the tau of the layer
    before, and the rows' pairs come from the integer selection (``integer.nns_select``).
    ``meta["scales"][i]`` records sigma, tau and, where the next input is a pool, its thresholds.
    """
    inv_sqrt = 1.0 / np.sqrt(np.maximum(np.diff(row_ptr).astype(np.float64), 1.0))
    arrays = {"row_ptr": np.asarray(row_ptr, np.int64), "col_idx": np.asarray(col_idx, np.int64),
              "x": np.asarray(x_int).astype(np.int16)}
    if graph_ptr is not None:
        arrays["graph_ptr"] = np.asarray(graph_ptr, np.int64)
    t = lambda a: torch.as_tensor(np.asarray(a).astype(np.int64))  # noqa: E731
    nl = len(layers)
    specs = []
    for i, L in enumerate(layers):
        codes = np.asarray(L["weight_codes"], np.int64)
        wbits = int(L["weight_bits"])
        while codes.size and not (fp.signed_range(wbits)[0] <= codes.min() <= codes.max() <= fp.signed_range(wbits)[1]):
            wbits += 1  # a BN fold that negated a code -2^(k-1): one more weight bit keeps it exact
        specs.append(LayerSpec(int(codes.shape[0]), int(codes.shape[1]), bool(L["in_signed"]), wbits,
                               bool(L["relu"]) and i < nl - 1, kind=L["kind"]))
    program = Program(layers=specs, arrays=arrays, meta=dict(meta or {}))
    x, sel, scales = t(x_int), None, []
    lo24, hi24 = fp.signed_range(fp.P_BITS)
    for i, L in enumerate(layers):
        spec, last = specs[i], i == nl - 1
        gcn = spec.kind == "gcn"
        if L["input"] == "pool":
            if i == 0:
                raise ValueError("layer 0's input is known: the host selects its pool pairs (a static input)")
            pstep, pbits = _sorted_pool(L)
            row_step = pstep[sel.numpy()]
        else:
            row_step = np.broadcast_to(np.asarray(L["in_step"], np.float64), (program.rows_in(i),))
        W = np.asarray(L["weight_codes"], np.int64).astype(np.int8)
        w_step = np.asarray(L["weight_step"], np.float64)
        bias = np.asarray(L["bias"], np.float64)
        acc = integer.combine(x, t(W))
        factor = row_step * (inv_sqrt if gcn else 1.0)
        sigma = _y_scale(acc.numpy(), factor)
        if L["input"] == "pool":
            m, sh = _multipliers(pstep / sigma)
            arrays |= {f"l{i}_pool_bits": pbits.astype(np.uint8), f"l{i}_pool_src_mult": m, f"l{i}_pool_src_shift": sh}
            src = (t(m)[sel], t(sh)[sel])
        else:
            m, sh = _multipliers(factor / sigma)
            arrays |= {f"l{i}_bits": np.broadcast_to(np.asarray(L["in_bits"]), (len(factor),)).astype(np.uint8),
                       f"l{i}_src_mult": m, f"l{i}_src_shift": sh}
            src = (t(m), t(sh))
        y = integer.src_rescale(acc, *src)
        if spec.aggregates:
            a = integer.aggregate(y, t(row_ptr), t(col_idx))
        elif spec.kind == "pool":
            a = integer.aggregate(y, *integer.membership_csr(t(graph_ptr)))
        else:
            a = y
        tau = _p_scale(sigma * w_step[None, :] * a.numpy().astype(np.float64), bias)
        ch_mult, ch_shift = _multipliers(sigma * w_step / tau)
        bias_int = np.clip(np.floor(bias / tau + 0.5), lo24, hi24).astype(np.int32)
        arrays |= {f"l{i}_weight": W, f"l{i}_ch_mult": ch_mult, f"l{i}_ch_shift": ch_shift, f"l{i}_bias": bias_int}
        p = integer.channel_rescale(a, t(ch_mult), t(ch_shift), t(bias_int))
        dst_factor = inv_sqrt if gcn else np.ones(p.shape[0])
        if spec.kind == "pool" and L.get("mean"):  # mean readout: (sum + b) / n_g, bias inside (models/gin.py)
            dst_factor = 1.0 / np.maximum(np.diff(np.asarray(graph_ptr)), 1).astype(np.float64)
        scale = {"sigma": sigma, "tau": tau}
        out_signed, sel = False, None
        if last:
            out_real = dst_factor[:, None] * tau * p.numpy()
            s_out = _scale_for(np.abs(out_real).max(initial=0.0), fp.OUT_BITS)
            dm, ds = _multipliers(dst_factor * tau / s_out)
            arrays |= {f"l{i}_dst_mult": dm, f"l{i}_dst_shift": ds}
            scale["s_out"] = s_out
            dst, out_bits = (t(dm), t(ds)), None
        elif layers[i + 1]["input"] == "pool":
            if gcn or (spec.kind == "pool" and L.get("mean")):
                raise ValueError(f"layer {i} ({'gcn' if gcn else 'mean pool'}) cannot feed an NNS pool: its "
                                 f"requantizer has a per-row factor, and the selection compares before it")
            nxt = layers[i + 1]
            out_signed = bool(nxt["in_signed"])
            nstep, nbits = _sorted_pool(nxt)
            thr = pool_thresholds(pool_ranges(nstep, nbits, out_signed), tau)
            dm, ds = _multipliers(tau / nstep)
            arrays |= {f"l{i + 1}_pool_thr": thr, f"l{i + 1}_pool_dst_mult": dm, f"l{i + 1}_pool_dst_shift": ds}
            sel = integer.nns_select(p, t(thr), out_signed)
            dst, out_bits = (t(dm)[sel], t(ds)[sel]), t(nbits)[sel]
            scale["next_thresholds"] = thr.tolist()
        else:
            nxt = layers[i + 1]
            out_signed = bool(nxt["in_signed"])
            s_next = np.broadcast_to(np.asarray(nxt["in_step"], np.float64), (p.shape[0],))
            dm, ds = _multipliers(dst_factor * tau / s_next)
            arrays |= {f"l{i}_dst_mult": dm, f"l{i}_dst_shift": ds}
            dst = (t(dm), t(ds))
            out_bits = t(np.broadcast_to(np.asarray(nxt["in_bits"]), (p.shape[0],)))
        x = integer.node_requant(p, *dst, out_bits, out_signed)
        scales.append(scale)
    arrays["expected_out"] = x.numpy().astype(np.int32)
    if labels is not None:
        arrays["labels"] = np.asarray(labels, np.int64)
    if test_mask is not None:
        arrays["test_mask"] = np.asarray(test_mask, bool)
    program.meta["scales"] = scales
    program.meta["weight_bits_raised"] = [i for i, L in enumerate(layers) if specs[i].weight_bits != L["weight_bits"]]
    from .program import validate

    validate(program)
    return program


class UnsupportedModelError(ValueError):
    """A trained model the accelerator's program format cannot express (the message says which layer, why)."""


def refuse_unexportable(model, ckpt_path) -> None:
    """GCN and GIN (sum readout) export to program format v2; say why the others do not."""
    kind = getattr(model, "kind", "gcn")
    if kind == "gat":
        raise UnsupportedModelError(
            f"{ckpt_path}: a GAT model cannot be exported: layer conv1 (QGATConv) weights every edge by a "
            f"softmax attention coefficient (exp and a per-node division over data-dependent scores), and the "
            f"accelerator only sums neighbours with fixed per-node factors (combine, sum-aggregate, rescale). "
            f"GAT is for training and fake-quant evaluation only")
    if kind == "gin" and getattr(model, "task", "node") == "graph" and getattr(model, "readout", "sum") == "mean" \
            and isinstance(model._hq[1], NNSQuantizer):
        raise UnsupportedModelError(
            f"{ckpt_path}: layer head1 (the 'mean' readout fused with the head's first Linear) cannot be "
            f"exported with an NNS pool on the head's second input: the pool layer divides each graph's row by "
            f"its node count in the requantizer, after the NNS selection has compared the sum; train with "
            f"--head-bits K (one static step), or --readout sum")
    if kind not in ("gcn", "gin"):
        raise UnsupportedModelError(f"{ckpt_path}: a {kind!r} model has no accelerator program (gcn and gin export)")


def export_checkpoint(ckpt_path: str | Path, data_root: str | None = None, binary: bool = False,
                      graphs: int | None = None, fold: int | None = None, report: dict | None = None,
                      graph_order: str = "stratified") -> Program:
    """Load a checkpoint written by ``a2q train`` and fold it into a program. ``binary``: encode a
    binary input layer at one bit (``binary_input``), as A2Q does; meta ``input_encoding`` says which.
    Graph-level GIN: ``graphs`` test graphs of ``fold`` (default: the checkpoint's fold) as one
    block-diagonal batch, chosen by ``graph_order`` (``a2q.data.graph_subset``: class-stratified by
    default). ``report`` (a dict) receives the fake-quant / integer agreement (``gin_agreement``)."""
    from .ckpt import load_checkpoint

    model, meta = load_checkpoint(ckpt_path)
    refuse_unexportable(model, ckpt_path)
    if meta.get("method") == "fp32":
        raise ValueError(f"{ckpt_path}: an FP32 model has no quantizers to export; train uniform, dq or a2q")
    keep = ("dataset", "method", "bits", "seed", "hidden", "fakequant_test_acc", "target_bits", "fold", "task")
    base_meta = {k: meta[k] for k in keep if k in meta} | {"checkpoint": str(ckpt_path)}
    if getattr(model, "kind", "gcn") == "gin":
        program, rep = export_gin(model, meta, data_root, binary=binary, graphs=graphs, fold=fold, meta_out=base_meta,
                                  graph_order=graph_order)
        if report is not None:
            report.update(rep)
        return program
    from .data import load_dataset

    data = load_dataset(meta["dataset"], data_root)
    model.eval()
    with torch.no_grad():
        layers = model.export_layers(data)
        x_int = model.quantized_input(data)
    x_int, encoding = np.asarray(x_int), {"input_encoding": "codes"}
    if binary:
        layers, x_int, changed = binary_input(layers, x_int, int(data.num_nodes))
        encoding = {"input_encoding": "binary", "binary_input_nodes": changed}
    return build_program(layers, x_int, data.edge_index.numpy(), int(data.num_nodes),
                         labels=data.y.numpy(), test_mask=data.test_mask.numpy(), meta=base_meta | encoding)


def gin_data(model, meta: dict, data_root: str | None, graphs: int | None = None, fold: int | None = None,
             graph_order: str = "stratified"):
    """The graph a GIN program runs on: node-level, the whole dataset (test mask as trained); graph-level,
    ``graphs`` (default all) test graphs of ``fold`` (default the checkpoint's) as one batch, with
    ``test_mask`` all true: a class-stratified sample by default, since the lowest ids of a TU fold are
    one class (``a2q.data.graph_subset``). Returns (data, labels, test_mask, description)."""
    if model.task == "node":
        from .data import load_dataset

        data = load_dataset(meta["dataset"], data_root)
        return data, data.y.numpy(), data.test_mask.numpy(), {"task": "node"}
    from .data import graph_subset, load_graph_set, stratified_folds

    gs = load_graph_set(meta["dataset"], data_root)
    fold = int(meta.get("fold", 0) if fold is None else fold)
    num_folds, split_seed = int(meta.get("num_folds", 10)), int(meta.get("split_seed", 12345))
    if not 0 <= fold < num_folds:
        raise ValueError(f"--fold must lie in [0, {num_folds}), got {fold}")
    test_ids = torch.as_tensor(stratified_folds(gs.y, num_folds, split_seed)[fold][2])
    test_ids = graph_subset(test_ids, gs.y, graphs, split_seed, graph_order)
    data = gs.batch(test_ids)
    if meta.get("fold") is not None and int(meta["fold"]) != fold:
        note = (f"fold {fold}'s test graphs, but the model was trained on fold {meta['fold']} "
                "(they may be training graphs)")
    else:
        note = None
    return data, data.y.numpy(), np.ones(len(test_ids), bool), {
        "task": "graph", "fold": fold, "num_folds": num_folds, "split_seed": split_seed,
        "graph_order": graph_order if graphs is not None else "all", "graph_ids": [int(v) for v in test_ids],
        **({"warning": note} if note else {})}


def export_gin(model, meta: dict, data_root: str | None = None, binary: bool = False, graphs: int | None = None,
               fold: int | None = None, meta_out: dict | None = None, data=None,
               graph_order: str = "stratified") -> tuple[Program, dict]:
    """Export a GIN (node- or graph-level) as a v2 program, point the model's NNS quantizers at the
    program's integer thresholds (``NNSQuantizer.set_thresholds``) and compare fake-quant with integer
    (``gin_agreement``). Returns (program, agreement report)."""
    meta_out = meta_out or {}
    if data is None:
        data, labels, test_mask, where = gin_data(model, meta, data_root, graphs, fold, graph_order)
    else:
        labels, test_mask, where = data.y.numpy(), getattr(data, "test_mask", None), {"task": model.task}
        test_mask = np.ones(len(labels), bool) if test_mask is None else test_mask.numpy()
    model.eval()
    for q in model.node_quantizers:
        if hasattr(q, "set_thresholds"):
            q.set_thresholds(None)
    layers, x_int = model.export_layers(data)
    x_int, encoding = np.asarray(x_int), {"input_encoding": "codes"}
    if binary:
        layers, x_int, changed = binary_input(layers, x_int, int(data.num_nodes))
        encoding = {"input_encoding": "binary", "binary_input_nodes": changed}
    row_ptr, col_idx = csr_with_multiplicity(data.edge_index.numpy(), int(data.num_nodes))
    graph_ptr = None
    if model.task == "graph":
        counts = np.bincount(data.batch.numpy(), minlength=int(data.num_graphs))
        graph_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    program = build_program_v2(layers, x_int, row_ptr, col_idx, graph_ptr, labels=labels, test_mask=test_mask,
                               meta=meta_out | encoding | {k: v for k, v in where.items() if k != "graph_ids"})
    if "graph_ids" in where:
        program.meta["graph_ids"] = where["graph_ids"]
    for i, L in enumerate(layers):  # the fake-quant model selects with the program's integer thresholds
        if L["input"] == "pool":
            L["quantizer"].set_thresholds(program.layer(i, "pool_thr"), program.meta["scales"][i - 1]["tau"])
    rep = gin_agreement(model, data, program, layers, test_mask)
    program.meta["fakequant_program_acc"] = rep["fakequant_acc"]
    return program, rep


@torch.no_grad()
def gin_agreement(model, data, program: Program, layers: list[dict], test_mask: np.ndarray,
                  max_listed: int = 20) -> dict:
    """Fake-quant (thresholds set) against the integer program on the program's rows: accuracy of both,
    and per NNS-pool layer input how many rows selected a different pair; every differing row and every
    differing prediction is listed (up to ``max_listed``) with the integer row max, the fake-quant
    row max in tau units and the thresholds around them, so a difference is explained to the node."""
    model.eval()
    seen, hooks = {}, []
    for i, L in enumerate(layers):  # each pool quantizer's input row max, as its selection sees it
        if L["input"] == "pool":
            hooks.append(L["quantizer"].register_forward_pre_hook(
                lambda mod, args, i=i: seen.__setitem__(i, args[0].detach().abs().amax(1).double())))
    try:
        fq_logits = model(data)
    finally:
        for h in hooks:
            h.remove()
    traces = integer.run(program)
    int_logits = traces[-1].out
    y = torch.as_tensor(program.arrays["labels"])
    mask = torch.as_tensor(test_mask, dtype=torch.bool)
    fq_pred, int_pred = fq_logits.argmax(1), int_logits.argmax(1)
    sel_rows = []
    per_layer = []
    gptr = program.arrays.get("graph_ptr")
    graph_of = None if gptr is None else np.repeat(np.arange(len(gptr) - 1), np.diff(gptr))
    for i, L in enumerate(layers):
        if L["input"] != "pool":
            continue
        q = L["quantizer"]
        inv = torch.empty_like(q.sorted_order())
        inv[q.sorted_order()] = torch.arange(q.pool)
        fq_sel, int_sel = inv[q.last_selection], traces[i - 1].sel
        diff = (fq_sel != int_sel).nonzero().flatten()
        per_layer.append({"layer": i, "rows": int(fq_sel.numel()), "differ": int(diff.numel())})
        p = traces[i - 1].p
        v = (p.abs() if L["in_signed"] else p.clamp_min(0)).amax(1)
        thr = program.layer(i, "pool_thr")
        tau = program.meta["scales"][i - 1]["tau"]
        for r in diff[: max_listed - len(sel_rows)].tolist():
            k = int(int_sel[r])
            where = {"graph": int(graph_of[r])} if graph_of is not None and program.rows_in(i) == program.num_nodes \
                else {}
            sel_rows.append({"layer": i, "row": r, **where, "fakequant_pair": int(fq_sel[r]), "integer_pair": k,
                             "integer_row_max": int(v[r]), "fakequant_row_max_over_tau": float(seen[i][r] / tau),
                             "thresholds_around": [int(thr[j]) for j in range(max(k - 1, 0), min(k + 1, len(thr)))]})
    pred_diff = ((fq_pred != int_pred) & mask).nonzero().flatten()
    preds = [{"row": r, "fakequant": int(fq_pred[r]), "integer": int(int_pred[r]), "label": int(y[r]),
              "fakequant_margin": float(fq_logits[r].topk(2).values[0] - fq_logits[r].topk(2).values[1]),
              "integer_margin": int(int_logits[r].topk(2).values[0] - int_logits[r].topk(2).values[1]),
              "integer_margin_real": float(int_logits[r].topk(2).values[0] - int_logits[r].topk(2).values[1])
              * program.meta["scales"][-1]["s_out"],
              "nns_selections_differ_in_row": sum(1 for d in sel_rows if d.get("graph", d["row"]) == r)}
             for r in pred_diff[:max_listed].tolist()]
    acc = lambda pred: float((pred[mask] == y[mask]).double().mean()) if mask.any() else None  # noqa: E731
    return {"fakequant_acc": acc(fq_pred), "integer_acc": acc(int_pred),
            "selection": per_layer, "selection_differ": sum(d["differ"] for d in per_layer),
            "selection_rows": sum(d["rows"] for d in per_layer), "selection_differences": sel_rows,
            "prediction_differ": int(pred_diff.numel()), "prediction_differences": preds,
            "rows": int(mask.sum()), "tau_of": "the previous layer's channel scale"}


def add_export_arguments(p) -> None:
    p.add_argument("checkpoint", help="checkpoint written by `a2q train` (model.pt)")
    p.add_argument("-o", "--out", required=True, help="program directory to write (atomically)")
    p.add_argument("--data-root", default=None, help="dataset root (default: $A2Q_DATA_ROOT)")
    p.add_argument("--graphs", type=int, default=None,
                   help="graph-level GIN: export N test graphs of the fold as one batch (default: all)")
    p.add_argument("--graph-order", default="stratified", choices=["stratified", "first"],
                   help="which N: a class-stratified sample (default) or the N lowest ids (the class-sorted "
                        "TU files make those one class)")
    p.add_argument("--fold", type=int, default=None, help="graph-level GIN: whose test graphs (default: the model's)")
    p.add_argument("--binary", action="store_true",
                   help="encode a binary input layer at one bit (the fair uniform baseline; docs/program.md)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run_export(args) -> dict:
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    report: dict = {}
    program = export_checkpoint(args.checkpoint, args.data_root, binary=args.binary, graphs=args.graphs,
                                fold=args.fold, report=report, graph_order=args.graph_order)
    out = save(program, args.out)
    int_acc = integer.accuracy(program)
    result = {"program": str(out), "num_nodes": program.num_nodes, "nnz": program.nnz,
              "num_graphs": program.num_graphs, "layers": [s.to_json() for s in program.layers],
              "avg_bits": program.avg_bits(), "int_test_acc": int_acc,
              "fakequant_test_acc": program.meta.get("fakequant_test_acc"),
              "fakequant_program_acc": program.meta.get("fakequant_program_acc"),
              "agreement": report or None, "wall_s": time.perf_counter() - t0, "threads": args.threads}
    agree = (f" fakequant_acc={report['fakequant_acc']:.4f} selections_differ={report['selection_differ']}/"
             f"{report['selection_rows']} predictions_differ={report['prediction_differ']}") if report else ""
    print(f"exported {out}: N={program.num_nodes} nnz={program.nnz} avg_bits={program.avg_bits():.3f} "
          f"int_acc={int_acc if int_acc is None else round(int_acc, 4)}{agree}")
    write_json(out / "export.json", result)
    return result
