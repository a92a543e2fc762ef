"""One error hierarchy for the whole package.

Every message names the thing (file, node, axis, chunk) and what was expected:
``"Expected X. Got Y instead."`` in spirit.  The CLI maps :class:`InputError`
and its subclasses to exit code 2 and everything else to exit code 1.
"""

from __future__ import annotations

__all__ = [
    "PipelineError",
    "InputError",
    "ImageError",
    "ShapeError",
    "ChannelError",
    "DTypeError",
    "ModelError",
    "UnsupportedOpError",
    "ModelFormatError",
    "StorageError",
    "CorruptChunkError",
    "OutputExistsError",
    "SpecError",
    "ClusterError",
    "ExecutionError",
]


class PipelineError(Exception):
    """Base class of every error raised on purpose by ``pipeline``."""


class InputError(PipelineError, ValueError):
    """The caller gave something that cannot be used (exit code 2 in the CLI)."""


class ImageError(InputError):
    """An image argument is unusable."""


class ShapeError(ImageError):
    """An image has the wrong number of dimensions or an unusable size."""


class ChannelError(ImageError):
    """The channel axis is out of range or its length disagrees with the model."""


class DTypeError(ImageError, TypeError):
    """An image has a dtype that cannot be fed to a network (e.g. not numeric)."""


class ModelError(InputError):
    """A model is malformed: unknown op or attribute, inconsistent weights, cycle."""


class UnsupportedOpError(ModelError):
    """A model uses operations the engine does not implement."""


class ModelFormatError(ModelError):
    """A model file cannot be parsed (truncated, corrupt, wrong format)."""


class StorageError(InputError):
    """A path or store cannot be read or written as asked."""


class CorruptChunkError(StorageError):
    """A stored chunk cannot be decoded."""


class OutputExistsError(StorageError):
    """The output exists and neither overwrite nor resume was requested."""


class SpecError(InputError):
    """A workflow specification is invalid."""


class ClusterError(PipelineError):
    """The Dask cluster cannot be started or reached."""


class ExecutionError(PipelineError):
    """Work failed while running (a bug or a resource problem, not bad input)."""
