"""pipeline: run trained convolutional networks over images too large for memory.

Blocks with exactly the halo the network needs, Numba kernels, Dask, Zarr;
the result equals the network on the whole image at once.

Only the model room is imported eagerly; the rest of the public API is
imported on first use, so a Dask worker that unpickles a model does not pay
for pandas, scikit-image or pydantic.
"""

from . import errors
from ._lazy import lazy_attributes
from .model import Model, Node, load_model, run_model

__version__ = "0.1.0"

_LAZY = {
    "predict": "pipeline.tiling",
    "Percentile": "pipeline.tiling",
    "label": "pipeline.post",
    "measure": "pipeline.post",
    "write_table": "pipeline.post",
    "predict_many": "pipeline.workflow",
    "object_tables": "pipeline.workflow",
}

__all__ = ["Model", "Node", "load_model", "run_model", *_LAZY, "errors", "__version__"]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
