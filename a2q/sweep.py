"""``a2q sweep``: co-sweep average bits against accuracy and accelerator cycles.

A *point* is (model, dataset, method, bits target): it is trained over the seeds once, its
best-validation seed is exported, and the cycle model prices the program on every accelerator config
(L, P), one CSV row per config. ``--models gcn,gin``: GCN on the node-level sets, GIN on node- and
graph-level ones; a graph-level GIN point trains fold 0 and prices ``--graphs`` test graphs of that
fold (a class-stratified sample, ``a2q.data.graph_subset``) as one block-diagonal batch (program format
v2). Points already in the CSV are skipped (resume); a crashing point is recorded with its error and the
others go on.

Executors: ``local`` (default) runs points in this process (``--jobs 1``) or in ``--jobs N`` worker
processes, one torch thread each; ``ray`` runs each point as a Ray task with one CPU, on a local Ray
or an existing cluster (``--address``). Either way finished points stream into the same CSV (and the
rows into sweep.json), rewritten atomically after every point, so a sweep killed at any moment, even
by SIGKILL, resumes without losing, duplicating or half-keeping a row.
"""
from __future__ import annotations

import csv
import io
import os
import signal
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from .jsonio import write_json, write_text
from .pareto import dominates_all, pareto_front

COLUMNS = [
    "dataset", "method", "target", "hidden", "lanes", "pes", "status", "error",
    "acc_mean", "acc_std", "int_acc", "avg_bits", "feature_kb", "feature_kb_sparse", "seeds",
    "cycles_combine", "cycles_aggregate", "cycles_requant", "cycles_stall", "cycles_total", "cycles_layers",
    "rtl_cycles_total", "rtl_bit_exact", "wall_s", "threads", "model", "graphs",
    "us_per_inference", "clock_mhz", "clock_source", "fits",
]
#: The columns before latency (µs at a clock, fits a part) existed: such rows show "-" there.
COLUMNS_BEFORE_LATENCY = COLUMNS[:-4]
#: The columns before ``model`` existed: such a CSV is read with every row a GCN row.
COLUMNS_GCN_ONLY = COLUMNS_BEFORE_LATENCY[:-2]
#: The columns before ``graphs`` existed: graph-level rows then priced the lowest test ids, not a sample.
COLUMNS_BEFORE_GRAPHS = COLUMNS_BEFORE_LATENCY[:-1]
#: Clock for µs per inference where ``a2q hw synth`` has no routed Fmax for a point's config (labelled).
DEFAULT_CLOCK_MHZ = 100.0
MODELS = ("gcn", "gin")
#: Test graphs of fold 0 priced per graph-level point (a block-diagonal batch).
DEFAULT_GRAPHS = 64
#: Suffix of the rows of a uniform / Degree-Quant point exported with the one-bit binary-input encoding
#: (``a2q.export.binary_input``): "int4-bin" is the fair baseline, "int4" the model's codes as trained.
BINARY_SUFFIX = "-bin"
#: The baseline every speedup in the sweep report is measured against (naive and binary input).
BASELINE = "int4"
#: fp32, a2q, uniform INT-k as ``intK`` and Degree-Quant INT-k as ``dqK`` (K in 1..8)
UNIFORM_PREFIXES = {"int": "uniform", "dq": "dq"}
METHODS = ("fp32", "a2q", *(f"{p}{k}" for p in UNIFORM_PREFIXES for k in range(1, 9)))


def uniform_method(method: str) -> tuple[str, str]:
    """``"int4"`` -> ("uniform", "4"), ``"dq3"`` -> ("dq", "3"): the trainer's method and the bits."""
    prefix = method.rstrip("0123456789")
    return UNIFORM_PREFIXES[prefix], method[len(prefix):]


@dataclass(frozen=True)
class Point:
    dataset: str
    method: str   # fp32 | a2q | intK | dqK
    target: str   # a2q: average-bit target; intK: K; fp32: "32"
    hidden: int = 16
    model: str = "gcn"
    graphs: int = DEFAULT_GRAPHS  # graph-level points: test graphs priced

    @property
    def graphs_tag(self) -> str:
        """Which test graphs a graph-level point priced (part of the key: a resumed sweep never mixes
        subsets); empty for node-level points."""
        return f"stratified:{self.graphs}" if self.graph_level else ""

    @property
    def key(self) -> tuple[str, str, str, str, str, str]:
        return (self.dataset, self.method, self.target, str(self.hidden), self.model, self.graphs_tag)

    @property
    def slug(self) -> str:
        tail = "" if self.hidden == 16 else f"-h{self.hidden}"
        head = "" if self.model == "gcn" else f"{self.model}-"
        return f"{head}{self.dataset}-{self.method}-{self.target}{tail}".replace(".", "p")

    @property
    def graph_level(self) -> bool:
        from .data import TU_DATASETS

        return self.dataset in TU_DATASETS


def row_key(r: dict) -> tuple[str, str, str, str, str, str]:
    """A CSV row's point key (rows written before ``hidden`` / ``model`` existed are 16-wide GCN rows;
    graph-level rows written before ``graphs`` existed priced other graphs, so their key matches no point)."""
    return (r["dataset"], r["method"], r["target"], str(int(float(r.get("hidden") or 16))), r.get("model") or "gcn",
            r.get("graphs") or "")


def parse_rtl(spec: str) -> set[tuple[str, str, str, str]]:
    """``--rtl dataset:method:target[:hidden],...``: the points to also simulate, as ``Point.key[:4]``."""
    keys = set()
    for k in filter(None, spec.split(",")):
        parts = k.split(":")
        if len(parts) not in (3, 4):
            raise ValueError(f"--rtl entry {k!r} is not dataset:method:target[:hidden]")
        keys.add((*parts[:3], parts[3] if len(parts) == 4 else "16"))
    return keys


def panel(r) -> str:
    """What a row is compared within: its dataset, and the model when it is not the GCN."""
    model = (r.get("model") if isinstance(r, dict) else r.model) or "gcn"
    ds = r["dataset"] if isinstance(r, dict) else r.dataset
    return ds if model == "gcn" else f"{ds} ({model})"


def grid(datasets, methods, targets, hiddens=(16,), models=("gcn",), graphs: int = DEFAULT_GRAPHS) -> list[Point]:
    """Every (model, hidden, dataset, method, target) point; pairs a model does not support (GCN on a
    graph-level set) are left out. ``hiddens`` None: each model's default width (GIN graph-level 64)."""
    from .data import TU_DATASETS
    from .trainer import model_defaults

    points = []
    for model in models:
        if model not in MODELS:
            raise ValueError(f"unknown model {model!r} for the sweep; known: {', '.join(MODELS)}")
        for ds in datasets:
            task = "graph" if ds in TU_DATASETS else "node"
            if model == "gcn" and task == "graph":
                continue
            for h in hiddens or [model_defaults(model, task)["hidden"]]:
                points += _points(ds, methods, targets, int(h), model, graphs)
    if not points:
        raise ValueError(f"no point: models {', '.join(models)} support none of {', '.join(datasets)}")
    if hiddens and len(models) == 1 and models[0] == "gcn":  # the old order: width, then dataset
        points.sort(key=lambda p: (list(hiddens).index(p.hidden), list(datasets).index(p.dataset)))
    return points


def _points(ds, methods, targets, h, model, graphs) -> list[Point]:
    points = []
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}; known: {', '.join(METHODS)}")
        if m == "a2q":
            points += [Point(ds, m, f"{float(t):g}", h, model, graphs) for t in targets]
        elif m == "fp32":
            points.append(Point(ds, m, "32", h, model, graphs))
        else:
            points.append(Point(ds, m, uniform_method(m)[1], h, model, graphs))
    return points


def parse_configs(text: str) -> list[tuple[int, int]]:
    """``"16x16,32x8"`` -> [(16, 16), (32, 8)] as (lanes, pes)."""
    out = []
    for part in text.split(","):
        try:
            lanes, pes = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise ValueError(f"config {part!r} is not LANESxPES, e.g. 16x16") from None
        out.append((lanes, pes))
    return out


def train_args(point: Point, seeds: str, epochs: int, out_dir: Path, data_root: str | None, threads: int):
    from .trainer import parse_train_args

    argv = ["--model", point.model, "--dataset", point.dataset, "--seeds", seeds, "--epochs", str(epochs),
            "--out", str(out_dir), "--threads", str(threads), "--hidden", str(point.hidden), "--no-progress"]
    if point.graph_level:
        argv += ["--fold", "0"]
    if data_root:
        argv += ["--data-root", data_root]
    if point.method == "fp32":
        argv += ["--method", "fp32"]
    elif point.method == "a2q":
        argv += ["--method", "a2q", "--target-bits", point.target]
    else:
        argv += ["--method", uniform_method(point.method)[0], "--bits", point.target]
    return parse_train_args(argv)


def run_point(point: Point, configs, seeds: str, epochs: int, work: Path, data_root, threads: int,
              rtl: bool, clock_mhz: float = DEFAULT_CLOCK_MHZ) -> list[dict]:
    """Train, export and price one point; returns one row per accelerator config."""
    import torch

    torch.set_num_threads(threads)
    from . import integer
    from .export import export_checkpoint
    from .program import save

    t0 = time.perf_counter()
    out_dir = work / point.slug
    from .trainer import run_train

    metrics = run_train(train_args(point, seeds, epochs, out_dir, data_root, threads))
    base = {"dataset": point.dataset, "method": point.method, "target": point.target, "hidden": point.hidden,
            "status": "ok", "error": "", "acc_mean": metrics["test_acc_mean"], "acc_std": metrics["test_acc_std"],
            "seeds": seeds if not point.graph_level else "fold 0", "threads": threads, "model": point.model,
            "graphs": point.graphs_tag}
    ckpt = out_dir / ("fold0.pt" if point.graph_level else "model.pt")
    where = {"graphs": point.graphs, "fold": 0} if point.graph_level else {}
    if point.method == "fp32":
        return [{**base, "avg_bits": 32.0, "wall_s": time.perf_counter() - t0}]
    # a uniform / Degree-Quant model is priced twice: its codes as trained, and with the exact one-bit
    # encoding of a binary input layer that A2Q learns (the fair baseline, method "<name>-bin")
    encodings = {point.method: False} if point.method == "a2q" else {point.method: False,
                                                                     point.method + BINARY_SUFFIX: True}
    rows = []
    for method, binary in encodings.items():
        program = export_checkpoint(ckpt, data_root, binary=binary, **where)
        if binary and point.model != "gcn" and not program.meta.get("binary_input_nodes"):
            continue  # not a binary input (e.g. REDDIT-BINARY's standardised degree): no fair variant
        pdir = save(program, out_dir / ("program" + (BINARY_SUFFIX if binary else "")))
        vbase = {**base, "method": method, "int_acc": integer.accuracy(program), "avg_bits": program.avg_bits(),
                 "feature_kb": feature_kb(program)}
        try:
            priced = _price(program, configs, vbase, rtl, pdir, out_dir, method, clock_mhz)
        except (KeyError, ValueError, NotImplementedError) as e:
            if program.model == "gcn":
                raise
            # a format-v2 program before the cycle model and hardware run it: accuracy and bits still count
            priced = [{**vbase, "error": f"not priced: {type(e).__name__}: {e}"}]
        rows += priced
    for r in rows:
        r["wall_s"] = time.perf_counter() - t0
    return rows


def _price(program, configs, vbase, rtl, pdir, out_dir, method, clock_mhz=DEFAULT_CLOCK_MHZ) -> list[dict]:
    from hw.latency import latency

    from .cycle_model import cycles as model_cycles

    rows = []
    for lanes, pes in configs:
        from hw.config import AcceleratorConfig
        from hw.memory_map import feature_kb as hw_feature_kb

        cfg = AcceleratorConfig.fit(program, lanes=lanes, pes=pes)
        cyc = model_cycles(program, lanes=lanes, pes=pes)
        row = {**vbase, "lanes": lanes, "pes": pes, "feature_kb_sparse": hw_feature_kb(program, cfg)["sparse"],
               "cycles_layers": ";".join(str(layer.total) for layer in cyc.layers),
               **{f"cycles_{k}": getattr(cyc, k) for k in ("combine", "aggregate", "requant", "stall", "total")}}
        lat = latency(cyc.total, cfg, clock_mhz=clock_mhz)  # the routed Fmax where `a2q hw synth` ran for cfg
        fit = lat["fit"]
        row.update(us_per_inference=lat["us"], clock_mhz=lat["clock_mhz"],
                   clock_source="measured" if lat["measured"] else "stated",
                   fits=f"{fit['part']}: {'yes' if fit['fits'] else 'no'}")
        if rtl:
            from sim.simulate import simulate

            rep = simulate(pdir, config=shared_config(program, lanes, pes),
                           out=out_dir / f"rtl_{method}_{lanes}x{pes}.json")
            row.update(rtl_cycles_total=rep["rtl_cycles"]["total"], rtl_bit_exact=rep["mismatches"] == 0)
        rows.append(row)
    return rows


def shared_config(program, lanes: int, pes: int):
    """One accelerator config per (dataset, L, P): the program's fit with the widest weights and
    features (8 bits) and a feature memory for 8-bit nodes, so every point of a dataset runs on the
    same Verilog and the simulator build is shared by all of them."""
    from hw.config import AcceleratorConfig, ceil_div

    feat = program.num_nodes * 8 * sum(ceil_div(s.in_features, lanes) for s in program.layers)
    return AcceleratorConfig.fit(program, lanes=lanes, pes=pes, weight_bits=8, max_feature_bits=8,
                                 feat_words=feat)


def feature_kb(program) -> float:
    """On-chip feature memory the program's node bits need, summed over layer inputs (KB); NNS pool
    inputs at the bits the integer reference selects (``a2q.flow_gin.feature_kb``)."""
    if any(program.has_pool_input(i) for i in range(program.num_layers)):
        from .flow_gin import feature_kb as run_time_kb

        return run_time_kb(program)
    total_bits = sum(int(program.layer(i, "bits").astype("int64").sum()) * spec.in_features
                     for i, spec in enumerate(program.layers))
    return total_bits / 8 / 1024


def read_rows(csv_path: Path) -> list[dict]:
    """Rows of a sweep CSV; a row that is not whole (wrong field count, unknown status) is dropped, so
    its point runs again."""
    if not csv_path.exists():
        return []
    with csv_path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header not in (COLUMNS, COLUMNS_BEFORE_LATENCY, COLUMNS_GCN_ONLY, COLUMNS_BEFORE_GRAPHS):
            raise ValueError(f"{csv_path}: not a sweep CSV of this version (columns differ); move it away")
        rows = [dict(zip(header, r, strict=True)) for r in reader
                if len(r) == len(header) and r[header.index("status")] in ("ok", "error")]
        for r in rows:
            r["model"] = r.get("model") or "gcn"  # written before GIN points existed
        return rows


def write_rows(csv_path: Path, rows: list[dict]) -> None:
    """Rewrite the CSV atomically (temp file, then rename): a reader or a killed writer never leaves
    half a row."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in COLUMNS})
    write_text(csv_path, buf.getvalue())


def _crash_row(point: Point, err: str) -> dict:
    return {"dataset": point.dataset, "method": point.method, "target": point.target, "hidden": point.hidden,
            "status": "error", "error": err, "model": point.model, "graphs": point.graphs_tag}


class SweepError(ValueError):
    """A sweep that cannot start (e.g. the Ray executor without Ray installed)."""


EXECUTORS = ("local", "ray")


def run_grid(points, configs, out: Path, seeds="0-2", epochs=200, data_root=None, jobs=1, rtl_keys=(),
             progress=True, executor="local", address=None, clock_mhz=DEFAULT_CLOCK_MHZ) -> list[dict]:
    """Run the points not yet in ``out/sweep.csv``; the CSV (and sweep.json's rows) are rewritten after
    every finished point. Returns all rows (resumed and new)."""
    if executor not in EXECUTORS:
        raise SweepError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "sweep.csv"
    rows = read_rows(csv_path)
    done = {row_key(r) for r in rows if r.get("status") == "ok"}
    rows = [r for r in rows if row_key(r) in done or (r["method"].endswith(BINARY_SUFFIX) and r.get("status") == "ok")]
    todo = [p for p in points if p.key not in done]
    data_root = data_root or os.environ.get("A2Q_DATA_ROOT")
    threads = 1 if jobs > 1 or executor == "ray" else max(1, int(os.environ.get("A2Q_THREADS", "1")))
    tasks = [(p, configs, seeds, epochs, out / "points", data_root, threads, p.key[:4] in rtl_keys, clock_mhz)
             for p in todo]
    run = _run_ray if executor == "ray" else _run_local
    bar = None
    if progress:
        from .progress import Progress

        bar = Progress(len(points), "sweep", unit="point", initial=len(points) - len(todo))
    for point_rows in run(tasks, jobs=jobs, address=address):
        rows += point_rows
        write_rows(csv_path, rows)  # after every point, so a killed sweep resumes from here
        write_json(out / "sweep.json", {"rows": rows, "summary": None, "complete": False})
        if bar:
            p = point_rows[0]
            bar.update(1, note=f"{p['dataset']} {p['method']}@{p['target']} {p['status']}")
    if bar:
        bar.close()
    return rows


def _run_local(tasks, jobs=1, address=None):
    """Yield each point's rows as it finishes: in this process, or in ``jobs`` worker processes."""
    if jobs <= 1:
        for t in tasks:
            yield _safe_run_point(*t)
        return
    with ProcessPoolExecutor(max_workers=jobs, initializer=_die_with_parent) as pool:
        futures = [pool.submit(_safe_run_point, *t) for t in tasks]
        for fut in as_completed(futures):
            yield fut.result()


def _die_with_parent() -> None:
    """Worker initializer: on Linux, a worker whose sweep is killed (SIGKILL too) dies with it instead of
    finishing its point beside the resumed sweep."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before prctl
            os._exit(1)
    except (OSError, AttributeError):
        pass


def _run_ray(tasks, jobs=1, address=None):
    """Yield each point's rows as its Ray task finishes. One CPU per point; the Verilator build of a
    config is shared by every point simulated on it (sim.runner builds once per design and node, under
    a lock). Connects to ``address`` (an existing cluster, e.g. ``ray://head:10001`` or ``auto``), or
    starts a local Ray, unless Ray is already initialised (then that one is used)."""
    if address is None:
        # a Ray of our own on this machine talks over loopback only (set before Ray is imported)
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise SweepError("--executor ray needs Ray, which is not installed: pip install -e '.[cluster]' "
                         "(or pip install 'ray>=2.9')") from None
    started = False
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {k: os.environ[k] for k in ("A2Q_DATA_ROOT", "A2Q_SIM_BUILD")
                                           if k in os.environ}})
        started = True
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(_safe_run_point)
        pending = [remote.remote(*t) for t in tasks]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            yield ray.get(ready[0])
    finally:
        if started:
            ray.shutdown()


def _safe_run_point(point, *args) -> list[dict]:
    try:
        return run_point(point, *args)
    except Exception as e:  # one crashing point is recorded; the sweep goes on
        return [_crash_row(point, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}")]


# -- reporting -------------------------------------------------------------------------------------
def _f(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def speedups(rows: list[dict]) -> None:
    """Add ``speedup_vs_<baseline>`` (total) and ``speedup_layers_vs_<baseline>`` to every ok row: the
    baseline's model cycles over the row's, for INT4 as trained and INT4 (binary input), on the same
    dataset, hidden width and config."""
    def where(r):
        return (panel(r), str(int(float(r.get("hidden") or 16))), str(r.get("lanes")), str(r.get("pes")))

    bases = {}
    for r in rows:
        ok = r.get("status") == "ok" and _f(r.get("cycles_total"))
        if ok and r["method"] in (BASELINE, BASELINE + BINARY_SUFFIX):
            bases[(r["method"], *where(r))] = r
    for r in rows:
        if r.get("status") != "ok" or not _f(r.get("cycles_total")):
            continue
        for b in (BASELINE, BASELINE + BINARY_SUFFIX):
            br = bases.get((b, *where(r)))
            if br is None:
                continue
            r[f"speedup_vs_{b}"] = _f(br["cycles_total"]) / _f(r["cycles_total"])
            mine, theirs = str(r.get("cycles_layers", "")).split(";"), str(br.get("cycles_layers", "")).split(";")
            if len(mine) == len(theirs) and all(mine):
                r[f"speedup_layers_vs_{b}"] = [float(t) / float(m) for m, t in zip(mine, theirs, strict=True)]


def summarise(rows: list[dict], out: Path) -> dict:
    """Pareto fronts per dataset and config, a markdown table and the two-panel PNG."""
    ok = [r for r in rows if r.get("status") == "ok"]
    speedups(ok)
    summary = {"datasets": {}}
    for ds in sorted({panel(r) for r in ok}):
        fp32 = [r for r in ok if panel(r) == ds and r["method"] == "fp32"]
        q = [r for r in ok if panel(r) == ds and r["method"] != "fp32" and _f(r.get("cycles_total"))]
        per_cfg = {}
        for cfg in sorted({(int(float(r["lanes"])), int(float(r["pes"]))) for r in q}):
            pts = [r for r in q if (int(float(r["lanes"])), int(float(r["pes"]))) == cfg]
            front = pareto_front([_f(r["cycles_total"]) for r in pts], [_f(r["acc_mean"]) for r in pts])
            a2q_pts = [(_f(r["cycles_total"]), _f(r["acc_mean"])) for r in pts if r["method"] == "a2q"]
            uni_pts = [(_f(r["cycles_total"]), _f(r["acc_mean"])) for r in pts if r["method"] != "a2q"]
            per_cfg[f"{cfg[0]}x{cfg[1]}"] = {
                "front": [f"{r['method']}@{r['target']}" for r, f in zip(pts, front, strict=True) if f],
                "a2q_dominates_uniform": dominates_all(a2q_pts, uni_pts) if a2q_pts and uni_pts else None,
            }
        summary["datasets"][ds] = {"fp32_acc": _f(fp32[0]["acc_mean"]) if fp32 else None, "configs": per_cfg}
    write_json(out / "sweep.json", {"rows": rows, "summary": summary})
    failed = [r for r in rows if r.get("status") != "ok"]
    write_text(out / "sweep.md", markdown_table(ok, summary, failed))
    if ok:
        plot(ok, out / "sweep.png")
    return summary


def markdown_table(rows: list[dict], summary: dict, failed: list[dict] = ()) -> str:
    b, bb = BASELINE, BASELINE + BINARY_SUFFIX
    lines = ["| dataset | hidden | method | target | L x P | acc (%) | int acc (%) | avg bits | feature KB | "
             "sparse KB | model cycles | per layer | RTL cycles | µs/inference | fits | "
             f"vs {b.upper()} | vs {b.upper()} (binary input) | Pareto |", "|---|" + "---|" * 17]

    def sp(r, base):
        if r.get(f"speedup_vs_{base}") is None:
            return "-"
        per = r.get(f"speedup_layers_vs_{base}") or []
        return f"{r[f'speedup_vs_{base}']:.2f}x" + (f" ({', '.join(f'{x:.2f}' for x in per)})" if per else "")

    def us(r):
        if _f(r.get("us_per_inference")) is None:
            return "-"
        return f"{_f(r['us_per_inference']):,.1f} @ {_f(r['clock_mhz']):g} MHz ({r.get('clock_source') or 'stated'})"

    for r in sorted(rows, key=lambda r: (panel(r), int(float(r.get("hidden") or 16)), r["method"],
                                         _f(r["target"]) or 0, str(r.get("lanes")))):
        cfg = f"{int(float(r['lanes']))}x{int(float(r['pes']))}" if _f(r.get("lanes")) else "-"
        front = summary["datasets"].get(panel(r), {}).get("configs", {}).get(cfg, {}).get("front", [])
        on_front = "yes" if f"{r['method']}@{r['target']}" in front else ""
        acc = f"{100 * _f(r['acc_mean']):.2f} ± {100 * _f(r['acc_std']):.2f}"
        ia = f"{100 * _f(r['int_acc']):.2f}" if _f(r.get("int_acc")) is not None else "-"
        fmt = lambda v, spec: format(_f(v), spec) if _f(v) is not None else "-"  # noqa: E731
        per_layer = str(r.get("cycles_layers") or "-").replace(";", " + ")
        lines.append(f"| {panel(r)} | {int(float(r.get('hidden') or 16))} | {r['method']} | {r['target']} | "
                     f"{cfg} | {acc} | {ia} | "
                     f"{fmt(r.get('avg_bits'), '.2f')} | {fmt(r.get('feature_kb'), '.1f')} | "
                     f"{fmt(r.get('feature_kb_sparse'), '.1f')} | "
                     f"{fmt(r.get('cycles_total'), ',.0f')} | {per_layer} | {fmt(r.get('rtl_cycles_total'), ',.0f')} | "
                     f"{us(r)} | {r.get('fits') or '-'} | {sp(r, b)} | {sp(r, bb)} | {on_front} |")
    reasons: dict[str, list[str]] = {}
    for r in failed:  # one line per distinct reason, naming the points it stopped
        reason = str(r.get("error") or "unknown error").splitlines()[0].split(" (expected")[0].replace("|", "/")
        reasons.setdefault(reason, []).append(f"{r['dataset']} {r['method']}@{r['target']}")
    unpriced: dict[str, list[str]] = {}
    for r in rows:
        if str(r.get("error") or "").startswith("not priced"):
            unpriced.setdefault(str(r["error"]).splitlines()[0], []).append(f"{panel(r)} {r['method']}@{r['target']}")
    if unpriced:
        lines += ["", "Trained and exported, not priced in cycles:", ""]
        lines += [f"- {', '.join(points)}: {reason}" for reason, points in unpriced.items()]
    if reasons:
        lines += ["", "Points that did not run:", ""]
        lines += [f"- {', '.join(points)}: {reason}" for reason, points in reasons.items()]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    datasets = sorted({panel(r) for r in rows})
    methods = sorted({r["method"] for r in rows})
    colour = {m: f"C{i}" for i, m in enumerate(methods)}  # one colour per method, one marker per config
    cfg_markers = "os^Dv<>"
    fig, axes = plt.subplots(len(datasets), 2, figsize=(11, 4 * len(datasets)), squeeze=False)
    for d, ds in enumerate(datasets):
        rs = [r for r in rows if panel(r) == ds]
        cfgs = sorted({(r.get("lanes"), r.get("pes")) for r in rs if _f(r.get("cycles_total"))})
        ax_c, ax_b = axes[d]
        for method in methods:
            mr = [r for r in rs if r["method"] == method]
            for k, (lanes, pes) in enumerate(cfgs):
                pts = [r for r in mr if (r.get("lanes"), r.get("pes")) == (lanes, pes)]
                if pts:
                    ax_c.scatter([_f(r["cycles_total"]) for r in pts], [100 * _f(r["acc_mean"]) for r in pts],
                                 marker=cfg_markers[k % len(cfg_markers)], color=colour[method],
                                 label=f"{method} {int(float(lanes))}x{int(float(pes))}")
            pts = list({(r["target"]): r for r in mr}.values())
            if pts:
                ax_b.errorbar([_f(r["avg_bits"]) for r in pts], [100 * _f(r["acc_mean"]) for r in pts],
                              yerr=[100 * (_f(r["acc_std"]) or 0) for r in pts], fmt="*" if method == "fp32" else "o",
                              color=colour[method], label=method, capsize=3)
        for (lanes, pes) in cfgs:
            pts = [r for r in rs if (r.get("lanes"), r.get("pes")) == (lanes, pes) and _f(r.get("cycles_total"))]
            front = [r for r, f in zip(pts, pareto_front([_f(r["cycles_total"]) for r in pts],
                                                         [_f(r["acc_mean"]) for r in pts]), strict=True) if f]
            front.sort(key=lambda r: _f(r["cycles_total"]))
            ax_c.plot([_f(r["cycles_total"]) for r in front], [100 * _f(r["acc_mean"]) for r in front], "k--",
                      lw=1, label="Pareto front" if (lanes, pes) == cfgs[0] else None)
        pts = [r for r in {r["target"] + r["method"]: r for r in rs}.values()]
        front = [r for r, f in zip(pts, pareto_front([_f(r["avg_bits"]) for r in pts],
                                                     [_f(r["acc_mean"]) for r in pts]), strict=True) if f]
        front.sort(key=lambda r: _f(r["avg_bits"]))
        ax_b.plot([_f(r["avg_bits"]) for r in front], [100 * _f(r["acc_mean"]) for r in front], "k--", lw=1,
                  label="Pareto front")
        ax_c.set(xscale="log", xlabel="model cycles (whole inference)", ylabel="test accuracy (%)",
                 title=f"{ds}: accuracy vs cycles")
        ax_b.set(xscale="log", xlabel="average feature bits", ylabel="test accuracy (%)",
                 title=f"{ds}: accuracy vs bits")
        ax_b.xaxis.set_major_locator(FixedLocator([1, 1.5, 2, 3, 4, 8, 16, 32]))
        ax_b.xaxis.set_minor_locator(NullLocator())
        ax_b.xaxis.set_major_formatter(ScalarFormatter())
        if ax_c.get_legend_handles_labels()[0]:  # no cycle point (e.g. programs not priced yet): no legend
            ax_c.legend(fontsize=7)
        ax_b.legend(fontsize=7)
    fig.tight_layout()
    tmp = png.with_name(f".{png.stem}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, png)


# -- CLI ---------------------------------------------------------------------------------------------
def add_sweep_arguments(p) -> None:
    p.add_argument("--datasets", default="Cora,CiteSeer,PubMed", help="comma list")
    p.add_argument("--methods", default="fp32,a2q,int2,int3,int4,int8",
                   help="comma list of fp32, a2q, intK (uniform INT-K) and dqK (Degree-Quant INT-K), K in 1..8")
    p.add_argument("--targets", default="1.25,1.5,2,3,4", help="A2Q average-bit targets, comma list")
    p.add_argument("--models", default="gcn", help="comma list of gcn, gin (gin also runs the graph-level TU sets)")
    p.add_argument("--hidden", default=None,
                   help="hidden channels, comma list (e.g. 16,64,128; default: 16, graph-level GIN 64)")
    p.add_argument("--graphs", type=int, default=DEFAULT_GRAPHS,
                   help="graph-level points: test graphs of fold 0 priced as one batch")
    p.add_argument("--configs", default="16x16", help="accelerator configs LANESxPES, comma list")
    p.add_argument("--seeds", default="0-2", help="seeds per point, e.g. 0-9")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--rtl", default="", help="points to also simulate on Verilator: dataset:method:target[:hidden],...")
    p.add_argument("--jobs", type=int, default=1, help="local executor: points run in parallel processes "
                   "(one torch thread each)")
    p.add_argument("--executor", default="local", choices=EXECUTORS,
                   help="local processes (default) or Ray tasks, one CPU per point (pip install -e '.[cluster]')")
    p.add_argument("--address", default=None, help="Ray cluster to join (e.g. auto, ray://HEAD:10001); "
                   "default: start a local Ray")
    p.add_argument("--threads", type=int, default=1, help="torch threads when --jobs 1")
    p.add_argument("--clock-mhz", type=float, default=DEFAULT_CLOCK_MHZ,
                   help="clock for µs/inference where `a2q hw synth` has no routed Fmax for a point's config "
                        "(the table labels it stated or measured)")
    p.add_argument("--data-root", default=None, help="dataset root (default: $A2Q_DATA_ROOT)")
    p.add_argument("--out", default="results/sweep", help="output directory (sweep.csv, .json, .md, .png)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def run_sweep(args) -> dict:
    os.environ["A2Q_THREADS"] = str(args.threads)
    try:
        hiddens = None if args.hidden is None else [int(h) for h in str(args.hidden).split(",")]
    except ValueError:
        raise ValueError(f"--hidden {args.hidden!r} is not a comma list of integers, e.g. 16,64,128") from None
    if args.graphs < 1:
        raise ValueError(f"--graphs must be >= 1, got {args.graphs}")
    points = grid(args.datasets.split(","), args.methods.split(","), args.targets.split(","),
                  hiddens, models=args.models.split(","), graphs=args.graphs)
    rtl_keys = parse_rtl(args.rtl)
    out = Path(args.out)
    t0 = time.perf_counter()
    rows = run_grid(points, parse_configs(args.configs), out, seeds=args.seeds, epochs=args.epochs,
                    data_root=args.data_root, jobs=args.jobs, rtl_keys=rtl_keys, executor=args.executor,
                    address=args.address, clock_mhz=args.clock_mhz)
    summary = summarise(rows, out)
    failed = [r for r in rows if r.get("status") != "ok"]
    print(f"sweep: {len(points)} points, {len(failed)} failed, {time.perf_counter() - t0:.1f}s -> "
          f"{out / 'sweep.csv'}, {out / 'sweep.png'}")
    return summary
