"""Mutation fuzzing of program files: N random mutations of a real exported program (KarateClub A2Q).

Each mutant must load or raise ``ProgramError``; ``a2q infer`` and ``a2q sim`` must answer it with exit
0, or exit 2 and one line naming the problem -- never a traceback, never a hang (each mutant gets
``--timeout`` seconds). ``a2q sim`` runs in full only on loadable mutants (``--sim-loaded`` of them, on
one shared config: the design is built once); on the others it must stop at validation, before any
Verilog is generated or built. Counts go to a JSON report.

    python scripts/fuzz_programs.py --count 5000 --out results/fuzz_programs.json
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import io
import signal
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from a2q import cli, fuzz  # noqa: E402
from a2q import program as prog  # noqa: E402
from a2q.jsonio import write_json  # noqa: E402


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def run_cli(argv: list[str]) -> tuple[int, str]:
    """Run ``a2q ARGV`` in this process; (exit code, stderr). An exception escaping main is a traceback."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(argv)
    return rc, err.getvalue()


def source_program(work: Path, given: str | None) -> Path:
    if given:
        prog.load(given)
        return Path(given)
    path = work / "program"
    if not path.exists():
        from a2q.export import export_checkpoint
        from a2q.trainer import parse_train_args, run_train

        run_train(parse_train_args(["--dataset", "KarateClub", "--method", "a2q", "--epochs", "60", "--seeds", "0",
                                    "--out", str(work / "run"), "--no-progress"]))
        prog.save(export_checkpoint(work / "run" / "model.pt"), path)
    return path


class NoBuild(Exception):
    """Raised if a2q sim reaches Verilog generation for a program that does not load."""


def run_fuzz(src: Path, work: Path, count: int, seed: int, timeout: float, sim_loaded: int, simulator: str) -> dict:
    import sim.simulate as simulate_mod
    from hw.config import AcceleratorConfig

    rng = np.random.default_rng(seed)
    base = prog.load(src)
    cfg_path = AcceleratorConfig.fit(base, lanes=4, pes=4, weight_bits=8, max_feature_bits=8,
                                     feat_words=base.num_nodes * 8 * 64).save(work / "shared_config.json")
    counts = collections.Counter()
    by_kind: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    failures, sims = [], 0
    real_verilog_for = simulate_mod.verilog_for
    signal.signal(signal.SIGALRM, _alarm)
    t0 = time.perf_counter()
    for i in range(count):
        dst = work / "mutant"
        desc = fuzz.mutate(src, dst, rng)
        kind = desc.split(":")[0]
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            verdict = fuzz.check(dst)
            by_kind[kind][verdict] += 1
            counts[verdict] += 1
            rc, err = run_cli(["infer", str(dst), "--out", str(work / "infer.json")])
            counts[f"infer_exit_{rc}"] += 1
            if (verdict == "program_error") != (rc == 2) or (rc == 2 and len(err.strip().splitlines()) != 1):
                failures.append({"mutation": desc, "what": "infer", "exit": rc, "stderr": err[-500:]})
            if verdict == "program_error" or sims < sim_loaded:
                if verdict == "program_error":
                    def refuse(*a, **k):
                        raise NoBuild("a2q sim generated Verilog for a program that does not load")
                    simulate_mod.verilog_for = refuse
                else:
                    sims += 1
                    signal.setitimer(signal.ITIMER_REAL, 0)  # a first build takes longer than a load
                try:
                    rc, err = run_cli(["sim", str(dst), "--sim", simulator, "--config", str(cfg_path),
                                       "--out", str(work / "sim.json")])
                finally:
                    simulate_mod.verilog_for = real_verilog_for
                counts[f"sim_exit_{rc}"] += 1
                if verdict == "program_error" and (rc != 2 or len(err.strip().splitlines()) != 1):
                    failures.append({"mutation": desc, "what": "sim", "exit": rc, "stderr": err[-500:]})
        except Hang:
            counts["hangs"] += 1
            failures.append({"mutation": desc, "what": "hang"})
        except BaseException as e:  # noqa: B036 -- anything escaping is a traceback the user would see
            if isinstance(e, KeyboardInterrupt):
                raise
            counts["tracebacks"] += 1
            failures.append({"mutation": desc, "what": "traceback", "traceback": traceback.format_exc()[-1500:]})
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if (i + 1) % 500 == 0:
            print(f"fuzz: {i + 1}/{count} mutations, {counts['tracebacks']} tracebacks, {counts['hangs']} hangs, "
                  f"{time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    return {"mutations": count, "seed": seed, "source": str(src), "timeout_s": timeout,
            "loaded": counts["loaded"], "program_error": counts["program_error"],
            "tracebacks": counts["tracebacks"], "hangs": counts["hangs"],
            "infer_exits": {k.removeprefix("infer_exit_"): v for k, v in counts.items() if k.startswith("infer_")},
            "sim_exits": {k.removeprefix("sim_exit_"): v for k, v in counts.items() if k.startswith("sim_")},
            "sim_loaded_mutants": sims, "by_kind": {k: dict(v) for k, v in sorted(by_kind.items())},
            "failures": failures[:50], "wall_s": time.perf_counter() - t0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--program", default=None, help="program to mutate (default: train and export KarateClub A2Q)")
    ap.add_argument("--work", default="results/fuzz_work")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per mutant before it counts as a hang")
    ap.add_argument("--sim-loaded", type=int, default=2, help="loadable mutants also simulated in full")
    ap.add_argument("--sim", default="verilator", choices=["verilator", "icarus"])
    ap.add_argument("--out", default="results/fuzz_programs.json")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    src = source_program(work, args.program)
    report = run_fuzz(src, work, args.count, args.seed, args.timeout, args.sim_loaded, args.sim)
    report["threads"] = 1
    write_json(args.out, report)
    print({k: report[k] for k in ("mutations", "loaded", "program_error", "tracebacks", "hangs", "sim_exits")})
    return 0 if report["tracebacks"] == 0 and report["hangs"] == 0 and not report["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())
