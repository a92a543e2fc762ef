"""Scaling: measured speed-up from 1 to 2 workers, and a list-scheduling model of larger clusters.

Run ``python -m benchmarks.scaling [--quick]`` from the repository root.

Measured: the shipped U-Net (``predict`` + ``write_image`` to plain Zarr,
percentile normalisation) over a synthetic image on an embedded cluster of 1
and of 2 single-threaded workers, both warmed and alive side by side, timed
in interleaved rounds (median).

Estimated (a model, not a measurement): the exact task graph Dask receives
is run once on 1 worker with the task stream recording every task's compute
time.  A simulator then replays list scheduling of a graph (each task starts
as soon as its dependencies are done and a worker is free, ready tasks taken
in ``dask.order`` priority) on N = 1 ... 64 single-thread workers, ignoring
communication, and gives the critical path.  It is checked against the
measurement by replaying the measured graph with its own durations on 1 and
2 workers.  The larger-cluster estimate uses the real graph of a larger image
(built on an empty Zarr array of that size, never computed), with each
task's duration the median of its prefix in the measured run; tasks that
touch the whole image (the percentile statistics) are scaled by the number
of their inputs.
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import heapq  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from .e2e import MODEL, ROOT, make_input  # noqa: E402
from .report import RESULTS, command_line, machine_info, write_json  # noqa: E402

WORKERS = (1, 2, 4, 8, 16, 32, 64)


# -- graphs ---------------------------------------------------------------------------------

def low_level_graph(tasks: list) -> tuple[dict, list]:
    """The optimised low-level graph Dask would send for ``tasks`` (Delayed), and its output keys."""
    from dask.base import collections_to_expr

    expr = collections_to_expr(tasks, optimize_graph=True)
    expr = expr.optimize()
    graph = dict(expr.__dask_graph__())
    return graph, [t.key for t in tasks]


def dependencies(graph: dict) -> dict:
    import dask.core

    return {k: set(dask.core.get_dependencies(graph, k)) & graph.keys() for k in graph}


def build_write_graph(model, input_url: str, out_url: str, chunks: int) -> tuple[dict, list]:
    """The graph of ``predict`` + ``write_image`` (plain Zarr) without running it."""
    import pipeline
    from pipeline import io

    captured: list = []
    probs = pipeline.predict(input_url, model, chunks=chunks, normalize=model.metadata["pipeline.normalize"])
    io.write_image(probs, out_url, axes=("c", "y", "x"), ome=False,
                   executor=lambda tasks, label: captured.extend(tasks))
    return low_level_graph(captured)


# -- running and recording ------------------------------------------------------------------

def run_write(client, model, input_url: str, out_url: str, chunks: int, *, record: bool = False):
    """``predict`` + ``write_image`` on ``client``; wall seconds, and per-key compute seconds if ``record``."""
    import distributed

    import pipeline
    from pipeline import io

    durations: dict = {}
    graphs: list = []

    def execute(tasks, label):
        graph, keys = low_level_graph(tasks)
        graphs.append(graph)
        if not record:
            client.get(graph, keys, sync=True)
            return
        with distributed.get_task_stream(client=client) as ts:
            client.get(graph, keys, sync=True)
        for rec in ts.data:
            for ss in rec.get("startstops", ()):
                if ss["action"] == "compute":
                    durations[str(rec["key"])] = durations.get(str(rec["key"]), 0.0) + ss["stop"] - ss["start"]

    t0 = time.perf_counter()
    probs = pipeline.predict(input_url, model, chunks=chunks, normalize=model.metadata["pipeline.normalize"])
    io.write_image(probs, out_url, axes=("c", "y", "x"), ome=False, executor=execute)
    wall = time.perf_counter() - t0
    return wall, durations, (graphs[0] if graphs else {})


# -- the model of a cluster ----------------------------------------------------------------------

def simulate(graph: dict, duration: dict, workers: int) -> float:
    """Makespan of list scheduling ``graph`` on ``workers`` identical single-thread workers, no communication."""
    from dask.order import order

    deps = dependencies(graph)
    users = defaultdict(list)
    for k, ds in deps.items():
        for d in ds:
            users[d].append(k)
    prio = order(graph)
    waiting = {k: len(ds) for k, ds in deps.items()}
    ready = [(prio[k], i, k) for i, k in enumerate(graph) if waiting[k] == 0]
    heapq.heapify(ready)
    running: list = []
    free, now, seq = workers, 0.0, 0
    while ready or running:
        while free and ready:
            _, _, k = heapq.heappop(ready)
            seq += 1
            heapq.heappush(running, (now + duration.get(k, 0.0), seq, k))
            free -= 1
        now, _, k = heapq.heappop(running)
        free += 1
        for u in users[k]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, (prio[u], seq, u))
    return now


def critical_path(graph: dict, duration: dict) -> float:
    from graphlib import TopologicalSorter

    deps = dependencies(graph)
    finish: dict = {}
    for k in TopologicalSorter(deps).static_order():
        finish[k] = duration.get(k, 0.0) + max((finish[d] for d in deps[k]), default=0.0)
    return max(finish.values(), default=0.0)


def durations_by_prefix(measured_graph: dict, measured: dict, target_graph: dict, *, sample_ratio: float = 1.0) -> dict:
    """Per-key durations for ``target_graph`` from the median of each task prefix in the measured run.

    A prefix with a single task in the measured graph (a whole-image
    reduction) is scaled by its number of inputs in the target graph over the
    measured one; the percentile statistics by ``sample_ratio``, the ratio of
    pixels sampled (``predict`` samples at most 2**24 pixels).
    """
    from dask.utils import key_split

    mdeps, tdeps = dependencies(measured_graph), dependencies(target_graph)
    per_prefix: dict = defaultdict(list)
    single: dict = {}
    for k in measured_graph:
        per_prefix[key_split(k)].append(measured.get(str(k), 0.0))
    for k in measured_graph:
        p = key_split(k)
        if len(per_prefix[p]) == 1:
            single[p] = (measured.get(str(k), 0.0), max(1, len(mdeps[k])))
    out = {}
    for k in target_graph:
        p = key_split(k)
        if p in single:
            d, n = single[p]
            out[k] = d * (sample_ratio if "percentile" in p else max(1, len(tdeps[k])) / n)
        else:
            out[k] = float(np.median(per_prefix[p])) if per_prefix.get(p) else 0.0
    return out


def graph_summary(graph: dict, duration: dict) -> dict:
    from dask.utils import key_split

    by = defaultdict(lambda: [0, 0.0])
    for k in graph:
        by[key_split(k)][0] += 1
        by[key_split(k)][1] += duration.get(k, 0.0)
    return {p: {"tasks": n, "seconds": s} for p, (n, s) in sorted(by.items(), key=lambda kv: -kv[1][1])}


# -- the run ---------------------------------------------------------------------------------

def run(size: int, chunks: int, sim_size: int, rounds: int, workdir: str) -> dict:
    import zarr

    import pipeline
    from pipeline.cluster import connect, warm_up

    wd = Path(workdir)
    input_url = str(wd / "input.zarr")
    print(f"... generating {size} x {size} input", file=sys.stderr, flush=True)
    make_input(input_url, size, chunks)
    model = pipeline.load_model(MODEL)
    n = iter(range(10**6))

    def out_url() -> str:
        return str(wd / f"out-{next(n)}.zarr")

    walls: dict[int, list[float]] = {1: [], 2: []}
    with contextlib.ExitStack() as stack:
        print("... starting clusters", file=sys.stderr, flush=True)
        clients = {}
        for w in (1, 2):
            clients[w] = stack.enter_context(connect(workers=w, threads_per_worker=1, echo=None))
            warm_up(clients[w], model)
            url = out_url()
            run_write(clients[w], model, input_url, url, chunks)  # untimed first run
            shutil.rmtree(url)
        print("... recording task durations on 1 worker", file=sys.stderr, flush=True)
        url = out_url()
        wall_rec, measured, graph = run_write(clients[1], model, input_url, url, chunks, record=True)
        shutil.rmtree(url)
        for r in range(rounds):
            print(f"... round {r + 1}/{rounds}", file=sys.stderr, flush=True)
            for w in (1, 2):
                url = out_url()
                walls[w].append(run_write(clients[w], model, input_url, url, chunks)[0])
                shutil.rmtree(url)

    exact = {k: measured.get(str(k), 0.0) for k in graph}
    missing = sum(1 for k in graph if str(k) not in measured)
    model_check = {w: simulate(graph, exact, w) for w in (1, 2)}

    print(f"... simulating the graph of {sim_size} x {sim_size}", file=sys.stderr, flush=True)
    big_in = str(wd / "big-input.zarr")
    zarr.create_array(store=big_in, shape=(sim_size, sim_size), chunks=(chunks, chunks), dtype=np.uint16,
                      fill_value=0)  # metadata only: the graph is built, never computed
    big_graph, _ = build_write_graph(model, big_in, str(wd / "big-out.zarr"), chunks)
    cap = 2**24  # pixels sampled for the percentiles at most (pipeline.Percentile.max_samples)
    big_dur = durations_by_prefix(graph, measured, big_graph,
                                  sample_ratio=min(sim_size**2, cap) / min(size**2, cap))
    t1 = simulate(big_graph, big_dur, 1)
    cp = critical_path(big_graph, big_dur)
    estimate = {}
    for w in WORKERS:
        tw = simulate(big_graph, big_dur, w)
        estimate[w] = {"makespan_s": tw, "speedup": t1 / tw, "efficiency": t1 / tw / w}

    m1, m2 = float(np.median(walls[1])), float(np.median(walls[2]))
    ratios = np.array(walls[1]) / np.array(walls[2])
    return {
        "measured": {
            "image": [size, size],
            "block": chunks,
            "rounds": rounds,
            "wall_s": {"1 worker": walls[1], "2 workers": walls[2]},
            "median_s": {"1 worker": m1, "2 workers": m2},
            "speedup_1_to_2_median_of_rounds": float(np.median(ratios)),
            "recorded_run_wall_s": wall_rec,
            "tasks": len(graph),
            "tasks_not_in_task_stream": missing,
            "task_seconds_by_prefix": graph_summary(graph, exact),
        },
        "model_check": {
            "label": "ESTIMATE: list scheduling of the measured graph with its own task durations",
            "simulated_makespan_s": {f"{w} worker(s)": v for w, v in model_check.items()},
            "simulated_speedup_1_to_2": model_check[1] / model_check[2],
            "critical_path_s": critical_path(graph, exact),
        },
        "estimate": {
            "label": ("ESTIMATE from a model, not measured: list scheduling of the real Dask graph of a "
                      f"{sim_size} x {sim_size} image on N single-thread workers, durations by task prefix "
                      "from the 1-worker run, communication ignored"),
            "image": [sim_size, sim_size],
            "block": chunks,
            "tasks": len(big_graph),
            "total_task_seconds": float(sum(big_dur.values())),
            "critical_path_s": cp,
            "speedup_bound_work_over_critical_path": float(sum(big_dur.values()) / cp) if cp else None,
            "by_workers": {str(w): v for w, v in estimate.items()},
            "task_seconds_by_prefix": graph_summary(big_graph, big_dur),
        },
    }


def print_table(res: dict) -> None:
    m = res["measured"]
    print(f"Scaling, measured: {m['image'][0]} x {m['image'][1]}, block {m['block']}, {m['tasks']} tasks; "
          f"1 worker {m['median_s']['1 worker']:.1f} s, 2 workers {m['median_s']['2 workers']:.1f} s: "
          f"speed-up {m['speedup_1_to_2_median_of_rounds']:.2f} (median of {m['rounds']} rounds)")
    c = res["model_check"]
    print(f"Model check (ESTIMATE, measured graph and durations): simulated speed-up 1 -> 2 workers "
          f"{c['simulated_speedup_1_to_2']:.2f}, critical path {c['critical_path_s']:.1f} s")
    e = res["estimate"]
    print(f"ESTIMATE (model, not measured): {e['image'][0]} x {e['image'][1]}, {e['tasks']} tasks, "
          f"{e['total_task_seconds']:.0f} task-seconds, critical path {e['critical_path_s']:.1f} s "
          f"(bound {e['speedup_bound_work_over_critical_path']:.1f}x)")
    print(f"{'workers':>8s}{'makespan s':>12s}{'speed-up':>10s}{'efficiency':>12s}")
    for w, v in e["by_workers"].items():
        print(f"{w:>8s}{v['makespan_s']:>12.1f}{v['speedup']:>10.2f}{100 * v['efficiency']:>11.0f}%")


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    e = res["estimate"]
    ws = [int(w) for w in e["by_workers"]]
    sp = [e["by_workers"][str(w)]["speedup"] for w in ws]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.plot(ws, ws, "k:", label="linear")
    ax.plot(ws, sp, "o-", label=f"ESTIMATE: list-scheduling model, {e['image'][0]}² image")
    ax.axhline(e["speedup_bound_work_over_critical_path"], color="C3", ls="--", label="work / critical path")
    ax.plot([2], [res["measured"]["speedup_1_to_2_median_of_rounds"]], "s", color="C2", ms=9,
            label=f"measured, {res['measured']['image'][0]}² image")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("single-thread workers")
    ax.set_ylabel("speed-up over 1 worker")
    ax.set_title("Scaling of predict + write (model estimate, labelled)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="measure 2048 x 2048 with 512 blocks, simulate 8192 x 8192")
    ap.add_argument("--size", type=int, default=None, help="measured image edge (default 4096, quick 2048)")
    ap.add_argument("--chunks", type=int, default=None, help="block edge (default 1024, quick 512)")
    ap.add_argument("--sim-size", type=int, default=None, help="simulated image edge (default 16 x blocks per edge)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3, quick 2)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--tmp", default=None)
    args = ap.parse_args(argv)
    if args.tmp is not None:
        Path(args.tmp).mkdir(parents=True, exist_ok=True)  # the directory for temporary stores may be new
    size = args.size or (2048 if args.quick else 4096)
    chunks = args.chunks or (512 if args.quick else 1024)
    sim = args.sim_size or 16 * chunks
    rounds = args.rounds or (2 if args.quick else 3)
    with tempfile.TemporaryDirectory(prefix="bench-scaling-", dir=args.tmp) as wd:
        res = run(size, chunks, sim, rounds, wd)
    res["command"] = command_line("benchmarks.scaling", argv)
    res["quick"] = bool(args.quick)
    res["machine"] = machine_info()
    path = write_json("scaling", res, args.out)
    print_table(res)
    plot(res, args.out / "scaling.png")
    print(f"wrote {path} and {args.out / 'scaling.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
