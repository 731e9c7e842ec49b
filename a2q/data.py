"""Datasets: Planetoid Cora / CiteSeer / PubMed (standard public split) and PyG's KarateClub.

``load_dataset(name, root=None)`` returns a :class:`LoadedDataset` ``(data, num_features, num_classes,
name)``; it is a tuple, so ``load_dataset(...)[0]`` is the PyG ``Data``. Node features are row-normalised
(PyG ``NormalizeFeatures``): the model's first quantizer has a per-node step that absorbs ``1/rowsum``.

The data root comes from the argument or ``$A2Q_DATA_ROOT`` and is treated as read-only: the raw
files under ``<root>/<Name>/raw`` are copied to a cache directory (``$A2Q_CACHE_DIR`` or
``~/.cache/a2q/datasets``) and PyG processes them there, so the shared folder stays raw-only.
Missing files are detected before PyG is called: without network (a TCP probe of the download host,
at most 3 s; ``A2Q_OFFLINE=1`` skips it) the loader fails at once with a :class:`DatasetError` naming
the root and the files it expected. With network PyG downloads into the cache, never into the root.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import threading
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlparse

import torch

PLANETOID = ("Cora", "CiteSeer", "PubMed")
BUILTIN = ("KarateClub",)
KNOWN = PLANETOID + BUILTIN
PLANETOID_SUFFIXES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
#: Seconds to wait for the download host before declaring there is no network.
NETWORK_PROBE_TIMEOUT_S = 3.0


class DatasetError(ValueError):
    """A dataset that cannot be loaded (unknown name, missing files without network, bad files)."""


class LoadedDataset(NamedTuple):
    data: object  # torch_geometric.data.Data
    num_features: int
    num_classes: int
    name: str


def canonical_name(name: str) -> str:
    """Case-insensitive match against the known names; raise a DatasetError listing them otherwise."""
    for known in KNOWN:
        if str(name).lower() == known.lower():
            return known
    raise DatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(KNOWN)}")


def planetoid_raw_files(name: str) -> list[str]:
    return [f"ind.{name.lower()}.{s}" for s in PLANETOID_SUFFIXES]


def default_cache_dir() -> Path:
    env = os.environ.get("A2Q_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "a2q" / "datasets"


def _network_available(url: str, timeout: float = NETWORK_PROBE_TIMEOUT_S) -> bool:
    """Can we open a TCP connection to the download host within ``timeout`` (DNS included)?
    ``A2Q_OFFLINE=1`` answers no without trying."""
    if os.environ.get("A2Q_OFFLINE", "") not in ("", "0"):
        return False
    parsed = urlparse(url)
    if not parsed.hostname:
        return False
    result = []

    def probe():
        try:
            with socket.create_connection((parsed.hostname, parsed.port or 443), timeout=timeout):
                result.append(True)
        except OSError:
            pass

    th = threading.Thread(target=probe, daemon=True)  # bounds a hanging DNS lookup too
    th.start()
    th.join(timeout)
    return bool(result)


@contextlib.contextmanager
def _locked(directory: Path):
    """Exclusive lock on ``directory`` so concurrent processes do not process the same cache twice."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _sync_raw(src_raw: Path, dst_dir: Path, files: list[str]) -> None:
    """Copy raw files to the cache; drop a stale ``processed/`` when any raw file changed."""
    dst_raw = dst_dir / "raw"
    dst_raw.mkdir(parents=True, exist_ok=True)
    changed = False
    for f in files:
        s, d = src_raw / f, dst_raw / f
        if not d.exists() or d.stat().st_size != s.stat().st_size or d.stat().st_mtime < s.stat().st_mtime:
            tmp = dst_raw / f".{f}.tmp"
            shutil.copyfile(s, tmp)
            os.replace(tmp, d)
            changed = True
    if changed:
        shutil.rmtree(dst_dir / "processed", ignore_errors=True)


def _load_planetoid(name: str, root: str | os.PathLike | None, cache_dir: Path | None):
    import torch_geometric.transforms as T
    from torch_geometric.datasets import Planetoid

    files = planetoid_raw_files(name)
    cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    dst_dir = cache_root / name
    with _locked(dst_dir):
        missing = files
        if root is not None:
            src_raw = Path(root) / name / "raw"
            missing = [f for f in files if not (src_raw / f).is_file()]
            if not missing:
                _sync_raw(src_raw, dst_dir, files)
        if missing:  # perhaps a previous download already filled the cache
            cached = [f for f in files if (dst_dir / "raw" / f).is_file()]
            if len(cached) < len(files):
                if not _network_available(Planetoid.url):
                    where = f"{Path(root) / name / 'raw'}" if root is not None else "(no data root given)"
                    raise DatasetError(
                        f"dataset {name}: raw files missing under {where}: {', '.join(missing)} "
                        f"(expected {', '.join(files)}); set --data-root or A2Q_DATA_ROOT to a folder "
                        f"holding {name}/raw/, and there is no network to download them")
                # network: let PyG download into the cache only (never into the data root)
                shutil.rmtree(dst_dir / "raw", ignore_errors=True)
        try:
            ds = Planetoid(str(cache_root), name, split="public", transform=T.NormalizeFeatures())
        except Exception as e:  # corrupt file, failed download, ...
            raise DatasetError(f"dataset {name}: PyG could not load {dst_dir}: {type(e).__name__}: {e}") from e
    data = ds[0]
    return data, int(ds.num_features), int(ds.num_classes)


def karate_split(y: torch.Tensor, train_frac: float = 0.5, val_frac: float = 0.2, seed: int = 0):
    """Deterministic stratified split: per class, ``train_frac`` train, ``val_frac`` val, the rest test."""
    n = y.numel()
    g = torch.Generator().manual_seed(seed)
    masks = {k: torch.zeros(n, dtype=torch.bool) for k in ("train", "val", "test")}
    for c in torch.unique(y).tolist():
        idx = (y == c).nonzero().view(-1)
        idx = idx[torch.randperm(idx.numel(), generator=g)]
        n_tr = max(1, round(train_frac * idx.numel()))
        n_va = max(1, round(val_frac * idx.numel())) if idx.numel() - n_tr > 1 else 0
        masks["train"][idx[:n_tr]] = True
        masks["val"][idx[n_tr:n_tr + n_va]] = True
        masks["test"][idx[n_tr + n_va:]] = True
    return masks["train"], masks["val"], masks["test"]


def _load_karate():
    from torch_geometric.datasets import KarateClub

    ds = KarateClub()
    data = ds[0].clone()
    data.train_mask, data.val_mask, data.test_mask = karate_split(data.y)
    return data, int(ds.num_features), int(ds.num_classes)


def load_dataset(name: str, root: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None
                 ) -> LoadedDataset:
    """Load a dataset by name (case-insensitive). ``root`` defaults to ``$A2Q_DATA_ROOT``."""
    canon = canonical_name(name)
    if canon == "KarateClub":
        data, nf, nc = _load_karate()
    else:
        if root is None:
            root = os.environ.get("A2Q_DATA_ROOT") or None
        if root is not None and not Path(root).is_dir():
            raise DatasetError(f"data root {root} is not a directory (expected {root}/{canon}/raw/ with "
                               f"{', '.join(planetoid_raw_files(canon))})")
        data, nf, nc = _load_planetoid(canon, root, Path(cache_dir) if cache_dir else None)
    return LoadedDataset(data, nf, nc, canon)
