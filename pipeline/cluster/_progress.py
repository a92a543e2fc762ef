"""Running a list of Dask tasks with a progress bar, on the active client or locally."""

from __future__ import annotations

import sys
import time
from typing import Sequence, TextIO

import dask

__all__ = ["compute_with_progress", "ProgressBar"]


class ProgressBar:
    """A one-line text bar: ``label [#####.....] done/total elapsed``.

    Redrawn in place on a terminal; on a pipe or file one line per 10 %
    step, so logs stay readable.
    """

    def __init__(self, total: int, label: str, *, stream: TextIO | None | bool = True, width: int = 30):
        stream = sys.stderr if stream is True else (stream or None)
        self.total, self.label, self.stream, self.width = max(1, total), label, stream, width
        self.done = 0
        self.start = time.monotonic()
        self._tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        self._last_step = -1

    def line(self) -> str:
        frac = self.done / self.total
        bar = "#" * int(frac * self.width)
        return (f"{self.label} [{bar:<{self.width}}] {self.done}/{self.total} "
                f"{time.monotonic() - self.start:6.1f}s")

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.stream is None:
            return
        if self._tty:
            self.stream.write("\r" + self.line())
            self.stream.flush()
            return
        step = int(10 * self.done / self.total)
        if step != self._last_step:
            self._last_step = step
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.stream is not None and self._tty:
            self.stream.write("\n")
            self.stream.flush()


def _active_client():
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None


def compute_with_progress(tasks: Sequence, label: str, *, stream: TextIO | None | bool = True) -> None:
    """Compute ``tasks`` (Dask collections), showing progress; raise the first task error.

    ``stream``: where the bar goes (``True``: the current stderr; ``None``: nowhere).
    Uses the active ``distributed`` client if there is one (results are
    released as they arrive: nothing is gathered in the client), otherwise
    Dask's local scheduler.
    """
    bar = ProgressBar(len(tasks), label, stream=stream)
    client = _active_client()
    try:
        if client is None:
            from dask.callbacks import Callback

            keys = {t.key for t in tasks}

            class _Tick(Callback):
                def _posttask(self, key, result, dsk, state, id):
                    if key in keys:
                        bar.update()

            with _Tick():
                dask.compute(*tasks)
            return
        from distributed import as_completed

        futures = client.compute(list(tasks))
        try:
            for future in as_completed(futures):
                if future.status == "error":
                    future.result()
                bar.update()
                future.release()
        except BaseException:
            client.cancel(futures)
            raise
    finally:
        bar.close()
