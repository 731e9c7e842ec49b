"""Datasets: Planetoid citation graphs (public split) and PyG's built-in KarateClub.

The data root comes from the ``root`` argument or ``$A2Q_DATA_ROOT`` and holds PyG's layout
(``<root>/<Name>/raw/ind.<name>.*``). The raw files are copied to a cache before PyG processes them,
so a shared dataset folder stays raw-only. Files missing under the root are downloaded from the
Planetoid repository into that cache where the network allows; where it does not, the error names the
root, the files expected and the download failure.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import torch

PLANETOID = {"Cora": "cora", "CiteSeer": "citeseer", "PubMed": "pubmed"}
BUILTIN = ("KarateClub",)
KNOWN = tuple(PLANETOID) + BUILTIN
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
        cache_raw.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(cache_raw, ignore_errors=True)
        try:
            os.replace(tmp, cache_raw)
        except OSError:  # another process put a complete copy there first
            shutil.rmtree(tmp, ignore_errors=True)
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
