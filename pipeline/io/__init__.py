"""The storage room: Zarr v2/v3 and OME-Zarr reading, chunk-aligned resumable writes, TIFF/PNG import.

Never imports the model.  OME-Zarr is written as NGFF 0.5 (Zarr v3) by
default; NGFF 0.4 (Zarr v2) on request.  Both versions are read.
"""

from ._convert import convert, ngff_order, read_any
from ._labels import label_names, write_labels
from ._open import Image, open_image
from ._paths import normalize_url
from ._state import OutputState, output_state
from ._write import DEFAULT_NGFF, aligned_chunks, check_output, check_writable, pyramid_shapes, write_image

__all__ = [
    "Image",
    "open_image",
    "read_any",
    "convert",
    "ngff_order",
    "write_image",
    "write_labels",
    "label_names",
    "aligned_chunks",
    "pyramid_shapes",
    "check_writable",
    "check_output",
    "normalize_url",
    "output_state",
    "OutputState",
    "DEFAULT_NGFF",
]
