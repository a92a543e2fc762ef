"""End to end: the shipped U-Net over a synthetic image, Zarr in -> Zarr out, ours vs ONNX Runtime vs PyTorch.

Run ``python -m benchmarks.e2e [--quick]`` from the repository root.

The input (``pipeline.synthetic.nuclei``, uint16, chunks of 1024) is
generated once to a Zarr array on disk, so generation is never timed.
``pipeline`` computes blocks of 2048 (``--chunks``; 1024 in quick mode, whose
2048 x 2048 image would otherwise be one block): large against the U-Net's
22 px halo (2.2 % recomputed pixels, against 6.5 % with 1024), at about
1.5 GiB of working memory per block.  Every method does the same job,
timed from the input Zarr to a written output Zarr (plain Zarr v3, 2 x Y x X
float32 probabilities, chunks of the block size, Blosc LZ4 with byte shuffle:
``write_image``'s default codec for floating-point outputs, given to the
baselines too):

* ``pipeline WxT``: ``pipeline.predict(..., normalize="percentile:1:99.8")``
  written with ``pipeline.io.write_image`` on an embedded cluster of W worker
  processes with T threads each (1x1, 1x2, 2x1, all started and warmed before
  timing, kept alive side by side);
* ``onnxruntime``: read the whole image, the same percentile normalisation in
  NumPy, one ``InferenceSession.run`` on the whole image with 2 intra-op
  threads, write;
* ``torch``: the same with this U-Net re-built in PyTorch from the ONNX
  initializers (checked against ONNX Runtime first), 2 threads; by default
  only up to 2048 x 2048 (``--torch``/``--no-torch`` to choose): at 4096 x
  4096 it ran this 24 GiB machine out of memory beside ONNX Runtime's arena.

Methods are timed in interleaved rounds (ABCDE ABCDE ...; clusters warmed
first); in the first round every pipeline configuration's written output and
PyTorch's are checked against ONNX Runtime's probabilities (max abs
difference < 1e-3, exit code 1 before anything is reported otherwise).  The
median over rounds is reported, with every
method's time as a ratio to ONNX Runtime's in the same round.  Our time is
broken down from inside each configuration's own runs: the tasks meter their
network, input-read (each block's haloed window, which also gives the
percentile counts; a separate counting pass for images over
``PIPELINE_READ_ONCE_BYTES``) and normalisation seconds (Dask fine
performance metrics, read from the workers), the halo's share of the network time is
charged as recompute, and the rest of the wall time is Zarr writing,
scheduling, transfer and idle cores.  The serial network time, Zarr read and
write, each alone in this process, are reported for scale.
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # serial kernels; ORT and torch get their 2 threads explicitly

import argparse  # noqa: E402
import contextlib  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402

from .report import RESULTS, command_line, machine_info, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "data" / "models" / "nuclei-unet.onnx"
TOLERANCE = 1e-3
CONFIGS = ((1, 1), (1, 2), (2, 1))  # (workers, threads per worker)
BASELINE_THREADS = 2
SEED = 7


# -- input ------------------------------------------------------------------------------

def make_input(url: str, size: int, chunks: int) -> float:
    """Write the synthetic image to a plain Zarr v3 array; seconds taken."""
    import dask
    import zarr

    from pipeline.synthetic import nuclei

    t0 = time.perf_counter()
    image, _ = nuclei((size, size), seed=SEED, chunks=chunks)
    z = zarr.create_array(store=url, shape=image.shape, chunks=(chunks, chunks), dtype=image.dtype,
                          compressors=zarr.codecs.ZstdCodec(level=3), fill_value=0)
    with dask.config.set(scheduler="threads", num_workers=2):
        image.store(z, lock=False)
    return time.perf_counter() - t0


def percentile_range(x: np.ndarray, low: float = 1.0, high: float = 99.8) -> tuple[float, float]:
    """The 1st and 99.8th percentiles over the whole image, as the model card asks."""
    lo, hi = np.percentile(np.asarray(x, np.float64), [low, high])
    return float(lo), float(hi)


def normalise(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return ((x - lo) * (1.0 / max(hi - lo, 1e-20))).astype(np.float32)


def write_output(url: str, probs: np.ndarray, chunks: int) -> None:
    """``(C, Y, X)`` float32 to a plain Zarr v3 array laid out and compressed like ``write_image(ome=False)``."""
    import zarr

    # written like write_image writes non-empty blocks: every chunk stored, none compared with the fill value first
    z = zarr.create_array(store=url, shape=probs.shape, chunks=(probs.shape[0], chunks, chunks), dtype=np.float32,
                          compressors=zarr.codecs.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),
                          fill_value=0, config={"write_empty_chunks": True})
    z[...] = probs


def read_input(url: str) -> np.ndarray:
    import zarr

    return zarr.open_array(store=url, mode="r")[...]


# -- the baselines -------------------------------------------------------------------------

def ort_session(path: Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0]


def torch_unet(path: Path):
    """This U-Net as a ``torch.nn.Module``, its layers taken node by node from the ONNX file.

    Only the ops the shipped model uses are understood (Conv, Relu, MaxPool,
    ConvTranspose, Concat, Softmax); anything else is refused.
    """
    import onnx
    import torch
    import torch.nn.functional as F
    from onnx import numpy_helper

    model = onnx.load(str(path))
    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in model.graph.initializer}

    def attrs(node) -> dict:
        return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    def symmetric(pads, node) -> tuple[int, int]:
        pads = list(pads or [0, 0, 0, 0])
        if pads[:2] != pads[2:]:
            raise ValueError(f"Expected symmetric pads on node {node.name!r}. Got {pads} instead.")
        return tuple(pads[:2])

    class OnnxUNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.steps = []
            for node in model.graph.node:
                a = attrs(node)
                if node.op_type not in ("Conv", "Relu", "MaxPool", "ConvTranspose", "Concat", "Softmax"):
                    raise ValueError(f"Expected only this U-Net's ops. Got {node.op_type} at node {node.name!r}.")
                self.steps.append((node.op_type, list(node.input), node.output[0], a, node))
            self.input = model.graph.input[0].name
            self.output = model.graph.output[0].name

        def forward(self, x):
            env = {self.input: x}
            for op, ins, out, a, node in self.steps:
                args = [env[i] if i in env else weights[i] for i in ins if i]
                if op == "Conv":
                    y = F.conv2d(args[0], args[1], args[2] if len(args) > 2 else None, stride=tuple(a.get("strides", (1, 1))),
                                 padding=symmetric(a.get("pads"), node), dilation=tuple(a.get("dilations", (1, 1))),
                                 groups=a.get("group", 1))
                elif op == "ConvTranspose":
                    y = F.conv_transpose2d(args[0], args[1], args[2] if len(args) > 2 else None,
                                           stride=tuple(a.get("strides", (1, 1))), padding=symmetric(a.get("pads"), node),
                                           groups=a.get("group", 1))
                elif op == "MaxPool":
                    y = F.max_pool2d(args[0], tuple(a["kernel_shape"]), stride=tuple(a.get("strides", a["kernel_shape"])),
                                     padding=symmetric(a.get("pads"), node), ceil_mode=bool(a.get("ceil_mode", 0)))
                elif op == "Relu":
                    y = F.relu(args[0])
                elif op == "Concat":
                    y = torch.cat(args, dim=a["axis"])
                else:
                    y = torch.softmax(args[0], dim=a.get("axis", -1))
                env[out] = y
            return env[self.output]

    return OnnxUNet().eval()


def torch_infer(path: Path, threads: int):
    import torch

    torch.set_num_threads(threads)
    net = torch_unet(path)

    def infer(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            t = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
            return net(t).contiguous().numpy()

    return infer


def baseline_job(infer: Callable[[np.ndarray], np.ndarray], input_url: str, out_url: str, chunks: int,
                 keep: dict | None = None) -> dict:
    """Zarr in -> whole-image inference -> Zarr out; seconds per phase."""
    t = [time.perf_counter()]
    x = read_input(input_url)
    t.append(time.perf_counter())
    lo, hi = percentile_range(x)
    xn = normalise(x, lo, hi)[None, None]
    t.append(time.perf_counter())
    y = infer(xn)[0]
    t.append(time.perf_counter())
    write_output(out_url, y, chunks)
    t.append(time.perf_counter())
    if keep is not None:
        keep["probs"] = y
    d = np.diff(t)
    return {"total": t[-1] - t[0], "read": d[0], "normalise": d[1], "infer": d[2], "write": d[3]}


# -- ours ----------------------------------------------------------------------------------

METERED = ("kernels", "read", "normalise")


def _worker_seconds(client) -> dict[str, float]:
    """Seconds every worker's block tasks spent per fine-metric label so far, summed over workers.

    ``pipeline`` meters its block tasks (``kernels``, ``read``, ``normalise``:
    Dask's fine performance metrics, shown on the dashboard); read straight from
    the workers, not from heartbeats, so nothing is lost to timing.
    """
    def digest(dask_worker):
        out: dict = {}
        for k, v in dask_worker.digests_total.items():
            if isinstance(k, tuple) and k[0] == "execute" and k[-1] == "seconds" and k[-2] in METERED:
                out[k[-2]] = out.get(k[-2], 0.0) + v
        return out

    total = dict.fromkeys(METERED, 0.0)
    for d in client.run(digest).values():
        for k, v in d.items():
            total[k] += v
    return total


def pipeline_job(client, model, input_url: str, out_url: str, chunks: int) -> dict:
    import pipeline
    from pipeline import io

    before = _worker_seconds(client)
    t0 = time.perf_counter()
    probs = pipeline.predict(input_url, model, chunks=chunks, normalize=model.metadata["pipeline.normalize"])
    io.write_image(probs, out_url, axes=("c", "y", "x"), ome=False, compression="auto",
                   executor=lambda tasks, label: client.compute(tasks, sync=True))
    total = time.perf_counter() - t0
    after = _worker_seconds(client)
    return {"total": total, **{k: after[k] - before[k] for k in METERED}}


def block_grid(model, size: int, chunks: int) -> tuple[list[int], tuple[int, int]]:
    """``pipeline.predict``'s block boundaries (same function) and overlap depth."""
    from pipeline.tiling import block_bounds

    geo = model.geometry
    depth = tuple(geo.depth)
    return block_bounds(size, chunks, stride=geo.stride[0], depth=depth[0]), depth


def halo_fraction(bounds: list[int], depth: tuple[int, int], size: int) -> float:
    """Sum over blocks of (block + halo, clipped to the image) area / image area - 1."""
    ext = [min(size, b + depth[0]) - max(0, a - depth[0]) for a, b in zip(bounds[:-1], bounds[1:])]
    return (sum(ext) ** 2) / float(size * size) - 1.0


def serial_kernels(model, xn: np.ndarray, bounds: list[int], depth: tuple[int, int]) -> tuple[float, np.ndarray]:
    """Run the plan on every block (with its halo) one after the other; kernel seconds and the assembled output."""
    from pipeline.model import get_plan

    plan = get_plan(model)
    H, W = xn.shape
    out = np.empty((model.output_channels, H, W), np.float32)
    seconds = 0.0
    for y0, y1 in zip(bounds[:-1], bounds[1:]):
        for x0, x1 in zip(bounds[:-1], bounds[1:]):
            ay, ax = max(0, y0 - depth[0]), max(0, x0 - depth[1])
            block = np.ascontiguousarray(xn[ay:min(H, y1 + depth[0]), ax:min(W, x1 + depth[1]), None])
            t0 = time.perf_counter()
            y = plan.run(block, origin=(ay, ax), image_size=(H, W), out_range=((y0, y1), (x0, x1)))
            seconds += time.perf_counter() - t0
            out[:, y0:y1, x0:x1] = y.transpose(2, 0, 1)
    return seconds, out


# -- checks ---------------------------------------------------------------------------------

def max_abs_diff(a: np.ndarray, b: np.ndarray, what: str) -> float:
    if a.shape != b.shape:
        sys.exit(f"FAIL e2e: {what} gives shape {a.shape}, onnxruntime {b.shape}.")
    d = float(np.abs(a.astype(np.float64) - b).max())
    if not d < TOLERANCE:
        sys.exit(f"FAIL e2e: {what} disagrees with onnxruntime by {d:.2e} (max abs, limit {TOLERANCE:g}). "
                 "Not timing a wrong result.")
    return d


# -- the run ---------------------------------------------------------------------------------

def _label(w: int, t: int) -> str:
    return f"pipeline {w}x{t}"


def run(size: int, chunks: int, rounds: int, workdir: str, *, with_torch: bool = True,
        input_chunks: int = 1024) -> dict:
    import zarr

    import pipeline
    from pipeline.cluster import connect, warm_up

    wd = Path(workdir)
    input_url = str(wd / "input.zarr")
    print(f"... generating {size} x {size} input", file=sys.stderr, flush=True)
    gen_s = make_input(input_url, size, input_chunks)
    model = pipeline.load_model(MODEL)

    counter = iter(range(10**6))

    def fresh(name: str) -> str:
        return str(wd / f"out-{name.replace(' ', '_')}-{next(counter)}.zarr")

    def drop(url: str) -> None:
        shutil.rmtree(url, ignore_errors=True)

    with contextlib.ExitStack() as stack:
        print("... starting clusters", file=sys.stderr, flush=True)
        clients = {}
        for w, t in CONFIGS:
            client = stack.enter_context(connect(workers=w, threads_per_worker=t, echo=None))
            warm_up(client, model)
            clients[_label(w, t)] = client
        ort_infer = ort_session(MODEL, BASELINE_THREADS)
        methods: dict[str, Callable[[str], dict]] = {
            "onnxruntime": lambda url: baseline_job(ort_infer, input_url, url, chunks),
        }
        if with_torch:
            th_infer = torch_infer(MODEL, BASELINE_THREADS)
            methods["torch"] = lambda url: baseline_job(th_infer, input_url, url, chunks)
        for name, c in clients.items():
            methods[name] = lambda url, c=c: pipeline_job(c, model, input_url, url, chunks)

        # round 1 checks every output against ONNX Runtime's (which runs first) before anything is reported
        kept: dict = {}
        errors: dict = {}
        times: dict[str, list[dict]] = {name: [] for name in methods}
        for r in range(rounds):
            print(f"... round {r + 1}/{rounds}" + (" (outputs checked)" if r == 0 else ""), file=sys.stderr, flush=True)
            for name, job in methods.items():
                url = fresh(name)
                if r == 0 and name == "onnxruntime":
                    times[name].append(baseline_job(ort_infer, input_url, url, chunks, keep=kept))
                else:
                    times[name].append(job(url))
                if r == 0 and name != "onnxruntime":
                    errors[name] = max_abs_diff(zarr.open_array(store=url, mode="r")[...], kept["probs"], name)
                drop(url)
            if r == 0:
                print("    max abs diff vs onnxruntime: " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()),
                      file=sys.stderr, flush=True)
        ref = kept["probs"]

    print("... breakdown", file=sys.stderr, flush=True)
    breakdown = break_down(model, input_url, wd, size, chunks, ref)
    res = summarise(times, errors, breakdown, size=size, chunks=chunks, rounds=rounds, gen_s=gen_s)
    res["input_chunks"] = input_chunks
    return res


def break_down(model, input_url: str, wd: Path, size: int, chunks: int, ref: np.ndarray) -> dict:
    t0 = time.perf_counter()
    x = read_input(input_url)
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    lo, hi = percentile_range(x)
    xn = normalise(x, lo, hi)
    stats_s = time.perf_counter() - t0
    bounds, depth = block_grid(model, size, chunks)
    kernel_s, out = serial_kernels(model, xn, bounds, depth)
    serial_err = max_abs_diff(out, ref, "the serial block loop")
    t0 = time.perf_counter()
    write_output(str(wd / "write-alone.zarr"), out, chunks)
    write_s = time.perf_counter() - t0
    return {
        "kernel_s": kernel_s,
        "read_s": read_s,
        "normalise_s": stats_s,
        "write_s": write_s,
        "blocks": (len(bounds) - 1) ** 2,
        "block_bounds": bounds,
        "halo_depth": list(depth),
        "halo_extra_fraction": halo_fraction(bounds, depth, size),
        "serial_max_abs_diff_vs_onnxruntime": serial_err,
    }


def summarise(times, errors, breakdown, *, size, chunks, rounds, gen_s) -> dict:
    mpix = size * size / 1e6
    totals = {name: np.array([t["total"] for t in ts]) for name, ts in times.items()}
    ref = totals["onnxruntime"]
    methods = {}
    for name, tot in totals.items():
        m = {
            "seconds": tot.tolist(),
            "median_s": float(np.median(tot)),
            "mpix_per_s_median": float(mpix / np.median(tot)),
            "mpix_per_s_min": float(mpix / tot.max()),
            "mpix_per_s_max": float(mpix / tot.min()),
            "speed_vs_onnxruntime_median": float(np.median(ref / tot)),
        }
        if name in ("onnxruntime", "torch"):
            m["phases_median_s"] = {k: float(np.median([t[k] for t in times[name]]))
                                    for k in ("read", "normalise", "infer", "write")}
            m["infer_only_mpix_per_s"] = mpix / m["phases_median_s"]["infer"]
        else:
            w, t = (int(v) for v in name.split()[1].split("x"))
            parallel = w * t
            # measured inside this method's own runs (fine metrics of the block tasks), round by round:
            # a round's parts are set against that round's wall time, then medians are taken over rounds
            halo = breakdown["halo_extra_fraction"]
            parts = {"network on the image's own pixels / parallelism": [],
                     "halo recompute / parallelism": [],
                     "input read + normalise / parallelism": [],
                     "Zarr write, scheduler, transfer, idle (rest)": []}
            fractions = []
            for r in times[name]:
                useful = r["kernels"] / (1 + halo) / parallel
                vals = [useful, r["kernels"] * halo / (1 + halo) / parallel, (r["read"] + r["normalise"]) / parallel]
                vals.append(r["total"] - sum(vals))
                for key, v in zip(parts, vals):
                    parts[key].append(v)
                fractions.append(1 - useful / r["total"])
            m["workers"], m["threads_per_worker"] = w, t
            m["in_run_worker_seconds"] = {k: float(np.median([r[k] for r in times[name]])) for k in METERED}
            m["breakdown_s"] = {k: float(np.median(v)) for k, v in parts.items()}
            # everything but the network's work on the image itself, as a fraction of wall time (median of rounds)
            m["overhead_fraction"] = float(np.median(fractions))
            m["overhead_fraction_per_round"] = [float(f) for f in fractions]
            m["in_run_worker_seconds_per_round"] = [{k: float(r[k]) for k in METERED} for r in times[name]]
        methods[name] = m
    return {
        "image": {"shape": [size, size], "megapixels": mpix, "generator": f"pipeline.synthetic.nuclei seed={SEED}",
                  "generate_s": gen_s, "input": "plain Zarr v3 uint16, zstd-3",
                  "output": "plain Zarr v3 float32 (2, Y, X), Blosc LZ4-5 byte shuffle (write_image's default)"},
        "model": str(MODEL.relative_to(ROOT)),
        "normalize": "percentile:1:99.8 over the whole image",
        "block": chunks,
        "rounds": rounds,
        "baseline_threads": BASELINE_THREADS,
        "max_abs_diff_vs_onnxruntime": errors,
        "tolerance": TOLERANCE,
        "breakdown": {k: v for k, v in breakdown.items() if k != "block_bounds"},
        "methods": methods,
    }


# -- reporting -------------------------------------------------------------------------------

def print_table(res: dict) -> None:
    size = res["image"]["shape"][0]
    print(f"End to end, {size} x {size} ({res['image']['megapixels']:.1f} MPix), Zarr -> Zarr, "
          f"median of {res['rounds']} interleaved rounds; block {res['block']}, input chunks "
          f"{res.get('input_chunks', res['block'])}")
    print(f"{'method':18s}{'MPix/s':>9s}{'(min-max)':>16s}{'x ORT':>8s}{'seconds':>9s}")
    for name, m in res["methods"].items():
        rng = f"{m['mpix_per_s_min']:.2f}-{m['mpix_per_s_max']:.2f}"
        print(f"{name:18s}{m['mpix_per_s_median']:>9.2f}{rng:>16s}{m['speed_vs_onnxruntime_median']:>8.2f}"
              f"{m['median_s']:>9.1f}")
    b = res["breakdown"]
    print(f"ours, serial in this process: kernels {b['kernel_s']:.1f} s, Zarr read {b['read_s']:.1f} s, "
          f"normalise {b['normalise_s']:.1f} s, Zarr write {b['write_s']:.1f} s; {b['blocks']} blocks, halo "
          f"{b['halo_depth'][0]} px recomputes {100 * b['halo_extra_fraction']:.1f}% extra input pixels")
    for name, m in res["methods"].items():
        if "breakdown_s" in m:
            parts = ", ".join(f"{k} {v:.1f} s" for k, v in m["breakdown_s"].items())
            print(f"  {name}: {parts}; overhead {100 * m['overhead_fraction']:.0f}% of wall")
    for name in ("onnxruntime", "torch"):
        if name not in res["methods"]:
            continue
        p = res["methods"][name]["phases_median_s"]
        print(f"  {name}: " + ", ".join(f"{k} {v:.1f} s" for k, v in p.items()))


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(res["methods"])
    med = [res["methods"][n]["mpix_per_s_median"] for n in names]
    lo = [med[i] - res["methods"][n]["mpix_per_s_min"] for i, n in enumerate(names)]
    hi = [res["methods"][n]["mpix_per_s_max"] - med[i] for i, n in enumerate(names)]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = ["C0" if n.startswith("pipeline") else "C1" if n == "onnxruntime" else "C2" for n in names]
    ax.bar(names, med, yerr=[lo, hi], color=colors, capsize=4)
    ax.set_ylabel("MPix/s, Zarr -> Zarr (median, min-max)")
    size = res["image"]["shape"][0]
    ax.set_title(f"Shipped U-Net, {size} x {size}")
    ax.tick_params(axis="x", rotation=20)
    ours = [n for n in names if "breakdown_s" in res["methods"][n]]
    bottom = np.zeros(len(ours))
    for part in res["methods"][ours[0]]["breakdown_s"]:
        vals = np.array([res["methods"][n]["breakdown_s"][part] for n in ours])
        bx.bar(ours, vals, bottom=bottom, label=part)
        bottom += vals
    bx.set_ylabel("seconds of wall time")
    bx.set_title("Where our time goes (worker seconds in the runs / cores)")
    bx.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2048 x 2048 image, 3 rounds")
    ap.add_argument("--size", type=int, default=None, help="image edge (default 4096, quick 2048; multiple of 4)")
    ap.add_argument("--chunks", type=int, default=None,
                    help="compute block edge, also the output chunk edge of every method (default 2048, quick 1024)")
    ap.add_argument("--input-chunks", type=int, default=1024, help="chunk edge of the input Zarr (default 1024)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5, quick 3)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="directory for e2e.json and e2e.png")
    ap.add_argument("--tmp", default=None, help="directory for the temporary Zarr stores")
    ap.add_argument("--torch", action=argparse.BooleanOptionalAction, default=None,
                    help="time PyTorch too (default: only up to 2048 x 2048; at 4096 x 4096 PyTorch next to "
                         "ONNX Runtime's retained arena exhausted 24 GiB in one process)")
    args = ap.parse_args(argv)
    if args.tmp is not None:
        Path(args.tmp).mkdir(parents=True, exist_ok=True)  # the directory for temporary stores may be new
    size = args.size or (2048 if args.quick else 4096)
    rounds = max(3, args.rounds or (3 if args.quick else 5))
    with tempfile.TemporaryDirectory(prefix="bench-e2e-", dir=args.tmp) as wd:
        with_torch = args.torch if args.torch is not None else size <= 2048
        chunks = args.chunks or (1024 if args.quick else 2048)
        res = run(size, chunks, rounds, wd, with_torch=with_torch, input_chunks=args.input_chunks)
    if not with_torch:
        res["torch_skipped"] = ("--no-torch" if args.torch is False else
                                f"at {size} x {size} PyTorch beside ONNX Runtime (whose arena keeps its ~8.6 GiB peak) "
                                "ran out of this machine's 24 GiB in one process (killed by the OOM killer); "
                                "its end-to-end ratio at 2048 x 2048 is in the quick run. Pass --torch to try.")
    res["command"] = command_line("benchmarks.e2e", argv)
    res["quick"] = bool(args.quick)
    res["machine"] = machine_info()
    path = write_json("e2e", res, args.out)
    print_table(res)
    plot(res, args.out / "e2e.png")
    print(f"wrote {path} and {args.out / 'e2e.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
