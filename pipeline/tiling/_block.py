"""What a worker runs for one block: the network on one haloed window.

Kept apart from the graph building in ``_predict`` so that a worker process
unpickling a block task imports NumPy, Numba and the model, not
``dask.array`` (whose import, with the xarray and pandas it pulls in, took
longer than loading every kernel of the shipped model from Numba's cache).
"""

from __future__ import annotations

import numpy as np

from ..errors import ExecutionError
from ..model import get_plan
from ._metrics import meter
from ._prepost import apply_post, normalize_block

__all__: list[str] = []


def _predict_block(block, model, stats=None, *, by, bx, oby, obx, depth, image_size, local, post=None, norm=None,
                   block_id=None):
    """Compute one output block (all leading planes) from one haloed, channels-last input block."""
    i, j = block_id[-3], block_id[-2]
    y0, y1, x0, x1 = by[i], by[i + 1], bx[j], bx[j + 1]
    ay, ax = max(0, y0 - depth[0]), max(0, x0 - depth[1])
    expect = (min(image_size[0], y1 + depth[0]) - ay, min(image_size[1], x1 + depth[1]) - ax)
    if block.shape[-3:-1] != expect:
        raise ExecutionError(
            f"Internal error: block {block_id} has spatial shape {block.shape[-3:-1]}, expected {expect}."
        )
    plan = get_plan(model)
    out_range = ((oby[i], oby[i + 1]), (obx[j], obx[j + 1]))
    lead_shape = block.shape[:-3]
    out = None
    for idx in np.ndindex(*lead_shape):
        with meter("normalise"):
            plane = normalize_block(block[idx], norm, stats)
        with meter("kernels"):
            if local:
                y = plan.run(plane, origin=(ay, ax), image_size=image_size, out_range=out_range)
            else:
                core = plane[y0 - ay : y1 - ay, x0 - ax : x1 - ax]
                y = plan.run(np.ascontiguousarray(core))
        if post is not None:
            with meter("post-process"):
                y = apply_post(y, post)
        if not lead_shape:
            return y  # one plane: the network's own output array, not a copy of it
        if out is None:
            out = np.empty(lead_shape + y.shape, y.dtype)
        out[idx] = y
    return out
