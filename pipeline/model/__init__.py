"""The model room: graph, shapes, geometry, native format, ONNX import, executor.

Knows nothing of Dask or Zarr; runs a network on one block of NumPy data.
"""

from ._geometry import Geometry, compute_geometry, input_ranges, required_ranges, tensor_scales
from ._graph import Model, Node
from ._load import load_model
from ._execute import Plan, get_plan, release_buffers, run_model
from ._ops import OPS
from ._shapes import infer_shapes

__all__ = [
    "Model",
    "Node",
    "OPS",
    "Geometry",
    "compute_geometry",
    "infer_shapes",
    "input_ranges",
    "required_ranges",
    "tensor_scales",
    "load_model",
    "Plan",
    "get_plan",
    "release_buffers",
    "run_model",
]
