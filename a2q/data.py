"""Datasets: Planetoid citation graphs (public split), PyG's built-in KarateClub (node-level) and the TU
graph-classification sets (graph-level: ``load_graph_set``, pre-collated, with stratified folds).

The data root comes from the ``root`` argument or ``$A2Q_DATA_ROOT`` and holds PyG's layout
(``<root>/<Name>/raw/ind.<name>.*``). The raw files are copied to a cache before PyG processes them,
so a shared dataset folder stays raw-only. Files missing under the root are downloaded from the
Planetoid repository into that cache where the network allows; where it does not, the error names the
root, the files expected and the download failure.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import torch

PLANETOID = {"Cora": "cora", "CiteSeer": "citeseer", "PubMed": "pubmed"}
BUILTIN = ("KarateClub",)
#: graph-level sets, under <root>/TU/<NAME>/raw
TU_DATASETS = ("REDDIT-BINARY", "PROTEINS", "MUTAG", "IMDB-BINARY", "NCI1")
KNOWN = tuple(PLANETOID) + BUILTIN + TU_DATASETS
#: Featureless sets get the one-hot degree when the largest degree is at most this (IMDB-BINARY: 135),
#: else the standardised degree, one feature (REDDIT-BINARY: 3062, a one-hot row would be 3063 wide).
ONE_HOT_MAX_DEGREE = 200
PLANETOID_FILES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
PLANETOID_URL = "https://github.com/kimiyoung/planetoid/raw/master/data"
DOWNLOAD_TIMEOUT_S = 30
CACHE = Path(os.environ.get("A2Q_CACHE", Path.home() / ".cache" / "a2q" / "datasets"))


class DatasetError(ValueError):
    """A dataset that is unknown or cannot be loaded; the message says what is missing where."""


def data_root(root: str | os.PathLike | None = None) -> Path | None:
    root = root or os.environ.get("A2Q_DATA_ROOT")
    return Path(root) if root else None


def planetoid_files(name: str) -> list[str]:
    return [f"ind.{PLANETOID[name]}.{suffix}" for suffix in PLANETOID_FILES]


def load_dataset(name: str, root: str | os.PathLike | None = None):
    """Return a PyG ``Data`` with ``train_mask``/``val_mask``/``test_mask`` and ``num_classes``."""
    if name in BUILTIN:
        return _karate_club()
    if name in TU_DATASETS:
        raise DatasetError(f"{name} is a graph-level set: load it with load_graph_set")
    if name not in PLANETOID:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(KNOWN)} (names are case-sensitive)")
    base = data_root(root)
    if base is None:
        raise DatasetError(f"no data root for {name}: pass --data-root or set A2Q_DATA_ROOT "
                           f"(expected <root>/{name}/raw/ with {', '.join(planetoid_files(name))})")
    raw = base / name / "raw"
    from torch_geometric.datasets import Planetoid
    from torch_geometric.transforms import NormalizeFeatures

    key = hashlib.sha256(str(raw.resolve()).encode()).hexdigest()[:12]
    cache_root = CACHE / key
    cache_raw = cache_root / name / "raw"
    if not all((cache_raw / f).is_file() for f in planetoid_files(name)):
        cache_root.mkdir(parents=True, exist_ok=True)
        # a private temp folder: parallel sweep jobs may fill the cache at the same time
        tmp = Path(tempfile.mkdtemp(dir=cache_root, prefix=f".{name}.raw."))
        missing = [f for f in planetoid_files(name) if not (raw / f).is_file()]
        for f in planetoid_files(name):
            if f not in missing:
                shutil.copy2(raw / f, tmp / f)
        if missing:
            _download(name, missing, tmp, base, raw)
        _install(tmp, cache_raw)
    with processing_lock(cache_root):
        ds = Planetoid(str(cache_root), name, split="public", transform=NormalizeFeatures())
    data = ds[0]
    data.num_classes = ds.num_classes
    data.name = name
    return data


def _download(name: str, files: list[str], dest: Path, base: Path, raw: Path) -> None:
    """Fetch the raw files missing under the root; a failure removes the partial copy and says why."""
    import socket
    import urllib.request

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        for f in files:
            part = dest / f"{f}.part"
            with urllib.request.urlopen(f"{PLANETOID_URL}/{f}") as r, open(part, "wb") as out:
                shutil.copyfileobj(r, out)
            os.replace(part, dest / f)
    except OSError as e:
        shutil.rmtree(dest, ignore_errors=True)
        with contextlib.suppress(OSError):  # leave no empty cache folder behind
            dest.parent.rmdir()
        raise DatasetError(f"{name} is not available under {base}: missing {', '.join(files)} in {raw} "
                           f"(expected {', '.join(planetoid_files(name))}); downloading them from "
                           f"{PLANETOID_URL} failed: {e}") from None
    finally:
        socket.setdefaulttimeout(old)


def _karate_club():
    """KarateClub with a fixed split: PyG's 4 labelled nodes train, the rest halved into val and test."""
    from torch_geometric.datasets import KarateClub

    ds = KarateClub()
    data = ds[0]
    n = data.num_nodes
    rest = (~data.train_mask).nonzero().view(-1)
    perm = rest[torch.randperm(rest.numel(), generator=torch.Generator().manual_seed(0))]
    data.val_mask = torch.zeros(n, dtype=torch.bool)
    data.test_mask = torch.zeros(n, dtype=torch.bool)
    data.val_mask[perm[: perm.numel() // 2]] = True
    data.test_mask[perm[perm.numel() // 2:]] = True
    data.num_classes = ds.num_classes
    data.name = "KarateClub"
    return data


def _install(tmp: Path, cache_raw: Path) -> None:
    """Move a filled private temp folder into place as the cached raw folder, atomically; if another
    process put a complete copy there first, keep theirs."""
    cache_raw.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(cache_raw, ignore_errors=True)
    try:
        os.replace(tmp, cache_raw)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def processing_lock(cache_root: Path):
    """Hold an exclusive lock on ``<cache_root>/.process.lock`` while PyG loads or processes the set there.

    PyG writes ``processed/data.pt`` in place with ``torch.save``: a second process that starts in the
    meantime reads it half-written ("PytorchStreamReader failed reading file"; seen when two benchmark
    jobs started together on a fresh cache). The lock makes the first process build it and the others wait.
    """
    cache_root.mkdir(parents=True, exist_ok=True)
    with open(cache_root / ".process.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _raw_copy(base: Path, sub: str, name: str, required: list[str]) -> Path:
    """Copy ``<base>/<sub>/<name>/raw`` into the cache once (the shared folder stays raw-only); the cache root."""
    raw = base / sub / name / "raw"
    missing = [f for f in required if not (raw / f).is_file()]
    if missing:
        raise DatasetError(f"{name} is not available under {base}: missing {', '.join(missing)} in {raw}")
    key = hashlib.sha256(str(raw.resolve()).encode()).hexdigest()[:12]
    cache_root = CACHE / key
    cache_raw = cache_root / name / "raw"
    if not all((cache_raw / f).is_file() for f in required):
        cache_root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cache_root, prefix=f".{name}.raw."))
        for f in raw.iterdir():
            if f.is_file():
                shutil.copy2(f, tmp / f.name)
        _install(tmp, cache_raw)
    return cache_root


class GraphSet:
    """A TU set pre-collated once: every graph's nodes and edges in one tensor, so a mini-batch is a few
    vectorised gathers (``batch``) instead of PyG's per-graph collation.

    ``x`` [N, F] float, ``edge_index`` [2, E] with global node ids and each graph's edges contiguous,
    ``node_ptr``/``edge_ptr`` [G + 1], ``y`` [G], ``features`` says how the node features were made.
    """

    def __init__(self, name, x, edge_index, node_ptr, edge_ptr, y, features: str):
        self.name, self.x, self.edge_index, self.y, self.features = name, x, edge_index, y, features
        self.node_ptr, self.edge_ptr = node_ptr, edge_ptr
        self.num_graphs = int(y.numel())
        self.num_classes = int(y.max()) + 1
        self.num_features = int(x.shape[1])
        self.num_nodes_per_graph = node_ptr[1:] - node_ptr[:-1]
        self.in_degree = torch.zeros(x.shape[0]).index_add_(0, edge_index[1], torch.ones(edge_index.shape[1]))

    def batch(self, ids: torch.Tensor):
        """The graphs ``ids`` as one PyG ``Data`` with ``batch``, ``y``, ``num_graphs``."""
        from torch_geometric.data import Data

        ids = torch.as_tensor(ids, dtype=torch.long)
        n_count = self.num_nodes_per_graph[ids]
        e_count = self.edge_ptr[ids + 1] - self.edge_ptr[ids]
        nodes = _ranges(self.node_ptr[ids], n_count)
        edges = _ranges(self.edge_ptr[ids], e_count)
        new_start = torch.cumsum(n_count, 0) - n_count  # first new id of each graph
        shift = torch.repeat_interleave(new_start - self.node_ptr[ids], e_count)
        ei = self.edge_index[:, edges] + shift[None, :]
        batch = torch.repeat_interleave(torch.arange(len(ids)), n_count)
        return Data(x=self.x[nodes], edge_index=ei, batch=batch, y=self.y[ids], num_graphs=len(ids),
                    num_nodes=int(n_count.sum()), orig_nodes=nodes)


def _ranges(starts: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """concat(arange(s, s + c) for s, c): without a Python loop."""
    total = int(counts.sum())
    offsets = torch.cumsum(counts, 0) - counts
    return torch.arange(total) - torch.repeat_interleave(offsets - starts, counts)


def load_graph_set(name: str, root: str | os.PathLike | None = None) -> GraphSet:
    """A TU set from ``<root>/TU/<name>/raw``, with degree features for the featureless ones."""
    if name not in TU_DATASETS:
        raise DatasetError(f"unknown graph-level dataset {name!r}; known: {', '.join(TU_DATASETS)}")
    base = data_root(root)
    if base is None:
        raise DatasetError(f"no data root for {name}: pass --data-root or set A2Q_DATA_ROOT "
                           f"(expected <root>/TU/{name}/raw/)")
    from torch_geometric.datasets import TUDataset

    required = [f"{name}_A.txt", f"{name}_graph_indicator.txt", f"{name}_graph_labels.txt"]
    cache_root = _raw_copy(base, "TU", name, required)
    with processing_lock(cache_root):
        ds = TUDataset(str(cache_root), name)
    d, slices = ds._data, ds.slices
    edge_ptr = slices["edge_index"].long()
    if d.x is not None:
        node_ptr = slices["x"].long()
    else:
        counts = getattr(d, "_num_nodes", None)
        counts = counts if counts is not None else [ds[i].num_nodes for i in range(len(ds))]
        node_ptr = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(torch.as_tensor(counts), 0)])
    # PyG stores each graph's edges with graph-local node ids: make them global
    e_count = edge_ptr[1:] - edge_ptr[:-1]
    edge_index = d.edge_index.long() + torch.repeat_interleave(node_ptr[:-1], e_count)[None, :]
    n = int(node_ptr[-1])
    if d.x is not None:
        x, features = d.x.float(), "node labels (one-hot, as stored)"
    else:
        x, features = degree_features(edge_index, n)
    return GraphSet(name, x, edge_index, node_ptr, edge_ptr, d.y.long().view(-1), features)


def degree_features(edge_index: torch.Tensor, num_nodes: int) -> tuple[torch.Tensor, str]:
    """One-hot in-degree up to ``ONE_HOT_MAX_DEGREE``; above it the standardised degree (one column)."""
    deg = torch.zeros(num_nodes, dtype=torch.long).index_add_(0, edge_index[1], torch.ones_like(edge_index[1]))
    top = int(deg.max()) if num_nodes else 0
    if top <= ONE_HOT_MAX_DEGREE:
        return torch.nn.functional.one_hot(deg, top + 1).float(), f"one-hot degree (max {top})"
    d = deg.float()
    return ((d - d.mean()) / d.std().clamp_min(1e-12))[:, None], f"standardised degree (max {top} > " \
                                                                  f"{ONE_HOT_MAX_DEGREE})"


def stratified_folds(y: torch.Tensor, num_folds: int = 10, seed: int = 12345, val_fraction: float = 0.1):
    """``num_folds`` (train, val, test) index triples: the test parts partition the graphs with every
    class spread evenly over the folds; inside each training part a stratified ``val_fraction`` is held
    out for epoch selection. Fixed by ``seed``."""
    import numpy as np

    y = np.asarray(y)
    if num_folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {num_folds}")
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(y), dtype=np.int64)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        offset = rng.integers(num_folds)  # so small classes do not all start in fold 0
        fold_of[idx] = (np.arange(len(idx)) + offset) % num_folds
    out = []
    for k in range(num_folds):
        test = np.flatnonzero(fold_of == k)
        rest = np.flatnonzero(fold_of != k)
        val = []
        for c in np.unique(y[rest]):
            idx = rng.permutation(rest[y[rest] == c])
            val.append(idx[: max(1, int(round(val_fraction * len(idx))))])
        val = np.sort(np.concatenate(val))
        train = np.setdiff1d(rest, val)
        out.append((torch.as_tensor(train), torch.as_tensor(val), torch.as_tensor(test)))
    return out


#: How ``graph_subset`` picks N of a fold's test graphs.
GRAPH_ORDERS = ("stratified", "first")


def graph_subset(ids, y, n: int | None, seed: int = 12345, order: str = "stratified") -> torch.Tensor:
    """``n`` of the graphs ``ids`` (a fold's test part), ascending: the whole set when ``n`` is None or
    covers it. ``"stratified"``: every class in proportion (within one graph) and, inside a class, a
    random sample fixed by ``seed``. ``"first"``: the ``n`` lowest ids, as exported before; TU files
    store their graphs sorted by class (PROTEINS, IMDB-BINARY and NCI1 in two or four runs,
    REDDIT-BINARY in three: 500 of class 1, 1000 of class 0, 500 of class 1), so the lowest ids of a
    fold are one class, or one sub-population of it: REDDIT-BINARY fold 0's first 64 are 51 of class 1,
    all from the first run, and 13 of class 0 (docs/training.md, "Which test graphs")."""
    import numpy as np

    if order not in GRAPH_ORDERS:
        raise ValueError(f"graph order must be one of {GRAPH_ORDERS}, got {order!r}")
    ids = np.asarray(ids, dtype=np.int64)
    if n is not None and n < 1:
        raise ValueError(f"--graphs must be >= 1, got {n}")
    if n is None or n >= len(ids):
        return torch.as_tensor(np.sort(ids))
    if order == "first":
        return torch.as_tensor(np.sort(ids)[:n])
    labels = np.asarray(y)[ids]
    rng = np.random.default_rng(seed)
    keys, members = [], []
    for c in np.unique(labels):  # class c's j-th sampled graph sits at (j + 1/2) / n_c of the merged order
        idx = rng.permutation(ids[labels == c])
        keys.append((np.arange(len(idx)) + 0.5) / len(idx))
        members.append(idx)
    keys, members = np.concatenate(keys), np.concatenate(members)
    return torch.as_tensor(np.sort(members[np.argsort(keys, kind="stable")[:n]]))
