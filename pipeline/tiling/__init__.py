"""The tiling room: from (dask array, model) to a lazy dask array of the output.

Names are imported on first use, so that a worker unpickling a block task
(``_block``, ``_windows``, ``_prepost``) does not import ``dask.array``.
"""

from .._lazy import lazy_attributes

_LAZY = {
    "predict": "._predict",
    "as_dask_array": "._predict",
    "normalize_channel_axis": "._predict",
    "block_bounds": "._blocks",
    "halo_overhead": "._blocks",
    "Percentile": "._prepost",
}

__all__ = ["predict", "as_dask_array", "normalize_channel_axis", "block_bounds", "halo_overhead", "Percentile"]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
