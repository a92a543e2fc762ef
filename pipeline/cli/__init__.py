"""The ``pipeline`` command line: thin commands over the public API.

Exit codes: 0 success; 2 bad usage or bad input (argparse errors and
:class:`pipeline.errors.InputError`); 1 any other failure.  Errors print one
line on stderr (``pipeline: error: ...``); ``--debug`` adds the traceback.

Adding a command
----------------
Every private module ``pipeline/cli/_<name>.py`` that defines
``register(subparsers)`` is a command module; :func:`main` imports them all
(sorted by name) and calls ``register`` with the ``argparse`` sub-parsers
object.  ``register`` adds its parser(s) and sets ``run`` to a function
``run(args) -> int`` (the exit code).  For example ``pipeline/cli/_demo.py``::

    def register(subparsers):
        p = subparsers.add_parser("demo", help="Segment a synthetic image end to end.")
        p.add_argument("--size", type=int, default=8192)
        p.set_defaults(run=run)

    def run(args) -> int:
        ...
        return 0

Helpers shared by commands (cluster options, error mapping) live in
:mod:`pipeline.cli._common`; modules without ``register`` are skipped.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import traceback
from typing import Sequence

from ..errors import InputError

__all__ = ["main", "build_parser"]


def _command_modules():
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            module = importlib.import_module(f"{__name__}.{info.name}")
            if callable(getattr(module, "register", None)):
                yield module


def build_parser() -> argparse.ArgumentParser:
    """The ``pipeline`` argument parser with every registered command."""
    parser = argparse.ArgumentParser(
        prog="pipeline",
        description="Run trained convolutional networks over images too large for memory, "
        "block by block on Dask, with the whole-image result.",
        epilog="Exit codes: 0 ok, 2 bad usage or input, 1 failure. Run 'pipeline COMMAND --help' for details.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _command_modules():
        module.register(sub)
    return parser


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``pipeline`` command; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help gives 0, bad usage 2
        return int(exc.code or 0)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("pipeline: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        code = 2 if isinstance(exc, InputError) else 1
        prefix = "" if code == 2 or type(exc).__module__.startswith("pipeline") else f"{type(exc).__name__}: "
        print(f"pipeline: error: {prefix}{_one_line(exc)}", file=sys.stderr)
        return code
