"""Checking and normalising the arguments of the post-processing functions."""

from __future__ import annotations

import numbers
from typing import Any

import dask.array as da
import numpy as np
import scipy.ndimage as ndi

from ..errors import ChannelError, DTypeError, InputError, ShapeError

__all__ = ["to_dask", "parse_channel_axis", "check_numeric", "check_spatial", "parse_connectivity", "structure_for"]


def to_dask(array: Any, *, name: str, chunks: Any = None) -> da.Array:
    """A Dask array from a NumPy, Dask, Zarr or xarray array.

    Dask input keeps its chunks unless ``chunks`` is given; anything else is
    wrapped with ``chunks`` (``"auto"`` when ``None``).
    """
    if type(array).__module__.startswith("xarray"):
        array = array.data
    if isinstance(array, da.Array):
        return array if chunks is None else array.rechunk(chunks)
    if not hasattr(array, "shape") or not hasattr(array, "dtype"):
        try:
            array = np.asarray(array)
        except Exception as exc:  # anything numpy cannot read is bad input here
            raise InputError(f"Expected {name} to be an array. Got {type(array).__name__} instead ({exc}).") from None
    return da.from_array(array, chunks="auto" if chunks is None else chunks, asarray=True)


def parse_channel_axis(channel_axis: Any, ndim: int, *, name: str) -> int | None:
    """``channel_axis`` as a non-negative axis index of an ``ndim``-dimensional array, or ``None``."""
    if channel_axis is None:
        return None
    if isinstance(channel_axis, bool) or not isinstance(channel_axis, numbers.Integral):
        raise ChannelError(f"Expected channel_axis of {name} to be an int or None. Got {channel_axis!r} instead.")
    if not -ndim <= channel_axis < ndim:
        raise ChannelError(
            f"Expected channel_axis of {name} in [-{ndim}, {ndim}). Got {channel_axis} for shape with {ndim} axes instead."
        )
    return int(channel_axis) % ndim


def check_numeric(array: da.Array, *, name: str) -> None:
    """Raise :class:`DTypeError` unless ``array`` holds bool, int, uint or float values."""
    if array.dtype.kind not in "buif":
        raise DTypeError(f"Expected {name} with a bool, int, uint or float dtype. Got dtype {array.dtype} instead.")


def check_spatial(shape: tuple[int, ...], *, name: str) -> None:
    """Raise :class:`ShapeError` unless ``shape`` has at least two axes, none of them empty."""
    if len(shape) < 2:
        raise ShapeError(f"Expected {name} with spatial axes (..., Y, X). Got shape {shape} instead.")
    if 0 in shape:
        raise ShapeError(f"Expected {name} with no empty axis. Got shape {shape} instead.")


def parse_connectivity(connectivity: Any, rank: int) -> int:
    """``connectivity`` checked against the number of connected axes; ``None`` means full (``rank``)."""
    if connectivity is None:
        return rank
    if isinstance(connectivity, bool) or not isinstance(connectivity, numbers.Integral) or not 1 <= connectivity <= rank:
        raise InputError(
            f"Expected connectivity to be an int in 1..{rank} (or None for full). Got {connectivity!r} instead."
        )
    return int(connectivity)


def structure_for(ndim: int, connectivity: int, *, per_plane: bool) -> np.ndarray:
    """The ``(3,) * ndim`` bool neighbourhood of one pixel.

    With ``per_plane`` only the last two axes connect: pixels in different
    planes of the leading axes are never neighbours.
    """
    if not per_plane or ndim == 2:
        return ndi.generate_binary_structure(ndim, connectivity)
    structure = np.zeros((3,) * ndim, dtype=bool)
    structure[(1,) * (ndim - 2)] = ndi.generate_binary_structure(2, connectivity)
    return structure
