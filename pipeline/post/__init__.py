"""Post-processing of network outputs: instance labels across blocks, object tables.

:func:`label` turns a probability map into instance labels that are
consistent across blocks (one label per object, ``1..N``);
:func:`measure` turns labels (and an optional intensity image) into a Dask
DataFrame with one row per object, equal to scikit-image's
``regionprops_table`` on the whole image; :func:`write_table` stores it as
Parquet.
"""

from ._label import label
from ._measure import measure
from ._table import write_table

__all__ = ["label", "measure", "write_table"]
