"""Choosing compute blocks: aligned to the model's stride, at least the halo.

Rules (documented in :func:`pipeline.predict`):

* every block boundary except the image end is a multiple of the model's
  stride, so every layer's pixel grid lines up with the whole-image grid;
* a block is at least as large as the overlap depth along its axis (Dask's
  ``overlap`` needs it); smaller requested blocks grow, and a ragged last
  block that is too small is merged into its neighbour;
* with ``chunks=None`` the block edge is the largest that fits the per-task
  memory budget (input, the two largest activations and the output of the
  block with its halo), capped at ``config.default_block_size()``; the
  halo then costs ``(B + 2h)^2 / B^2 - 1`` extra pixels, e.g. 6 % for
  ``B = 1024, h = 16``.  If the budget forces blocks so small that the halo
  overhead passes ``config.max_halo_overhead()`` (15 %), the budget wins
  and a warning says so.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

from .. import config
from ..errors import InputError

__all__ = ["block_bounds", "auto_block_edge", "halo_overhead"]


def _round_up(v: int, m: int) -> int:
    return -(-v // m) * m


def block_bounds(n: int, block: int, *, stride: int, depth: int) -> list[int]:
    """Boundaries ``[0, b1, ..., n]`` of compute blocks along an axis of length ``n``."""
    if n <= 0:
        return [0, n]
    block = max(int(block), 1)
    block = _round_up(block, stride)
    block = max(block, _round_up(max(depth, 1), stride))
    bounds = list(range(0, n, block)) + [n]
    # merge a last block shorter than the depth into its neighbour
    while len(bounds) > 2 and bounds[-1] - bounds[-2] < depth:
        del bounds[-2]
    return bounds


def halo_overhead(block: Sequence[int], depth: Sequence[int]) -> float:
    """Fraction of extra pixels computed because of the halo for interior blocks."""
    total = 1.0
    core = 1.0
    for b, d in zip(block, depth):
        total *= b + 2 * d
        core *= b
    return total / core - 1.0


def auto_block_edge(
    shape: tuple[int, int],
    *,
    stride: tuple[int, int],
    depth: tuple[int, int],
    bytes_per_pixel: float,
) -> int:
    """Largest square block edge within the memory budget (see module docstring)."""
    budget = config.block_memory_budget()
    edge = int(math.sqrt(max(budget / max(bytes_per_pixel, 1.0), 1.0))) - 2 * max(depth)
    edge = min(edge, config.default_block_size(), max(shape))
    unit = max(stride)
    edge = max(unit, edge // unit * unit)
    if max(depth) and halo_overhead((edge, edge), depth) > config.max_halo_overhead() and edge < max(shape):
        warnings.warn(
            f"Blocks of {edge} px fit the memory budget but recompute "
            f"{100 * halo_overhead((edge, edge), depth):.0f}% extra pixels for a halo of {depth} px; "
            "raise PIPELINE_BLOCK_MEMORY for larger blocks.",
            UserWarning,
            stacklevel=3,
        )
    return edge


def parse_chunks(chunks, ndim_spatial: int = 2) -> tuple[int, int] | None:
    """``None``, an int, or a (y, x) pair of positive ints."""
    if chunks is None:
        return None
    if isinstance(chunks, (int,)) and not isinstance(chunks, bool):
        chunks = (chunks, chunks)
    try:
        out = tuple(int(c) for c in chunks)
    except (TypeError, ValueError):
        raise InputError(f"Expected chunks to be an int or a (y, x) pair of ints. Got {chunks!r} instead.") from None
    if len(out) != ndim_spatial or min(out) < 1:
        raise InputError(f"Expected chunks to be an int or a (y, x) pair of positive ints. Got {chunks!r} instead.")
    return out  # type: ignore[return-value]
