"""Progress for long work: a tqdm bar on a terminal, one plain line per stage (or seed, fold...) in a log.

tqdm rewrites its bar with carriage returns; sent to a file that is hundreds of updates per run. When
stderr is not a terminal, ``Progress`` prints a line only when a unit of ``line_every`` updates completes
(``line_every=1``: a line per update, i.e. per stage; ``line_every=epochs``: a line per seed).
"""
from __future__ import annotations

import sys
import time


def _is_tty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Progress:
    """``with Progress(total, desc, unit) as bar: bar.update(); bar.set_postfix(acc=...)``."""

    def __init__(self, total: int, desc: str, unit: str = "it", initial: int = 0, line_every: int = 1,
                 stream=None, force_tty: bool | None = None):
        self.total, self.desc, self.unit = int(total), desc, unit
        self.n = int(initial)
        self.line_every = max(1, int(line_every))
        self.stream = stream if stream is not None else sys.stderr
        self.tty = _is_tty(self.stream) if force_tty is None else force_tty
        self.postfix: dict = {}
        self._t0 = time.monotonic()
        self._bar = None
        if self.tty:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, initial=self.n, desc=desc, unit=unit, file=self.stream,
                             dynamic_ncols=True)

    def set_postfix(self, **kv) -> None:
        self.postfix = kv
        if self._bar is not None:
            self._bar.set_postfix(**kv)

    def update(self, n: int = 1, note: str | None = None) -> None:
        before = self.n
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
            return
        if self.n // self.line_every > before // self.line_every or self.n >= self.total > before:
            self._line(note)

    def write(self, message: str) -> None:
        """A message that does not break the bar."""
        if self._bar is not None:
            self._bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def _line(self, note: str | None) -> None:
        post = " ".join(f"{k}={v}" for k, v in self.postfix.items())
        parts = [f"{self.desc}: {self.n}/{self.total} {self.unit}", f"{time.monotonic() - self._t0:.1f}s"]
        if note:
            parts.append(note)
        if post:
            parts.append(post)
        print(" | ".join(parts), file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
