"""``load_model``: one entry point for every model format."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import StorageError
from ._graph import Model

__all__ = ["load_model"]


def load_model(path: "str | os.PathLike | Model") -> Model:
    """Load a model from a native directory (``model.json`` + ``weights.npz``) or an ONNX file.

    Parameters
    ----------
    path : str, path-like or Model
        A directory saved by :meth:`Model.save`, its ``model.json``, or a
        ``.onnx`` file.  A :class:`Model` is returned unchanged.

    Returns
    -------
    Model

    Raises
    ------
    StorageError
        The path does not exist.
    ModelFormatError, ModelError, UnsupportedOpError
        The file is malformed or uses operations the engine cannot run.
    """
    if isinstance(path, Model):
        return path
    p = Path(path)
    if not p.exists():
        raise StorageError(f"Model path {str(p)!r} does not exist.")
    if p.suffix.lower() == ".onnx":
        from ._onnx import load_onnx

        return load_onnx(p)
    from ._native import load_native

    return load_native(p)
