"""Storing object tables as Parquet."""

from __future__ import annotations

import os
from pathlib import Path

import dask.dataframe as dd
import pandas as pd

from ..errors import InputError, OutputExistsError, StorageError

__all__ = ["write_table"]


def write_table(table: dd.DataFrame | pd.DataFrame, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write an object table (e.g. from :func:`pipeline.post.measure`) to one Parquet file.

    The table is computed (its rows are per object, small next to the image)
    and written to ``path`` through a temporary file renamed into place, so
    an interrupted write never leaves a partial table behind.

    Parameters
    ----------
    table : dask.dataframe.DataFrame or pandas.DataFrame
        The table; its index is not stored.
    path : str or path-like
        File to write, conventionally ending in ``.parquet``.
    overwrite : bool
        Replace an existing file; otherwise an existing ``path`` raises.

    Returns
    -------
    pathlib.Path
        The path written.  ``pandas.read_parquet(path)`` reads it back.

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``overwrite`` is false.
    StorageError
        ``path`` is a directory or its parent does not exist.
    """
    target = Path(path)
    if not isinstance(table, (dd.DataFrame, pd.DataFrame)):
        raise InputError(f"Expected a pandas or Dask DataFrame to write to {str(target)!r}. Got {type(table).__name__} instead.")
    if target.is_dir():
        raise StorageError(f"Expected {str(target)!r} to be a file path for the table. Got an existing directory instead.")
    if target.exists() and not overwrite:
        raise OutputExistsError(f"Table {str(target)!r} exists; expected a new path or overwrite=True.")
    if not target.parent.is_dir():
        raise StorageError(f"Expected the folder of {str(target)!r} to exist. Got no folder {str(target.parent)!r} instead.")
    frame = table.compute() if isinstance(table, dd.DataFrame) else table
    partial = target.with_name(f".{target.name}.partial")
    frame.to_parquet(partial, index=False)
    os.replace(partial, target)
    return target
