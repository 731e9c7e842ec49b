"""Datasets: Planetoid citation graphs (public split) and PyG's built-in KarateClub.

The data root comes from the ``root`` argument or ``$A2Q_DATA_ROOT`` and holds PyG's layout
(``<root>/<Name>/raw/ind.<name>.*``). The raw files are copied to a cache before PyG processes them,
so a shared dataset folder stays raw-only. A missing file is reported with the root and the files
expected, before PyG would try (and, offline, fail) to download.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import torch

PLANETOID = {"Cora": "cora", "CiteSeer": "citeseer", "PubMed": "pubmed"}
BUILTIN = ("KarateClub",)
KNOWN = tuple(PLANETOID) + BUILTIN
PLANETOID_FILES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
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
    missing = [f for f in planetoid_files(name) if not (raw / f).is_file()]
    if missing:
        raise DatasetError(f"{name} is not available under {base}: missing {', '.join(missing)} in {raw} "
                           f"(expected {', '.join(planetoid_files(name))}; no network to download them)")
    from torch_geometric.datasets import Planetoid
    from torch_geometric.transforms import NormalizeFeatures

    key = hashlib.sha256(str(raw.resolve()).encode()).hexdigest()[:12]
    cache_root = CACHE / key
    cache_raw = cache_root / name / "raw"
    if not all((cache_raw / f).is_file() for f in planetoid_files(name)):
        tmp = cache_root / f".{name}.raw.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for f in planetoid_files(name):
            shutil.copy2(raw / f, tmp / f)
        cache_raw.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(cache_raw, ignore_errors=True)
        os.replace(tmp, cache_raw)
    ds = Planetoid(str(cache_root), name, split="public", transform=NormalizeFeatures())
    data = ds[0]
    data.num_classes = ds.num_classes
    data.name = name
    return data


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
