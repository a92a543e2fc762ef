"""``predict`` on an ``xarray.DataArray``: dims by name, coordinates kept."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ShapeError
from ..model import load_model

__all__ = ["predict_xarray"]

_CHANNEL_DIMS = ("c", "channel", "channels", "band")


def predict_xarray(image, model, **kwargs: Any):
    """Run :func:`pipeline.predict` on a DataArray with dims ``y``, ``x`` and optionally ``c``.

    Other dims (``t``, ``z``, ...) are mapped plane by plane.  The result has
    the input's dims in the input's order (``c`` placed first among them when
    the input has none, like OME-Zarr), the input's non-spatial coordinates,
    and ``y``/``x`` coordinates resampled by the model's output scale.
    """
    import xarray as xr

    from ._predict import predict

    dims = list(image.dims)
    missing = [d for d in ("y", "x") if d not in dims]
    if missing:
        raise ShapeError(f"Expected a DataArray with dims 'y' and 'x'. Got dims {tuple(dims)} instead.")
    cdim = next((d for d in _CHANNEL_DIMS if d in dims), None)
    others = [d for d in dims if d not in ("y", "x", cdim)]
    order = others + ["y", "x"] + ([cdim] if cdim else [])
    data = image.transpose(*order)
    model = load_model(model)
    out = predict(data.data, model, channel_axis=-1 if cdim else None, **kwargs)
    out_cdim = cdim or "c"
    out_dims = others + ["y", "x", out_cdim] if cdim else others + [out_cdim, "y", "x"]
    coords = {d: image.coords[d] for d in others if d in image.coords}
    for ax, d in zip((-3, -2) if cdim else (-2, -1), ("y", "x")):
        n_out = out.shape[ax]
        if d in image.coords and image.sizes[d] > 0:
            c = np.asarray(image.coords[d].values, dtype=float)
            step = (c[1] - c[0]) if c.size > 1 else 1.0
            scale = image.sizes[d] / n_out
            # output pixel centres in the input's coordinate system
            coords[d] = c[0] - step / 2 + step * scale * (np.arange(n_out) + 0.5)
    names = model.metadata.get("channel_names")
    n_c = out.shape[-1] if cdim else out.shape[-3]
    coords[out_cdim] = list(names) if names and len(names) == n_c else np.arange(n_c)
    result = xr.DataArray(out, dims=out_dims, coords=coords, name=f"{model.name}", attrs=dict(image.attrs))
    return result.transpose(*dims) if cdim else result
