"""Package attributes imported on first use (module ``__getattr__``, PEP 562).

A Dask worker imports a package's ``__init__`` whenever it unpickles a function
from one of its modules; lazy names keep that to what the task needs.
"""

from __future__ import annotations

import sys
from importlib import import_module
from typing import Callable

__all__ = ["lazy_attributes"]


def lazy_attributes(package: str, names: dict[str, str]) -> tuple[Callable, Callable]:
    """``(__getattr__, __dir__)`` for ``package``, whose attribute ``name`` is defined in module
    ``names[name]`` (absolute, or relative to ``package``): imported on first access, then kept."""

    def __getattr__(name: str):
        if name in names:
            value = getattr(import_module(names[name], package), name)
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__
