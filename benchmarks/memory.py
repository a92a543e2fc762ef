"""Memory: peak RSS of our workers and client against image size, vs ONNX Runtime on the whole image.

Run ``python -m benchmarks.memory [--quick]`` from the repository root.

Every point runs in a fresh Python process with a fresh embedded cluster (2
workers x 1 thread), so ``ru_maxrss`` is that run's own peak: the workers'
(``client.run(resource.getrusage(...).ru_maxrss)`` after warm-up and after
the run) and the client's.  The input is generated lazily (a smooth uint16
pattern computed for whatever window a block reads, as it would read a Zarr
array, never held whole), normalised with
a fixed range, predicted and written to plain Zarr in a temporary directory;
the top-left 2048 x 2048 of every output is checked against ONNX Runtime on
that crop (exit code 1 beyond 1e-3).  Two networks: the shipped U-Net, and a
cheap 2-layer conv network (1 -> 8 -> 2 channels, 3x3) for the largest
sizes, where the U-Net would take too long on two cores.

ONNX Runtime runs the same network on the whole image (2 threads, input in
memory) in a subprocess per size, at sizes whose predicted peak (linear in
pixels from the smaller sizes) stays under half the memory available; a line
fitted to those points is extrapolated (and labelled so) to where it would
exhaust this machine's RAM.
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from .e2e import MODEL, ROOT, ort_session  # noqa: E402
from .report import GIB, RESULTS, command_line, machine_info, write_json  # noqa: E402

MIB = 1024**2
TOLERANCE = 1e-3
CHECK_EDGE = 2048
NORMALIZE = ("range", 0.0, 4095.0)
BLOCK = 1024
PLANS = {
    # (network, image edges) for our pipeline; ORT gets the same networks
    # quick: 4/16/64 MPix so that `make bench-quick` stays near 6 minutes on 2 shared cores
    # (16/64/256 MPix took 150 s for two-conv alone there); full: 64/256/1074 MPix
    "quick": {"two-conv": [2048, 4096, 8192], "unet": [2048]},
    "full": {"two-conv": [8192, 16384, 32768], "unet": [4096, 8192]},
}
ORT_EDGES = {"two-conv": [2048, 4096, 8192, 16384, 32768], "unet": [1024, 2048, 4096, 8192]}


# -- the networks ------------------------------------------------------------------------------

def _two_conv_weights():
    rng = np.random.default_rng(0)
    w1 = (rng.standard_normal((8, 1, 3, 3)) * 0.5).astype(np.float32)
    b1 = (rng.standard_normal(8) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((2, 8, 3, 3)) * 0.3).astype(np.float32)
    b2 = (rng.standard_normal(2) * 0.1).astype(np.float32)
    return w1, b1, w2, b2


def two_conv_model():
    """Conv 3x3 1 -> 8, ReLU, Conv 3x3 8 -> 2 (zero padding), as a pipeline Model."""
    from pipeline.model import Model, Node

    w1, b1, w2, b2 = _two_conv_weights()
    return Model([Node("c1", "Conv", ["input"], {"pads": 1}, {"W": w1, "B": b1}),
                  Node("r1", "Relu", ["c1"]),
                  Node("c2", "Conv", ["r1"], {"pads": 1}, {"W": w2, "B": b2})],
                 input_channels=1, name="two-conv")


def two_conv_onnx(path: Path) -> Path:
    """The same network as an ONNX file, built with onnx.helper from the same weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w1, b1, w2, b2 = _two_conv_weights()
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))]
    graph = helper.make_graph(nodes, "two_conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, "h", "w"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, "h", "w"])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def network(kind: str, tmp: Path):
    """(pipeline Model, ONNX path) of ``kind``."""
    import pipeline

    if kind == "unet":
        return pipeline.load_model(MODEL), MODEL
    return two_conv_model(), two_conv_onnx(tmp / "two-conv.onnx")


# -- the lazy input ------------------------------------------------------------------------------

def pattern(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Smooth blobs in camera counts; a pure function of the pixel position."""
    v = np.sin(y / 23.0) * np.cos(x / 31.0) + 0.5 * np.sin((x + y) / 57.0)
    return ((v + 1.5) * 1200 + 100).astype(np.uint16)


class PatternStore:
    """The pattern as a store any window can be read from (as from a Zarr array), computed on request."""

    def __init__(self, edge: int):
        self.shape, self.dtype, self.ndim = (edge, edge), np.dtype(np.uint16), 2

    def __getitem__(self, index) -> np.ndarray:
        ys, xs = (range(*s.indices(n)) for s, n in zip(index, self.shape))
        y, x = np.meshgrid(np.asarray(ys, np.float64), np.asarray(xs, np.float64), indexing="ij")
        return pattern(y, x)


def lazy_image(edge: int):
    """The input, never held whole: blocks read their haloed windows from a :class:`PatternStore`."""
    import dask.array as da

    return da.from_array(PatternStore(edge), chunks=BLOCK)


def _normalised(a: np.ndarray) -> np.ndarray:
    lo, hi = NORMALIZE[1:]
    return ((a.astype(np.float32) - np.float32(lo)) / np.float32(hi - lo)).astype(np.float32)


# -- one point (in its own process) -------------------------------------------------------------

def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def pipeline_point(kind: str, edge: int, tmp: Path) -> dict:
    import zarr

    import pipeline
    from pipeline import io
    from pipeline.cluster import connect, warm_up

    model, onnx_path = network(kind, tmp)
    url = str(tmp / "out.zarr")
    with connect(workers=2, threads_per_worker=1, echo=None) as client:
        warm_up(client, model)
        before = client.run(_maxrss_bytes)
        t0 = time.perf_counter()
        probs = pipeline.predict(lazy_image(edge), model, chunks=BLOCK, normalize=NORMALIZE)
        io.write_image(probs, url, axes=("c", "y", "x"), ome=False,
                       executor=lambda tasks, label: client.compute(tasks, sync=True))
        seconds = time.perf_counter() - t0
        after = client.run(_maxrss_bytes)
    client_peak = _maxrss_bytes()  # before the check below, which runs ONNX Runtime in this process
    # independent check: ONNX Runtime on the top-left crop (exact away from the crop's far edges)
    crop = min(CHECK_EDGE, edge)
    yy, xx = np.meshgrid(np.arange(crop, dtype=np.float64), np.arange(crop, dtype=np.float64), indexing="ij")
    ref = ort_session(onnx_path, 2)(_normalised(pattern(yy, xx))[None, None])[0]
    keep = crop if crop == edge else crop - 2 * max(model.geometry.halo)
    got = zarr.open_array(store=url, mode="r")[:, :keep, :keep]
    err = float(np.abs(got - ref[:, :keep, :keep]).max())
    return {
        "network": kind,
        "edge": edge,
        "megapixels": edge * edge / 1e6,
        "seconds": seconds,
        "workers_peak_rss_bytes": sorted(after.values()),
        "workers_rss_after_warmup_bytes": sorted(before.values()),
        "client_peak_rss_bytes": client_peak,
        "max_abs_diff_vs_onnxruntime_crop": err,
    }


def ort_point(kind: str, edge: int, tmp: Path) -> dict:
    _, onnx_path = network(kind, tmp)
    infer = ort_session(onnx_path, 2)
    x = np.random.default_rng(0).random((1, 1, edge, edge), dtype=np.float32)
    t0 = time.perf_counter()
    y = infer(x)
    seconds = time.perf_counter() - t0
    if y.shape != (1, 2, edge, edge):
        raise SystemExit(f"FAIL memory: onnxruntime output shape {y.shape}, expected {(1, 2, edge, edge)}.")
    return {"network": kind, "edge": edge, "megapixels": edge * edge / 1e6, "seconds": seconds,
            "peak_rss_bytes": _maxrss_bytes()}


def in_subprocess(what: str, kind: str, edge: int, tmp: str | None) -> dict:
    """Run one point in a fresh interpreter; its JSON result."""
    cmd = [sys.executable, "-m", "benchmarks.memory", "--point", what, kind, str(edge)]
    if tmp:
        cmd += ["--tmp", tmp]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"FAIL memory: {what} {kind} {edge}: {res.stderr.strip()[-500:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# -- the sweep ---------------------------------------------------------------------------------

def available_bytes() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def fit_line(points: list[dict]) -> tuple[float, float] | None:
    """``(intercept bytes, bytes per megapixel)`` through the ONNX Runtime points."""
    if len(points) < 2:
        return None
    mp = np.array([p["megapixels"] for p in points])
    rss = np.array([p["peak_rss_bytes"] for p in points], np.float64)
    slope, icpt = np.polyfit(mp, rss, 1)
    return float(icpt), float(slope)


def predicted_peak(points: list[dict], megapixels: float) -> float:
    line = fit_line(points)
    if line is None:  # one point: proportional to pixels
        p = points[-1]
        return p["peak_rss_bytes"] * megapixels / p["megapixels"]
    return line[0] + line[1] * megapixels


def sweep(mode: str, tmp: str | None) -> dict:
    ours, ort = [], {}
    for kind, edges in PLANS[mode].items():
        for edge in edges:
            print(f"... pipeline {kind} {edge} x {edge}", file=sys.stderr, flush=True)
            p = in_subprocess("pipeline", kind, edge, tmp)
            if not p["max_abs_diff_vs_onnxruntime_crop"] < TOLERANCE:
                raise SystemExit(f"FAIL memory: pipeline {kind} {edge}: output differs from onnxruntime on the "
                                 f"crop by {p['max_abs_diff_vs_onnxruntime_crop']:.2e} (limit {TOLERANCE:g}).")
            ours.append(p)
    for kind in PLANS[mode]:
        points, skipped = [], []
        max_edge = max(PLANS[mode][kind]) if mode == "full" else max(PLANS[mode][kind]) // 2
        for edge in ORT_EDGES[kind]:
            if edge > max(max_edge, ORT_EDGES[kind][1]):
                break
            mp = edge * edge / 1e6
            if points and predicted_peak(points, mp) > 0.5 * available_bytes():
                skipped.append({"edge": edge, "megapixels": mp, "predicted_peak_rss_bytes": predicted_peak(points, mp)})
                continue
            print(f"... onnxruntime {kind} {edge} x {edge}", file=sys.stderr, flush=True)
            points.append(in_subprocess("ort", kind, edge, tmp))
        line = fit_line(points)
        ram = machine_info()["ram_bytes"]
        ort[kind] = {
            "measured": points,
            "not_run_predicted_over_half_available_memory": skipped,
            "EXTRAPOLATED_fit": None if line is None else {
                "label": "EXTRAPOLATION from a straight line through the measured points, not measured",
                "intercept_bytes": line[0],
                "bytes_per_megapixel": line[1],
                "megapixels_at_total_ram": (ram - line[0]) / line[1] if line[1] > 0 else None,
                "edge_at_total_ram": float(np.sqrt(max((ram - line[0]) / line[1], 0) * 1e6)) if line[1] > 0 else None,
                "ram_bytes": ram,
            },
        }
    return {"block": BLOCK, "workers": 2, "threads_per_worker": 1, "normalize": list(NORMALIZE),
            "input": "smooth uint16 pattern read window by window from a store (lazy, like a Zarr array)", "output": "plain Zarr v3 float32 (write_image default codec)",
            "pipeline": ours, "onnxruntime": ort}


# -- reporting -------------------------------------------------------------------------------

def print_table(res: dict) -> None:
    print(f"Memory: peak RSS (MiB), fresh 2 x 1 cluster per point, block {res['block']}, lazy input, Zarr output")
    print(f"{'network':10s}{'image':>14s}{'MPix':>8s}{'worker peak':>13s}{'after warm-up':>15s}{'client':>9s}"
          f"{'seconds':>9s}")
    for p in res["pipeline"]:
        print(f"{p['network']:10s}{p['edge']:>8d}^2     {p['megapixels']:>8.0f}{max(p['workers_peak_rss_bytes']) / MIB:>13.0f}"
              f"{max(p['workers_rss_after_warmup_bytes']) / MIB:>15.0f}{p['client_peak_rss_bytes'] / MIB:>9.0f}"
              f"{p['seconds']:>9.1f}")
    print("ONNX Runtime, whole image in one process (2 threads):")
    for kind, o in res["onnxruntime"].items():
        for p in o["measured"]:
            print(f"{kind:10s}{p['edge']:>8d}^2     {p['megapixels']:>8.0f}{p['peak_rss_bytes'] / MIB:>13.0f}"
                  f"{'':>15s}{'':>9s}{p['seconds']:>9.1f}")
        f = o["EXTRAPOLATED_fit"]
        if f and f["megapixels_at_total_ram"]:
            print(f"  {kind}: EXTRAPOLATED (line fit, not measured): {f['bytes_per_megapixel'] / MIB:.0f} MiB per MPix; "
                  f"{f['ram_bytes'] / GIB:.0f} GiB exhausted at ~{f['megapixels_at_total_ram']:.0f} MPix "
                  f"(~{f['edge_at_total_ram']:.0f} px square)")


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    colors = {"two-conv": "C0", "unet": "C1"}
    allmp = []
    for kind, c in colors.items():
        pts = [p for p in res["pipeline"] if p["network"] == kind]
        if pts:
            mp = [p["megapixels"] for p in pts]
            allmp += mp
            ax.plot(mp, [max(p["workers_peak_rss_bytes"]) / MIB for p in pts], "o-", color=c,
                    label=f"pipeline {kind}: worker peak")
            ax.plot(mp, [p["client_peak_rss_bytes"] / MIB for p in pts], "s--", color=c, alpha=0.6,
                    label=f"pipeline {kind}: client peak")
        o = res["onnxruntime"].get(kind)
        if o and o["measured"]:
            mp = [p["megapixels"] for p in o["measured"]]
            allmp += mp
            ax.plot(mp, [p["peak_rss_bytes"] / MIB for p in o["measured"]], "^-", color=c, mfc="none",
                    label=f"onnxruntime {kind}: whole image")
            f = o["EXTRAPOLATED_fit"]
            if f and f["megapixels_at_total_ram"]:
                xs = np.geomspace(mp[-1], f["megapixels_at_total_ram"], 20)
                ax.plot(xs, (f["intercept_bytes"] + f["bytes_per_megapixel"] * xs) / MIB, ":", color=c,
                        label=f"onnxruntime {kind}: EXTRAPOLATED")
                allmp.append(f["megapixels_at_total_ram"])
    ram = res["machine"]["ram_bytes"] / MIB
    ax.axhline(ram, color="k", lw=0.8)
    ax.text(min(allmp), ram * 1.05, f"RAM {ram / 1024:.0f} GiB", fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("image size (megapixels)")
    ax.set_ylabel("peak RSS (MiB)")
    ax.set_title("Peak memory against image size")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="4, 16, 64 MPix (two-conv) and 4 MPix (U-Net)")
    ap.add_argument("--edges", default=None, help="comma-separated image edges for both networks (overrides the plan)")
    ap.add_argument("--point", nargs=3, metavar=("WHAT", "NETWORK", "EDGE"), help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--tmp", default=None, help="directory for the temporary Zarr stores")
    args = ap.parse_args(argv)
    if args.tmp is not None:
        Path(args.tmp).mkdir(parents=True, exist_ok=True)  # the directory for temporary stores may be new
    if args.point:
        what, kind, edge = args.point
        with tempfile.TemporaryDirectory(prefix="bench-memory-", dir=args.tmp) as wd:
            fn = pipeline_point if what == "pipeline" else ort_point
            print(json.dumps(fn(kind, int(edge), Path(wd))))
        return 0
    mode = "quick" if args.quick else "full"
    if args.edges:
        edges = [int(e) for e in args.edges.split(",")]
        PLANS[mode] = {"two-conv": edges, "unet": edges}
    res = sweep(mode, args.tmp)
    res["command"] = command_line("benchmarks.memory", argv)
    res["quick"] = bool(args.quick)
    res["machine"] = machine_info()
    path = write_json("memory", res, args.out)
    print_table(res)
    plot(res, args.out / "memory.png")
    print(f"wrote {path} and {args.out / 'memory.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
