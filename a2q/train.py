"""``a2q train``: train FP32 / uniform INT-k / A2Q GCNs over several seeds; checkpoints + metrics.json.

Per seed: full-batch training for ``--epochs`` epochs (Adam), evaluation every epoch, model selection by
validation accuracy (ties: lower validation loss). For A2Q only epochs whose bits meet the memory
target are eligible (so the reported bits are those of the selected model); if none does, all epochs
are and ``constraint_met`` is false. Test accuracy is reported at the selected epoch; the maximum test
accuracy over all epochs is also recorded, as ``test_acc_max_over_epochs`` (an optimistic figure, not
a result).

Loss = cross entropy on the training nodes
     + Local Gradient L1 error of the node quantizers (A2Q; trains only their steps and bits)
     + ``lambda * relu(mem - target)^2`` (A2Q; see :mod:`a2q.quant.memory_penalty` for the units).

Outputs in ``--out``: ``seed{S}.pt`` per seed, ``model.pt`` (the seed with the best validation accuracy)
and ``metrics.json`` (atomic). ``avg_bits`` is the node-weighted mean over all quantized layer inputs
(``Program.avg_bits``); ``degree_bits_spearman`` correlates each node's in-degree (self loop included)
with its learned bits in the *hidden* layer's input (layer 2), the layer whose bits the data decide
(the first layer's binary features are exact at one bit everywhere).
"""
from __future__ import annotations

import copy
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import save_checkpoint
from .data import load_dataset
from .jsonio import write_json
from .models import METHODS, build_model, default_weight_bits
from .quant import MemoryPenalty

#: Defaults tuned on Cora / CiteSeer (see scripts/bench_accuracy.py); the CLI defaults use them.
DEFAULTS = dict(
    hidden=16, dropout=0.5, lr=0.01, weight_decay=5e-4, epochs=200,
    lr_weight_step=0.001, lr_node_step=0.05, lr_bits=0.1, init_bits=4.0,
    target_bits=2.0, lam_bits=1e4, lam_kb=1e-4, penalty_margin=0.03,
)


def parse_seeds(text: str | int) -> list[int]:
    """``"3"`` -> [3]; ``"0-9"`` -> 0..9; ``"0,1,5"``; combinations like ``"0-2,7"``."""
    out: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ValueError(f"--seeds {text!r}: expected N, A-B or a comma list, e.g. 0-9 or 0,1,5") from None
    if not out:
        raise ValueError(f"--seeds {text!r}: no seeds")
    return list(dict.fromkeys(out))


def add_train_arguments(p) -> None:
    d = DEFAULTS
    p.add_argument("--model", default="gcn", choices=["gcn"], help="model kind (GCN only)")
    p.add_argument("--dataset", default="Cora", help="Cora, CiteSeer, PubMed or KarateClub")
    p.add_argument("--method", default="a2q", choices=list(METHODS), help="fp32, uniform INT-k or a2q")
    p.add_argument("--bits", type=int, default=None, help="feature bits of the uniform method (e.g. 8, 4)")
    p.add_argument("--weight-bits", type=int, default=None,
                   help="weight bits (default: 4; uniform: max(4, --bits), so INT8 has 8-bit weights)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--target-bits", type=float, default=None,
                   help=f"A2Q target node-weighted average bits (default {d['target_bits']})")
    g.add_argument("--target-kb", type=float, default=None, help="A2Q target feature memory in KB (all layers)")
    p.add_argument("--lam", type=float, default=None,
                   help=f"memory penalty lambda (default {d['lam_bits']} with --target-bits, {d['lam_kb']} with --target-kb)")
    p.add_argument("--penalty-margin", type=float, default=d["penalty_margin"],
                   help="the penalty aims at target*(1-margin) so the selected model meets the target")
    p.add_argument("--no-local-grad", action="store_true", help="A2Q: train steps/bits on the task loss")
    p.add_argument("--no-aggregation-weight", action="store_true",
                   help="A2Q Local Gradient: plain L1 error (do not weight node j's error by its aggregation weight)")
    p.add_argument("--init-bits", type=float, default=d["init_bits"], help="A2Q initial node bits")
    p.add_argument("--hidden", type=int, default=d["hidden"])
    p.add_argument("--dropout", type=float, default=d["dropout"])
    p.add_argument("--lr", type=float, default=d["lr"], help="learning rate of weights and biases")
    p.add_argument("--weight-decay", type=float, default=d["weight_decay"])
    p.add_argument("--lr-weight-step", type=float, default=d["lr_weight_step"])
    p.add_argument("--lr-node-step", type=float, default=d["lr_node_step"])
    p.add_argument("--lr-bits", type=float, default=d["lr_bits"])
    p.add_argument("--seeds", default="0", help="seeds: N, A-B or a comma list (e.g. 0-9)")
    p.add_argument("--epochs", type=int, default=d["epochs"])
    p.add_argument("--out", required=True, help="output directory (checkpoints, metrics.json)")
    p.add_argument("--data-root", default=None, help="dataset root (default: $A2Q_DATA_ROOT)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (recorded beside every timing)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")


def _opt(args, name):
    v = getattr(args, name, None)
    return DEFAULTS[name] if v is None else v


def penalty_for(args, model) -> MemoryPenalty | None:
    if args.method != "a2q":
        return None
    target_kb = getattr(args, "target_kb", None)
    if target_kb is not None:
        lam = args.lam if getattr(args, "lam", None) is not None else DEFAULTS["lam_kb"]
        return MemoryPenalty(lam, target_kb, unit="kb", margin=_opt(args, "penalty_margin"))
    target = getattr(args, "target_bits", None)
    target = DEFAULTS["target_bits"] if target is None else target
    lam = args.lam if getattr(args, "lam", None) is not None else DEFAULTS["lam_bits"]
    return MemoryPenalty(lam, target, unit="bits", margin=_opt(args, "penalty_margin"))


def make_optimizer(model, args) -> torch.optim.Optimizer:
    g = model.param_groups()
    groups = [{"params": g["weights"], "lr": _opt(args, "lr"), "weight_decay": _opt(args, "weight_decay")}]
    for key, lr_name in (("weight_steps", "lr_weight_step"), ("node_steps", "lr_node_step"),
                         ("node_bits", "lr_bits")):
        if g[key]:
            groups.append({"params": g[key], "lr": _opt(args, lr_name), "weight_decay": 0.0})
    return torch.optim.Adam(groups)


def _acc(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> float:
    return float((logits[mask].argmax(-1) == y[mask]).float().mean()) if bool(mask.any()) else float("nan")


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    from scipy.stats import spearmanr

    if np.all(a == a.flat[0]) or np.all(b == b.flat[0]):
        return None  # undefined for a constant
    r = spearmanr(a, b).statistic
    return None if not math.isfinite(r) else float(r)


def bits_summary(model, data) -> dict:
    if not model.quantized:
        return {"avg_bits": 32.0, "layer_avg_bits": [], "feature_kb": None, "bits_histogram": {},
                "degree_bits_spearman": None, "degree_bits_spearman_mean_over_layers": None}
    bits = model.layer_bits()
    deg = model.graph(data)[1].numpy()
    kb = sum(float(b.sum()) * f / 8 / 1024 for b, f in zip(bits, model.in_features()))
    hist = {f"layer{i}": {str(k): int((b == k).sum()) for k in range(1, 9)} for i, b in enumerate(bits)}
    allb = np.concatenate(bits)
    hist["all"] = {str(k): int((allb == k).sum()) for k in range(1, 9)}
    return {
        "avg_bits": float(np.mean([b.mean() for b in bits])),
        "layer_avg_bits": [float(b.mean()) for b in bits],
        "feature_kb": kb,
        "feature_avg_bits": kb * 8 * 1024 / sum(b.size * f for b, f in zip(bits, model.in_features())),
        "bits_histogram": hist,
        "degree_bits_spearman": spearman(deg, bits[-1].astype(np.float64)),
        "degree_bits_spearman_mean_over_layers": spearman(deg, np.mean(bits, axis=0)),
    }


def train_one_seed(args, ds, seed: int, bar=None) -> tuple[object, dict]:
    torch.manual_seed(seed)
    np.random.seed(seed)
    data = ds.data
    method = args.method
    bits = getattr(args, "bits", None)
    model = build_model(method, ds.num_features, ds.num_classes, int(data.num_nodes),
                        hidden=_opt(args, "hidden"), bits=bits,
                        weight_bits=getattr(args, "weight_bits", None), input_signed=bool((data.x < 0).any()),
                        dropout=_opt(args, "dropout"), init_bits=_opt(args, "init_bits"),
                        local_grad=not getattr(args, "no_local_grad", False),
                        aggregation_weighted=not getattr(args, "no_aggregation_weight", False))
    penalty = penalty_for(args, model)
    opt = None
    y = data.y
    best = {"key": None}
    max_test = 0.0
    any_met = False
    t0 = time.perf_counter()
    epochs = _opt(args, "epochs")
    for epoch in range(1, epochs + 1):
        model.train()
        if opt is None:  # the quantizers initialise their steps on the first forward
            with torch.no_grad():
                model(data)
            opt = make_optimizer(model, args)
        opt.zero_grad(set_to_none=True)
        logits = model(data)
        loss = F.cross_entropy(logits[data.train_mask], y[data.train_mask])
        local = model.local_loss()
        if local is not None:
            loss = loss + local
        if penalty is not None:
            loss = loss + penalty(model.bits_ste(), model.in_features())
        loss.backward()
        opt.step()
        model.clamp_()
        # evaluation of the model as it now is
        model.eval()
        with torch.no_grad():
            out = model(data)
            val_loss = float(F.cross_entropy(out[data.val_mask], y[data.val_mask]))
            val_acc, test_acc = _acc(out, y, data.val_mask), _acc(out, y, data.test_mask)
            met = penalty is None or penalty.met(model.layer_bits(), model.in_features())
        max_test = max(max_test, test_acc)
        if met and not any_met:  # first epoch meeting the target: forget earlier (over-budget) picks
            any_met, best = True, {"key": None}
        if met or not any_met:
            key = (val_acc, -val_loss)
            if best["key"] is None or key > best["key"]:
                best = {"key": key, "epoch": epoch, "val_acc": val_acc, "val_loss": val_loss,
                        "test_acc": test_acc, "state": copy.deepcopy(model.state_dict())}
        if bar is not None:
            bar.update(1)
            if epoch % 10 == 0 or epoch == epochs:
                bar.set_postfix(seed=seed, val=f"{val_acc:.3f}", test=f"{best['test_acc']:.3f}")
    wall = time.perf_counter() - t0
    model.load_state_dict(best["state"])
    model.eval()
    row = {"seed": seed, "test_acc": best["test_acc"], "val_acc": best["val_acc"], "best_epoch": best["epoch"],
           "test_acc_max_over_epochs": max_test, "constraint_met": any_met, "wall_s": wall,
           **bits_summary(model, data)}
    return model, row


def _mean_std(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None, None
    return float(np.mean(vals)), float(np.std(vals))


def run_train(args) -> dict:
    threads = int(getattr(args, "threads", 1) or 1)
    torch.set_num_threads(threads)
    if getattr(args, "model", "gcn") != "gcn":
        raise ValueError(f"model {args.model!r}: only gcn is implemented")
    if args.method == "uniform" and getattr(args, "bits", None) is None:
        raise ValueError("--method uniform needs --bits K (e.g. 8 or 4)")
    if args.method != "uniform" and getattr(args, "bits", None) is not None:
        raise ValueError("--bits is for --method uniform; A2Q takes --target-bits or --target-kb")
    if args.method != "a2q" and (getattr(args, "target_bits", None) is not None
                                 or getattr(args, "target_kb", None) is not None):
        raise ValueError("--target-bits/--target-kb are for --method a2q")
    seeds = parse_seeds(args.seeds)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    ds = load_dataset(args.dataset, getattr(args, "data_root", None))
    load_s = time.perf_counter() - t_all
    epochs = _opt(args, "epochs")
    bar = None
    if not getattr(args, "no_progress", False):
        from tqdm import tqdm

        bar = tqdm(total=len(seeds) * epochs, desc=f"{ds.name} {args.method}", unit="ep", leave=False)
    rows, best_model, best_row = [], None, None
    penalty_desc = None
    try:
        for seed in seeds:
            model, row = train_one_seed(args, ds, seed, bar)
            if penalty_desc is None:
                p = penalty_for(args, model)
                penalty_desc = None if p is None else {"lam": p.lam, "target": p.target, "unit": p.unit,
                                                       "margin": p.margin}
            meta = checkpoint_meta(args, ds, model, row)
            save_checkpoint(out / f"seed{seed}.pt", model, meta)
            rows.append(row)
            if best_row is None or (row["val_acc"], row["test_acc"] * 0) > (best_row["val_acc"], 0):
                best_model, best_row = model, row
    finally:
        if bar is not None:
            bar.close()
    save_checkpoint(out / "model.pt", best_model, checkpoint_meta(args, ds, best_model, best_row))
    acc_mean, acc_std = _mean_std([r["test_acc"] for r in rows])
    bits_mean, bits_std = _mean_std([r["avg_bits"] for r in rows])
    wall_seeds = [r["wall_s"] for r in rows]
    metrics = {
        "dataset": ds.name, "model": "gcn", "method": args.method, "bits": getattr(args, "bits", None),
        "weight_bits": best_model.weight_bits, "seeds": seeds, "epochs": epochs,
        "hidden": _opt(args, "hidden"), "penalty": penalty_desc,
        "target_bits": None if penalty_desc is None or penalty_desc["unit"] != "bits" else penalty_desc["target"],
        "local_grad": args.method == "a2q" and not getattr(args, "no_local_grad", False),
        "test_acc_mean": acc_mean, "test_acc_std": acc_std, "test_acc_std_kind": "population (ddof=0)",
        "val_acc_mean": _mean_std([r["val_acc"] for r in rows])[0],
        "test_acc_max_over_epochs_mean": _mean_std([r["test_acc_max_over_epochs"] for r in rows])[0],
        "avg_bits": bits_mean, "avg_bits_std": bits_std,
        "avg_bits_definition": "node-weighted mean of the integer bits over all quantized layer inputs "
                               "(mean over seeds); 32 for fp32",
        "layer_avg_bits": np.mean([r["layer_avg_bits"] for r in rows], axis=0).tolist() if best_model.quantized else [],
        "feature_avg_bits": _mean_std([r.get("feature_avg_bits") for r in rows])[0],
        "feature_kb": _mean_std([r["feature_kb"] for r in rows])[0],
        "compression_ratio": 32.0 / bits_mean if bits_mean else None,
        "bits_histogram": best_row["bits_histogram"], "bits_histogram_seed": best_row["seed"],
        "degree_bits_spearman": _mean_std([r["degree_bits_spearman"] for r in rows])[0],
        "degree_bits_spearman_definition": "Spearman of in-degree (with self loop) against the hidden layer's "
                                           "(layer 2 input) learned bits, mean over seeds",
        "degree_bits_spearman_mean_over_layers": _mean_std(
            [r["degree_bits_spearman_mean_over_layers"] for r in rows])[0],
        "best_seed": best_row["seed"], "per_seed": rows,
        "wall_s": time.perf_counter() - t_all, "load_s": load_s,
        "seconds_per_seed_mean": float(np.mean(wall_seeds)), "wall_s_per_seed": float(np.mean(wall_seeds)),
        "threads": threads,
        "torch_version": str(torch.__version__), "python": platform.python_version(),
        "checkpoint": str(out / "model.pt"),
    }
    write_json(out / "metrics.json", metrics)
    print(f"{ds.name} {args.method}{'' if getattr(args, 'bits', None) is None else args.bits}: "
          f"test_acc {acc_mean:.4f} ± {acc_std:.4f} over {len(seeds)} seeds, avg_bits {bits_mean:.3f}, "
          f"{metrics['seconds_per_seed_mean']:.2f} s/seed ({threads} thread{'s' if threads > 1 else ''})")
    return metrics


def checkpoint_meta(args, ds, model, row) -> dict:
    meta = {"dataset": ds.name, "method": args.method, "bits": getattr(args, "bits", None),
            "weight_bits": model.weight_bits, "hidden": _opt(args, "hidden"), "seed": row["seed"],
            "fakequant_test_acc": row["test_acc"], "val_acc": row["val_acc"], "best_epoch": row["best_epoch"],
            "avg_bits": row["avg_bits"], "epochs": _opt(args, "epochs"), "torch_version": str(torch.__version__)}
    if args.method == "a2q":
        meta["target_bits"] = getattr(args, "target_bits", None)
        if meta["target_bits"] is None and getattr(args, "target_kb", None) is None:
            meta["target_bits"] = DEFAULTS["target_bits"]
        meta["target_kb"] = getattr(args, "target_kb", None)
    return meta


__all__ = ["DEFAULTS", "add_train_arguments", "default_weight_bits", "parse_seeds", "run_train"]
