"""The tiling room: from (dask array, model) to a lazy dask array of the output.

Names are imported on first use, so that a worker unpickling a block task
(``_block``, ``_windows``, ``_prepost``) does not import ``dask.array``.
"""

from importlib import import_module

_LAZY = {
    "predict": "._predict",
    "as_dask_array": "._predict",
    "normalize_channel_axis": "._predict",
    "block_bounds": "._blocks",
    "halo_overhead": "._blocks",
    "Percentile": "._prepost",
}

__all__ = ["predict", "as_dask_array", "normalize_channel_axis", "block_bounds", "halo_overhead", "Percentile"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
