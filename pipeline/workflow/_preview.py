"""A PNG preview: the input, downsampled from its pyramid, with label outlines."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import io

__all__ = ["write_preview", "preview_rgb"]


def _level_for(url: Path, max_edge: int) -> io.Image:
    first = io.open_image(url)
    for level in range(first.levels):
        img = io.open_image(url, level=level) if level else first
        if max(img.data.shape[-2:]) <= max_edge:
            return img
    return io.open_image(url, level=first.levels - 1)


def _plane(img: io.Image) -> np.ndarray:
    """The first plane of every non-spatial axis, first channel: a (y, x) array."""
    data = img.data
    index = tuple(0 for _ in range(data.ndim - 2))
    return np.asarray(data[index].compute(), dtype=np.float64)


def _fit(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resample of ``a`` to ``shape``."""
    iy = (np.arange(shape[0]) * a.shape[0] // shape[0]).clip(0, a.shape[0] - 1)
    ix = (np.arange(shape[1]) * a.shape[1] // shape[1]).clip(0, a.shape[1] - 1)
    return a[iy][:, ix]


def preview_rgb(image_url: Path, labels_url: Path | None, *, max_edge: int = 2048) -> np.ndarray:
    """An (h, w, 3) uint8 picture: grey image, label outlines in colour."""
    from skimage.segmentation import find_boundaries

    img = _level_for(Path(image_url), max_edge)
    grey = _plane(img)
    lo, hi = np.percentile(grey, [1, 99.8])
    grey = np.clip((grey - lo) / max(hi - lo, 1e-12), 0, 1)
    rgb = np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=2)
    if labels_url is not None and Path(labels_url).exists():
        lab = _fit(_plane(_level_for(Path(labels_url), max_edge)).astype(np.int64), grey.shape)
        edges = find_boundaries(lab, mode="inner")
        colours = np.array([[255, 64, 64], [64, 255, 64], [255, 200, 0], [0, 200, 255], [255, 64, 255]], np.uint8)
        rgb[edges] = colours[lab[edges] % len(colours)]
    return rgb


def write_preview(image_url: Path, labels_url: Path | None, path: Path) -> Path:
    """Write ``path`` (PNG) from the input's pyramid and the labels' pyramid; never reads full resolution."""
    from skimage.io import imsave

    rgb = preview_rgb(Path(image_url), Path(labels_url) if labels_url else None)
    tmp = Path(path).with_suffix(".tmp.png")
    imsave(tmp, rgb, check_contrast=False)
    tmp.replace(path)
    return Path(path)
