"""Convolution kernels, one thread each: ours vs PyTorch (NCHW, channels_last) vs ONNX Runtime.

Run ``python -m benchmarks.kernels [--quick]`` from the repository root.

For every shape the methods get the same weights and input; their outputs are
checked against each other *before* timing (exit code 1 if any disagrees by
more than 1e-3 relative: a fast wrong kernel is never reported).  Methods are
then timed in interleaved rounds (ABCABC...), each timed call lasting at least
``--min-ms``, together with an FMA loop that measures this core's peak in the
same run.  Our kernel is timed on the pre-padded channels-last input, without
weight packing (done once per model load).  Every method allocates its output
on every call; the process keeps freed memory in glibc's heap
(:func:`~benchmarks._timing.keep_freed_memory`), so no method pays the OS to
fault in and zero fresh pages per call, as the pipeline, which reuses its
block buffers, does not.  Results: a table on stdout,
``benchmarks/results/kernels.json`` and ``benchmarks/results/kernels.png``.
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy, numba, torch, onnxruntime are imported

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

from benchmarks.report import machine_info  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from ._timing import FmaPeak, interleaved_rounds, keep_freed_memory  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TOLERANCE = 1e-3


@dataclass(frozen=True)
class Shape:
    """One layer: ``kind`` is ``conv`` (incl. grouped/depthwise) or ``convT``."""

    name: str
    cin: int
    cout: int
    k: int
    stride: int = 1
    groups: int = 1
    kind: str = "conv"

    def pad(self) -> int:
        return self.k // 2 if self.kind == "conv" else 0

    def flop(self, size: int) -> float:
        if self.kind == "convT":
            return 2.0 * size * size * self.cin * self.cout * self.k * self.k / self.groups
        out = (size + 2 * self.pad() - self.k) // self.stride + 1
        return 2.0 * out * out * self.cout * (self.cin // self.groups) * self.k * self.k


SHAPES = [
    Shape("conv3x3 16->16", 16, 16, 3),
    Shape("conv3x3 32->32", 32, 32, 3),
    Shape("conv3x3 64->64", 64, 64, 3),
    Shape("conv1x1 64->128", 64, 128, 1),
    Shape("depthwise3x3 64", 64, 64, 3, groups=64),
    Shape("conv3x3/2 32->64", 32, 64, 3, stride=2),
    Shape("convT2x2/2 64->32", 64, 32, 2, stride=2, kind="convT"),
]
#: Shapes whose % of peak is a target (3x3 with 32 and 64 channels).
PEAK_TARGETS = {"conv3x3 32->32", "conv3x3 64->64"}


# -- the methods ----------------------------------------------------------------

def _lanes() -> int:
    from pipeline.kernels._conv import LANES

    return LANES


def ours(shape: Shape, x_chw: np.ndarray, W: np.ndarray, b: np.ndarray):
    from pipeline import kernels as K

    p = shape.pad()
    x = np.ascontiguousarray(np.pad(x_chw.transpose(1, 2, 0), ((p, p), (p, p), (0, 0))))
    if shape.kind == "convT":
        packed = K.pack_conv_transpose_weights(W, shape.groups)
        return lambda: K.conv_transpose2d(x, packed, stride=(shape.stride, shape.stride)), (2, 0, 1)
    packed = K.pack_conv_weights(W, shape.groups)
    return lambda: K.conv2d(x, packed, b, stride=(shape.stride, shape.stride)), (2, 0, 1)


def winograd_taken(shape: Shape, W: np.ndarray) -> bool:
    """Whether our conv of ``shape`` runs by Winograd F(2,3) (3x3 stride 1, wide layers, AVX-512)."""
    from pipeline import kernels as K

    return shape.kind == "conv" and shape.stride == 1 and K.pack_conv_weights(W, shape.groups).winograd is not None


def ours_direct(shape: Shape, x_chw: np.ndarray, W: np.ndarray, b: np.ndarray):
    """Our direct-convolution kernel on a layer that would otherwise take Winograd.

    ``channel_run`` set explicitly (to the value the direct path would pick)
    selects the direct kernel; timed beside Winograd so both are reported.
    """
    from pipeline import kernels as K
    from pipeline.kernels._conv import LANES, pass_channels, tile_shape

    p = shape.pad()
    x = np.ascontiguousarray(np.pad(x_chw.transpose(1, 2, 0), ((p, p), (p, p), (0, 0))))
    packed = K.pack_conv_weights(W, shape.groups)
    _, cb = tile_shape(packed.weights.shape[-1] // LANES, taps_per_row=shape.k * shape.cin)
    run = pass_channels(cb, shape.k, shape.cin) or shape.cin
    out = (x.shape[0] - shape.k + 1, x.shape[1] - shape.k + 1)
    return lambda: K.conv2d_window([x], [(0, 0)], [packed], b, out, channel_run=run)


def torch_method(shape: Shape, x_chw, W, b, *, channels_last: bool):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.from_numpy(x_chw[None]).contiguous(memory_format=fmt)
    w = torch.from_numpy(W).contiguous(memory_format=fmt)
    if shape.kind == "convT":
        def run():
            with torch.no_grad():
                return F.conv_transpose2d(x, w, None, stride=shape.stride, groups=shape.groups)
    else:
        bt = torch.from_numpy(b)

        def run():
            with torch.no_grad():
                return F.conv2d(x, w, bt, stride=shape.stride, padding=shape.pad(), groups=shape.groups)
    return run


def ort_method(shape: Shape, x_chw, W, b):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    op = "ConvTranspose" if shape.kind == "convT" else "Conv"
    p = shape.pad()
    inputs = ["x", "W"] + ([] if shape.kind == "convT" else ["b"])
    node = helper.make_node(op, inputs, ["y"], kernel_shape=[shape.k] * 2, strides=[shape.stride] * 2,
                            pads=[p] * 4, group=shape.groups)
    inits = [numpy_helper.from_array(W, "W")] + ([] if shape.kind == "convT" else [numpy_helper.from_array(b, "b")])
    graph = helper.make_graph([node], "one_node", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *x_chw.shape])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "c", "h", "w"])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feed = {"x": x_chw[None]}
    return lambda: sess.run(None, feed)[0]


# -- one shape ---------------------------------------------------------------------

def _as_chw(name: str, y, perm) -> np.ndarray:
    if name.startswith("torch"):
        return y[0].contiguous().numpy()
    if name == "onnxruntime":
        return np.asarray(y)[0]
    return np.ascontiguousarray(np.asarray(y).transpose(perm))


def check_agreement(shape: Shape, outputs: dict[str, np.ndarray]) -> dict[str, float]:
    """Max relative disagreement of every method with PyTorch NCHW; exits 1 beyond TOLERANCE."""
    ref = outputs["torch NCHW"].astype(np.float64)
    scale = max(np.abs(ref).max(), 1e-12)
    errors = {}
    for name, y in outputs.items():
        if y.shape != ref.shape:
            sys.exit(f"FAIL {shape.name}: {name} gives shape {y.shape}, torch NCHW {ref.shape}.")
        errors[name] = float(np.abs(y.astype(np.float64) - ref).max() / scale)
        if not errors[name] <= TOLERANCE:
            sys.exit(f"FAIL {shape.name}: {name} disagrees with torch NCHW by {errors[name]:.2e} "
                     f"(relative, limit {TOLERANCE:g}). Not timing a wrong kernel.")
    return errors


def bench_shape(shape: Shape, size: int, *, rounds: int, min_seconds: float, peak: FmaPeak | None) -> dict:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((shape.cin, size, size)).astype(np.float32)
    if shape.kind == "convT":
        W = (rng.standard_normal((shape.cin, shape.cout // shape.groups, shape.k, shape.k)) * 0.1).astype(np.float32)
    else:
        W = (rng.standard_normal((shape.cout, shape.cin // shape.groups, shape.k, shape.k)) * 0.1).astype(np.float32)
    b = rng.standard_normal(shape.cout).astype(np.float32)

    t0 = time.perf_counter()
    ours_run, perm = ours(shape, x, W, b)
    first = ours_run()
    first_call = time.perf_counter() - t0
    winograd = winograd_taken(shape, W)
    methods = {
        "ours": ours_run,
        **({"ours (direct)": ours_direct(shape, x, W, b)} if winograd else {}),
        "torch NCHW": torch_method(shape, x, W, b, channels_last=False),
        "torch channels_last": torch_method(shape, x, W, b, channels_last=True),
        "onnxruntime": ort_method(shape, x, W, b),
    }
    outputs = {name: _as_chw(name, first if name == "ours" else fn(), perm) for name, fn in methods.items()}
    errors = check_agreement(shape, outputs)
    del outputs, first

    timed = dict(methods)
    if peak is not None:
        timed["fma peak"] = peak.run
    times = interleaved_rounds(timed, rounds=rounds, min_seconds=min_seconds)
    flop = shape.flop(size)
    gflops = {name: flop / np.asarray(t) / 1e9 for name, t in times.items() if name != "fma peak"}
    baselines = [n for n in gflops if not n.startswith("ours")]
    best_per_round = np.max([gflops[n] for n in baselines], axis=0)
    result = {
        "shape": shape.__dict__,
        "size": size,
        "flop": flop,
        "max_rel_error_vs_torch_nchw": errors,
        "ours_first_call_s": first_call,
        "gflops": {n: {"min": float(v.min()), "median": float(np.median(v)), "rounds": v.tolist()}
                   for n, v in gflops.items()},
        "ratio_ours_to_best_baseline_median": float(np.median(gflops["ours"] / best_per_round)),
        "best_baseline": max(baselines, key=lambda n: np.median(gflops[n])),
        # Winograd F(2,3) does 2/3 of the direct convolution's multiplies; GFLOP/s
        # everywhere count the direct convolution's FLOPs (the same work for every method)
        "ours_algorithm": "winograd F(2,3) along rows" if winograd else "direct",
    }
    if winograd:
        result["direct_ratio_to_best_baseline_median"] = float(np.median(gflops["ours (direct)"] / best_per_round))
    if peak is not None:
        peak_gflops = peak.flop / np.asarray(times["fma peak"]) / 1e9
        result["peak_gflops"] = {"min": float(peak_gflops.min()), "median": float(np.median(peak_gflops))}
        result["ours_pct_of_peak_median"] = float(np.median(gflops["ours"] / peak_gflops) * 100)
        if winograd:
            result["direct_pct_of_peak_median"] = float(np.median(gflops["ours (direct)"] / peak_gflops) * 100)
            # the multiply-adds Winograd runs (transforms not counted), as a share of the peak
            result["ours_executed_pct_of_peak_median"] = result["ours_pct_of_peak_median"] * 2 / 3
    return result


# -- cold start ----------------------------------------------------------------------

_COLD = """
import os, time
os.environ["NUMBA_NUM_THREADS"] = "1"
t0 = time.perf_counter()
import numpy as np
from pipeline import kernels as K
t1 = time.perf_counter()
x = np.zeros((34, 34, 32), np.float32)
K.conv2d(x, K.pack_conv_weights(np.zeros((32, 32, 3, 3))), None)
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def cold_start() -> dict:
    """Import time and first-conv time in fresh processes: empty Numba cache, then warm cache."""
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("compile (empty cache)", "load (warm cache)"):
            res = subprocess.run([sys.executable, "-c", _COLD], env=env, capture_output=True, text=True,
                                 cwd=Path(__file__).resolve().parent.parent)
            if res.returncode != 0:
                return {"error": res.stderr.strip()[-300:]}
            imp, first = map(float, res.stdout.split())
            out[label] = {"import_s": imp, "first_conv3x3_s": first}
    return out


# -- reporting -----------------------------------------------------------------------

def print_table(results: list[dict], peak_ok: bool) -> None:
    cols = ["ours", "torch NCHW", "torch channels_last", "onnxruntime"]
    head = f"{'shape':20s}" + "".join(f"{c:>22s}" for c in cols) + f"{'ours/best':>11s}" + (f"{'%peak':>7s}" if peak_ok else "")
    print("GFLOP/s, one thread: median (min) over rounds")
    print(head)
    for r in results:
        row = f"{r['shape']['name']:20s}"
        for c in cols:
            g = r["gflops"][c]
            row += f"{g['median']:>14.1f} ({g['min']:5.1f})"
        row += f"{r['ratio_ours_to_best_baseline_median']:>11.2f}"
        if peak_ok:
            row += f"{r['ours_pct_of_peak_median']:>6.0f}%"
        print(row)
        if "ours (direct)" in r["gflops"]:
            g = r["gflops"]["ours (direct)"]
            row = f"{'  direct kernel':20s}{g['median']:>14.1f} ({g['min']:5.1f})" + " " * 66
            row += f"{r['direct_ratio_to_best_baseline_median']:>11.2f}"
            if peak_ok:
                row += f"{r['direct_pct_of_peak_median']:>6.0f}%"
            print(row)
    if peak_ok:
        print("FMA peak in the same run (median per shape): "
              + ", ".join(f"{r['peak_gflops']['median']:.0f}" for r in results) + " GFLOP/s")


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = ["ours", "torch NCHW", "torch channels_last", "onnxruntime"]
    fig, ax = plt.subplots(figsize=(12, 5))
    n = len(results)
    width = 0.8 / len(cols)
    for i, c in enumerate(cols):
        ax.bar(np.arange(n) + i * width, [r["gflops"][c]["median"] for r in results], width, label=c)
    if "peak_gflops" in results[0]:
        for j, r in enumerate(results):
            ax.hlines(r["peak_gflops"]["median"], j - width / 2, j + 0.8 - width / 2, colors="k", linestyles="--",
                      label="FMA peak (same run)" if j == 0 else None)
    ax.set_xticks(np.arange(n) + 0.4 - width / 2, [r["shape"]["name"] for r in results], rotation=20, ha="right")
    ax.set_ylabel("GFLOP/s (median of rounds, one thread)")
    ax.set_title(f"Convolution kernels on a {results[0]['size']}x{results[0]['size']} map")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="256x256 map, 5 rounds of 20 ms calls")
    ap.add_argument("--size", type=int, default=None, help="map edge in pixels (default 512, quick 256)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 7, quick 5)")
    ap.add_argument("--min-ms", type=float, default=None, help="minimum duration of a timed call (default 50, quick 20)")
    ap.add_argument("--only", default=None, help="run shapes whose name contains this text")
    ap.add_argument("--out", type=Path, default=RESULTS, help="directory for kernels.json and kernels.png")
    args = ap.parse_args(argv)
    size = args.size or (256 if args.quick else 512)
    rounds = max(5, args.rounds or (5 if args.quick else 7))
    min_seconds = (args.min_ms or (20 if args.quick else 50)) / 1000

    heap_reuse = keep_freed_memory()
    peak = FmaPeak()
    if not peak.available:
        print(f"note: no FMA peak measured ({peak.reason})")
    shapes = [s for s in SHAPES if args.only is None or args.only in s.name]
    results = []
    for shape in shapes:
        print(f"... {shape.name}", file=sys.stderr, flush=True)
        results.append(bench_shape(shape, size, rounds=rounds, min_seconds=min_seconds,
                                   peak=peak if peak.available else None))
    cold = cold_start()

    import numba
    import onnxruntime
    import torch

    report = {
        "command": "python -m benchmarks.kernels " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {**machine_info(), "processor": platform.processor(), "cpu_count": os.cpu_count(),
                    "python": platform.python_version()},
        "versions": {"numba": numba.__version__, "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
                     "numpy": np.__version__},
        "threads": 1,
        "freed_memory_reused": heap_reuse,
        "rounds": rounds,
        "min_call_seconds": min_seconds,
        "peak_targets": sorted(PEAK_TARGETS),
        "peak_isa": peak.isa if peak.available else None,
        "vector_lanes": _lanes(),
        "results": results,
        "cold_start": cold,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "kernels.json").write_text(json.dumps(report, indent=1))
    print_table(results, peak.available)
    for label, v in cold.items():
        print(f"cold start, {label}: {v}")
    plot(results, args.out / "kernels.png")
    print(f"wrote {args.out / 'kernels.json'} and {args.out / 'kernels.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
