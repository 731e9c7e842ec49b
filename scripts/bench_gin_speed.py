"""Training speed of graph-level GIN (issue #10: A2Q on REDDIT-BINARY <= 15 s per epoch on one thread,
5 layers x 64 hidden, batch 128): the trainer's own step (``a2q.graph_trainer.train_step``) on the
batches of fold 0's first epoch, set up exactly as ``train_fold`` does (seed, quantizer initialisation,
optimizer, memory penalty).

Reports CPU and wall seconds per batch and per epoch (the epoch's batch count times the mean batch),
the thread count and the load average; ``--profile`` adds the top functions (cProfile, CPU time) or the
top torch operators (torch.profiler). ``--check`` prints every batch's loss and a digest of the model's
state after the run, so two code versions can be compared number for number on the same seed.

    python scripts/bench_gin_speed.py --batches 4 --threads 1
    python scripts/bench_gin_speed.py --batches 2 --profile torch --threads 1
    python scripts/bench_gin_speed.py --batches 3 --check --threads 1
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def setup(args):
    import torch

    from a2q.data import load_graph_set, stratified_folds
    from a2q.graph_trainer import fold_setup
    from a2q.trainer import parse_train_args, resolve

    targs = parse_train_args(["--model", "gin", "--dataset", args.dataset, "--method", args.method,
                              "--threads", str(args.threads), "--out", "/dev/null", *args.train_args])
    hp = resolve(targs, "graph")
    if targs.target_bits is not None:
        hp["target_bits"] = targs.target_bits
    if args.method != "a2q":
        hp["target_bits"] = None
    hp["weight_bits"] = targs.weight_bits
    gs = load_graph_set(args.dataset, targs.data_root)
    train_ids = stratified_folds(gs.y, targs.num_folds, targs.split_seed)[0][0]
    model, opt, pen, gen = fold_setup(gs, train_ids, targs, hp, seed=0)
    perm = train_ids[torch.randperm(len(train_ids), generator=gen)]
    batches = [gs.batch(perm[s:s + targs.batch_size]) for s in range(0, len(perm), targs.batch_size)]
    return model, opt, pen, targs, batches


def digest(model) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="REDDIT-BINARY")
    p.add_argument("--method", default="a2q", choices=["a2q", "uniform", "dq", "fp32"])
    p.add_argument("--batches", type=int, default=4, help="training batches timed (after one warm-up batch)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--profile", choices=["none", "cprofile", "torch"], default="none")
    p.add_argument("--check", action="store_true", help="print the losses and a digest of the model state")
    p.add_argument("train_args", nargs="*", help="extra `a2q train` arguments after --, e.g. -- --bits 4")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from a2q.graph_trainer import train_step

    model, opt, pen, targs, batches = setup(args)
    if args.batches + 1 > len(batches):
        raise SystemExit(f"--batches: the epoch has {len(batches)} batches, at most {len(batches) - 1} can be timed")
    model.train()
    losses = [train_step(model, batches[0], opt, pen, targs.local_weight)]  # warm-up (allocator, first calls)
    prof = None
    if args.profile == "cprofile":
        import cProfile

        prof = cProfile.Profile(time.process_time)
        prof.enable()
    elif args.profile == "torch":
        prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
        prof.__enter__()
    c0, w0 = time.process_time(), time.perf_counter()
    for data in batches[1:args.batches + 1]:
        losses.append(train_step(model, data, opt, pen, targs.local_weight))
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    if args.profile == "cprofile":
        import pstats

        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    elif args.profile == "torch":
        prof.__exit__(None, None, None)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
    n = len(batches)
    out = {"dataset": args.dataset, "method": args.method, "batches_timed": args.batches, "epoch_batches": n,
           "cpu_s_per_batch": cpu / args.batches, "wall_s_per_batch": wall / args.batches,
           "cpu_s_per_epoch": cpu / args.batches * n, "wall_s_per_epoch": wall / args.batches * n,
           "threads": args.threads, "loadavg": os.getloadavg(), "profiled": args.profile != "none"}
    print(f"{args.dataset} gin {args.method}: {out['cpu_s_per_epoch']:.2f} CPU s / "
          f"{out['wall_s_per_epoch']:.2f} wall s "
          f"per epoch ({n} batches; {args.batches} timed, {args.threads} thread(s), load {out['loadavg'][0]:.2f}"
          f"{', profiled' if out['profiled'] else ''})")
    if args.check:
        print("losses", [f"{v:.10g}" for v in losses])
        print("state digest", digest(model))
    return out


if __name__ == "__main__":
    main()
