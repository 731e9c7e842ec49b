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
        sigma = _scale_for(np.abs(acc * node_factor[:, None]).max(initial=0.0), fp.Y_BITS)
        src_mult, src_shift = _multipliers(node_factor / sigma)
        y = integer.src_rescale(t(acc), t(src_mult), t(src_shift))
        a = integer.aggregate(y, t(row_ptr), t(col_idx)).numpy().astype(np.float64)
        pre = sigma * w_step[None, :] * a + bias[None, :]   # = d_i^1/2 * layer output
        tau = _scale_for(np.abs(pre).max(initial=0.0), fp.P_BITS)
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


class UnsupportedModelError(ValueError):
    """A trained model the accelerator's program format cannot express (the message says which layer, why)."""


def refuse_unexportable(model, ckpt_path) -> None:
    """Only GCNs export to program format v1; say why the others do not."""
    kind = getattr(model, "kind", "gcn")
    if kind == "gat":
        raise UnsupportedModelError(
            f"{ckpt_path}: a GAT model cannot be exported: layer conv1 (QGATConv) weights every edge by a "
            f"softmax attention coefficient (exp and a per-node division over data-dependent scores), and the "
            f"accelerator only sums neighbours with fixed per-node factors (combine, sum-aggregate, rescale). "
            f"GAT is for training and fake-quant evaluation only")
    if kind == "gin":
        raise UnsupportedModelError(
            f"{ckpt_path}: a GIN model cannot be exported yet: it needs program format v2 (a two-linear MLP with "
            f"BatchNorm folded per layer, an unnormalised sum aggregation, NNS per-node (step, bits) selection "
            f"and graph pooling); format v1 holds one normalised GCN layer per layer")


def export_checkpoint(ckpt_path: str | Path, data_root: str | None = None, binary: bool = False) -> Program:
    """Load a checkpoint written by ``a2q train`` and fold it into a program. ``binary``: encode a
    binary input layer at one bit (``binary_input``), as A2Q does; meta ``input_encoding`` says which."""
    from .ckpt import load_checkpoint
    from .data import load_dataset

    model, meta = load_checkpoint(ckpt_path)
    refuse_unexportable(model, ckpt_path)
    if meta.get("method") == "fp32":
        raise ValueError(f"{ckpt_path}: an FP32 model has no quantizers to export; train uniform, dq or a2q")
    data = load_dataset(meta["dataset"], data_root)
    model.eval()
    with torch.no_grad():
        layers = model.export_layers(data)
        x_int = model.quantized_input(data)
    keep = ("dataset", "method", "bits", "seed", "hidden", "fakequant_test_acc", "target_bits")
    x_int, encoding = np.asarray(x_int), {"input_encoding": "codes"}
    if binary:
        layers, x_int, changed = binary_input(layers, x_int, int(data.num_nodes))
        encoding = {"input_encoding": "binary", "binary_input_nodes": changed}
    return build_program(layers, x_int, data.edge_index.numpy(), int(data.num_nodes),
                         labels=data.y.numpy(), test_mask=data.test_mask.numpy(),
                         meta={k: meta[k] for k in keep if k in meta} | {"checkpoint": str(ckpt_path)} | encoding)


def add_export_arguments(p) -> None:
    p.add_argument("checkpoint", help="checkpoint written by `a2q train` (model.pt)")
    p.add_argument("-o", "--out", required=True, help="program directory to write (atomically)")
    p.add_argument("--data-root", default=None, help="dataset root (default: $A2Q_DATA_ROOT)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run_export(args) -> dict:
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    program = export_checkpoint(args.checkpoint, args.data_root)
    out = save(program, args.out)
    int_acc = integer.accuracy(program)
    result = {"program": str(out), "num_nodes": program.num_nodes, "nnz": program.nnz,
              "layers": [s.to_json() for s in program.layers], "avg_bits": program.avg_bits(),
              "int_test_acc": int_acc, "fakequant_test_acc": program.meta.get("fakequant_test_acc"),
              "wall_s": time.perf_counter() - t0, "threads": args.threads}
    print(f"exported {out}: N={program.num_nodes} nnz={program.nnz} avg_bits={program.avg_bits():.3f} "
          f"int_acc={int_acc if int_acc is None else round(int_acc, 4)}")
    write_json(out / "export.json", result)
    return result
