"""pipeline: run trained convolutional networks over images too large for memory.

Blocks with exactly the halo the network needs, Numba kernels, Dask, Zarr;
the result equals the network on the whole image at once.
"""

from . import errors
from .model import Model, Node, load_model, run_model
from .post import label, measure, write_table
from .tiling import Percentile, predict
from .workflow import object_tables, predict_many

__version__ = "0.1.0"

__all__ = [
    "Model",
    "Node",
    "load_model",
    "run_model",
    "predict",
    "Percentile",
    "label",
    "measure",
    "write_table",
    "predict_many",
    "object_tables",
    "errors",
    "__version__",
]
