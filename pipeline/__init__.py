"""pipeline: run trained convolutional networks over images too large for memory.

Blocks with exactly the halo the network needs, Numba kernels, Dask, Zarr;
the result equals the network on the whole image at once.
"""

from . import errors
from .model import Model, Node, load_model, run_model
from .tiling import Percentile, predict

__version__ = "0.1.0"

__all__ = ["Model", "Node", "load_model", "run_model", "predict", "Percentile", "errors", "__version__"]
