"""The storage room: Zarr v2/v3 and OME-Zarr reading, chunk-aligned resumable writes, TIFF/PNG import.

Never imports the model.  OME-Zarr is written as NGFF 0.5 (Zarr v3) by
default; NGFF 0.4 (Zarr v2) on request.  Both versions are read.
"""

from .._lazy import lazy_attributes

#: Imported on first use, so that a worker running a block's write (``_write``) does not import ``dask.array``.
_LAZY = {
    "convert": "._convert",
    "ngff_order": "._convert",
    "read_any": "._convert",
    "label_names": "._labels",
    "write_labels": "._labels",
    "Image": "._open",
    "open_image": "._open",
    "normalize_url": "._paths",
    "OutputState": "._state",
    "output_state": "._state",
    "DEFAULT_NGFF": "._write",
    "aligned_chunks": "._write",
    "check_output": "._write",
    "check_writable": "._write",
    "pyramid_shapes": "._write",
    "write_image": "._write",
}

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


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
