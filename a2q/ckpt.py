"""Checkpoints: the model's state and the metadata needed to rebuild it and reload its dataset."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from .jsonio import file_mode

FORMAT = "a2q-checkpoint-1"


def save_checkpoint(path: str | os.PathLike, model, meta: dict) -> Path:
    """Atomic: a temp file beside ``path``, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, file_mode())  # mkstemp makes it 0600; a checkpoint is an ordinary file
        torch.save({"format": FORMAT, "config": model.config, "state_dict": model.state_dict(), "meta": meta}, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike):
    """Return (model, meta); a file that is not an a2q checkpoint raises ValueError."""
    from .models import build_model

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise ValueError(f"{path}: not a readable checkpoint ({e})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ValueError(f"{path}: not an a2q checkpoint (format {FORMAT!r} expected)")
    model = build_model(obj["config"])
    model.load_state_dict(obj["state_dict"])
    model.eval()
    return model, obj["meta"]
