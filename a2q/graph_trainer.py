"""Graph-level training (TU sets): mini-batches of graphs, 10-fold stratified cross-validation.

Protocol: the graphs are split into ``--num-folds`` stratified folds with a fixed ``--split-seed``; fold k
is the test part, and a stratified 10 % of the other folds is held out for validation. Each epoch is
evaluated on the validation part and the epoch with the best validation accuracy (ties: lower
validation loss; A2Q: only epochs whose average bits on the validation graphs meet the target) is
the fold's model, tested once on the held-out fold. ``--folds K`` runs the first K folds (a quick run).
Every finished fold is written to ``folds/fold<k>.json`` and ``fold<k>.pt``; ``--resume`` reuses them.

Shares the optimizer groups, memory penalty and model defaults with ``a2q.trainer``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .ckpt import save_checkpoint
from .data import GraphSet, load_graph_set, stratified_folds
from .jsonio import write_json
from .models import GIN
from .quantizers import UNIFORM_METHODS


@torch.no_grad()
def evaluate(model, gs: GraphSet, ids: torch.Tensor, batch_size: int = 256, stats: bool = False) -> dict:
    """Accuracy and mean loss on the graphs ``ids``; with ``stats`` the bits the NNS assigned: the average
    over the quantized layers of the mean bits per row (nodes; graphs for the head), and the
    Spearman of each test node's in-degree against its bits averaged over the node-level layers."""
    model.eval()
    correct, loss, sums, counts, node_bits, node_ids = 0, 0.0, None, None, [], []
    for start in range(0, len(ids), batch_size):
        data = gs.batch(ids[start:start + batch_size])
        logits = model(data)
        correct += int((logits.argmax(1) == data.y).sum())
        loss += float(F.cross_entropy(logits, data.y, reduction="sum"))
        if stats:
            bits = [b.detach().float() for b in model.bits_per_layer()]
            s = torch.stack([b.sum() for b in bits])
            c = torch.tensor([float(b.numel()) for b in bits])
            sums, counts = (s, c) if sums is None else (sums + s, counts + c)
            per_node = [b for b in bits if b.numel() == data.num_nodes]
            if per_node:
                node_bits.append(torch.stack(per_node).mean(0))
                node_ids.append(data.orig_nodes)
    out = {"acc": correct / max(len(ids), 1), "loss": loss / max(len(ids), 1)}
    if stats and sums is not None:
        layer = (sums / counts).tolist()
        out["layer_avg_bits"], out["avg_bits"] = layer, float(np.mean(layer))
        if node_bits:
            from .trainer import spearman

            nb, ni = torch.cat(node_bits).numpy(), torch.cat(node_ids)
            out["degree_bits_spearman"] = spearman(gs.in_degree[ni].numpy(), nb)
            out["bits_histogram"] = {str(k): int((nb.round() == k).sum()) for k in range(1, 9)} \
                if model.method == "a2q" else None
    return out


def build_graph_model(gs: GraphSet, method: str, hp: dict, args) -> GIN:
    from .quantizers import DEFAULT_POOL

    return GIN(gs.num_features, gs.num_classes, task="graph", hidden=hp["hidden"], layers=hp["layers"],
               method=method, bits=args.bits, weight_bits=hp["weight_bits"], init_bits=args.init_bits,
               local_gradient=not args.no_local_gradient, local_norm=args.local_norm,
               pool=args.pool or DEFAULT_POOL, dropout=hp["dropout"], first_signed=bool((gs.x < 0).any()),
               readout=args.readout, aggregation_aware=not args.no_aggregation_weight,
               head_bits=args.head_bits, weight_step=hp["weight_step"])


def train_step(model, data, opt, pen, local_weight: float) -> float:
    """One optimizer step on a batch of graphs: task loss + Local Gradient + memory penalty, then the
    quantizers' clamp. Returns the loss (the speed benchmark, scripts/bench_gin_speed.py, runs it too)."""
    from .trainer import optimise

    opt.zero_grad()
    out = model(data)
    return float(optimise(model, F.cross_entropy(out, data.y), opt, pen, local_weight).detach())


def fold_setup(gs: GraphSet, train_ids, args, hp: dict, seed: int):
    """A fold's model, optimizer, memory penalty and batch-order generator, seeded, with the quantizers'
    ranges fitted to a training batch (BN in batch mode). Returns (model, opt, pen, gen)."""
    from .trainer import optimizer_for, penalty_for

    torch.manual_seed(seed)
    np.random.seed(seed)
    model = build_graph_model(gs, args.method, hp, args)
    model.configure_quantizers(zero_row_grad=args.zero_row_grad, reseed=not args.no_reseed)
    gen = torch.Generator().manual_seed(seed)
    model.initialise_quantizers(gs.batch(train_ids[torch.randperm(len(train_ids), generator=gen)[:args.batch_size]]))
    opt = optimizer_for(model, hp["lr"], hp["weight_decay"], args.quant_lr, args.node_step_lr, args.bits_lr)
    pen = penalty_for(args.method, hp["target_bits"], args.target_kb, hp["penalty"], args.bit_cost, args.margin,
                      default_target=hp["target_bits"])
    return model, opt, pen, gen


def train_fold(gs: GraphSet, split, args, hp: dict, seed: int, progress=None):
    """Train one fold; returns (model at the selected epoch, row of metrics)."""
    train_ids, val_ids, test_ids = split
    model, opt, pen, gen = fold_setup(gs, train_ids, args, hp, seed)
    # Degree-Quant's and the official A2Q script's schedule: the learning rates halve every N epochs
    sched = torch.optim.lr_scheduler.StepLR(opt, args.lr_decay_step, args.lr_decay_factor) \
        if args.lr_decay_step else None
    best, train_s, train_cpu, reseeded, history = None, 0.0, 0.0, [], []
    for epoch in range(args.epochs):
        model.train()
        t0, c0 = time.perf_counter(), time.process_time()
        perm = train_ids[torch.randperm(len(train_ids), generator=gen)]
        losses = [train_step(model, gs.batch(perm[start:start + args.batch_size]), opt, pen, args.local_weight)
                  for start in range(0, len(perm), args.batch_size)]
        if sched is not None:
            sched.step()
        if not args.no_reseed:
            reseeded.append(model.reseed_dead_pairs_())
        train_s += time.perf_counter() - t0
        train_cpu += time.process_time() - c0
        ev = evaluate(model, gs, val_ids, stats=pen is not None)
        # per epoch, so a run that peaks early and decays shows it (docs/training.md, REDDIT-BINARY)
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_acc": ev["acc"],
                        "val_loss": ev["loss"], **({"val_avg_bits": ev["avg_bits"]} if "avg_bits" in ev else {})})
        meets = pen is None or ev["avg_bits"] <= pen.target + 1e-6
        key = (ev["acc"], -ev["loss"])
        if meets and (best is None or key > best[0]):
            best = (key, {k: v.clone() for k, v in model.state_dict().items()}, epoch)
        if progress:
            progress()
    target_met = best is not None
    if best is None:  # the bit target was never met on the validation graphs: keep the last epoch, say so
        best = (key, {k: v.clone() for k, v in model.state_dict().items()}, args.epochs - 1)
    model.load_state_dict(best[1])
    test = evaluate(model, gs, test_ids, stats=args.method != "fp32")
    row = {"seed": seed, "val_acc": best[0][0], "val_loss": -best[0][1], "test_acc": test["acc"],
           "best_epoch": best[2], "train_s": train_s, "s_per_epoch": train_s / max(args.epochs, 1),
           "cpu_s_per_epoch": train_cpu / max(args.epochs, 1), "dead_pairs_reseeded": reseeded,
           "n_train": len(train_ids), "n_val": len(val_ids), "n_test": len(test_ids), "history": history}
    if args.method != "fp32":
        row |= {k: test[k] for k in ("avg_bits", "layer_avg_bits", "degree_bits_spearman", "bits_histogram")
                if k in test}
        if pen is not None:
            row["target_met"] = target_met
    else:
        row["avg_bits"] = 32.0
    return model, row


def run_graph_train(args) -> dict:
    from .trainer import progress_bar, resolve

    hp = resolve(args, "graph")
    uniform = args.method in UNIFORM_METHODS
    hp["weight_bits"] = max(args.weight_bits, args.bits) if uniform and args.bits > 4 else args.weight_bits
    if args.method != "a2q":
        hp["target_bits"] = None
    elif args.target_bits is not None:
        hp["target_bits"] = args.target_bits
    if args.target_kb is not None:
        raise ValueError("graph-level A2Q takes --target-bits (the feature memory of unseen graphs is not fixed)")
    if not 1 <= args.folds <= args.num_folds:
        raise ValueError(f"--folds must lie in [1, --num-folds={args.num_folds}], got {args.folds}")
    only = getattr(args, "fold", None)
    if only is not None and not 0 <= only < args.num_folds:
        raise ValueError(f"--fold must lie in [0, --num-folds={args.num_folds}), got {only}")
    gs = load_graph_set(args.dataset, args.data_root)
    splits = list(enumerate(stratified_folds(gs.y, args.num_folds, args.split_seed)))
    splits = [splits[only]] if only is not None else splits[: args.folds]
    seed = int(str(args.seeds).split(",")[0].split("-")[0])
    out = Path(args.out)
    (out / "folds").mkdir(parents=True, exist_ok=True)
    config = {"dataset": args.dataset, "model": args.model, "method": args.method, "bits": args.bits,
              "epochs": args.epochs, "num_folds": args.num_folds, "split_seed": args.split_seed, "seed": seed,
              "batch_size": args.batch_size, "pool": args.pool, "readout": args.readout, **hp,
              **({"lr_decay": [args.lr_decay_step, args.lr_decay_factor]} if args.lr_decay_step else {}),
              **({"head_bits": args.head_bits} if args.head_bits else {})}
    t0 = time.perf_counter()
    rows, best = [], None
    desc = f"{args.dataset} {args.method} {args.model}"
    bar = progress_bar(args, len(splits) * args.epochs, desc)
    for k, split in splits:
        done = out / "folds" / f"fold{k}.json"
        if getattr(args, "resume", False) and done.is_file():
            saved = json.loads(done.read_text())
            if saved.get("config") == json.loads(json.dumps(config)):
                rows.append(saved["row"])
                bar.update(args.epochs)
                continue
        model, row = train_fold(gs, split, args, hp, seed + k, progress=bar.update)
        row["fold"] = k
        bar.write(f"{desc}, fold {k}: test {100 * row['test_acc']:.2f} %, "
                  f"avg bits {row['avg_bits']:.2f}, epoch {row['best_epoch']}, {row['s_per_epoch']:.2f} s/epoch")
        meta = {"dataset": args.dataset, "model": args.model, "task": "graph", "method": args.method,
                "bits": args.bits, "fold": k, "seed": seed + k, "hidden": hp["hidden"],
                "target_bits": hp["target_bits"], "fakequant_test_acc": row["test_acc"], "val_acc": row["val_acc"],
                "num_folds": args.num_folds, "split_seed": args.split_seed, "readout": args.readout}
        save_checkpoint(out / f"fold{k}.pt", model, meta)
        write_json(done, {"config": config, "row": row})
        if best is None or row["val_acc"] > best[0]["val_acc"]:
            best = (row, model, meta)
        rows.append(row)
    bar.close()
    if best is not None:
        save_checkpoint(out / "model.pt", best[1], best[2])
    accs = np.array([r["test_acc"] for r in rows])
    rhos = [r["degree_bits_spearman"] for r in rows if r.get("degree_bits_spearman") is not None]
    avg_bits = float(np.mean([r["avg_bits"] for r in rows]))
    metrics = {
        "dataset": args.dataset, "model": args.model, "task": "graph", "method": args.method,
        "bits": args.bits if uniform else None, "weight_bits": hp["weight_bits"], "weight_step": hp["weight_step"],
        "target_bits": hp["target_bits"], "node_features": gs.features, "num_graphs": gs.num_graphs,
        "epochs": args.epochs,
        "folds_run": [r["fold"] for r in rows], "num_folds": args.num_folds, "split_seed": args.split_seed,
        "batch_size": args.batch_size, "hidden": hp["hidden"], "layers": hp["layers"], "lr": hp["lr"],
        "head_bits": args.head_bits or None, "lr_decay_step": args.lr_decay_step,
        "lr_decay_factor": args.lr_decay_factor if args.lr_decay_step else None,
        "pool": (args.pool or 16) if args.method == "a2q" else None, "readout": args.readout,
        "test_acc_mean": float(accs.mean()), "test_acc_std": float(accs.std()),
        "avg_bits": avg_bits, "avg_bits_of": "the test graphs of each fold (bits the NNS assigned), mean over folds",
        "compression_ratio": 32.0 / avg_bits,
        "layer_avg_bits": (np.mean([r["layer_avg_bits"] for r in rows], axis=0).tolist()
                           if "layer_avg_bits" in rows[0] else None),
        "degree_bits_spearman": float(np.mean(rhos)) if rhos else None,
        "degree_bits_spearman_definition": "Spearman of a test node's in-degree against its bits averaged over "
                                           "the GIN layers' quantized inputs, mean over folds (None: bits all equal)",
        "per_fold": rows,
        "wall_s": time.perf_counter() - t0,
        "s_per_epoch": float(np.mean([r["s_per_epoch"] for r in rows])),
        "cpu_s_per_epoch": float(np.mean([r["cpu_s_per_epoch"] for r in rows if "cpu_s_per_epoch" in r] or [0])),
        "s_per_epoch_of": "training passes only (validation excluded); cpu_s: process CPU time, which other "
                          "jobs on a shared machine inflate less than the wall clock",
        "threads": args.threads, "torch": torch.__version__,
    }
    write_json(out / "metrics.json", metrics)
    print(f"{args.model} {args.dataset} {args.method}: test acc {100 * metrics['test_acc_mean']:.2f} ± "
          f"{100 * metrics['test_acc_std']:.2f} over {len(rows)} folds, avg bits {avg_bits:.2f}, "
          f"{metrics['s_per_epoch']:.2f} s/epoch ({args.threads} thread(s)) -> {out / 'metrics.json'}")
    return metrics


__all__ = ["evaluate", "run_graph_train", "train_fold", "train_step"]
