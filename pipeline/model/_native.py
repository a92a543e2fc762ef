"""The native model format: a JSON graph and an ``.npz`` of weights.

``path/`` is a directory holding ``model.json`` and ``weights.npz``.  Weights
are loaded with ``allow_pickle=False``: a model file is data, never code.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError, ModelFormatError, StorageError
from ._graph import Model, Node

__all__ = ["save_native", "load_native", "model_from_dict"]

_GRAPH = "model.json"
_WEIGHTS = "weights.npz"
_TOP_KEYS = {"format", "version", "name", "input", "output", "metadata", "nodes"}
_NODE_KEYS = {"name", "op", "inputs", "attrs", "weights"}


def save_native(model: Model, path: str | os.PathLike) -> None:
    """Write ``model`` to the directory ``path`` (created if needed)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        tmp = path / (_WEIGHTS + ".tmp.npz")
        np.savez(tmp, **model.weight_arrays())
        os.replace(tmp, path / _WEIGHTS)
        (path / _GRAPH).write_text(json.dumps(model.graph_dict(), indent=1))
    except OSError as exc:
        raise StorageError(f"Cannot write model to {str(path)!r}: {exc.strerror or exc}.") from exc


def load_native(path: str | os.PathLike) -> Model:
    """Read a model saved by :func:`save_native`."""
    path = Path(path)
    graph_file, weights_file = (path / _GRAPH, path / _WEIGHTS) if path.is_dir() else (path, path.with_name(_WEIGHTS))
    try:
        graph = json.loads(graph_file.read_text())
    except FileNotFoundError:
        raise StorageError(f"Model file {str(graph_file)!r} does not exist.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"Model file {str(graph_file)!r} is not valid JSON: {exc}.") from None
    try:
        with np.load(weights_file, allow_pickle=False) as npz:
            weights = {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise StorageError(f"Weights file {str(weights_file)!r} does not exist.") from None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ModelFormatError(f"Weights file {str(weights_file)!r} cannot be read as .npz: {exc}.") from None
    return model_from_dict(graph, weights, source=str(graph_file))


def model_from_dict(graph: Any, weights: dict[str, np.ndarray], *, source: str = "model") -> Model:
    """Build a :class:`Model` from the JSON graph and the weight arrays."""
    if not isinstance(graph, dict) or graph.get("format") != "pipeline.model":
        raise ModelFormatError(f"{source}: expected a JSON object with \"format\": \"pipeline.model\".")
    if graph.get("version") != 1:
        raise ModelFormatError(f"{source}: expected format version 1. Got {graph.get('version')!r} instead.")
    unknown = sorted(set(graph) - _TOP_KEYS)
    if unknown:
        raise ModelFormatError(f"{source}: unknown key(s) {unknown}; expected some of {sorted(_TOP_KEYS)}.")
    try:
        inp = graph["input"]
        nodes_json = graph["nodes"]
        if not isinstance(nodes_json, list):
            raise TypeError
    except (KeyError, TypeError):
        raise ModelFormatError(f"{source}: expected keys 'input' (object) and 'nodes' (list).") from None
    used: set[str] = set()
    nodes = []
    for i, nd in enumerate(nodes_json):
        if not isinstance(nd, dict):
            raise ModelFormatError(f"{source}: node #{i} is not a JSON object.")
        extra = sorted(set(nd) - _NODE_KEYS)
        if extra:
            raise ModelFormatError(f"{source}: node {nd.get('name', i)!r} has unknown key(s) {extra}.")
        refs = nd.get("weights", {}) or {}
        node_weights = {}
        for key, ref in refs.items():
            if ref not in weights:
                raise ModelError(f"{source}: node {nd.get('name')!r} refers to weight {ref!r}, absent from the weights file.")
            node_weights[key] = weights[ref]
            used.add(ref)
        nodes.append(
            Node(
                name=nd.get("name"),
                op=nd.get("op"),
                inputs=tuple(nd.get("inputs", ())),
                attrs=nd.get("attrs", {}) or {},
                weights=node_weights,
            )
        )
    if not isinstance(inp, dict) or "channels" not in inp:
        raise ModelFormatError(f"{source}: expected 'input' to be an object with 'channels'.")
    return Model(
        nodes,
        input_channels=inp["channels"],
        input_name=inp.get("name", "input"),
        output=graph.get("output"),
        name=graph.get("name", "model"),
        metadata=graph.get("metadata") or {},
    )
