"""Nucleus parameters, drawn per coarse grid cell from ``(seed, cell_y, cell_x)``.

A nucleus belongs to the cell holding its centre.  Its parameters depend only
on the seed, the spec and its cell, never on which block asks for it, so the
same nucleus looks the same from every side of a chunk border.
"""

from __future__ import annotations

import math

import numpy as np

from ._spec import CELL, MAX_PER_CELL, NucleiSpec

__all__ = ["NucleusTable", "draw_region", "COL"]

_CELL_STREAM = 1
_DENSITY_STREAM = 3

# columns of the parameter table
COL = {
    name: i
    for i, name in enumerate(
        [
            "yc", "xc", "a", "b", "angle",
            "c2", "c3", "c4", "p2", "p3", "p4",
            "blur", "peak",
            "ty0", "tx0", "tp0", "ta0",
            "ty1", "tx1", "tp1", "ta1",
            "ty2", "tx2", "tp2", "ta2",
            "reach",
        ]
    )
}
_N_UNIFORM = 22


class NucleusTable:
    """Parameters of a set of nuclei in global order (cell row-major, then rank).

    Attributes
    ----------
    params : (N, len(COL)) float64
    ids : (N,) int64
        Label ids, unique over the whole image.
    """

    def __init__(self, params: np.ndarray, ids: np.ndarray) -> None:
        self.params = params
        self.ids = ids

    def __len__(self) -> int:
        return len(self.ids)

    def bbox(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Integer pixel boxes ``[y0, y1) x [x0, x1)`` covering each nucleus's footprint."""
        p = self.params
        y, x, r = p[:, COL["yc"]], p[:, COL["xc"]], p[:, COL["reach"]]
        return (
            np.floor(y - r).astype(np.int64),
            np.ceil(y + r).astype(np.int64) + 1,
            np.floor(x - r).astype(np.int64),
            np.ceil(x + r).astype(np.int64) + 1,
        )


def _density_waves(seed: int) -> list[tuple[float, float, float]]:
    rng = np.random.default_rng([seed, _DENSITY_STREAM])
    waves = []
    for _ in range(3):
        wavelength = float(rng.uniform(300.0, 1500.0))
        direction = float(rng.uniform(0.0, 2 * math.pi))
        phase = float(rng.uniform(0.0, 2 * math.pi))
        k = 2 * math.pi / wavelength
        waves.append((k * math.sin(direction), k * math.cos(direction), phase))
    return waves


def _cell_density(waves: list[tuple[float, float, float]], cy: int, cx: int) -> float:
    """Relative nucleus density of a cell in [0.5, 1.5]: dense and sparse regions."""
    y, x = (cy + 0.5) * CELL, (cx + 0.5) * CELL
    field = sum(math.cos(ky * y + kx * x + ph) for ky, kx, ph in waves) / len(waves)
    return 1.0 + 0.5 * field


def _draw_cell(spec: NucleiSpec, seed: int, cy: int, cx: int, mean_count: float) -> np.ndarray:
    rng = np.random.default_rng([seed, _CELL_STREAM, cy, cx])
    n = min(int(rng.poisson(mean_count)), MAX_PER_CELL)
    u = rng.random((n, _N_UNIFORM))
    p = np.empty((n, len(COL)))
    p[:, COL["yc"]] = (cy + u[:, 0]) * CELL
    p[:, COL["xc"]] = (cx + u[:, 1]) * CELL
    log_r0, log_r1 = math.log(spec.radius[0]), math.log(spec.radius[1])
    r = np.exp(log_r0 + u[:, 2] * (log_r1 - log_r0))
    q = np.sqrt(spec.elongation[0] + u[:, 3] * (spec.elongation[1] - spec.elongation[0]))
    p[:, COL["a"]] = r * q
    p[:, COL["b"]] = r / q
    p[:, COL["angle"]] = u[:, 4] * math.pi
    for k, col in zip((2, 3, 4), (5, 6, 7)):
        p[:, COL[f"c{k}"]] = spec.outline * u[:, col]
        p[:, COL[f"p{k}"]] = 2 * math.pi * u[:, col + 3]
    p[:, COL["blur"]] = spec.blur[0] + u[:, 11] * (spec.blur[1] - spec.blur[0])
    p[:, COL["peak"]] = spec.brightness * np.exp(math.log(spec.dimmest) * u[:, 12])
    for j in range(3):
        wavelength = 3.0 + 6.0 * u[:, 13 + 3 * j]
        direction = 2 * math.pi * u[:, 14 + 3 * j]
        k = 2 * math.pi / wavelength
        p[:, COL[f"ty{j}"]] = k * np.sin(direction)
        p[:, COL[f"tx{j}"]] = k * np.cos(direction)
        p[:, COL[f"tp{j}"]] = 2 * math.pi * u[:, 15 + 3 * j]
        p[:, COL[f"ta{j}"]] = spec.texture
    outline = p[:, COL["c2"]] + p[:, COL["c3"]] + p[:, COL["c4"]]
    p[:, COL["reach"]] = p[:, COL["a"]] * (1.0 + outline) + 3.5 * p[:, COL["blur"]] + 1.0
    return p


def draw_region(
    spec: NucleiSpec, seed: int, shape: tuple[int, int], y0: int, y1: int, x0: int, x1: int
) -> NucleusTable:
    """Every nucleus of the image whose footprint may reach ``[y0, y1) x [x0, x1)``.

    Parameters
    ----------
    spec : NucleiSpec
    seed : int
    shape : (int, int)
        Shape ``(Y, X)`` of the whole image; only nuclei centred inside it exist.
    y0, y1, x0, x1 : int
        Region of interest, half-open, in image pixels.

    Returns
    -------
    NucleusTable
        Nuclei in global order: cells row-major, then rank within the cell.
    """
    height, width = shape
    n_cy, n_cx = -(-height // CELL), -(-width // CELL)
    reach = spec.reach
    cy0 = max(0, math.floor((y0 - reach) / CELL))
    cy1 = min(n_cy - 1, math.floor((y1 - 1 + reach) / CELL))
    cx0 = max(0, math.floor((x0 - reach) / CELL))
    cx1 = min(n_cx - 1, math.floor((x1 - 1 + reach) / CELL))
    waves = _density_waves(seed)
    mean = spec.nuclei_per_cell
    params, ids = [], []
    for cy in range(cy0, cy1 + 1):
        for cx in range(cx0, cx1 + 1):
            p = _draw_cell(spec, seed, cy, cx, mean * _cell_density(waves, cy, cx))
            first = (cy * n_cx + cx) * MAX_PER_CELL + 1
            keep = (p[:, COL["yc"]] < height) & (p[:, COL["xc"]] < width)
            params.append(p[keep])
            ids.append(first + np.flatnonzero(keep))
    if not params:
        return NucleusTable(np.empty((0, len(COL))), np.empty(0, np.int64))
    return NucleusTable(np.concatenate(params), np.concatenate(ids).astype(np.int64))
