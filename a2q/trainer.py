"""``a2q train``: FP32, uniform INT-k, Degree-Quant INT-k and A2Q GCNs over several seeds, with metrics.json.

The model is selected by validation accuracy; ``test_acc`` is the test accuracy at the best-validation
epoch (``test_acc_max_over_epochs`` is also recorded, labelled, because some papers report it).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .ckpt import save_checkpoint
from .gcn import GCN, METHODS, UNIFORM_METHODS
from .jsonio import write_json
from .quantizers import MemoryPenalty

#: Defaults tuned on the validation split (see docs/training.md).
DEFAULTS = dict(hidden=16, lr=0.01, weight_decay=5e-4, dropout=0.5, epochs=200, quant_lr=0.02,
                node_step_lr=0.05, bits_lr=0.1, penalty=1e4, margin=0.03, local_weight=1.0, local_norm="l2",
                init_bits=4.0, bit_cost=0.0)


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
              local_norm: str = DEFAULTS["local_norm"], aggregation_weight: bool = True, progress=None):
    """Train one seed; returns (best model state, row of metrics)."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = GCN(data.num_nodes, data.num_features, int(data.num_classes), hidden=hidden, method=method,
                bits=bits, weight_bits=weight_bits,
                init_bits=init_bits, local_gradient=local_gradient, dropout=dropout, local_norm=local_norm,
                aggregation_aware=aggregation_weight,
                first_signed=bool((data.x < 0).any()))
    model.eval()
    with torch.no_grad():
        model(data)  # initialise every quantizer's step from the data
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
    opt = torch.optim.Adam([g for g in groups if g["params"]])
    pen = None
    if method == "a2q":
        if target_kb is not None:
            # no default margin in KB: the first layer's one-bit floor is most of the memory, and 3% of the
            # total can exceed all the hidden layer may use (Cora: 473.7 KB floor, 485 KB target)
            pen = MemoryPenalty(target_kb, penalty, unit="kb", bit_cost=bit_cost, margin=margin or 0.0)
        else:
            pen = MemoryPenalty(target_bits if target_bits is not None else 2.0, penalty, unit="bits",
                                bit_cost=bit_cost, margin=DEFAULTS["margin"] if margin is None else margin)
    best = ((-1.0, 0.0), None, None, -1)
    test_max = 0.0
    for epoch in range(epochs):
        model.train()
        opt.zero_grad()
        out = model(data)
        loss = F.cross_entropy(out[data.train_mask], data.y[data.train_mask])
        local = model.local_loss()
        if local is not None:
            loss = loss + local_weight * local
        if pen is not None:
            loss = loss + pen(model.bits_per_layer(), model.in_features())
        loss.backward()
        opt.step()
        model.clamp_()
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
    """Spearman of in-degree against the hidden layer's learned bits (the first layer's bag-of-words rows
    are exact at one bit everywhere, so the data decide only the hidden layer's); None if bits are equal."""
    from scipy.stats import spearmanr
    from torch_geometric.utils import degree

    hidden_bits = model.bits_per_layer()[-1].detach().numpy()
    if hidden_bits.std() == 0:
        return None
    return float(spearmanr(degree(data.edge_index[1], data.num_nodes).numpy(), hidden_bits).statistic)


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
            "degree_bits_spearman_definition": "Spearman of in-degree against the hidden layer's learned "
                                               "bits, mean over seeds (None: all bits equal)"}


def add_train_arguments(p) -> None:
    p.add_argument("--model", default="gcn", choices=["gcn"], help="model kind")
    p.add_argument("--dataset", default="Cora", help="Cora, CiteSeer, PubMed or KarateClub")
    p.add_argument("--method", default="a2q", choices=METHODS,
                   help="fp32; uniform INT-k (LSQ); dq: Degree-Quant INT-k; a2q")
    p.add_argument("--bits", type=int, default=4, help="feature bits for --method uniform or dq")
    p.add_argument("--weight-bits", type=int, default=4, help="weight bits (uniform INT8 uses 8)")
    tgt = p.add_mutually_exclusive_group()
    tgt.add_argument("--target-bits", type=float, default=None, help="A2Q average-bit target (default 2.0)")
    tgt.add_argument("--target-kb", type=float, default=None, help="A2Q feature-memory target in KB")
    p.add_argument("--seeds", default="0", help="seeds: 0-9, 3 or 0,1,5")
    p.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    p.add_argument("--hidden", type=int, default=DEFAULTS["hidden"])
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    p.add_argument("--quant-lr", type=float, default=DEFAULTS["quant_lr"], help="lr of weight and uniform steps")
    p.add_argument("--node-step-lr", type=float, default=DEFAULTS["node_step_lr"], help="lr of the A2Q node steps")
    p.add_argument("--penalty", type=float, default=DEFAULTS["penalty"], help="memory penalty weight lambda")
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


def run_train(args) -> dict:
    from .data import load_dataset
    from .progress import Progress

    torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset, args.data_root)
    seeds = parse_seeds(args.seeds)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    uniform = args.method in UNIFORM_METHODS
    wb = max(args.weight_bits, args.bits) if uniform and args.bits > 4 else args.weight_bits
    t0 = time.perf_counter()
    rows, best_row = [], None
    # a bar on a terminal, one line per seed in a log
    bar = None if args.no_progress else Progress(len(seeds) * args.epochs, f"{args.dataset} {args.method}",
                                                 unit="ep", line_every=args.epochs)
    for seed in seeds:
        ts = time.perf_counter()
        model, row = train_one(data, args.method, seed, bits=args.bits, weight_bits=wb,
                               target_bits=args.target_bits, target_kb=args.target_kb, epochs=args.epochs,
                               hidden=args.hidden, lr=args.lr, quant_lr=args.quant_lr, penalty=args.penalty,
                               local_gradient=not args.no_local_gradient, bit_cost=args.bit_cost,
                               init_bits=args.init_bits, local_weight=args.local_weight,
                               bits_lr=args.bits_lr, node_step_lr=args.node_step_lr, margin=args.margin,
                               local_norm=args.local_norm, aggregation_weight=not args.no_aggregation_weight,
                               progress=bar.update if bar else None)
        row["wall_s"] = time.perf_counter() - ts
        meta = {"dataset": args.dataset, "method": args.method, "bits": args.bits, "weight_bits": wb,
                "target_bits": args.target_bits, "target_kb": args.target_kb, "seed": seed,
                "hidden": args.hidden, "fakequant_test_acc": row["test_acc"], "val_acc": row["val_acc"]}
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
        "dataset": args.dataset, "model": args.model, "method": args.method,
        "bits": args.bits if uniform else None, "weight_bits": wb,
        "target_bits": args.target_bits if args.method == "a2q" else None,
        "target_kb": args.target_kb if args.method == "a2q" else None,
        "seeds": seeds, "epochs": args.epochs,
        "test_acc_mean": float(accs.mean()), "test_acc_std": float(accs.std()),
        "test_acc_max_over_epochs_mean": float(np.mean([r["test_acc_max_over_epochs"] for r in rows])),
        "avg_bits": float(np.mean([r["avg_bits"] for r in rows])),
        "layer_avg_bits": (np.mean([r["layer_avg_bits"] for r in rows], axis=0).tolist()
                           if "layer_avg_bits" in rows[0] else None),
        "best_seed": meta["seed"],
        **bit_statistics(model, data, rows),
        "per_seed": rows,
        "wall_s": time.perf_counter() - t0,
        "wall_s_per_seed": float(np.mean([r["wall_s"] for r in rows])),
        "threads": args.threads, "torch": torch.__version__,
    }
    if metrics["avg_bits"] == 32.0:
        metrics["compression_ratio"] = 1.0
    write_json(out / "metrics.json", metrics)
    print(f"{args.dataset} {args.method}: test acc {100 * metrics['test_acc_mean']:.2f} ± "
          f"{100 * metrics['test_acc_std']:.2f} over {len(seeds)} seeds, avg bits {metrics['avg_bits']:.2f}, "
          f"{metrics['wall_s_per_seed']:.1f} s/seed ({args.threads} thread(s)) -> {out / 'metrics.json'}")
    return metrics
