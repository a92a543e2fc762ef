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


_COLOURS = np.array([[255, 64, 64], [64, 255, 64], [255, 200, 0], [0, 200, 255], [255, 64, 255]], np.uint8)


def _grey(plane: np.ndarray, lo: float, hi: float) -> np.ndarray:
    g = np.clip((plane - lo) / max(hi - lo, 1e-12), 0, 1)
    return np.repeat((g * 255).astype(np.uint8)[..., None], 3, axis=2)


def _crop_plane(img: io.Image, y0: int, x0: int, edge: int) -> np.ndarray:
    data = img.data
    index = tuple(0 for _ in range(data.ndim - 2)) + (slice(y0, y0 + edge), slice(x0, x0 + edge))
    return np.asarray(data[index].compute(), dtype=np.float64)


def preview_rgb(image_url: Path, labels_url: Path | None, *, max_edge: int = 1024, crop: int = 1024) -> np.ndarray:
    """An (h, w, 3) uint8 picture from the pyramids, never the whole image at full resolution.

    Left: the image downsampled to at most ``max_edge`` pixels, labels as a
    translucent colour fill.  Right (when the image is larger than
    ``max_edge``): a ``crop`` x ``crop`` window from the centre at full
    resolution with the label outlines, marked by a white frame on the left.
    """
    from skimage.segmentation import find_boundaries

    img = _level_for(Path(image_url), max_edge)
    grey = _plane(img)
    lo, hi = np.percentile(grey, [1, 99.8])
    overview = _grey(grey, lo, hi)
    labels_path = Path(labels_url) if labels_url is not None and Path(labels_url).exists() else None
    if labels_path is not None:
        lab = _fit(_plane(_level_for(labels_path, max_edge)).astype(np.int64), grey.shape)
        fg = lab > 0
        overview[fg] = (0.55 * overview[fg] + 0.45 * _COLOURS[lab[fg] % len(_COLOURS)]).astype(np.uint8)
    full = io.open_image(image_url)
    H, W = full.data.shape[-2:]
    if max(H, W) <= max_edge:
        if labels_path is not None:
            edges = find_boundaries(lab, mode="inner")
            overview = _grey(grey, lo, hi)
            overview[edges] = _COLOURS[lab[edges] % len(_COLOURS)]
        return overview
    edge = min(crop, H, W)
    y0, x0 = (H - edge) // 2, (W - edge) // 2
    zoom = _grey(_crop_plane(full, y0, x0, edge), lo, hi)
    if labels_path is not None:
        zl = _crop_plane(io.open_image(labels_path), y0, x0, edge).astype(np.int64)
        edges = find_boundaries(zl, mode="inner")
        zoom[edges] = _COLOURS[zl[edges] % len(_COLOURS)]
    # frame the crop on the overview
    fy, fx = overview.shape[0] / H, overview.shape[1] / W
    r0, r1 = int(y0 * fy), max(int((y0 + edge) * fy), int(y0 * fy) + 2)
    c0, c1 = int(x0 * fx), max(int((x0 + edge) * fx), int(x0 * fx) + 2)
    overview[r0:r1, [c0, c1 - 1]] = 255
    overview[[r0, r1 - 1], c0:c1] = 255
    h = max(overview.shape[0], zoom.shape[0])
    canvas = np.zeros((h, overview.shape[1] + 8 + zoom.shape[1], 3), np.uint8)
    canvas[: overview.shape[0], : overview.shape[1]] = overview
    canvas[: zoom.shape[0], overview.shape[1] + 8 :] = zoom
    return canvas


def write_preview(image_url: Path, labels_url: Path | None, path: Path) -> Path:
    """Write ``path`` (PNG) from the input's pyramid and the labels' pyramid; never reads full resolution."""
    from skimage.io import imsave

    rgb = preview_rgb(Path(image_url), Path(labels_url) if labels_url else None)
    tmp = Path(path).with_suffix(".tmp.png")
    imsave(tmp, rgb, check_contrast=False)
    tmp.replace(path)
    return Path(path)
