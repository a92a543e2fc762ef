"""The knobs of the synthetic nuclei generator, validated once.

Every quantity that shapes an image lives here, so a :class:`NucleiSpec` plus
a seed says everything about a generated image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

__all__ = ["NucleiSpec", "CELL", "TILE", "MAX_PER_CELL", "parse_seed"]

#: Side of the coarse grid cell that owns nucleus centres, in pixels.
CELL = 32
#: Side of the unit of rendering and noise, in pixels (a multiple of ``CELL``).
TILE = 128
#: At most this many nuclei are drawn per cell; label ids are ``cell * MAX_PER_CELL + rank + 1``.
MAX_PER_CELL = 16


def _pair(name: str, value, *, low: float, high: float) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"Expected {name} to be two numbers (low, high). Got {value!r} instead.")
    if not (low <= lo <= hi <= high):
        raise InputError(f"Expected {name} to satisfy {low} <= low <= high <= {high}. Got {value!r} instead.")
    return (lo, hi)


def parse_seed(seed) -> int:
    """Return ``seed`` as a non-negative Python int or raise :class:`InputError`."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"Expected seed to be a non-negative integer. Got {seed!r} instead.")
    return int(seed)


@dataclass(frozen=True)
class NucleiSpec:
    """Appearance of synthetic fluorescence nuclei.

    Intensities are in camera counts: ``offset + Poisson(background + nuclei) + N(0, read_noise)``.

    Attributes
    ----------
    radius : (float, float)
        Range of the mean nucleus radius in pixels (drawn log-uniformly).
    elongation : (float, float)
        Range of the ratio of the long to the short semi-axis.
    outline : float
        Largest amplitude of each of the three outline harmonics (relative to the radius).
    coverage : float
        Target fraction of the image covered by nuclei, before overlaps.
    brightness : float
        Peak nucleus signal above background, in counts, of the brightest nuclei.
    dimmest : float
        Dimmest nuclei as a fraction of ``brightness`` (drawn log-uniformly).
    background : float
        Mean background signal in counts; varies smoothly by +-``unevenness``.
    unevenness : float
        Relative amplitude of the smooth background variation.
    blur : (float, float)
        Range of the edge blur (standard deviation of the Gaussian edge profile), pixels.
    texture : float
        Relative amplitude of the chromatin texture inside each nucleus.
    read_noise : float
        Standard deviation of the Gaussian camera noise, counts.
    offset : float
        Camera offset added to every pixel, counts.
    """

    radius: tuple[float, float] = (5.0, 14.0)
    elongation: tuple[float, float] = (1.0, 1.6)
    outline: float = 0.06
    coverage: float = 0.25
    brightness: float = 900.0
    dimmest: float = 0.35
    background: float = 120.0
    unevenness: float = 0.4
    blur: tuple[float, float] = (0.6, 1.8)
    texture: float = 0.12
    read_noise: float = 6.0
    offset: float = 100.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "radius", _pair("radius", self.radius, low=2.0, high=24.0))
        object.__setattr__(self, "elongation", _pair("elongation", self.elongation, low=1.0, high=2.0))
        object.__setattr__(self, "blur", _pair("blur", self.blur, low=0.3, high=3.0))
        checks = {
            "outline": (0.0, 0.1),
            "coverage": (0.01, 0.6),
            "brightness": (1.0, 20000.0),
            "dimmest": (0.05, 1.0),
            "background": (1.0, 20000.0),
            "unevenness": (0.0, 0.9),
            "texture": (0.0, 0.3),
            "read_noise": (0.0, 1000.0),
            "offset": (0.0, 10000.0),
        }
        for name, (lo, hi) in checks.items():
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.integer, np.floating)) or not (lo <= float(value) <= hi):
                raise InputError(f"Expected {name} to be a number in [{lo}, {hi}]. Got {value!r} instead.")
            object.__setattr__(self, name, float(value))

    @property
    def reach(self) -> float:
        """Largest distance, in pixels, from a nucleus centre to a pixel it changes."""
        long_axis = self.radius[1] * math.sqrt(self.elongation[1])
        return long_axis * (1.0 + 3.0 * self.outline) + 3.5 * self.blur[1] + 2.0

    @property
    def nuclei_per_cell(self) -> float:
        """Mean number of nuclei per ``CELL x CELL`` cell giving the target coverage."""
        lo, hi = math.log(self.radius[0]), math.log(self.radius[1])
        # E[r^2] for log-uniform r
        mean_r2 = (math.exp(2 * hi) - math.exp(2 * lo)) / (2 * (hi - lo)) if hi > lo else math.exp(2 * lo)
        mean_area = math.pi * mean_r2
        return -math.log(1.0 - self.coverage) * CELL * CELL / mean_area
