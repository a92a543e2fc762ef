"""Direct convolutions, channels-last, on register tiles of full-width vectors.

Every kernel holds a *tile* of accumulators in vector registers: ``P`` output
pixels by ``CB`` vectors of :data:`LANES` output channels, a Numba
``UniTuple`` of ``P * CB`` values of type :data:`f32x8` (an LLVM
``<LANES x float>``).  Element ``p * CB + j`` holds channels
``LANES*j .. LANES*j + LANES-1`` of pixel ``p``.

The vector width follows the CPU Numba compiles for: 16 lanes (one ``zmm``
register, 32 of them) where it has AVX-512F, else 8 lanes (one ``ymm``, 16
of them).  It is a function of the target CPU's features alone, which are
part of the key of every Numba cache entry, so a kernel loaded from the disk
cache always matches the width the Python side packs weights for.  In the
text below, "8" stands for ``LANES``.
The tile intrinsics below emit the loads, broadcasts and ``llvm.fma`` calls
directly, so the inner loop is FMAs on vector registers whatever LLVM's
vectorisers decide.  They address arrays by flat element offsets and trust
the caller for bounds: the kernels compute offsets from shapes the Python
wrappers in ``__init__`` validated.

``P`` and ``CB`` are compile-time constants: a factory builds one kernel per
``(P, CB)`` and caches it (in memory and, through ``cache=True``, on disk).
Channel counts, kernel sizes, strides and dilations are run-time values, so a
whole network needs only a handful of compiled kernels.  The intrinsics live
in this file with the kernels on purpose: Numba's disk cache is invalidated
by the kernel's own source file only, so intrinsics kept elsewhere could be
changed under a stale cached kernel.

Loop order follows ../shared/PERF_NOTES.md: for dense convolutions the
kernel-row loop and the output-channel block sit outside the pixel loop, so
the weights in use (``KW * Cig * 8 * CB`` floats) stay in L1 while a row of
pixels streams past.  The bias initialises the tile at the first kernel row
and the activation is applied in registers at the last one.  Weights are
packed with output channels padded to a multiple of 8 (zeros) and 64-byte
aligned; outputs are allocated with the same padding by the wrappers, which
slice the real channels out.

Wide 3x3 stride-1 layers (AVX-512, 64 channels and more) take
:func:`winograd_kernel` instead: Winograd F(2,3) along rows, four products
per pair of output columns and kernel row instead of six, with the pairs
aligned to the whole image's even columns so results do not depend on the
chunking.  Memory-bound passes (depthwise, 3x3 stride-1 rows) prefetch the
input row the next output row adds (:func:`prefetch_l2`).
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

from ..config import NUMBA_FLAGS
from ._activations import ACT_CODES, activate

__all__ = [
    "LANES",
    "f32x8",
    "tile_zeros",
    "tile_bias",
    "tile_load",
    "tile_store",
    "tile_stream",
    "tile_fma_bcast",
    "tile_fma_row",
    "tile_fma_lanes",
    "tile_activate",
    "tile_max",
    "tile_add",
    "prefetch_l2",
    "tile_sub",
    "winograd_input",
    "tile_shape",
    "pass_channels",
    "dense_kernel",
    "winograd_kernel",
    "depthwise_kernel",
    "transpose_kernel",
    "max_pool_kernel",
]

# -- register tiles ---------------------------------------------------------

def _target_features() -> set[str]:
    """Features of the CPU Numba compiles for, as its JIT codegen picks them.

    ``NUMBA_CPU_FEATURES`` if set, else the host's (with ``NUMBA_ENABLE_AVX=0``
    applied): the same string Numba puts in every cache key.
    """
    from numba.core import codegen, config

    flat = config.CPU_FEATURES if config.CPU_FEATURES is not None else codegen.get_host_cpu_features()
    return {f[1:] for f in flat.split(",") if f.startswith("+")}


def vector_lanes(features: set[str]) -> int:
    """float32 lanes per vector register for CPUs with ``features``: 16 with AVX-512F, else 8."""
    return 16 if "avx512f" in features else 8


#: float32 lanes per vector (16 with AVX-512F, else 8) and vector registers to hold tiles in.
LANES = vector_lanes(_target_features())
REGISTERS = 32 if LANES == 16 else 16


class F32x8(types.Type):
    """``LANES`` float32 lanes held in one vector register (the name dates from 8-lane AVX2)."""

    def __init__(self) -> None:
        super().__init__(name="f32x8")


f32x8 = F32x8()
_VEC = ir.VectorType(ir.FloatType(), LANES)
_F32 = ir.FloatType()


@register_model(F32x8)
class _F32x8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VEC)


#: Activation codes :func:`tile_activate` applies in registers; others are left to a scalar pass.
VECTORISED_ACTS = frozenset(ACT_CODES[k] for k in (None, "Relu", "LeakyRelu", "Clip", "HardSigmoid", "HardSwish"))


def _literals(*tys) -> tuple[int, ...] | None:
    """Values of integer-literal types, or None (Numba then retries typing with the literals)."""
    if not all(isinstance(t, types.IntegerLiteral) for t in tys):
        return None
    return tuple(int(t.literal_value) for t in tys)


def _tile_type(p: int, cb: int) -> types.UniTuple:
    return types.UniTuple(f32x8, p * cb)


def _data(context, builder, aryty, ary):
    return context.make_array(aryty)(context, builder, value=ary).data


def _as_i64(context, builder, fromty, value):
    return context.cast(builder, value, fromty, types.int64)


def _vec_ptr(builder, data, offset):
    return builder.bitcast(builder.gep(data, [offset]), _VEC.as_pointer())


def _broadcast(builder, scalar):
    one = builder.insert_element(ir.Constant(_VEC, ir.Undefined), scalar, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, ir.Constant(_VEC, ir.Undefined), ir.Constant(ir.VectorType(ir.IntType(32), LANES), None))


def _splat(value: float):
    return ir.Constant(_VEC, [ir.Constant(_F32, value)] * LANES)


def _fma(builder, a, b, c):
    """``a * b + c`` lane-wise in one rounding (``vfmadd`` on AVX2 + FMA CPUs)."""
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VEC, [_VEC, _VEC, _VEC]),
                                        f"llvm.fma.v{LANES}f32")
    return builder.call(fn, [a, b, c])


def _unpack(builder, tile, n):
    return [builder.extract_value(tile, i) for i in range(n)]


def _pack(context, builder, tilety, values):
    return context.make_tuple(builder, tilety, values)


@intrinsic
def tile_zeros(typingctx, P, CB):
    """A ``P x CB`` tile of zeros."""
    if _literals(P, CB) is None:
        return None
    p, cb = _literals(P, CB)
    tilety = _tile_type(p, cb)

    def codegen(context, builder, sig, args):
        return _pack(context, builder, tilety, [_splat(0.0)] * (p * cb))

    return tilety(P, CB), codegen


@intrinsic
def tile_bias(typingctx, b, boff, P, CB):
    """Every pixel of a ``P x CB`` tile set to ``b[boff : boff + 8 * CB]``."""
    if _literals(P, CB) is None:
        return None
    p, cb = _literals(P, CB)
    tilety = _tile_type(p, cb)

    def codegen(context, builder, sig, args):
        data = _data(context, builder, sig.args[0], args[0])
        off = _as_i64(context, builder, sig.args[1], args[1])
        row = [builder.load(_vec_ptr(builder, data, builder.add(off, ir.Constant(ir.IntType(64), LANES * j))), align=4)
               for j in range(cb)]
        return _pack(context, builder, tilety, row * p)

    return tilety(b, boff, P, CB), codegen


@intrinsic
def tile_load(typingctx, a, off, pstride, P, CB):
    """Load a tile: vector ``(p, j)`` from ``a.flat[off + p * pstride + 8 * j]``."""
    if _literals(P, CB) is None:
        return None
    p, cb = _literals(P, CB)
    tilety = _tile_type(p, cb)

    def codegen(context, builder, sig, args):
        data = _data(context, builder, sig.args[0], args[0])
        off = _as_i64(context, builder, sig.args[1], args[1])
        ps = _as_i64(context, builder, sig.args[2], args[2])
        vals = []
        for i in range(p):
            base = builder.add(off, builder.mul(ps, ir.Constant(ir.IntType(64), i)))
            for j in range(cb):
                ptr = _vec_ptr(builder, data, builder.add(base, ir.Constant(ir.IntType(64), LANES * j)))
                vals.append(builder.load(ptr, align=4))
        return _pack(context, builder, tilety, vals)

    return tilety(a, off, pstride, P, CB), codegen


def _store_tile(p: int, cb: int, nontemporal: bool):
    """Codegen of :func:`tile_store` (``nontemporal``: of :func:`tile_stream`)."""

    def codegen(context, builder, sig, args):
        data = _data(context, builder, sig.args[0], args[0])
        off = _as_i64(context, builder, sig.args[1], args[1])
        ps = _as_i64(context, builder, sig.args[2], args[2])
        vals = _unpack(builder, args[3], p * cb)
        hint = builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)]) if nontemporal else None
        for i in range(p):
            base = builder.add(off, builder.mul(ps, ir.Constant(ir.IntType(64), i)))
            for j in range(cb):
                ptr = _vec_ptr(builder, data, builder.add(base, ir.Constant(ir.IntType(64), LANES * j)))
                if hint is None:
                    builder.store(vals[i * cb + j], ptr, align=4)
                else:
                    builder.store(vals[i * cb + j], ptr, align=4 * LANES).set_metadata("nontemporal", hint)
        return context.get_dummy_value()

    return codegen


def _store_signature(a, off, pstride, tile, P, CB, nontemporal: bool):
    if _literals(P, CB) is None:
        return None
    p, cb = _literals(P, CB)
    if tile != _tile_type(p, cb):
        raise TypeError(f"Expected a {p}x{cb} tile. Got {tile} instead.")
    return types.none(a, off, pstride, tile, P, CB), _store_tile(p, cb, nontemporal)


@intrinsic
def tile_store(typingctx, a, off, pstride, tile, P, CB):
    """Store a tile: vector ``(p, j)`` to ``a.flat[off + p * pstride + 8 * j]``."""
    return _store_signature(a, off, pstride, tile, P, CB, False)


@intrinsic
def tile_stream(typingctx, a, off, pstride, tile, P, CB):
    """:func:`tile_store` with non-temporal stores: the lines go to memory without being read first.

    For outputs larger than the caches, written once: it saves the read of
    every line before it is overwritten.  Every vector's address must be a
    multiple of the vector size (``4 * LANES`` bytes), or the store faults.
    """
    return _store_signature(a, off, pstride, tile, P, CB, True)


def _tile_operands(context, builder, sig, args, n):
    """Accumulators, input data/offset/stride and weight data/offset of a tile-update intrinsic."""
    return (
        _unpack(builder, args[0], n),
        _data(context, builder, sig.args[1], args[1]),
        _as_i64(context, builder, sig.args[2], args[2]),
        _as_i64(context, builder, sig.args[3], args[3]),
        _data(context, builder, sig.args[4], args[4]),
        _as_i64(context, builder, sig.args[5], args[5]),
    )


@intrinsic
def tile_fma_bcast(typingctx, tile, x, xoff, xstride, w, woff, P, CB):
    """Rank-1 update: ``tile[p, j] += x.flat[xoff + p * xstride] * w.flat[woff + 8j : woff + 8j + 8]``.

    One input channel of ``P`` pixels times one row of packed weights: the
    inner step of a dense convolution.
    """
    if _literals(P, CB) is None:
        return None
    p, cb = _literals(P, CB)
    if tile != _tile_type(p, cb):
        raise TypeError(f"Expected a {p}x{cb} tile. Got {tile} instead.")

    def codegen(context, builder, sig, args):
        acc, xd, xo, xs, wd, wo = _tile_operands(context, builder, sig, args, p * cb)
        def weight(j):
            return builder.load(_vec_ptr(builder, wd, builder.add(wo, ir.Constant(ir.IntType(64), LANES * j))), align=4)

        def pixel(i):
            xi = builder.add(xo, builder.mul(xs, ir.Constant(ir.IntType(64), i)))
            return _broadcast(builder, builder.load(builder.gep(xd, [xi]), align=4))

        # Hold the shorter of the two operand lists in registers: P*CB accumulators
        # + min(P, CB) + 1 registers, which fits 16 for the tile shapes in use.
        if cb <= p:
            wv = [weight(j) for j in range(cb)]
            for i in range(p):
                v = pixel(i)
                for j in range(cb):
                    acc[i * cb + j] = _fma(builder, v, wv[j], acc[i * cb + j])
        else:
            xv = [pixel(i) for i in range(p)]
            for j in range(cb):
                w = weight(j)
                for i in range(p):
                    acc[i * cb + j] = _fma(builder, xv[i], w, acc[i * cb + j])
        return _pack(context, builder, sig.return_type, acc)

    return tile(tile, x, xoff, xstride, w, woff, P, CB), codegen


@intrinsic
def tile_fma_row(typingctx, tile, x, xoff, xstride, w, woff, wstride, P, CB, KW):
    """One input channel of one kernel row at stride 1.

    ``tile[p, j] += sum_kx x.flat[xoff + (p+kx)*xstride] * w.flat[woff + kx*wstride + 8j : +8]``.

    The stride-1 form of ``KW`` calls of :func:`tile_fma_bcast`: each of the
    ``P + KW - 1`` input pixels is broadcast once and feeds every output pixel
    it reaches, so a ``KW``-wide kernel row needs about ``KW`` times fewer
    broadcast loads.  Each accumulator still receives its taps in ``kx``
    order, as ``KW`` separate calls would add them.
    """
    if _literals(P, CB, KW) is None:
        return None
    p, cb, kw = _literals(P, CB, KW)
    if tile != _tile_type(p, cb):
        raise TypeError(f"Expected a {p}x{cb} tile. Got {tile} instead.")

    def codegen(context, builder, sig, args):
        acc = _unpack(builder, args[0], p * cb)
        xd = _data(context, builder, sig.args[1], args[1])
        xo = _as_i64(context, builder, sig.args[2], args[2])
        xs = _as_i64(context, builder, sig.args[3], args[3])
        wd = _data(context, builder, sig.args[4], args[4])
        wo = _as_i64(context, builder, sig.args[5], args[5])
        ws = _as_i64(context, builder, sig.args[6], args[6])
        i64 = ir.IntType(64)
        wv = [[builder.load(_vec_ptr(builder, wd, builder.add(builder.add(wo, builder.mul(ws, ir.Constant(i64, k))),
                                                              ir.Constant(i64, LANES * j))), align=4)
               for j in range(cb)] for k in range(kw)]
        for q in range(p + kw - 1):
            xi = builder.add(xo, builder.mul(xs, ir.Constant(i64, q)))
            v = _broadcast(builder, builder.load(builder.gep(xd, [xi]), align=4))
            for k in range(kw):
                i = q - k
                if 0 <= i < p:
                    for j in range(cb):
                        acc[i * cb + j] = _fma(builder, v, wv[k][j], acc[i * cb + j])
        return _pack(context, builder, sig.return_type, acc)

    return tile(tile, x, xoff, xstride, w, woff, wstride, P, CB, KW), codegen


@intrinsic
def tile_fma_lanes(typingctx, tile, x, xoff, xstride, w, woff, P, CB):
    """Lane-wise update: ``tile[p, j] += x.flat[xoff + p*xstride + 8j : +8] * w.flat[woff + 8j : +8]``.

    One filter tap of a depthwise convolution (each channel its own weight).
    """
    if _literals(P, CB) is None:
        return None
    p, cb = _literals(P, CB)
    if tile != _tile_type(p, cb):
        raise TypeError(f"Expected a {p}x{cb} tile. Got {tile} instead.")

    def codegen(context, builder, sig, args):
        acc, xd, xo, xs, wd, wo = _tile_operands(context, builder, sig, args, p * cb)
        wv = [builder.load(_vec_ptr(builder, wd, builder.add(wo, ir.Constant(ir.IntType(64), LANES * j))), align=4)
              for j in range(cb)]
        for i in range(p):
            xi = builder.add(xo, builder.mul(xs, ir.Constant(ir.IntType(64), i)))
            for j in range(cb):
                xv = builder.load(_vec_ptr(builder, xd, builder.add(xi, ir.Constant(ir.IntType(64), LANES * j))),
                                  align=4)
                acc[i * cb + j] = _fma(builder, xv, wv[j], acc[i * cb + j])
        return _pack(context, builder, sig.return_type, acc)

    return tile(tile, x, xoff, xstride, w, woff, P, CB), codegen


def _fmax(builder, a, b):
    return builder.select(builder.fcmp_ordered(">", a, b), a, b)


def _fmin(builder, a, b):
    return builder.select(builder.fcmp_ordered("<", a, b), a, b)


def _activate_vec(builder, v, act, alpha, beta):
    zero, one = _splat(0.0), _splat(1.0)
    if act == ACT_CODES["Relu"]:
        return _fmax(builder, v, zero)
    if act == ACT_CODES["LeakyRelu"]:
        return builder.select(builder.fcmp_ordered(">=", v, zero), v, builder.fmul(v, alpha))
    if act == ACT_CODES["Clip"]:
        return _fmin(builder, _fmax(builder, v, alpha), beta)
    if act == ACT_CODES["HardSigmoid"]:
        return _fmax(builder, zero, _fmin(builder, one, builder.fadd(builder.fmul(alpha, v), beta)))
    if act == ACT_CODES["HardSwish"]:
        gate = builder.fadd(builder.fdiv(v, _splat(6.0)), _splat(0.5))
        return builder.fmul(v, _fmax(builder, zero, _fmin(builder, one, gate)))
    return v


@intrinsic
def tile_activate(typingctx, tile, ACT, alpha, beta):
    """Apply activation code ``ACT`` (a constant in :data:`VECTORISED_ACTS`) to every lane.

    Same formulas as the scalar ``activate`` (comparisons are ordered, so a
    NaN lane becomes 0 under Relu as it does there).
    """
    if _literals(ACT) is None:
        return None
    (act,) = _literals(ACT)
    if act not in VECTORISED_ACTS:
        raise TypeError(f"Expected an activation code in {sorted(VECTORISED_ACTS)}. Got {act} instead.")
    n = tile.count

    def codegen(context, builder, sig, args):
        a = _broadcast(builder, context.cast(builder, args[2], sig.args[2], types.float32))
        b = _broadcast(builder, context.cast(builder, args[3], sig.args[3], types.float32))
        vals = [_activate_vec(builder, v, act, a, b) for v in _unpack(builder, args[0], n)]
        return _pack(context, builder, sig.return_type, vals)

    return tile(tile, ACT, alpha, beta), codegen


@intrinsic
def prefetch_l2(typingctx, a, off):
    """Hint the CPU to bring the cache line holding ``a.flat[off]`` into L2 (``prefetcht1``); never faults."""

    def codegen(context, builder, sig, args):
        data = _data(context, builder, sig.args[0], args[0])
        off = _as_i64(context, builder, sig.args[1], args[1])
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                            "llvm.prefetch.p0i8")
        # read access, locality 2 (L2 and outward), data cache
        builder.call(fn, [builder.bitcast(builder.gep(data, [off]), i8p), ir.Constant(i32, 0), ir.Constant(i32, 2),
                          ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.none(a, off), codegen


#: floats per cache line: the step of a loop of :func:`prefetch_l2` calls.
LINE_FLOATS = 16


def _lanewise(lane):
    """Typing of an intrinsic combining two tiles of one shape lane by lane: ``lane(builder, x, y)``."""

    def typer(typingctx, a, b):
        if a != b or not isinstance(a, types.UniTuple) or a.dtype != f32x8:
            return None
        n = a.count

        def codegen(context, builder, sig, args):
            va, vb = _unpack(builder, args[0], n), _unpack(builder, args[1], n)
            return _pack(context, builder, sig.return_type, [lane(builder, x, y) for x, y in zip(va, vb)])

        return a(a, b), codegen

    return typer


tile_max = intrinsic(_lanewise(lambda builder, x, y: builder.select(builder.fcmp_ordered(">", y, x), y, x)))
tile_max.__doc__ = "Lane-wise ``b if b > a else a`` of two tiles of one shape (Python's ``max(a, b)``)."
tile_add = intrinsic(_lanewise(lambda builder, x, y: builder.fadd(x, y)))
tile_add.__doc__ = "Lane-wise ``a + b`` of two tiles of one shape, rounded once per lane."
tile_sub = intrinsic(_lanewise(lambda builder, x, y: builder.fsub(x, y)))
tile_sub.__doc__ = "Lane-wise ``a - b`` of two tiles of one shape, rounded once per lane."


@intrinsic
def winograd_input(typingctx, x, xoff, xstride, v, voff, kstride):
    """Input transform of Winograd F(2,3) on one vector of channels.

    With ``d_t = x.flat[xoff + t*xstride : +8]`` (four neighbouring pixels),
    stores ``d0 - d2, d1 + d2, d2 - d1, d1 - d3`` at ``v.flat[voff + k*kstride : +8]``
    for ``k = 0..3``.
    """

    def codegen(context, builder, sig, args):
        xd = _data(context, builder, sig.args[0], args[0])
        xo = _as_i64(context, builder, sig.args[1], args[1])
        xs = _as_i64(context, builder, sig.args[2], args[2])
        vd = _data(context, builder, sig.args[3], args[3])
        vo = _as_i64(context, builder, sig.args[4], args[4])
        ks = _as_i64(context, builder, sig.args[5], args[5])
        i64 = ir.IntType(64)
        d = [builder.load(_vec_ptr(builder, xd, builder.add(xo, builder.mul(xs, ir.Constant(i64, t)))), align=4)
             for t in range(4)]
        vals = [builder.fsub(d[0], d[2]), builder.fadd(d[1], d[2]), builder.fsub(d[2], d[1]), builder.fsub(d[1], d[3])]
        for k, val in enumerate(vals):
            builder.store(val, _vec_ptr(builder, vd, builder.add(vo, builder.mul(ks, ir.Constant(i64, k)))), align=4)
        return context.get_dummy_value()

    return types.none(x, xoff, xstride, v, voff, kstride), codegen


# -- kernels ----------------------------------------------------------------


#: Pixels per tile for a given number of vectors per tile: ``P * CB`` accumulators
#: plus ``min(P, CB)`` weight vectors and one broadcast input fill the registers
#: (16 ``ymm`` with AVX2, 32 ``zmm`` with AVX-512).
#: With 32 registers the shapes are those measured fastest, not the largest that
#: fit: on Emerald Rapids 4 x 4 tiles ran the 3x3 stride-2 32->64, 1x1 64->128,
#: depthwise 64 and 3x3 64->64 layers 2-15 % faster than the 6 x 4 tiles
#: measured best earlier on Sapphire Rapids (and no slower with Winograd); a
#: 4 x 4 tile also leaves registers for three kernel taps of weights
#: (:func:`tile_fma_row`).
_PIXELS_FOR_VECTORS = {4: 4, 3: 8, 2: 8, 1: 16} if REGISTERS == 32 else {4: 3, 3: 4, 2: 6, 1: 12}


#: Bytes of weights one pass over a row of pixels may use.  With AVX2 (tuned on
#: Zen 3, 32 KiB L1d) half of L1, the rest for pixels; with AVX-512 the weights
#: of a wider tile stream from L2 fast enough that larger slices won (48 KiB L1d).
L1_WEIGHT_BYTES = 16 * 1024 if LANES == 8 else 64 * 1024


def tile_shape(vectors: int, *, taps_per_row: int = 0) -> tuple[int, int]:
    """``(P, CB)``: pixels and 8-channel vectors per register tile.

    ``vectors`` is the number of 8-channel vectors of output channels (per
    group); ``taps_per_row`` (``KW * Cin/G``) the weights per output channel a
    dense kernel row streams: ``CB`` shrinks until that slice of weights
    (``taps_per_row * 8 * CB`` floats) fits the L1 budget.
    """
    fitting = [c for c in (4, 3, 2, 1) if vectors % c == 0]
    fits = [c for c in fitting if taps_per_row * LANES * c * 4 <= L1_WEIGHT_BYTES]
    cb = (fits or fitting[-1:])[0]
    return _PIXELS_FOR_VECTORS[cb], cb


#: Bytes of weights one pass of the dense kernel should stream with AVX-512: a
#: 3x3 64->64 kernel row is 48 KiB of weights for a 4-vector tile, the whole
#: L1d, and split into passes of 32 input channels (24 KiB) it ran 2-5 % faster
#: in interleaved runs (6 x 4 tiles, broadcast path) and 4 % faster (4 x 4
#: tiles, three-tap row path).  None (AVX2): passes are not split.
L1_PASS_BYTES = 24 * 1024 if LANES == 16 else None


def _row3_fits(P: int, CB: int) -> bool:
    """Whether a ``P x CB`` tile leaves registers for :func:`tile_fma_row`'s three kernel taps of weights."""
    return P * CB + 3 * CB + 1 <= REGISTERS


def pass_channels(CB: int, kw: int, cin_per_group: int) -> int:
    """Input channels per pass of :func:`dense_kernel` (its ``ic_chunk``; 0: all in one pass)."""
    if L1_PASS_BYTES is None:
        return 0
    per_channel = kw * LANES * CB * 4
    if cin_per_group * per_channel <= L1_PASS_BYTES:
        return 0
    return max(1, L1_PASS_BYTES // per_channel)


@numba.njit(**NUMBA_FLAGS)
def _activate_tile(acc, act, alpha, beta):
    """The tile with a vectorisable activation applied (Sigmoid, Tanh: unchanged, see ``_activate_rows``)."""
    if act == 1:
        return tile_activate(acc, 1, alpha, beta)
    if act == 2:
        return tile_activate(acc, 2, alpha, beta)
    if act == 3:
        return tile_activate(acc, 3, alpha, beta)
    if act == 6:
        return tile_activate(acc, 6, alpha, beta)
    if act == 7:
        return tile_activate(acc, 7, alpha, beta)
    return acc


@numba.njit(**NUMBA_FLAGS)
def _activate_rows(out, oy, act, alpha, beta):
    """Scalar activation of output row ``oy`` (for Sigmoid and Tanh)."""
    row = out[oy]
    for ox in range(row.shape[0]):
        for c in range(row.shape[1]):
            row[ox, c] = activate(row[ox, c], act, alpha, beta)


@functools.lru_cache(maxsize=None)
def dense_kernel(P: int, CB: int):
    """Grouped convolution over a window of one or two sources, with ``P x CB`` tiles.

    The returned kernel ``(x, w, b, out, sy, sx, dy, dx, act, alpha, beta,
    y0=0, x0=0, x2=None, w2=None, y2=0, x2o=0)`` reads ``x (H, W, G*Cig)`` and
    ``w (G, KH, KW, Cig, CogP)`` packed, ``b (G*CogP,)``, and writes every
    element of ``out (Ho, Wo, G*CogP)``; ``CogP`` must be a multiple of ``8 * CB``::

        out[oy, ox] = act(b + sum_taps xz[y0 + oy*sy + ky*dy, x0 + ox*sx + kx*dx] @ w[ky, kx])

    where ``xz`` is ``x`` extended by zeros in every direction: the window
    ``(y0, x0)`` may leave ``x``, and the layer's zero padding is supplied here
    rather than by a padded copy.  With the defaults this is the valid
    convolution of ``x``.  ``all_rows`` keeps a tile's accumulators in registers
    over every kernel row (worth it when the whole kernel's weights for a tile,
    ``KH * KW * Cig * 8 * CB`` floats, fit in L1); otherwise each kernel row is
    a pass over the output row.  A second source ``x2 (H2, W2, C2)`` with weights
    ``w2 (1, KH, KW, C2, CogP)`` and window origin ``(y2, x2o)`` adds its taps
    to the same sum (a convolution of the channel concatenation of ``x`` and
    ``x2``, ``G == 1``), so a Concat feeding a conv is never materialised.
    All arrays must be C-contiguous (offsets are computed from shapes).

    ``ic_chunk`` (``> 0``) splits each pass into passes over runs of that many
    input channels, so the weights a pass streams stay in L1 (see
    :func:`pass_channels`); every pixel then sums its taps run by run.

    Dense 3-wide kernels at stride 1 (the common 3x3 layer) take their kernel
    rows one input channel at a time with :func:`tile_fma_row`, when its weights
    fit the registers beside the tile (4 x 4, 8 x 2 and 16 x 1 tiles with
    AVX-512, tiles of 1 vector with AVX2): every input pixel is broadcast once
    for three taps.  Every output
    pixel, in a tile or not, sums its taps in one order (kernel row, then
    channel, then column in the row path; kernel row, column, channel in the
    other), so results do not depend on where a block's tiles fall.
    """
    row3_fits = _row3_fits(P, CB)

    @numba.njit(**NUMBA_FLAGS)
    def kernel(x, w, b, out, sy, sx, dy, dx, act, alpha, beta, y0=0, x0=0, x2=None, w2=None, y2=0, x2o=0,
               all_rows=False, ic_chunk=0):
        if x2 is None:
            xb = x[:1, :1, :0]
            wb = w[:1, :, :, :0]
            nsrc = 1
        else:
            xb = x2
            wb = w2
            nsrc = 2 if x2.shape[2] > 0 else 1
        G, KH, KW, _, CogP = w.shape
        Ho, Wo, CoutP = out.shape
        blocks = CogP // (LANES * CB)
        for oy in range(Ho):
            for g in range(G):
                # passes over the sources' rows: one per (kernel row, source), or with
                # all_rows one per source, its whole kernel in registers (small weights)
                # and with ic_chunk each of those passes split into runs of input channels
                n_valid = 0
                chunks_max = 1
                for s in range(nsrc):
                    xs = x if s == 0 else xb
                    cig = (w if s == 0 else wb).shape[3]
                    chunks = 1 if ic_chunk <= 0 else (cig + ic_chunk - 1) // ic_chunk
                    chunks_max = max(chunks_max, chunks)
                    base = (y0 if s == 0 else y2) + oy * sy
                    kya = max(0, (dy - 1 - base) // dy)
                    kyb = min(KH, (xs.shape[0] - 1 - base) // dy + 1)
                    if kyb > kya:
                        n_valid += chunks * (1 if all_rows else kyb - kya)
                if n_valid == 0:
                    for cb in range(blocks):
                        co = g * CogP + cb * LANES * CB
                        for ox in range(Wo):
                            one = _activate_tile(tile_bias(b, co, 1, CB), act, alpha, beta)
                            tile_store(out, (oy * Wo + ox) * CoutP + co, CoutP, one, 1, CB)
                    continue
                k = 0
                for kyp in range(1 if all_rows else KH):
                    for piece in range(nsrc * chunks_max):
                        s = piece // chunks_max
                        xs = x if s == 0 else xb
                        ws = w if s == 0 else wb
                        Hi, Wi, Cin = xs.shape
                        Cig = ws.shape[3]
                        # this pass's input channels (of each group): [c0, c1)
                        c0 = (piece % chunks_max) * ic_chunk  # chunks_max is 1 without runs
                        c1 = min(Cig, c0 + ic_chunk) if ic_chunk > 0 else Cig
                        if c0 >= Cig:
                            continue
                        base = (y0 if s == 0 else y2) + oy * sy
                        kya = max(0, (dy - 1 - base) // dy)
                        kyb = min(KH, (Hi - 1 - base) // dy + 1)
                        if not all_rows:
                            kya = max(kya, kyp)
                            kyb = min(kyb, kyp + 1)
                        if kyb <= kya:
                            continue
                        first = k == 0
                        last = k == n_valid - 1
                        k += 1
                        xc = x0 if s == 0 else x2o
                        xstep = sx * Cin
                        # pixels whose taps all lie inside the source: [oxa, oxb)
                        oxa = min(max(0, (sx - 1 - xc) // sx), Wo)
                        oxb = min(Wo, max(oxa, (Wi - 1 - (KW - 1) * dx - xc) // sx + 1))
                        n_full = (oxb - oxa) // P
                        tiles_end = oxa + n_full * P
                        # without groups, column dilation or channel runs the taps of a kernel
                        # row join into one run of KW * Cin input channels (fewer, longer loops)
                        if G == 1 and dx == 1 and c1 - c0 == Cig:
                            runs, run_len, x_run, w_run = 1, KW * Cin, 0, 0
                        else:
                            runs, run_len, x_run, w_run = KW, c1 - c0, dx * Cin, Cig * CogP
                        row3 = row3_fits and KW == 3 and G == 1 and sx == 1 and dx == 1
                        kx_step = Cin * CogP
                        for cb in range(blocks):
                            co = g * CogP + cb * LANES * CB
                            w_cb = g * KH * KW * Cig * CogP + cb * LANES * CB
                            for ox in range(oxa, tiles_end, P):
                                oo = (oy * Wo + ox) * CoutP + co
                                if first and cb == 0 and sy == 1 and KH > 1:
                                    # the input row the next output row adds, over this tile: in L2
                                    # before it is needed (3x3 16->16 and 32->32 ran 7 and 3 % faster;
                                    # 1x1 and stride-2 layers, streamed in order, ran slower with it)
                                    ahead = ((base + (KH - 1) * dy + 1) * Wi + xc + ox) * Cin
                                    for q in range(0, P * Cin, LINE_FLOATS):
                                        if 0 <= ahead + q < xs.size:
                                            prefetch_l2(xs, ahead + q)
                                if first:
                                    acc = tile_bias(b, co, P, CB)
                                else:
                                    acc = tile_load(out, oo, CoutP, P, CB)
                                for ky in range(kya, kyb):
                                    xrow = ((base + ky * dy) * Wi + xc + ox * sx) * Cin + g * Cig
                                    w_ky = w_cb + ky * KW * Cig * CogP
                                    if row3:
                                        if P >= 12 and Cin == 16:
                                            for c in range(c0, c1):
                                                acc = tile_fma_row(acc, xs, xrow + c, 16, ws, w_ky + c * CogP, kx_step,
                                                                   P, CB, 3)
                                        elif P >= 12 and Cin == 32:
                                            for c in range(c0, c1):
                                                acc = tile_fma_row(acc, xs, xrow + c, 32, ws, w_ky + c * CogP, kx_step,
                                                                   P, CB, 3)
                                        else:
                                            for c in range(c0, c1):
                                                acc = tile_fma_row(acc, xs, xrow + c, Cin, ws, w_ky + c * CogP, kx_step,
                                                                   P, CB, 3)
                                        continue
                                    for r in range(runs):
                                        xo = xrow + c0 + r * x_run
                                        wo = w_ky + c0 * CogP + r * w_run
                                        # long tiles: with the pixel stride a constant, every pixel is
                                        # addressed off one pointer (else P pointers spill to the stack)
                                        if P >= 12 and xstep == 16:
                                            for t in range(run_len):
                                                acc = tile_fma_bcast(acc, xs, xo + t, 16, ws, wo + t * CogP, P, CB)
                                        elif P >= 12 and xstep == 32:
                                            for t in range(run_len):
                                                acc = tile_fma_bcast(acc, xs, xo + t, 32, ws, wo + t * CogP, P, CB)
                                        else:
                                            for t in range(run_len):
                                                acc = tile_fma_bcast(acc, xs, xo + t, xstep, ws, wo + t * CogP, P, CB)
                                if last:
                                    acc = _activate_tile(acc, act, alpha, beta)
                                tile_store(out, oo, CoutP, acc, P, CB)
                            # the rest one by one: border pixels (taps checked) and the remainder
                            for q in range(Wo - n_full * P):
                                ox = q if q < oxa else tiles_end + q - oxa
                                oo = (oy * Wo + ox) * CoutP + co
                                if first:
                                    one = tile_bias(b, co, 1, CB)
                                else:
                                    one = tile_load(out, oo, CoutP, 1, CB)
                                for ky in range(kya, kyb):
                                    iy = base + ky * dy
                                    w_ky = w_cb + ky * KW * Cig * CogP
                                    if row3:  # the row path's order: channel, then column
                                        for c in range(c0, c1):
                                            for kx in range(KW):
                                                ix = xc + ox + kx
                                                if ix >= 0 and ix < Wi:
                                                    one = tile_fma_bcast(one, xs, (iy * Wi + ix) * Cin + c, xstep, ws,
                                                                         w_ky + kx * kx_step + c * CogP, 1, CB)
                                        continue
                                    for kx in range(KW):
                                        ix = xc + ox * sx + kx * dx
                                        if ix >= 0 and ix < Wi:
                                            xo = (iy * Wi + ix) * Cin + g * Cig
                                            wo = w_ky + kx * Cig * CogP
                                            for t in range(c0, c1):
                                                one = tile_fma_bcast(one, xs, xo + t, xstep, ws, wo + t * CogP, 1, CB)
                                if last:
                                    one = _activate_tile(one, act, alpha, beta)
                                tile_store(out, oo, CoutP, one, 1, CB)
            if act == 4 or act == 5:
                _activate_rows(out, oy, act, alpha, beta)

    return kernel


#: Input and output channels from which a 3x3 stride-1 convolution takes
#: :func:`winograd_kernel` (AVX-512 only: with 64 channels it ran 1.2-1.25x the
#: direct kernel's speed; with 32 channels and below, or 8-lane vectors, the
#: transforms cost what the saved multiplies gain).  None: never.
WINOGRAD_MIN_CHANNELS = 64 if LANES == 16 else None


@functools.lru_cache(maxsize=None)
def winograd_kernel(P: int, CB: int):
    """3x3 stride-1 dense convolution by Winograd F(2,3) along rows, ``P x CB`` tiles of column pairs.

    The returned kernel ``(x, u, b, out, act, alpha, beta, y0, x0, phase,
    vbuf, mbuf)`` computes what :func:`dense_kernel` does for a 3x3 kernel at
    stride 1 without groups (window origin ``(y0, x0)``, zeros outside ``x``),
    with 4 multiplies per pair of output pixels and kernel row instead of 6.
    ``u (4, 3, Cin, CoP)`` holds the transformed weights ``g0, (g0+g1+g2)/2,
    (g0-g1+g2)/2, g2`` of every kernel row (:func:`~pipeline.kernels._packing.winograd_weights`);
    ``Cin`` must be a multiple of 8 and ``CoP`` of ``8 * CB``.

    Per output row, the four products ``m_k = sum_{ky,c} V_k[ky, c] * u[k, ky, c]``
    of each column pair are four matrix products over the transformed input
    rows ``V = (d0-d2, d1+d2, d2-d1, d1-d3)`` (``d`` four neighbouring input
    columns), accumulated with :func:`tile_fma_bcast` like a dense 1-wide
    kernel row; the bias starts ``m_1``.  The pair's outputs are
    ``(m_1 + m_0) + m_2`` and ``(m_1 - m_2) - m_3``, formed in registers
    when the last product of a tile is done.

    Pairs start at output columns whose *absolute* index is even: ``phase``
    is the absolute column of ``out``'s first column (mod 2).  The first
    output of a pair depends on ``d0..d2`` only and the second on ``d1..d3``
    only, so a pair cut by the window's edge still gives its in-window pixel
    exactly, and every pixel gets the same bits whichever block computes it.

    ``vbuf`` (``3 * 4 * NP * Cin`` floats) and ``mbuf`` (``4 * NP * CoP``)
    are scratch, ``NP = (phase % 2 + Wo + 1) // 2`` pairs: three transformed
    input rows (a ring over the kernel rows) and the products of one output row.
    """

    @numba.njit(**NUMBA_FLAGS)
    def kernel(x, u, b, out, act, alpha, beta, y0, x0, phase, vbuf, mbuf):
        Hi, Wi, C = x.shape
        Ho, Wo, CoP = out.shape
        par = phase % 2
        NP = (par + Wo + 1) // 2
        blocks = CoP // (LANES * CB)
        kstride = NP * C
        # pairs with both outputs inside out: [ja, jb), taken P at a time up to jt
        ja = par
        jb = (Wo + par) // 2
        n_full = max(0, jb - ja) // P
        jt = ja + n_full * P
        for oy in range(Ho):
            # transformed input rows y0 + oy + ky live in ring slot (oy + ky) % 3
            for ky in range(0 if oy == 0 else 2, 3):
                iy = y0 + oy + ky
                sb = ((oy + ky) % 3) * 4 * kstride
                if iy < 0 or iy >= Hi:
                    vbuf[sb : sb + 4 * kstride] = 0.0
                    continue
                for j in range(NP):
                    cx = x0 + 2 * j - par
                    if cx >= 0 and cx + 3 < Wi:
                        xo = (iy * Wi + cx) * C
                        for c in range(0, C, LANES):
                            winograd_input(x, xo + c, C, vbuf, sb + j * C + c, kstride)
                    else:  # a pair at the window's edge: zeros outside x
                        for c in range(C):
                            d0 = x[iy, cx, c] if 0 <= cx < Wi else np.float32(0.0)
                            d1 = x[iy, cx + 1, c] if 0 <= cx + 1 < Wi else np.float32(0.0)
                            d2 = x[iy, cx + 2, c] if 0 <= cx + 2 < Wi else np.float32(0.0)
                            d3 = x[iy, cx + 3, c] if 0 <= cx + 3 < Wi else np.float32(0.0)
                            vbuf[sb + j * C + c] = d0 - d2
                            vbuf[sb + kstride + j * C + c] = d1 + d2
                            vbuf[sb + 2 * kstride + j * C + c] = d2 - d1
                            vbuf[sb + 3 * kstride + j * C + c] = d1 - d3
            # one pass per (product, channel block, kernel row); the last forms the outputs
            for k in range(4):
                for cb in range(blocks):
                    co = cb * LANES * CB
                    for ky in range(3):
                        vb = (((oy + ky) % 3) * 4 + k) * kstride
                        ub = (k * 3 + ky) * C * CoP + co
                        last = k == 3 and ky == 2
                        for j in range(ja, jt, P):
                            mo = (k * NP + j) * CoP + co
                            if ky > 0:
                                acc = tile_load(mbuf, mo, CoP, P, CB)
                            elif k == 1:
                                acc = tile_bias(b, co, P, CB)
                            else:
                                acc = tile_zeros(P, CB)
                            xo = vb + j * C
                            for c in range(C):
                                acc = tile_fma_bcast(acc, vbuf, xo + c, C, u, ub + c * CoP, P, CB)
                            if not last:
                                tile_store(mbuf, mo, CoP, acc, P, CB)
                                continue
                            m1 = tile_load(mbuf, (NP + j) * CoP + co, CoP, P, CB)
                            m2 = tile_load(mbuf, (2 * NP + j) * CoP + co, CoP, P, CB)
                            second = tile_sub(tile_sub(m1, m2), acc)
                            first = tile_add(tile_add(m1, tile_load(mbuf, j * CoP + co, CoP, P, CB)), m2)
                            oo = (oy * Wo + 2 * j - par) * CoP + co
                            tile_store(out, oo, 2 * CoP, _activate_tile(first, act, alpha, beta), P, CB)
                            tile_store(out, oo + CoP, 2 * CoP, _activate_tile(second, act, alpha, beta), P, CB)
                        # the rest one pair at a time: cut pairs at the edges and the remainder
                        for q in range(NP - n_full * P):
                            j = q if q < ja else jt + q - ja
                            mo = (k * NP + j) * CoP + co
                            if ky > 0:
                                one = tile_load(mbuf, mo, CoP, 1, CB)
                            elif k == 1:
                                one = tile_bias(b, co, 1, CB)
                            else:
                                one = tile_zeros(1, CB)
                            xo = vb + j * C
                            for c in range(C):
                                one = tile_fma_bcast(one, vbuf, xo + c, C, u, ub + c * CoP, 1, CB)
                            if not last:
                                tile_store(mbuf, mo, CoP, one, 1, CB)
                                continue
                            m1 = tile_load(mbuf, (NP + j) * CoP + co, CoP, 1, CB)
                            m2 = tile_load(mbuf, (2 * NP + j) * CoP + co, CoP, 1, CB)
                            o = 2 * j - par
                            if o >= 0:
                                first = tile_add(tile_add(m1, tile_load(mbuf, j * CoP + co, CoP, 1, CB)), m2)
                                tile_store(out, (oy * Wo + o) * CoP + co, CoP, _activate_tile(first, act, alpha, beta),
                                           1, CB)
                            if o + 1 < Wo:
                                second = tile_sub(tile_sub(m1, m2), one)
                                tile_store(out, (oy * Wo + o + 1) * CoP + co, CoP,
                                           _activate_tile(second, act, alpha, beta), 1, CB)
            if act == 4 or act == 5:
                _activate_rows(out, oy, act, alpha, beta)

    return kernel


@functools.lru_cache(maxsize=None)
def depthwise_kernel(P: int, CB: int):
    """Valid depthwise convolution (one filter per channel) with ``P x CB`` tiles.

    The kernel ``(x, w, b, out, sy, sx, dy, dx, act, alpha, beta)`` reads
    ``x (H, W, CP)`` pre-padded, ``w (KH, KW, CP)``, ``b (CP,)`` and writes
    ``out (Ho, Wo, CP)``; ``CP`` must be a multiple of ``8 * CB``.  With
    ``stream`` the whole tiles are stored non-temporally (``out`` must then be
    aligned to the vector size): the layer is memory-bound, and its output is
    not read back before it leaves the caches.
    """

    @numba.njit(**NUMBA_FLAGS)
    def kernel(x, w, b, out, sy, sx, dy, dx, act, alpha, beta, stream=False):
        _, Wi, CP = x.shape
        KH, KW, _ = w.shape
        Ho, Wo, _ = out.shape
        blocks = CP // (LANES * CB)
        w_full = Wo - Wo % P
        xstep = sx * CP
        n = x.size
        for oy in range(Ho):
            for ox in range(0, w_full, P):
                # the input rows the next output row adds, over this tile's columns: in L2 before
                # they are needed (the layer is memory-bound: 3x3 over 512 x 512 x 64 ran 1.15-1.3x
                # faster with it, in runs beside the version without)
                for r in range(sy):
                    ahead = (((oy * sy + (KH - 1) * dy + 1 + r) * Wi) + ox * sx) * CP
                    for q in range(0, P * xstep, LINE_FLOATS):
                        if ahead + q < n:
                            prefetch_l2(x, ahead + q)
                for cb in range(blocks):
                    c0 = cb * LANES * CB
                    acc = tile_bias(b, c0, P, CB)
                    for ky in range(KH):
                        xrow = (oy * sy + ky * dy) * Wi
                        for kx in range(KW):
                            xo = (xrow + ox * sx + kx * dx) * CP + c0
                            acc = tile_fma_lanes(acc, x, xo, xstep, w, (ky * KW + kx) * CP + c0, P, CB)
                    acc = _activate_tile(acc, act, alpha, beta)
                    if stream:
                        tile_stream(out, (oy * Wo + ox) * CP + c0, CP, acc, P, CB)
                    else:
                        tile_store(out, (oy * Wo + ox) * CP + c0, CP, acc, P, CB)
            for ox in range(w_full, Wo):
                for cb in range(blocks):
                    c0 = cb * LANES * CB
                    one = tile_bias(b, c0, 1, CB)
                    for ky in range(KH):
                        xrow = (oy * sy + ky * dy) * Wi
                        for kx in range(KW):
                            xo = (xrow + ox * sx + kx * dx) * CP + c0
                            one = tile_fma_lanes(one, x, xo, xstep, w, (ky * KW + kx) * CP + c0, 1, CB)
                    one = _activate_tile(one, act, alpha, beta)
                    tile_store(out, (oy * Wo + ox) * CP + c0, CP, one, 1, CB)
            if act == 4 or act == 5:
                _activate_rows(out, oy, act, alpha, beta)

    return kernel


@functools.lru_cache(maxsize=None)
def transpose_kernel(P: int, CB: int):
    """Transposed convolution over a window of its output, with ``P x CB`` tiles.

    The kernel ``(x, w, b, out, sy, sx, dy, dx, act, alpha, beta, uy, ux)``
    reads ``x (H, W, G*Cig)``, ``w (G, KH, KW, Cig, CogP)`` and ``b (G*CogP,)``
    and writes every element of ``out (Ho, Wo, G*CogP)``::

        out[oy, ox] = act(b + sum x[i, j] @ w[ky, kx])  over  i*sy + ky*dy = uy + oy,
                                                              j*sx + kx*dx = ux + ox

    with ``(i, j)`` inside ``x``: ``(uy, ux)`` places the window in the full
    (unpadded, uncropped) transposed output of ``x``, and pixels no tap reaches
    get the bias.  Each output tile gathers its taps in registers (pixels of one
    column residue modulo ``sx`` share their taps) and is stored once, bias and
    activation applied: no zeroing, no read-modify-write, no cropping copy.

    The 2-wide, stride-2 upsampling of a U-Net (``G == 1``, ``CogP == 8 * CB``)
    can instead take both columns an input pixel reaches in one tile, when
    ``w2 (KH, Cin, 2, CogP)`` (the weights with ``kx`` next to the output
    channels) and ``b2`` (the bias twice) are given: each broadcast input feeds
    twice the FMAs, and the two output pixels are stored side by side.  Every
    output pixel still sums its one tap's channels in the same order.
    """
    P2, CB2 = (_PIXELS_FOR_VECTORS[2 * CB], 2 * CB) if 2 * CB in _PIXELS_FOR_VECTORS else (1, 0)

    @numba.njit(**NUMBA_FLAGS)
    def kernel(x, w, b, out, sy, sx, dy, dx, act, alpha, beta, uy, ux, w2=None, b2=None):
        H, Wi, Cin = x.shape
        G, KH, KW, Cig, CogP = w.shape
        Ho, Wo, CoutP = out.shape
        blocks = CogP // (LANES * CB)
        ostep = sx * CoutP
        # output columns 2j and 2j + 1 from input column j together (written inline: a jitted
        # helper made in the factory would enter this kernel's closure and defeat Numba's disk cache)
        pairs = (w2 is not None and b2 is not None and CB2 > 0 and G == 1 and KW == 2 and sx == 2 and dx == 1
                 and CogP == LANES * CB)
        # the taps that reach an output row / column residue, found once, outside the tile loop
        kys = np.empty(KH, np.int64)
        iys = np.empty(KH, np.int64)
        kxs = np.empty(KW, np.int64)
        cols = np.empty(KW, np.int64)
        for oy in range(Ho):
            u = uy + oy
            nky = 0
            for ky in range(KH):
                t = u - ky * dy
                if t % sy == 0 and t >= 0 and t // sy < H:
                    kys[nky] = ky
                    iys[nky] = t // sy
                    nky += 1
            if pairs:
                # pairs: input columns j whose two output columns 2j - ux, 2j + 1 - ux both lie in [0, Wo)
                ja = max(0, (ux + 1) // 2)
                jb = max(ja, min(Wi, (ux + Wo) // 2))
                n_full = (jb - ja) // P2
                tiles_end = ja + n_full * P2
                for j in range(ja, tiles_end, P2):
                    acc = tile_bias(b2, 0, P2, CB2)
                    for a in range(nky):
                        xo = (iys[a] * Wi + j) * Cin
                        wo = kys[a] * Cin * 2 * CogP
                        for ci in range(Cin):
                            acc = tile_fma_bcast(acc, x, xo + ci, Cin, w2, wo + ci * 2 * CogP, P2, CB2)
                    acc = _activate_tile(acc, act, alpha, beta)
                    tile_store(out, (oy * Wo + 2 * j - ux) * CoutP, 2 * CoutP, acc, P2, CB2)
                # every other column one by one, in the same order: ky, then channel
                for ox in range(Wo):
                    v = ux + ox
                    j = v // 2
                    if j >= ja and j < tiles_end:
                        continue
                    one = tile_bias(b, 0, 1, CB)
                    if j >= 0 and j < Wi:
                        for a in range(nky):
                            xo = (iys[a] * Wi + j) * Cin
                            wo = (kys[a] * KW + v - 2 * j) * Cin * CogP
                            for ci in range(Cin):
                                one = tile_fma_bcast(one, x, xo + ci, Cin, w, wo + ci * CogP, 1, CB)
                    one = _activate_tile(one, act, alpha, beta)
                    tile_store(out, (oy * Wo + ox) * CoutP, CoutP, one, 1, CB)
                if act == 4 or act == 5:
                    _activate_rows(out, oy, act, alpha, beta)
                continue
            for g in range(G):
                for cb in range(blocks):
                    co = g * CogP + cb * LANES * CB
                    for r in range(sx):
                        ox0 = (r - ux) % sx  # first output column of residue r
                        if ox0 >= Wo:
                            continue
                        n = (Wo - ox0 + sx - 1) // sx
                        v0 = ux + ox0  # its full-output column; pixel m is v0 + m*sx
                        # taps kx reaching this residue: pixel m reads input column m + cols[e]
                        nkx = 0
                        for kx in range(KW):
                            if (v0 - kx * dx) % sx == 0:
                                kxs[nkx] = kx
                                cols[nkx] = (v0 - kx * dx) // sx
                                nkx += 1
                        # pixels m whose every tap column lies in [0, Wi)
                        ma, mb = 0, n
                        for e in range(nkx):
                            ma = max(ma, -cols[e])
                            mb = min(mb, Wi - cols[e])
                        ma = min(ma, n)
                        mb = max(mb, ma)
                        n_full = (mb - ma) // P
                        tiles_end = ma + n_full * P
                        for m in range(ma, tiles_end, P):
                            acc = tile_bias(b, co, P, CB)
                            for a in range(nky):
                                for e in range(nkx):
                                    xo = (iys[a] * Wi + m + cols[e]) * Cin + g * Cig
                                    wo = ((g * KH + kys[a]) * KW + kxs[e]) * Cig * CogP + cb * LANES * CB
                                    # long tiles: a constant pixel stride, one pointer for every pixel
                                    if P >= 12 and Cin == 32:
                                        for ci in range(Cig):
                                            acc = tile_fma_bcast(acc, x, xo + ci, 32, w, wo + ci * CogP, P, CB)
                                    elif P >= 12 and Cin == 64:
                                        for ci in range(Cig):
                                            acc = tile_fma_bcast(acc, x, xo + ci, 64, w, wo + ci * CogP, P, CB)
                                    else:
                                        for ci in range(Cig):
                                            acc = tile_fma_bcast(acc, x, xo + ci, Cin, w, wo + ci * CogP, P, CB)
                            acc = _activate_tile(acc, act, alpha, beta)
                            tile_store(out, (oy * Wo + ox0 + m * sx) * CoutP + co, ostep, acc, P, CB)
                        for q in range(n - n_full * P):
                            m = q if q < ma else tiles_end + q - ma
                            one = tile_bias(b, co, 1, CB)
                            for a in range(nky):
                                for e in range(nkx):
                                    j = m + cols[e]
                                    if j < 0 or j >= Wi:
                                        continue
                                    xo = (iys[a] * Wi + j) * Cin + g * Cig
                                    wo = ((g * KH + kys[a]) * KW + kxs[e]) * Cig * CogP + cb * LANES * CB
                                    for ci in range(Cig):
                                        one = tile_fma_bcast(one, x, xo + ci, Cin, w, wo + ci * CogP, 1, CB)
                            one = _activate_tile(one, act, alpha, beta)
                            tile_store(out, (oy * Wo + ox0 + m * sx) * CoutP + co, ostep, one, 1, CB)
            if act == 4 or act == 5:
                _activate_rows(out, oy, act, alpha, beta)

    return kernel


@numba.njit(**NUMBA_FLAGS)
def max_pool_kernel(x, out, KH, KW, sy, sx, dy, dx, y0, x0):
    """Max pooling of a window of ``x`` read as ``-inf`` outside it.

    ``out[oy, ox] = max x[y0 + oy*sy + ky*dy, x0 + ox*sx + kx*dx]`` over the
    taps inside ``x`` (``-inf`` if none): the window may leave ``x``, whose
    padding is supplied here.  ``x (H, W, C)``, ``out (Ho, Wo, C)``, both
    C-contiguous; whole 8-channel vectors go through registers, the last
    ``C % 8`` channels one by one.
    """
    H, W, C = x.shape
    Ho, Wo, _ = out.shape
    nv = C // LANES
    for oy in range(Ho):
        kya = max(0, (dy - 1 - (y0 + oy * sy)) // dy)
        kyb = min(KH, (H - 1 - (y0 + oy * sy)) // dy + 1)
        for ox in range(Wo):
            o = (oy * Wo + ox) * C
            kxa = max(0, (dx - 1 - (x0 + ox * sx)) // dx)
            kxb = min(KW, (W - 1 - (x0 + ox * sx)) // dx + 1)
            if kyb <= kya or kxb <= kxa:
                out[oy, ox, :] = -np.inf
                continue
            i0 = ((y0 + oy * sy + kya * dy) * W + x0 + ox * sx + kxa * dx) * C
            for j in range(nv):
                acc = tile_load(x, i0 + j * LANES, 0, 1, 1)
                for ky in range(kya, kyb):
                    for kx in range(kxa, kxb):
                        i = ((y0 + oy * sy + ky * dy) * W + x0 + ox * sx + kx * dx) * C + j * LANES
                        acc = tile_max(acc, tile_load(x, i, 0, 1, 1))
                tile_store(out, o + j * LANES, 0, acc, 1, 1)
            for c in range(nv * LANES, C):
                m = x[y0 + oy * sy + kya * dy, x0 + ox * sx + kxa * dx, c]
                for ky in range(kya, kyb):
                    for kx in range(kxa, kxb):
                        m = max(m, x[y0 + oy * sy + ky * dy, x0 + ox * sx + kx * dx, c])
                out[oy, ox, c] = m
