"""Synthetic fluorescence nuclei with ground-truth instance labels.

Deterministic per chunk from a seed, so an image of any size is a lazy Dask
array that is never materialised; used to train, test and demonstrate models.
"""

from ._nuclei import nuclei, nuclei_block
from ._spec import NucleiSpec

__all__ = ["nuclei", "nuclei_block", "NucleiSpec"]
