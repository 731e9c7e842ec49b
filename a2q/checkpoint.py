"""Checkpoints of trained models: the model's constructor config, its state dict and a meta dict.

``meta`` holds what is needed to rebuild the model and reload its dataset (dataset name, method, bits,
hidden, seed, fakequant_test_acc, ...); the data root is *not* stored, callers pass it again.
Writes are atomic (a temp file beside the target, then ``os.replace``).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from .models import GCN, model_from_config

FORMAT_VERSION = 1


def plain(meta: dict) -> dict:
    """``meta`` as plain JSON types (numpy scalars, TorchVersion, Paths become numbers/strings), so the
    checkpoint loads with ``torch.load(weights_only=True)``."""
    def default(o):
        if hasattr(o, "item"):
            return o.item()
        if hasattr(o, "tolist"):
            return o.tolist()
        return str(o)

    return json.loads(json.dumps(dict(meta), default=default))


def save_checkpoint(path: str | os.PathLike, model: GCN, meta: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {"format_version": FORMAT_VERSION, "config": dict(model.config),
            "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "meta": plain(meta or {})}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        torch.save(blob, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike) -> tuple[GCN, dict]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"checkpoint {path} cannot be read: {type(e).__name__}: {e}") from e
    if not isinstance(blob, dict) or blob.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"checkpoint {path}: not an a2q checkpoint of format {FORMAT_VERSION}")
    model = model_from_config(blob["config"])
    model.load_state_dict(blob["state_dict"])
    model.eval()
    return model, dict(blob["meta"])
