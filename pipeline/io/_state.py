"""Completion state of an output: complete, partial (blocks done/total) or absent."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass


from ._markers import read_markers
from ._open import open_zarr_node
from ._paths import exists, join, normalize_url

__all__ = ["OutputState", "output_state"]


@dataclass(frozen=True)
class OutputState:
    """What :func:`output_state` found.

    Attributes
    ----------
    state : {"complete", "partial", "absent", "external"}
        ``external``: a Zarr store not written by pipeline (nothing to resume).
    done, total : int
        Blocks recorded complete and blocks in all pyramid levels.
    """

    state: str
    done: int = 0
    total: int = 0

    def __str__(self) -> str:
        if self.state == "partial":
            return f"partial ({self.done}/{self.total} blocks)"
        if self.state == "complete":
            return f"complete ({self.total} blocks)"
        if self.state == "external":
            return "not written by pipeline (no completion record)"
        return "absent"


def output_state(url: str | os.PathLike) -> OutputState:
    """Whether the output at ``url`` is complete, partial or absent.

    Raises
    ------
    StorageError
        Something that is not Zarr exists at ``url``.
    """
    url = normalize_url(url)
    if not exists(url):
        return OutputState("absent")
    node = open_zarr_node(url)
    meta = dict(node.attrs).get("pipeline")
    if not isinstance(meta, dict) or "layout" not in meta:
        return OutputState("external")
    levels = meta["layout"]["levels"]
    total = sum(math.prod(len(b) for b in lv["blocks"]) for lv in levels)
    if meta.get("complete"):
        return OutputState("complete", total, total)
    done = 0
    for lv in levels:
        numblocks = [len(b) for b in lv["blocks"]]
        array_url = join(url, lv["path"]) if lv["path"] else url
        done += sum(1 for idx in read_markers(array_url) if len(idx) == len(numblocks)
                    and all(0 <= i < n for i, n in zip(idx, numblocks)))
    return OutputState("partial", done, total)
