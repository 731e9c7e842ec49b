"""``a2q train``: FP32, uniform INT-k, Degree-Quant INT-k and A2Q models (GCN, GIN, GAT), with metrics.json.

Node-level tasks (Planetoid, KarateClub) train here over several seeds; graph-level tasks (TU sets)
train in ``a2q.graph_trainer`` over stratified folds. Both share the optimizer groups, the memory
penalty and the epoch selection defined here. The model is selected by validation accuracy;
``test_acc`` is the test accuracy at the best-validation epoch (``test_acc_max_over_epochs`` is also
recorded, labelled, because some papers report it).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .ckpt import save_checkpoint
from .jsonio import write_json
from .models import GAT, GCN, GIN, TASKS
from .progress import Progress
from .quantizers import METHODS, UNIFORM_METHODS, MemoryPenalty
from .quantizers.weight import STEP_SPACES

#: Defaults tuned on the validation split (see docs/training.md).
DEFAULTS = dict(hidden=16, lr=0.01, weight_decay=5e-4, dropout=0.5, epochs=200, quant_lr=0.02,
                node_step_lr=0.05, bits_lr=0.1, penalty=1e4, margin=0.03, local_weight=1.0, local_norm="l2",
                init_bits=4.0, bit_cost=0.0, weight_step="linear")
#: What differs from DEFAULTS per model and task (GAT: Velickovic et al.'s Cora setting; graph-level
#: GIN: Xu et al. / Degree-Quant's 5 layers x 64, batch 128, no weight decay).
MODEL_DEFAULTS = {
    ("gcn", "node"): {},
    # node-level GIN: hidden and weight decay chosen by FP32 validation accuracy; the stronger penalty holds
    # A2Q's average bits under the target (at 1e4 they settle ~0.3 bits above it, and the epochs that meet
    # it are early ones: docs/training.md "Node-level model")
    ("gin", "node"): dict(hidden=64, layers=2, weight_decay=5e-4, penalty=1e5),
    ("gat", "node"): dict(hidden=8, lr=0.005, dropout=0.6),
    # graph-level GIN learns its weight steps in log space: a linear step grew ~60x under Adam there (the BN
    # after each linear hides it from the loss) and INT8 lost 4-8 points on NCI1 (docs/training.md); the
    # node-level defaults keep the linear step their published figures were measured with
    ("gin", "graph"): dict(hidden=64, layers=5, weight_decay=0.0, batch_size=128, target_bits=4.0,
                           weight_step="log"),
}


def model_defaults(model: str, task: str) -> dict:
    return {**DEFAULTS, "layers": 2, "batch_size": 128, "target_bits": 2.0, **MODEL_DEFAULTS[(model, task)]}


def check_combination(model: str, task: str, dataset: str) -> None:
    """Refuse a model/dataset pair that makes no sense, saying what is supported."""
    if task not in TASKS.get(model, ()):
        supported = "; ".join(f"{m}: {'/'.join(t)}-level" for m, t in TASKS.items())
        raise ValueError(f"--model {model} does not support the {task}-level dataset {dataset} "
                         f"(supported: {supported})")


def optimise(model, task_loss: torch.Tensor, opt, pen, local_weight: float) -> torch.Tensor:
    """One optimizer step on task loss + Local Gradient + memory penalty, then the quantizers' clamp (the
    node-level trainer and the graph-level ``train_step`` alike). Returns the total loss."""
    loss = task_loss
    local = model.local_loss()
    if local is not None:
        loss = loss + local_weight * local
    if pen is not None:
        loss = loss + pen(model.bits_per_layer(), model.in_features())
    loss.backward()
    opt.step()
    model.clamp_()
    return loss


def optimizer_for(model, lr, weight_decay, quant_lr, node_step_lr, bits_lr) -> torch.optim.Optimizer:
    """Adam with four groups: the network, weight/uniform steps, A2Q steps, A2Q bits (own learning rates)."""
    named = list(model.named_parameters())
    node = {id(p) for q in model.node_quantizers for p in q.parameters()}
    bit_params = [q.bits for q in model.node_quantizers]
    node_steps = [q.log_step for q in model.node_quantizers]
    quant_params = [p for n, p in named if "quantizer" in n and id(p) not in node]
    other = [p for n, p in named if "quantizer" not in n]
    groups = [{"params": other, "weight_decay": weight_decay, "lr": lr},
              {"params": quant_params, "weight_decay": 0.0, "lr": quant_lr},
              {"params": node_steps, "weight_decay": 0.0, "lr": node_step_lr},
              {"params": bit_params, "weight_decay": 0.0, "lr": bits_lr}]
    return torch.optim.Adam([g for g in groups if g["params"]])


def penalty_for(method, target_bits, target_kb, penalty, bit_cost, margin, default_target=2.0):
    """The memory penalty of an A2Q run (None for the others)."""
    if method != "a2q":
        return None
    if target_kb is not None:
        # no default margin in KB: the first layer's one-bit floor is most of the memory, and 3% of the
        # total can exceed all the hidden layer may use (Cora: 473.7 KB floor, 485 KB target)
        return MemoryPenalty(target_kb, penalty, unit="kb", bit_cost=bit_cost, margin=margin or 0.0)
    return MemoryPenalty(target_bits if target_bits is not None else default_target, penalty, unit="bits",
                         bit_cost=bit_cost, margin=DEFAULTS["margin"] if margin is None else margin)


def build_node_model(kind, data, method, **kw):
    """A node-level model of ``kind`` for ``data`` (one A2Q quantizer row per node)."""
    common = dict(method=method, bits=kw["bits"], weight_bits=kw["weight_bits"], init_bits=kw["init_bits"],
                  weight_step=kw["weight_step"],
                  local_gradient=kw["local_gradient"], local_norm=kw["local_norm"], dropout=kw["dropout"],
                  aggregation_aware=kw["aggregation_weight"], first_signed=bool((data.x < 0).any()))
    n, f, c = data.num_nodes, data.num_features, int(data.num_classes)
    if kind == "gcn":
        return GCN(n, f, c, hidden=kw["hidden"], **common)
    if kind == "gin":
        return GIN(f, c, task="node", num_nodes=n, hidden=kw["hidden"], layers=kw["layers"], **common)
    if kind == "gat":
        return GAT(f, c, n, hidden=kw["hidden"], **common)
    raise ValueError(f"unknown model {kind!r}; known: gcn, gin, gat")


def parse_seeds(text: str) -> list[int]:
    """``"0-9"``, ``"3"``, ``"0,1,5"`` or a mix such as ``"0-2,7"``."""
    seeds = []
    try:
        for part in str(text).split(","):
            part = part.strip()
            if "-" in part[1:]:
                a, b = part.split("-", 1)
                if int(b) < int(a):
                    raise ValueError
                seeds += list(range(int(a), int(b) + 1))
            elif part:
                seeds.append(int(part))
    except ValueError:
        raise ValueError(f"seeds {text!r}: expected N, A-B or a comma list of them, e.g. 0-9 or 0,1,5") from None
    if not seeds:
        raise ValueError(f"no seeds in {text!r}")
    return list(dict.fromkeys(seeds))


def _accuracy(logits, data, mask) -> float:
    return float((logits[mask].argmax(1) == data.y[mask]).float().mean())


def train_one(data, method: str, seed: int, bits: int = 4, weight_bits: int = 4, target_bits: float | None = None,
              target_kb: float | None = None, epochs: int = DEFAULTS["epochs"], hidden: int = DEFAULTS["hidden"],
              lr: float = DEFAULTS["lr"], weight_decay: float = DEFAULTS["weight_decay"],
              dropout: float = DEFAULTS["dropout"], quant_lr: float = DEFAULTS["quant_lr"],
              penalty: float = DEFAULTS["penalty"], local_weight: float = DEFAULTS["local_weight"],
              init_bits: float = DEFAULTS["init_bits"], local_gradient: bool = True,
              bit_cost: float = DEFAULTS["bit_cost"], bits_lr: float = DEFAULTS["bits_lr"],
              node_step_lr: float = DEFAULTS["node_step_lr"], margin: float | None = None,
              local_norm: str = DEFAULTS["local_norm"], aggregation_weight: bool = True, progress=None,
              model_kind: str = "gcn", layers: int = 2, zero_row_grad: bool = False,
              weight_step: str = DEFAULTS["weight_step"]):
    """Train one seed of a node-level model; returns (best model, row of metrics)."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = build_node_model(model_kind, data, method, bits=bits, weight_bits=weight_bits, init_bits=init_bits,
                             local_gradient=local_gradient, local_norm=local_norm, dropout=dropout,
                             aggregation_weight=aggregation_weight, hidden=hidden, layers=layers,
                             weight_step=weight_step)
    model.configure_quantizers(zero_row_grad)
    if hasattr(model, "initialise_quantizers"):
        model.initialise_quantizers(data)
    else:
        model.eval()
        with torch.no_grad():
            model(data)  # initialise every quantizer's step from the data
    opt = optimizer_for(model, lr, weight_decay, quant_lr, node_step_lr, bits_lr)
    pen = penalty_for(method, target_bits, target_kb, penalty, bit_cost, margin)
    best = ((-1.0, 0.0), None, None, -1)
    test_max = 0.0
    for epoch in range(epochs):
        model.train()
        opt.zero_grad()
        out = model(data)
        optimise(model, F.cross_entropy(out[data.train_mask], data.y[data.train_mask]), opt, pen, local_weight)
        model.eval()
        with torch.no_grad():
            logits = model(data)
        val, test = _accuracy(logits, data, data.val_mask), _accuracy(logits, data, data.test_mask)
        # selection key: validation accuracy, ties broken by the lower validation loss
        key = (val, -float(F.cross_entropy(logits[data.val_mask], data.y[data.val_mask])))
        test_max = max(test_max, test)
        # A2Q: only accept epochs that meet the bit target, so the selected model has the bits we promise
        meets = pen is None or pen.met(model.bits_per_layer(), model.in_features())
        if meets and key > best[0]:
            best = (key, {k: v.clone() for k, v in model.state_dict().items()}, test, epoch)
        if progress:
            progress()
    if best[1] is None:  # the target was never met: keep the last epoch, say so in the row
        best = (key, {k: v.clone() for k, v in model.state_dict().items()}, test, epochs - 1)
    model.load_state_dict(best[1])
    model.eval()
    with torch.no_grad():
        model(data)  # an NNS layer's bits are its nodes' selections of the last forward: the selected model's
    row = {"seed": seed, "val_acc": best[0][0], "val_loss": -best[0][1], "test_acc": best[2], "best_epoch": best[3],
           "test_acc_max_over_epochs": test_max}
    bits = [b.detach() for b in model.bits_per_layer()]
    if bits:
        row["layer_avg_bits"] = [float(b.mean()) for b in bits]
        row["avg_bits"] = float(np.mean(row["layer_avg_bits"]))
        row["feature_kb"] = float(MemoryPenalty.memory_kb(bits, model.in_features()))
        if pen is not None:
            row["target_met"] = pen.met(bits, model.in_features())
        row["degree_bits_spearman"] = degree_bits_spearman(model, data)
    else:
        row["avg_bits"] = 32.0
    return model, row


def degree_bits_spearman(model, data) -> float | None:
    """Spearman of in-degree against each node's bits averaged over the quantized layers; None if the bits
    are all equal. For GCN this ranks like the hidden layer alone: the first layer's bag-of-words rows are
    exact at one bit everywhere, so the data decide only the hidden layer's bits."""
    from torch_geometric.utils import degree

    bits = torch.stack([b.detach().float() for b in model.bits_per_layer()]).mean(0).numpy()
    return spearman(degree(data.edge_index[1], data.num_nodes).numpy(), bits)


def spearman(a, b) -> float | None:
    """Spearman rank correlation; None when either side is constant."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.std() == 0 or b.std() == 0:
        return None
    return float(spearmanr(a, b).statistic)


def bit_statistics(model, data, rows: list[dict]) -> dict:
    """Histogram of the best seed's bits, the compression ratio and the degree-bits correlation."""
    bits = [b.detach().long() for b in model.bits_per_layer()]
    if not bits:
        return {}
    allb = torch.cat(bits)
    hist = {str(k): int((allb == k).sum()) for k in range(1, 9)}
    avg = float(np.mean([b.float().mean() for b in bits]))
    rhos = [r["degree_bits_spearman"] for r in rows if r.get("degree_bits_spearman") is not None]
    return {"bits_histogram": hist, "bits_histogram_of": "the best-validation seed (model.pt)",
            "compression_ratio": 32.0 / avg,
            "degree_bits_spearman": float(np.mean(rhos)) if rhos else None,
            "degree_bits_spearman_positive_seeds": sum(r > 0 for r in rhos),
            "degree_bits_spearman_definition": "Spearman of in-degree against each node's learned bits "
                                               "averaged over the quantized layers, mean over seeds "
                                               "(None: all bits equal)"}


def add_train_arguments(p) -> None:
    from .data import TU_DATASETS

    p.add_argument("--model", default="gcn", choices=["gcn", "gin", "gat"],
                   help="gcn (node-level), gin (node- and graph-level), gat (node-level)")
    p.add_argument("--dataset", default="Cora",
                   help=f"node-level: Cora, CiteSeer, PubMed, KarateClub; graph-level: {', '.join(TU_DATASETS)}")
    p.add_argument("--method", default="a2q", choices=METHODS,
                   help="fp32; uniform INT-k (LSQ); dq: Degree-Quant INT-k; a2q")
    p.add_argument("--bits", type=int, default=4, help="feature bits for --method uniform or dq")
    p.add_argument("--weight-bits", type=int, default=4, help="weight bits (uniform INT8 uses 8)")
    p.add_argument("--weight-step", choices=STEP_SPACES, default=None,
                   help="the weight steps' parametrisation: log (graph-level default) or linear (node-level "
                        "default, the one its published figures used)")
    tgt = p.add_mutually_exclusive_group()
    tgt.add_argument("--target-bits", type=float, default=None,
                     help="A2Q average-bit target (default 2.0 node-level, 4.0 graph-level)")
    tgt.add_argument("--target-kb", type=float, default=None, help="A2Q feature-memory target in KB")
    p.add_argument("--seeds", default="0", help="seeds: 0-9, 3 or 0,1,5")
    p.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    p.add_argument("--hidden", type=int, default=None,
                   help="hidden width (default: gcn 16; gin 64; gat 8 per head)")
    p.add_argument("--layers", type=int, default=None, help="GIN layers (default 2 node-level, 5 graph-level)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 0.01; gat 0.005)")
    p.add_argument("--weight-decay", type=float, default=None, help="default 5e-4; graph-level 0")
    p.add_argument("--dropout", type=float, default=None, help="default 0.5; gat 0.6")
    p.add_argument("--folds", type=int, default=10,
                   help="graph-level: run the first K of the 10 stratified folds (a quick run uses fewer)")
    p.add_argument("--fold", type=int, default=None,
                   help="graph-level: train only this fold (0-based; instead of the first --folds)")
    p.add_argument("--num-folds", type=int, default=10, help="graph-level: folds of the cross-validation")
    p.add_argument("--split-seed", type=int, default=12345, help="graph-level: seed of the fold split")
    p.add_argument("--batch-size", type=int, default=128, help="graph-level: graphs per mini-batch")
    p.add_argument("--pool", type=int, default=None,
                   help="graph-level A2Q: (step, bits) pairs per layer in the NNS pool (default 16)")
    p.add_argument("--readout", choices=("sum", "mean"), default="sum",
                   help="graph-level readout: sum, or mean = (sum_i x_i W + b) / n_g, the head's first Linear "
                        "and its bias divided by the node count (exports with --head-bits or a uniform/dq head)")
    p.add_argument("--resume", action="store_true", help="graph-level: reuse folds already written under --out")
    p.add_argument("--lr-decay-step", type=int, default=0,
                   help="graph-level: multiply every learning rate by --lr-decay-factor each N epochs "
                        "(0: constant; Degree-Quant and the official A2Q script use 50)")
    p.add_argument("--lr-decay-factor", type=float, default=0.5, help="graph-level: see --lr-decay-step")
    p.add_argument("--head-bits", type=int, default=0,
                   help="graph-level A2Q: quantize the head's per-graph input (after the readout) with one "
                        "learned INT-K step that clips, instead of an NNS pool (0: the pool)")
    p.add_argument("--quant-lr", type=float, default=DEFAULTS["quant_lr"], help="lr of weight and uniform steps")
    p.add_argument("--node-step-lr", type=float, default=DEFAULTS["node_step_lr"], help="lr of the A2Q node steps")
    p.add_argument("--penalty", type=float, default=None,
                   help=f"memory penalty weight lambda (default {DEFAULTS['penalty']:g}; node-level gin "
                        f"{MODEL_DEFAULTS[('gin', 'node')]['penalty']:g})")
    p.add_argument("--margin", type=float, default=None,
                   help=f"the penalty aims at target*(1-margin), so the trained bits meet the target "
                        f"(default {DEFAULTS['margin']} with --target-bits, 0 with --target-kb)")
    p.add_argument("--bit-cost", type=float, default=DEFAULTS["bit_cost"],
                   help="price of one average bit, below the target too (spreads bits by node)")
    p.add_argument("--local-weight", type=float, default=DEFAULTS["local_weight"],
                   help="weight of the Local Gradient loss (the node quantizers' quantization error)")
    p.add_argument("--local-norm", choices=("l1", "l2"), default=DEFAULTS["local_norm"],
                   help="Local Gradient error: l2 (x_q - x)^2, or the paper's l1 |x_q - x|")
    p.add_argument("--bits-lr", type=float, default=DEFAULTS["bits_lr"], help="lr of the A2Q bitwidths")
    p.add_argument("--init-bits", type=float, default=DEFAULTS["init_bits"], help="A2Q initial bits")
    p.add_argument("--no-local-gradient", action="store_true", help="train A2Q steps/bits on the task loss")
    p.add_argument("--no-aggregation-weight", action="store_true",
                   help="Local Gradient: every node's error counts once, not by how much the aggregation spreads it")
    p.add_argument("--no-reseed", action="store_true",
                   help="graph-level A2Q: keep NNS pairs that quantize their rows to all-zero codes where they are "
                        "(default: move them back to their rows' range once per epoch)")
    p.add_argument("--zero-row-grad", action="store_true",
                   help="A2Q: rows whose codes are all 0 give their step (a node's, or its NNS pair's) LSQ's "
                        "surrogate gradient (-x/s) instead of the exact 0, so a range can come back down to them")
    p.add_argument("--out", required=True, help="run directory (checkpoints, metrics.json)")
    p.add_argument("--data-root", default=None, help="dataset root (default: $A2Q_DATA_ROOT)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (recorded with the timings)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print metrics as JSON")


def parse_train_args(argv: list[str]):
    """The Namespace ``a2q train`` would build from ``argv``: how flow, sweep and benchmarks call it."""
    import argparse

    p = argparse.ArgumentParser(prog="a2q train")
    add_train_arguments(p)
    return p.parse_args(argv)


class _Silent:
    def update(self, *a, **k):
        pass

    def write(self, message):
        pass

    def close(self):
        pass


def progress_bar(args, total: int, desc: str):
    """One line per seed or fold in a log (``line_every=epochs``), a bar on a terminal; none with --no-progress."""
    return _Silent() if args.no_progress else Progress(total, desc, unit="ep", line_every=args.epochs)


def resolve(args, task: str) -> dict:
    """The run's hyper-parameters: the command line where given, else the model's defaults."""
    d = model_defaults(args.model, task)
    return {k: (getattr(args, k) if getattr(args, k, None) is not None else d[k])
            for k in ("hidden", "layers", "lr", "weight_decay", "dropout", "target_bits", "penalty", "weight_step")}


def run_train(args) -> dict:
    from .data import TU_DATASETS, load_dataset

    task = "graph" if args.dataset in TU_DATASETS else "node"
    check_combination(args.model, task, args.dataset)
    graph_only = [f"--{n.replace('_', '-')}" for n in ("head_bits", "lr_decay_step") if getattr(args, n, 0)]
    if task == "node" and graph_only:
        raise ValueError(f"{', '.join(graph_only)}: graph-level (TU) training only, not {args.dataset}")
    if not (args.head_bits == 0 or 2 <= args.head_bits <= 8):
        raise ValueError(f"--head-bits must be 0 (the NNS pool) or 2..8, got {args.head_bits}")
    if args.lr_decay_step < 0 or not 0 < args.lr_decay_factor <= 1:
        raise ValueError(f"--lr-decay-step must be >= 0 and --lr-decay-factor in (0, 1], got "
                         f"{args.lr_decay_step} and {args.lr_decay_factor}")
    if args.head_bits and args.method != "a2q":
        raise ValueError(f"--head-bits applies to --method a2q (the {args.method} head is INT-k already)")
    torch.set_num_threads(args.threads)
    if task == "graph":
        from .graph_trainer import run_graph_train

        return run_graph_train(args)
    hp = resolve(args, task)
    data = load_dataset(args.dataset, args.data_root)
    seeds = parse_seeds(args.seeds)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    uniform = args.method in UNIFORM_METHODS
    wb = max(args.weight_bits, args.bits) if uniform and args.bits > 4 else args.weight_bits
    target_bits = args.target_bits if args.target_bits is not None or args.target_kb is not None \
        else (hp["target_bits"] if args.method == "a2q" else None)
    t0 = time.perf_counter()
    rows, best_row = [], None
    desc = f"{args.dataset} {args.method}" + ("" if args.model == "gcn" else f" {args.model}")
    bar = progress_bar(args, len(seeds) * args.epochs, desc)
    for seed in seeds:
        ts = time.perf_counter()
        model, row = train_one(data, args.method, seed, bits=args.bits, weight_bits=wb,
                               target_bits=target_bits, target_kb=args.target_kb, epochs=args.epochs,
                               hidden=hp["hidden"], lr=hp["lr"], weight_decay=hp["weight_decay"],
                               dropout=hp["dropout"], quant_lr=args.quant_lr, penalty=hp["penalty"],
                               local_gradient=not args.no_local_gradient, bit_cost=args.bit_cost,
                               init_bits=args.init_bits, local_weight=args.local_weight,
                               bits_lr=args.bits_lr, node_step_lr=args.node_step_lr, margin=args.margin,
                               local_norm=args.local_norm, aggregation_weight=not args.no_aggregation_weight,
                               progress=bar.update, model_kind=args.model, layers=hp["layers"],
                               zero_row_grad=args.zero_row_grad, weight_step=hp["weight_step"])
        row["wall_s"] = time.perf_counter() - ts
        row["s_per_epoch"] = row["wall_s"] / max(args.epochs, 1)
        bar.write(f"{desc}, seed {seed}: test {100 * row['test_acc']:.2f} %, "
                  f"avg bits {row['avg_bits']:.2f}, epoch {row['best_epoch']}")
        meta = {"dataset": args.dataset, "model": args.model, "task": task, "method": args.method,
                "bits": args.bits, "weight_bits": wb, "target_bits": target_bits, "target_kb": args.target_kb,
                "seed": seed, "hidden": hp["hidden"], "fakequant_test_acc": row["test_acc"],
                "val_acc": row["val_acc"]}
        save_checkpoint(out / f"seed{seed}.pt", model, meta)
        if best_row is None or row["val_acc"] > best_row[0]["val_acc"]:
            best_row = (row, model, meta)
        rows.append(row)
    if bar:
        bar.close()
    row, model, meta = best_row
    save_checkpoint(out / "model.pt", model, meta)
    accs = np.array([r["test_acc"] for r in rows])
    metrics = {
        "dataset": args.dataset, "model": args.model, "task": task, "method": args.method,
        "bits": args.bits if uniform else None, "weight_bits": wb, "weight_step": hp["weight_step"],
        "target_bits": target_bits if args.method == "a2q" else None,
        "target_kb": args.target_kb if args.method == "a2q" else None,
        "penalty": hp["penalty"] if args.method == "a2q" else None,
        "seeds": seeds, "epochs": args.epochs, **{k: hp[k] for k in ("hidden", "lr", "weight_decay", "dropout")},
        "test_acc_mean": float(accs.mean()), "test_acc_std": float(accs.std()),
        "test_acc_max_over_epochs_mean": float(np.mean([r["test_acc_max_over_epochs"] for r in rows])),
        "avg_bits": float(np.mean([r["avg_bits"] for r in rows])),
        "layer_avg_bits": (np.mean([r["layer_avg_bits"] for r in rows], axis=0).tolist()
                           if "layer_avg_bits" in rows[0] else None),
        "best_seed": meta["seed"],
        **(bit_statistics(model, data, rows) if args.method != "fp32" else {}),
        "per_seed": rows,
        "wall_s": time.perf_counter() - t0,
        "wall_s_per_seed": float(np.mean([r["wall_s"] for r in rows])),
        "s_per_epoch": float(np.mean([r["s_per_epoch"] for r in rows])),
        "threads": args.threads, "torch": torch.__version__,
    }
    if metrics["avg_bits"] == 32.0:
        metrics["compression_ratio"] = 1.0
    write_json(out / "metrics.json", metrics)
    print(f"{args.model} {args.dataset} {args.method}: test acc {100 * metrics['test_acc_mean']:.2f} ± "
          f"{100 * metrics['test_acc_std']:.2f} over {len(seeds)} seeds, avg bits {metrics['avg_bits']:.2f}, "
          f"{metrics['wall_s_per_seed']:.1f} s/seed ({args.threads} thread(s)) -> {out / 'metrics.json'}")
    return metrics
