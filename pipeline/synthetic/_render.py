"""Rendering nuclei, background and camera noise, one fixed tile at a time.

The unit of work is a ``TILE x TILE`` tile on a grid anchored at the image
origin.  A tile's pixels are computed by the same NumPy calls on the same
arrays whichever block asks for it (the nuclei reaching it in global order,
its own noise generator seeded by ``(seed, tile_y, tile_x)``), so a block's
values are bit-identical for every chunking.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

from ._cells import COL, NucleusTable, draw_region
from ._spec import TILE, NucleiSpec

__all__ = ["render_region"]

_NOISE_STREAM = 2
_BACKGROUND_STREAM = 4


def _background_waves(seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, _BACKGROUND_STREAM])
    wavelength = rng.uniform(400.0, 2500.0, 4)
    direction = rng.uniform(0.0, 2 * math.pi, 4)
    phase = rng.uniform(0.0, 2 * math.pi, 4)
    k = 2 * math.pi / wavelength
    return np.stack([k * np.sin(direction), k * np.cos(direction), phase], axis=1)


def _background(spec: NucleiSpec, waves: np.ndarray, y0: int, x0: int) -> np.ndarray:
    y = np.arange(y0, y0 + TILE, dtype=np.float64)[:, None]
    x = np.arange(x0, x0 + TILE, dtype=np.float64)[None, :]
    field = np.zeros((TILE, TILE))
    for ky, kx, phase in waves:
        field += np.cos(ky * y + kx * x + phase)
    return spec.background * (1.0 + spec.unevenness * field / len(waves))


def _paint_nucleus(
    signal: np.ndarray, labels: np.ndarray, p: np.ndarray, label: int, y0: int, x0: int, box: tuple[int, int, int, int]
) -> None:
    """Add one nucleus to ``signal`` and claim its pixels in ``labels`` inside ``box`` (tile-local)."""
    by0, by1, bx0, bx1 = box
    dy = np.arange(y0 + by0, y0 + by1, dtype=np.float64)[:, None] - p[COL["yc"]]
    dx = np.arange(x0 + bx0, x0 + bx1, dtype=np.float64)[None, :] - p[COL["xc"]]
    cos_t, sin_t = math.cos(p[COL["angle"]]), math.sin(p[COL["angle"]])
    u = (cos_t * dx + sin_t * dy) / p[COL["a"]]
    v = (cos_t * dy - sin_t * dx) / p[COL["b"]]
    rho = np.hypot(u, v)
    phi = np.arctan2(v, u)
    boundary = 1.0
    for k in (2, 3, 4):
        boundary = boundary + p[COL[f"c{k}"]] * np.cos(k * phi + p[COL[f"p{k}"]])
    # signed distance to the outline along the ray from the centre, in pixels
    dist = np.hypot(dx, dy)
    scale = np.where(rho > 1e-9, dist / np.maximum(rho, 1e-9), math.sqrt(p[COL["a"]] * p[COL["b"]]))
    signed = (rho - boundary) * scale
    edge = ndtr(-signed / p[COL["blur"]])
    texture = 1.0
    for j in range(3):
        wave = p[COL[f"ty{j}"]] * dy + p[COL[f"tx{j}"]] * dx + p[COL[f"tp{j}"]]
        texture = texture + p[COL[f"ta{j}"]] * np.cos(wave)
    dome = 1.0 - 0.2 * np.minimum(rho, 1.0) ** 2
    signal[by0:by1, bx0:bx1] += p[COL["peak"]] * edge * texture * dome
    region = labels[by0:by1, bx0:bx1]
    region[signed < 0.0] = label


def _render_tile(
    spec: NucleiSpec, seed: int, table: NucleusTable, boxes, waves: np.ndarray, ty: int, tx: int
) -> tuple[np.ndarray, np.ndarray]:
    y0, x0 = ty * TILE, tx * TILE
    signal = _background(spec, waves, y0, x0)
    labels = np.zeros((TILE, TILE), np.int32)
    by0, by1, bx0, bx1 = boxes
    hits = np.flatnonzero((by0 < y0 + TILE) & (by1 > y0) & (bx0 < x0 + TILE) & (bx1 > x0))
    for i in hits:
        box = (
            max(int(by0[i]) - y0, 0),
            min(int(by1[i]) - y0, TILE),
            max(int(bx0[i]) - x0, 0),
            min(int(bx1[i]) - x0, TILE),
        )
        _paint_nucleus(signal, labels, table.params[i], int(table.ids[i]), y0, x0, box)
    rng = np.random.default_rng([seed, _NOISE_STREAM, ty, tx])
    counts = rng.poisson(signal).astype(np.float64)
    read_noise = rng.normal(0.0, spec.read_noise, signal.shape)
    return spec.offset + counts + read_noise, labels


def render_region(
    spec: NucleiSpec, seed: int, shape: tuple[int, int], y0: int, y1: int, x0: int, x1: int
) -> tuple[np.ndarray, np.ndarray]:
    """Camera counts and instance labels of ``[y0, y1) x [x0, x1)`` of the image.

    Returns
    -------
    image : (y1 - y0, x1 - x0) float64
        Counts before quantisation.
    labels : (y1 - y0, x1 - x0) int32
        0 for background, a nucleus's image-wide id elsewhere (the later nucleus
        in global order wins where two overlap).
    """
    ty0, ty1 = y0 // TILE, (y1 - 1) // TILE
    tx0, tx1 = x0 // TILE, (x1 - 1) // TILE
    table = draw_region(spec, seed, shape, ty0 * TILE, (ty1 + 1) * TILE, tx0 * TILE, (tx1 + 1) * TILE)
    boxes = table.bbox()
    waves = _background_waves(seed)
    image = np.empty((y1 - y0, x1 - x0))
    labels = np.empty((y1 - y0, x1 - x0), np.int32)
    for ty in range(ty0, ty1 + 1):
        for tx in range(tx0, tx1 + 1):
            tile_image, tile_labels = _render_tile(spec, seed, table, boxes, waves, ty, tx)
            # overlap of the tile with the region, in region and tile coordinates
            sy0, sy1 = max(y0, ty * TILE), min(y1, (ty + 1) * TILE)
            sx0, sx1 = max(x0, tx * TILE), min(x1, (tx + 1) * TILE)
            dst = (slice(sy0 - y0, sy1 - y0), slice(sx0 - x0, sx1 - x0))
            src = (slice(sy0 - ty * TILE, sy1 - ty * TILE), slice(sx0 - tx * TILE, sx1 - tx * TILE))
            image[dst] = tile_image[src]
            labels[dst] = tile_labels[src]
    return image, labels
