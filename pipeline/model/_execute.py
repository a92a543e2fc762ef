"""Run a network on one block of an image, exactly as on the whole image.

A :class:`Plan` is a model prepared for execution: BatchNorm folded into the
preceding convolution, activations fused into conv epilogues, weights packed
and aligned once.  :meth:`Plan.run` takes a block (channels-last) that covers
``[origin, origin + block.shape)`` of an image of ``image_size`` and computes
a requested range of the output.  It asks :func:`required_ranges` which range
of every tensor that needs, and computes each layer only there; wherever a
layer's window leaves the image it supplies that layer's own padding (zeros,
``-inf`` for max pooling, the in-image count for average pooling, clamping
for resizing).  This is why a block touching the image edge reproduces the
whole-image result, which padding the input once cannot do.

Plans are cached per process by the model's fingerprint, so a worker builds
(and packs weights for) a model once, whatever the number of blocks.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import kernels as K
from ..config import keep_block_buffers
from ..errors import ExecutionError, ShapeError
from ._geometry import input_ranges, required_ranges, resize_coordinates
from ._graph import Model, Node
from ._ops import ACTIVATIONS
from ._shapes import infer_shapes, resolved_pads

__all__ = ["Plan", "get_plan", "run_model", "release_buffers"]

Range = tuple[int, int]


@dataclass
class _Tensor:
    """Values of a tensor over ``[y0, y0 + h) x [x0, x0 + w)`` of its whole-image extent."""

    data: np.ndarray  # (h, w, C) float32
    y0: int
    x0: int

    def crop(self, ry: Range, rx: Range) -> np.ndarray:
        h, w = self.data.shape[:2]
        if ry[0] < self.y0 or rx[0] < self.x0 or ry[1] > self.y0 + h or rx[1] > self.x0 + w:
            raise ExecutionError(
                f"Internal error: a block lacks pixels {ry}x{rx} of a tensor covering "
                f"[{self.y0}, {self.y0 + h})x[{self.x0}, {self.x0 + w}) (halo too small)."
            )
        return self.data[ry[0] - self.y0 : ry[1] - self.y0, rx[0] - self.x0 : rx[1] - self.x0]


def _source_origin(t: _Tensor, ry: Range, rx: Range, n: tuple[int, int]) -> tuple[int, int]:
    """Where window ``ry x rx`` starts in ``t.data``, after checking ``t`` holds its in-image part.

    A kernel reading ``t.data`` from there, with zeros outside ``t.data``, sees
    the window zero-padded outside the image ``[0, n)``: the stored range of a
    tensor never leaves the image.
    """
    iy = (max(ry[0], 0), min(ry[1], n[0]))
    ix = (max(rx[0], 0), min(rx[1], n[1]))
    if iy[1] > iy[0] and ix[1] > ix[0]:
        t.crop(iy, ix)  # raises if the block lacks pixels of the window
    return ry[0] - t.y0, rx[0] - t.x0


def _window(t: _Tensor, ry: Range, rx: Range, n: tuple[int, int], fill: float) -> np.ndarray:
    """Values over ``ry x rx``, which may leave the image ``[0, n)``: outside is ``fill``."""
    iy = (max(ry[0], 0), min(ry[1], n[0]))
    ix = (max(rx[0], 0), min(rx[1], n[1]))
    if iy == ry and ix == rx:
        return np.ascontiguousarray(t.crop(ry, rx))
    out = np.empty((ry[1] - ry[0], rx[1] - rx[0], t.data.shape[2]), np.float32)
    if iy[1] <= iy[0] or ix[1] <= ix[0]:
        out.fill(fill)
        return out
    y0, y1, x0, x1 = iy[0] - ry[0], iy[1] - ry[0], ix[0] - rx[0], ix[1] - rx[0]
    # padding strips only, then the inside in one copy: each byte written once
    out[:y0].fill(fill)
    out[y1:].fill(fill)
    out[y0:y1, :x0].fill(fill)
    out[y0:y1, x1:].fill(fill)
    out[y0:y1, x0:x1] = t.crop(iy, ix)
    return out


_POOL = threading.local()


def _thread_pool() -> list[np.ndarray]:
    """This thread's free block buffers, kept from one :meth:`Plan.run` to the next."""
    free = getattr(_POOL, "free", None)
    if free is None:
        free = _POOL.free = []
    return free


def release_buffers() -> int:
    """Drop the block buffers this thread keeps between runs; bytes released.

    Worker threads keep the memory of their last block (see
    :func:`pipeline.config.keep_block_buffers`); call this, e.g. through
    ``client.run``, to hand it back between jobs.
    """
    free = _thread_pool()
    n = sum(raw.nbytes for raw in free)
    free.clear()
    return n


class _Buffers:
    """Kernel output memory of a :meth:`Plan.run`, reused once a tensor's last reader ran.

    Fresh memory costs a page fault per page on first touch (about as much as
    writing it twice); a U-Net block allocates several times its peak working
    set, most of it the same few sizes.  A buffer is handed out again only
    after the tensor using it was dropped, so the peak never grows.  Given a
    thread's pool (``free``), the buffers outlive the run: the next block of
    the same size page-faults nothing, and :meth:`finish` drops buffers the
    run did not use, so the pool follows the latest block's needs.
    """

    def __init__(self, free: list[np.ndarray] | None = None) -> None:
        self._free: list[np.ndarray] = [] if free is None else free
        self._owner: dict[int, np.ndarray] = {}  # data address -> raw buffer, for buffers in use
        self._step: list[int] = []  # addresses handed out during the current step
        self._used: set[int] = set()  # addresses handed out during this run

    def alloc(self, shape) -> np.ndarray:
        n = int(np.prod(shape))
        fits = [i for i, raw in enumerate(self._free) if n <= raw.size <= 2 * n]
        if fits:
            raw = self._free.pop(min(fits, key=lambda i: self._free[i].size))
        else:
            raw = K.aligned_empty((max(n, 1),))
        arr = raw[:n].reshape(shape)
        addr = raw.ctypes.data
        self._owner[addr] = raw
        self._step.append(addr)
        self._used.add(addr)
        return arr

    def settle(self, result: np.ndarray) -> None:
        """End a step: buffers it allocated but did not return (temporaries) are free again."""
        keep = result.ctypes.data if result.size else None
        for addr in self._step:
            if addr != keep:
                self._free.append(self._owner.pop(addr))
        self._step.clear()

    def release(self, data: np.ndarray) -> None:
        """``data`` (a step result) is no longer read: its buffer, if from here, is free again."""
        raw = self._owner.pop(data.ctypes.data, None) if data.size else None
        if raw is not None:
            self._free.append(raw)

    def finish(self) -> None:
        """End the run: free buffers it never used leave the pool; buffers still in use
        (the output the caller receives) were never put back and are not reused."""
        self._free[:] = [raw for raw in self._free if raw.ctypes.data in self._used]


@dataclass
class _Step:
    name: str  # tensor produced (the last node of a fused group)
    head: Node  # node whose input ranges the step reads
    op: str
    inputs: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)


def _bn_scale_shift(bn: Node) -> tuple[np.ndarray, np.ndarray]:
    w = {k: v.astype(np.float64) for k, v in bn.weights.items()}
    scale = w["scale"] / np.sqrt(w["var"] + bn.attrs["epsilon"])
    return scale, w["bias"] - w["mean"] * scale


def _activation_params(node: Node) -> dict[str, Any]:
    a = node.attrs
    if node.op == "LeakyRelu":
        return dict(activation="LeakyRelu", alpha=a["alpha"], beta=0.0)
    if node.op == "Clip":
        return dict(activation="Clip", alpha=max(a["min"], -3.4e38), beta=min(a["max"], 3.4e38))
    if node.op == "HardSigmoid":
        return dict(activation="HardSigmoid", alpha=a["alpha"], beta=a["beta"])
    return dict(activation=node.op, alpha=0.0, beta=0.0)


def _fused_concat(model: Model, conv: Node, groups: int) -> tuple[str, str] | None:
    """The two inputs of a Concat whose only reader is ``conv`` (ungrouped), else None."""
    if groups != 1 or conv.inputs[0] == model.input_name:
        return None
    cat = model.node_by_name.get(conv.inputs[0])
    if cat is None or cat.op != "Concat" or len(cat.inputs) != 2 or cat.name == model.output:
        return None
    if list(model.consumers[cat.name]) != [conv.name]:
        return None
    return tuple(cat.inputs)  # type: ignore[return-value]


class Plan:
    """A model prepared for block execution (folded, fused, packed)."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.steps = self._build(model)
        last_use: dict[str, int] = {}
        for i, step in enumerate(self.steps):
            for src in step.inputs:
                last_use[src] = i
        self._last_use = last_use

    # -- building ------------------------------------------------------------
    @staticmethod
    def _build(model: Model) -> list[_Step]:
        consumers = model.consumers
        nodes = model.nodes
        steps: list[_Step] = []
        # Concats read by one conv only: that conv reads their inputs directly
        absorbed: set[str] = {
            node.inputs[0] for node in nodes
            if node.op in ("Conv", "Dense") and _fused_concat(model, node, 1 if node.op == "Dense" else node.attrs["groups"])
        }

        def sole_consumer(name: str) -> Node | None:
            cons = consumers[name]
            if len(cons) == 1 and name != model.output:
                return model.node_by_name[cons[0]]
            return None

        for node in nodes:
            if node.name in absorbed:
                continue
            if node.op in ("Conv", "Dense", "ConvTranspose"):
                W = node.weights["W"].astype(np.float64)
                if node.op == "Dense":
                    W = W[:, :, None, None]
                cout = W.shape[0] if node.op != "ConvTranspose" else W.shape[1] * node.attrs["groups"]
                B = node.weights["B"].astype(np.float64) if "B" in node.weights else np.zeros(cout)
                tail = node
                nxt = sole_consumer(tail.name)
                if nxt is not None and nxt.op == "BatchNorm":
                    scale, shift = _bn_scale_shift(nxt)
                    if node.op == "ConvTranspose":
                        g = node.attrs["groups"]
                        cin, cog = W.shape[:2]
                        W = (W.reshape(g, cin // g, cog, *W.shape[2:]) * scale.reshape(g, 1, cog, 1, 1)).reshape(W.shape)
                    else:
                        W = W * scale[:, None, None, None]
                    B = B * scale + shift
                    absorbed.add(nxt.name)
                    tail = nxt
                    nxt = sole_consumer(tail.name)
                act = dict(activation=None, alpha=0.0, beta=0.0)
                if nxt is not None and nxt.op in ACTIVATIONS:
                    act = _activation_params(nxt)
                    absorbed.add(nxt.name)
                    tail = nxt
                params: dict[str, Any] = dict(B=B.astype(np.float32), **act)
                if node.op == "ConvTranspose":
                    params["W"] = K.pack_conv_transpose_weights(W, node.attrs["groups"])
                    steps.append(_Step(tail.name, node, "ConvTranspose", node.inputs, params))
                    continue
                groups = 1 if node.op == "Dense" else node.attrs["groups"]
                params["W"] = K.pack_conv_weights(W, groups)
                params["kernel"] = W.shape[2:]
                sources = _fused_concat(model, node, groups)
                if params["W"].depthwise:
                    steps.append(_Step(tail.name, node, "DepthwiseConv", node.inputs, params))
                elif sources is not None:
                    # a two-input Concat read only by this conv: the conv reads both inputs
                    # (weights split along input channels) and the Concat is never built
                    split = model.channels[sources[0]]
                    params["sources"] = (K.pack_conv_weights(W[:, :split], 1), K.pack_conv_weights(W[:, split:], 1))
                    steps.append(_Step(tail.name, node, "Conv", sources, params))
                else:
                    params["sources"] = (params["W"],)
                    steps.append(_Step(tail.name, node, "Conv", node.inputs, params))
            elif node.op == "BatchNorm":
                scale, shift = _bn_scale_shift(node)
                steps.append(_Step(node.name, node, "Affine", node.inputs,
                                   dict(scale=scale.astype(np.float32), shift=shift.astype(np.float32))))
            elif node.op in ACTIVATIONS:
                steps.append(_Step(node.name, node, "Activation", node.inputs, _activation_params(node)))
            else:
                steps.append(_Step(node.name, node, node.op, node.inputs))
        return steps

    # -- running -------------------------------------------------------------
    def run(
        self,
        block: np.ndarray,
        *,
        origin: tuple[int, int] = (0, 0),
        image_size: tuple[int, int] | None = None,
        out_range: tuple[Range, Range] | None = None,
    ) -> np.ndarray:
        """Compute ``out_range`` of the model's output from ``block``.

        Parameters
        ----------
        block : (h, w, C) array
            Input pixels ``[origin, origin + (h, w))`` of the image, channels last.
        origin : (int, int)
            Position of ``block[0, 0]`` in the image.
        image_size : (int, int), optional
            ``(H, W)`` of the whole image; default: the block is the image.
        out_range : ((y0, y1), (x0, x1)), optional
            Output pixels to compute; default: the whole output.

        Returns
        -------
        (y1 - y0, x1 - x0, Cout) float32 array
        """
        if block.ndim != 3 or block.shape[2] != self.model.input_channels:
            raise ShapeError(
                f"Expected a block (h, w, {self.model.input_channels}). Got shape {block.shape} instead."
            )
        n = tuple(image_size) if image_size is not None else block.shape[:2]
        shapes = infer_shapes(self.model, n[0], n[1])
        out_shape = shapes[self.model.output]
        if out_range is None:
            out_range = ((0, out_shape[1]), (0, out_shape[2]))
        need = required_ranges(self.model, out_range, shapes)
        tensors: dict[str, _Tensor] = {
            self.model.input_name: _Tensor(np.ascontiguousarray(block, dtype=np.float32), int(origin[0]),
                                           int(origin[1]))
        }
        buffers = _Buffers(_thread_pool() if keep_block_buffers() else None)
        for i, step in enumerate(self.steps):
            rng = need[step.name]
            if rng[0][1] <= rng[0][0] or rng[1][1] <= rng[1][0]:
                c = self.model.channels[step.name]
                data = np.zeros((max(rng[0][1] - rng[0][0], 0), max(rng[1][1] - rng[1][0], 0), c), np.float32)
            else:
                data = self._run_step(step, rng, tensors, shapes, buffers.alloc)
                buffers.settle(data)
            tensors[step.name] = _Tensor(data, rng[0][0], rng[1][0])
            for src in set(step.inputs):
                if self._last_use.get(src) == i and src != self.model.output:
                    dropped = tensors.pop(src, None)
                    if dropped is not None:
                        buffers.release(dropped.data)
        buffers.finish()
        result = tensors[self.model.output].crop(*out_range)
        return np.ascontiguousarray(result)

    def _run_step(self, step: _Step, out: tuple[Range, Range], tensors, shapes, alloc) -> np.ndarray:
        node, p = step.head, step.params
        ins = [tensors[s] for s in step.inputs]
        n_in = shapes[step.inputs[0]][1:]
        op = step.op
        if op in ("Conv", "DepthwiseConv", "MaxPool", "AveragePool"):
            k = p["kernel"] if op in ("Conv", "DepthwiseConv") else node.attrs["kernel"]
            s = node.attrs["stride"] if node.op != "Dense" else (1, 1)
            d = node.attrs.get("dilation", (1, 1)) if node.op != "Dense" else (1, 1)
            pads = resolved_pads(node, *n_in) if node.op != "Dense" else (0, 0, 0, 0)
            ry = (out[0][0] * s[0] - pads[0], (out[0][1] - 1) * s[0] - pads[0] + (k[0] - 1) * d[0] + 1)
            rx = (out[1][0] * s[1] - pads[1], (out[1][1] - 1) * s[1] - pads[1] + (k[1] - 1) * d[1] + 1)
            if op == "Conv":
                # the kernel reads each source in place and supplies the zero padding itself
                origins = [_source_origin(t, ry, rx, n_in) for t in ins]
                shape = (out[0][1] - out[0][0], out[1][1] - out[1][0])
                return K.conv2d_window([t.data for t in ins], origins, p["sources"], p["B"], shape, stride=s,
                                       dilation=d, activation=p["activation"], alpha=p["alpha"], beta=p["beta"],
                                       alloc=alloc, column_phase=out[1][0])
            if op == "DepthwiseConv":
                x = _window(ins[0], ry, rx, n_in, 0.0)
                return K.conv2d(x, p["W"], p["B"], stride=s, dilation=d, activation=p["activation"],
                                alpha=p["alpha"], beta=p["beta"])
            if op == "MaxPool":
                shape = (out[0][1] - out[0][0], out[1][1] - out[1][0])
                return K.max_pool2d_window(ins[0].data, _source_origin(ins[0], ry, rx, n_in), shape, kernel=k,
                                           stride=s, dilation=d, alloc=alloc)
            x = _window(ins[0], ry, rx, n_in, 0.0)
            valid = (max(0, -ry[0]), min(n_in[0], ry[1]) - ry[0], max(0, -rx[0]), min(n_in[1], rx[1]) - rx[0])
            return K.avg_pool2d(x, kernel=k, stride=s, valid=valid,
                                count_include_pad=node.attrs["count_include_pad"])
        if op == "ConvTranspose":
            return self._conv_transpose(step, out, ins[0], shapes, alloc)
        if op == "Resize":
            return self._resize(node, out, ins[0], shapes)
        if op == "Pad":
            pads = node.attrs["pads"]
            ry = (out[0][0] - pads[0], out[0][1] - pads[0])
            rx = (out[1][0] - pads[1], out[1][1] - pads[1])
            return _window(ins[0], ry, rx, n_in, node.attrs["value"])
        if op in ("GlobalAveragePool", "GlobalMaxPool"):
            x = ins[0].crop((0, n_in[0]), (0, n_in[1]))
            red = x.mean(axis=(0, 1), dtype=np.float64) if op == "GlobalAveragePool" else x.max(axis=(0, 1))
            return np.asarray(red, np.float32).reshape(1, 1, -1)
        # point-wise ops read the same range of every input (broadcast inputs: their one pixel)
        rngs = input_ranges(node, out, shapes)
        xs = [t.crop(*r) for t, r in zip(ins, rngs)]
        if op == "Activation":
            return K.activation(xs[0], p["activation"], p["alpha"], p["beta"])
        if op == "Affine":
            return K.affine_channels(xs[0], p["scale"], p["shift"])
        if op == "Softmax":
            return K.softmax_channels(xs[0])
        if op == "Identity":
            return np.array(xs[0], np.float32)
        if op == "Concat":
            return np.ascontiguousarray(np.concatenate(xs, axis=2), dtype=np.float32)
        if op in ("Add", "Sub", "Mul", "Div"):
            return _binary(node, xs, out)
        raise ExecutionError(f"Node {node.name!r}: op {op!r} has no executor.")  # unreachable by construction

    @staticmethod
    def _conv_transpose(step: _Step, out: tuple[Range, Range], t: _Tensor, shapes, alloc) -> np.ndarray:
        node, p = step.head, step.params
        s, d, pads = node.attrs["stride"], node.attrs["dilation"], node.attrs["pads"]
        (iy, ix), = input_ranges(node, out, shapes)
        if iy[1] > iy[0] and ix[1] > ix[0]:
            t.crop(iy, ix)  # raises if the block lacks input pixels the range needs
        # output position o is full-output index o + pad; t.data[0] is input row t.y0
        origin = (out[0][0] + pads[0] - t.y0 * s[0], out[1][0] + pads[1] - t.x0 * s[1])
        shape = (out[0][1] - out[0][0], out[1][1] - out[1][0])
        return K.conv_transpose2d_window(t.data, p["W"], p["B"], origin, shape, stride=s, dilation=d,
                                         activation=p["activation"], alpha=p["alpha"], beta=p["beta"],
                                         alloc=alloc)

    @staticmethod
    def _resize(node: Node, out: tuple[Range, Range], t: _Tensor, shapes) -> np.ndarray:
        _, h_in, w_in = shapes[node.inputs[0]]
        _, h_out, w_out = shapes[node.name]
        a = node.attrs
        cy = resize_coordinates(out[0][0], out[0][1], h_in, h_out, a["scales"][0], a["mode"],
                                a["coordinate_transformation_mode"], a["nearest_mode"])
        cx = resize_coordinates(out[1][0], out[1][1], w_in, w_out, a["scales"][1], a["mode"],
                                a["coordinate_transformation_mode"], a["nearest_mode"])
        ry = (int(cy[0].min()), int(cy[1].max()) + 1)
        rx = (int(cx[0].min()), int(cx[1].max()) + 1)
        x = np.ascontiguousarray(t.crop(ry, rx))
        if a["mode"] == "nearest":
            return K.resize_nearest(x, cy[0] - ry[0], cx[0] - rx[0])
        return K.resize_linear(x, cy[0] - ry[0], cy[1] - ry[0], cy[2], cx[0] - rx[0], cx[1] - rx[0], cx[2])


def _binary(node: Node, xs: list[np.ndarray], out: tuple[Range, Range]) -> np.ndarray:
    if len(xs) == 2:
        a, b = xs
    else:
        c = node.weights["C"]
        a, b = xs[0], c.reshape(1, 1, -1)
        if node.attrs["reverse"]:
            a, b = b, a
    with np.errstate(divide="ignore", invalid="ignore"):
        if node.op == "Add":
            r = a + b
        elif node.op == "Sub":
            r = a - b
        elif node.op == "Mul":
            r = a * b
        else:
            r = a / b
    shape = (out[0][1] - out[0][0], out[1][1] - out[1][0], r.shape[2])
    return np.ascontiguousarray(np.broadcast_to(r, shape), dtype=np.float32)


_PLANS: "OrderedDict[str, Plan]" = OrderedDict()
_PLANS_LOCK = threading.Lock()
_PLANS_MAX = 8


def get_plan(model: Model) -> Plan:
    """The process-wide :class:`Plan` of ``model`` (built once per fingerprint)."""
    key = model.fingerprint
    with _PLANS_LOCK:
        plan = _PLANS.get(key)
        if plan is not None:
            _PLANS.move_to_end(key)
            return plan
    plan = Plan(model)
    with _PLANS_LOCK:
        plan = _PLANS.setdefault(key, plan)
        while len(_PLANS) > _PLANS_MAX:
            _PLANS.popitem(last=False)
    return plan


def plans_built() -> int:
    """Number of plans in this process's cache (for tests of the once-per-worker rule)."""
    return len(_PLANS)


def run_model(model: Model, image: np.ndarray) -> np.ndarray:
    """Run ``model`` on a whole image ``(C, H, W)`` in one piece; returns ``(Cout, Ho, Wo)``.

    The reference point of the tiled engine: :func:`pipeline.predict` on any
    chunking equals this.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3:
        raise ShapeError(f"Expected an image (C, H, W). Got shape {image.shape} instead.")
    out = get_plan(model).run(np.ascontiguousarray(image.transpose(1, 2, 0)))
    return np.ascontiguousarray(out.transpose(2, 0, 1))
