"""The tiling room: from (dask array, model) to a lazy dask array of the output."""

from ._blocks import block_bounds, halo_overhead
from ._predict import as_dask_array, normalize_channel_axis, predict
from ._prepost import Percentile

__all__ = ["predict", "as_dask_array", "normalize_channel_axis", "block_bounds", "halo_overhead", "Percentile"]
