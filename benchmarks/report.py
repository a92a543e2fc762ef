"""Regenerate the "## Performance" section of README.md from ``benchmarks/results/*.json``.

Run ``python -m benchmarks.report`` from the repository root (``benchmarks.run``
calls it at the end).  Only the text between ``<!-- perf:start -->`` and
``<!-- perf:end -->`` is replaced; the markers are appended to README.md if
they are missing.  Also home of the small helpers every benchmark shares:
where results go and what machine produced them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
README = ROOT / "README.md"
START, END = "<!-- perf:start -->", "<!-- perf:end -->"
GIB = 1024**3


# -- shared helpers -------------------------------------------------------------------

def machine_info() -> dict:
    """CPU model, usable cores, RAM, OS and the date, for every result file."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    ram = None
    try:
        import psutil

        ram = psutil.virtual_memory().total
    except ImportError:
        pass
    return {
        "cpu": cpu,
        "cores": cores,
        "ram_bytes": ram,
        "ram_gib": None if ram is None else round(ram / GIB, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def command_line(module: str, argv: list[str] | None) -> str:
    """The command that reproduces a result, as a user would type it."""
    args = sys.argv[1:] if argv is None else list(argv)
    return " ".join(["python -m", module, *args]).strip()


def write_json(name: str, report: dict, out: Path = RESULTS) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(report, indent=1, default=_jsonable))
    return path


def _jsonable(v):
    try:
        import numpy as np

        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, np.ndarray):
            return v.tolist()
    except ImportError:
        pass
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


def load(name: str, out: Path = RESULTS) -> dict | None:
    path = out / f"{name}.json"
    if not path.exists():
        return None
    res = json.loads(path.read_text())
    res["_file_date"] = datetime.datetime.fromtimestamp(path.stat().st_mtime).astimezone().isoformat()
    return res


# -- the README section ---------------------------------------------------------------------

def _machine_line(res: dict) -> str:
    m = res.get("machine", {})
    cpu = m.get("cpu") or m.get("processor") or "CPU model not recorded"
    cores = m.get("cores") or m.get("cpu_count")
    ram = f", {m['ram_gib']} GiB RAM" if m.get("ram_gib") else ""
    date = m.get("date") or res.get("_file_date")
    return f"{cpu}, {cores} cores{ram}" + (f", {date[:10]}" if date else "")


def _provenance(res: dict, default_cmd: str) -> str:
    return f"`{res.get('command') or default_cmd}` on {_machine_line(res)}."


def kernels_section(res: dict) -> list[str]:
    cols = ["ours", "torch NCHW", "torch channels_last", "onnxruntime"]
    peak = "ours_pct_of_peak_median" in res["results"][0]
    lines = ["### Convolution kernels (one thread, GFLOP/s, median of interleaved rounds)", "",
             _provenance(res, "python -m benchmarks.kernels"), "",
             "| layer | " + " | ".join(cols) + " | ours / best | " + ("% of FMA peak |" if peak else ""),
             "|---|" + "---:|" * (len(cols) + 1 + peak)]
    for r in res["results"]:
        row = f"| {r['shape']['name']} | " + " | ".join(f"{r['gflops'][c]['median']:.1f}" for c in cols)
        row += f" | {r['ratio_ours_to_best_baseline_median']:.2f} |"
        if peak:
            row += f" {r['ours_pct_of_peak_median']:.0f}% |"
        if r.get("ours_algorithm", "direct") != "direct":
            row = row.replace(f"| {r['shape']['name']} |", f"| {r['shape']['name']} (Winograd) |", 1)
        lines.append(row)
        if "ours (direct)" in r["gflops"]:
            row = (f"| {r['shape']['name']}, direct kernel | {r['gflops']['ours (direct)']['median']:.1f} |"
                   + " |" * (len(cols) - 1) + f" {r['direct_ratio_to_best_baseline_median']:.2f} |")
            if peak:
                row += f" {r['direct_pct_of_peak_median']:.0f}% |"
            lines.append(row)
    size = res["results"][0]["size"]
    isa = {"avx512f": "AVX-512 (16 lanes)", "avx2": "AVX2 (8 lanes)"}.get(res.get("peak_isa") or "", None)
    lanes = res.get("vector_lanes")
    reuse = ("Every method allocates its output on every call from memory the process keeps (glibc's heap, "
             "`mallopt`), so none pays the OS to fault in fresh pages, as a pipeline reusing its buffers does "
             "not. " if res.get("freed_memory_reused") else "")
    lines += ["", f"Feature map {size} x {size}; every method's output is checked against PyTorch before timing. "
              + reuse
              + (f"Our kernels ran on {lanes}-lane vectors; the FMA peak is a loop of {isa} FMAs run "
                 "beside them. " if isa and lanes else "")
              + "Plot: [`benchmarks/results/kernels.png`](benchmarks/results/kernels.png)."]
    wino = [r for r in res["results"] if r.get("ours_algorithm", "direct") != "direct"]
    if wino:
        lines += ["", "Rows marked Winograd ran our Winograd F(2,3) kernel (pairs of output columns from four "
                  "products per kernel row instead of six: 2/3 of the multiply-adds). Their GFLOP/s and % of peak "
                  "count the direct convolution's FLOPs, like every other column, so they compare times; the "
                  "multiply-adds that kernel actually ran reached "
                  + ", ".join(f"{r['ours_executed_pct_of_peak_median']:.0f} %" for r in wino if
                              "ours_executed_pct_of_peak_median" in r)
                  + " of the peak. The direct kernel on the same layer, timed in the same rounds, is the row "
                  "below it."]
    return lines


def e2e_section(res: dict) -> list[str]:
    size = res["image"]["shape"][0]
    lines = [f"### End to end: shipped U-Net, {size} x {size} ({res['image']['megapixels']:.1f} MPix), Zarr -> Zarr", "",
             _provenance(res, "python -m benchmarks.e2e"),
             f"Median of {res['rounds']} interleaved rounds; compute block {res['block']} (also the output chunk of "
             f"every method), input chunks {res.get('input_chunks', res['block'])}; every method reads the "
             "uint16 input Zarr, normalises with the whole-image 1st/99.8th percentiles, runs the network and "
             "writes float32 probabilities to Zarr (Blosc LZ4 + byte shuffle, `write_image`'s default for float outputs). Outputs agree with ONNX Runtime to "
             f"{max(res['max_abs_diff_vs_onnxruntime'].values()):.1e} (limit {res['tolerance']:g}).", "",
             "| method | MPix/s | min-max | speed vs ONNX Runtime | seconds |", "|---|---:|---:|---:|---:|"]
    for name, m in res["methods"].items():
        label = {"onnxruntime": f"ONNX Runtime, whole image, {res['baseline_threads']} threads",
                 "torch": f"PyTorch, whole image, {res['baseline_threads']} threads"}.get(
            name, f"pipeline, {m.get('workers')} worker(s) x {m.get('threads_per_worker')} thread(s)")
        lines.append(f"| {label} | {m['mpix_per_s_median']:.2f} | {m['mpix_per_s_min']:.2f}-{m['mpix_per_s_max']:.2f} "
                     f"| {m['speed_vs_onnxruntime_median']:.2f} | {m['median_s']:.1f} |")
    b = res["breakdown"]
    lines += ["", f"Where our time goes, measured inside each configuration's own runs (the tasks' fine "
              f"performance metrics, summed over workers and divided by the cores in use; each block's window "
              f"is read once, and its pixels counted there for the percentiles): {b['blocks']} blocks "
              f"with a {b['halo_depth'][0]} px halo compute {100 * b['halo_extra_fraction']:.1f} % extra input pixels, "
              "charged as halo recompute. Overhead is everything but the network's work on the image's own pixels, "
              f"as a share of wall time. For scale, alone in one process: the network on every block serially "
              f"{b['kernel_s']:.1f} s, Zarr read {b['read_s']:.1f} s, normalisation {b['normalise_s']:.1f} s, "
              f"Zarr write {b['write_s']:.1f} s.", "",
              "| configuration | network on own pixels | halo recompute | input read + normalise "
              "| Zarr write, scheduler, transfer, idle | overhead |",
              "|---|---:|---:|---:|---:|---:|"]
    for name, m in res["methods"].items():
        if "breakdown_s" in m:
            v = list(m["breakdown_s"].values())
            lines.append(f"| {name} | " + " | ".join(f"{x:.1f} s" for x in v)
                         + f" | {100 * m['overhead_fraction']:.0f} % |")
    if res.get("torch_skipped"):
        lines += ["", f"PyTorch not run: {res['torch_skipped']}"]
    for name in ("onnxruntime", "torch"):
        if name not in res["methods"]:
            continue
        p = res["methods"][name]["phases_median_s"]
        lines.append("")
        lines.append(f"{name} phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in p.items())
                     + f" (inference alone {res['methods'][name]['infer_only_mpix_per_s']:.2f} MPix/s).")
    lines += ["", "![end-to-end throughput and where our time goes](benchmarks/results/e2e.png)"]
    return lines


def memory_section(res: dict) -> list[str]:
    mib = 1024**2
    lines = ["### Memory against image size (peak RSS)", "", _provenance(res, "python -m benchmarks.memory"),
             f"Fresh 2 x 1 cluster per point, block {res['block']}, lazily generated input, output written to Zarr. "
             "`two-conv` is a cheap 2-layer conv network (1 -> 8 -> 2) used so the largest sizes finish in "
             "minutes; `unet` is the shipped model.", "",
             "| network | image | MPix | worker peak (MiB) | worker after warm-up (MiB) | client peak (MiB) | seconds |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for p in res["pipeline"]:
        lines.append(f"| pipeline {p['network']} | {p['edge']}² | {p['megapixels']:.0f} | "
                     f"{max(p['workers_peak_rss_bytes']) / mib:.0f} | {max(p['workers_rss_after_warmup_bytes']) / mib:.0f} | "
                     f"{p['client_peak_rss_bytes'] / mib:.0f} | {p['seconds']:.1f} |")
    for kind, o in res["onnxruntime"].items():
        for p in o["measured"]:
            lines.append(f"| ONNX Runtime {kind}, whole image | {p['edge']}² | {p['megapixels']:.0f} | "
                         f"{p['peak_rss_bytes'] / mib:.0f} (one process) | | | {p['seconds']:.1f} |")
    lines.append("")
    for kind, o in res["onnxruntime"].items():
        f = o["EXTRAPOLATED_fit"]
        if f and f.get("megapixels_at_total_ram"):
            lines.append(f"- **Extrapolated, not measured**: ONNX Runtime on the whole image with `{kind}` grows by "
                         f"{f['bytes_per_megapixel'] / mib:.0f} MiB per MPix (line through the measured points) and "
                         f"would exhaust this machine's {f['ram_bytes'] / GIB:.0f} GiB at about "
                         f"{f['megapixels_at_total_ram']:.0f} MPix ({f['edge_at_total_ram']:.0f} px square).")
    lines += ["", "Plot: [`benchmarks/results/memory.png`](benchmarks/results/memory.png)."]
    return lines


def scaling_section(res: dict) -> list[str]:
    m, c, e = res["measured"], res["model_check"], res["estimate"]
    lines = ["### Scaling", "", _provenance(res, "python -m benchmarks.scaling"),
             f"**Measured**: {m['image'][0]} x {m['image'][1]}, block {m['block']}: 1 worker "
             f"{m['median_s']['1 worker']:.1f} s, 2 workers {m['median_s']['2 workers']:.1f} s, speed-up "
             f"**{m['speedup_1_to_2_median_of_rounds']:.2f}** (median of {m['rounds']} interleaved rounds).", "",
             f"**Estimate from a model, not measured**: list scheduling of the real Dask graph of a "
             f"{e['image'][0]} x {e['image'][1]} image ({e['tasks']} tasks, block {e['block']}) on N single-thread "
             "workers with per-task durations measured on 1 worker (by task prefix), communication ignored. "
             f"Critical path {e['critical_path_s']:.1f} s of {e['total_task_seconds']:.0f} task-seconds "
             f"(bound {e['speedup_bound_work_over_critical_path']:.0f}x). Replaying the measured graph the same way "
             f"predicts {c['simulated_speedup_1_to_2']:.2f}x for 2 workers against the measured "
             f"{m['speedup_1_to_2_median_of_rounds']:.2f}x.", "",
             "| workers (estimate) | " + " | ".join(e["by_workers"]) + " |",
             "|---|" + "---:|" * len(e["by_workers"]),
             "| speed-up | " + " | ".join(f"{v['speedup']:.1f}" for v in e["by_workers"].values()) + " |",
             "| efficiency | " + " | ".join(f"{100 * v['efficiency']:.0f} %" for v in e["by_workers"].values()) + " |",
             "", "Plot: [`benchmarks/results/scaling.png`](benchmarks/results/scaling.png)."]
    return lines


def coldstart_section(res: dict) -> list[str]:
    w, c = res["warm_cache"], res["empty_cache"]
    lines = ["### Cold start of a worker process", "", f"`{res.get('command') or 'python -m benchmarks.coldstart'}`"
             + (f" on {_machine_line(res)}" if res.get("machine") else "") + ".", "",
             "A fresh interpreter made ready to run the shipped model as a Dask worker is: import `pipeline`, "
             "unpickle the model the scheduler sends, build the plan, run every kernel once, and import and "
             "compile what a block task needs besides the network (Zarr reading, input normalisation, chunk "
             "writes). Block tasks leave `dask.array` to the client: importing it (with the xarray and pandas "
             "it loads) took about 0.6 s of a worker's start.", "",
             "| Numba cache | import | model | kernels + plan | total |", "|---|---:|---:|---:|---:|"]
    for label, r in (("warm (every start after the first)", w), ("empty (first compile on a fresh clone)", c)):
        lines.append(f"| {label} | {r['import_s']:.2f} s | {r['model_load_s']:.2f} s | "
                     f"{r['kernels_and_plan_s']:.2f} s | {r['total_s']:.2f} s |")
    if "client_onnx_load_s" in w:
        lines += ["", f"Parsing the ONNX file in a fresh process (the client's part, once per job) takes "
                  f"{w['client_onnx_load_s']:.2f} s, most of it importing the `onnx` package."]
    return lines


def section(results: Path = RESULTS) -> str:
    parts = {"kernels": kernels_section, "e2e": e2e_section, "memory": memory_section, "scaling": scaling_section,
             "coldstart": coldstart_section}
    lines = ["Measured on a shared, noisy 2-core machine: absolute times drift with the clock (1.8-3.0 GHz); "
             "ratios measured side by side in one run hold. `make bench-quick` (a few minutes) or `make bench` "
             "(15-30 minutes; 13-14 on this machine in 2026-12) regenerates the figures and this section "
             "(`python -m benchmarks.report` rewrites it from `benchmarks/results/*.json`).", ""]
    found = False
    for name, fn in parts.items():
        res = load(name, results)
        if res is None:
            continue
        found = True
        if res.get("quick"):
            fn_lines = fn(res)
            fn_lines.insert(1, "")
            fn_lines.insert(2, "*Quick mode (`--quick`): smaller sizes than the full benchmark.*")
            lines += fn_lines
        else:
            lines += fn(res)
        lines.append("")
    if not found:
        lines.append("No results yet: run `make bench-quick`.")
    return "\n".join(lines).rstrip() + "\n"


def replace_section(text: str, body: str) -> str:
    """``text`` with everything between the markers replaced by ``body`` (markers appended if absent)."""
    if START not in text or END not in text or text.index(START) > text.index(END):
        if START in text or END in text:
            raise SystemExit(f"README.md has only one of {START} and {END}, or in the wrong order; fix it by hand.")
        text = text.rstrip("\n") + f"\n\n## Performance\n\n{START}\n{END}\n"
    a = text.index(START) + len(START)
    b = text.index(END)
    return text[:a] + "\n" + body + text[b:]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--readme", type=Path, default=README)
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--print", action="store_true", help="print the section instead of writing README.md")
    args = ap.parse_args(argv)
    body = section(args.results)
    if args.print:
        print(body)
        return 0
    text = args.readme.read_text() if args.readme.exists() else ""
    args.readme.write_text(replace_section(text, body))
    print(f"updated the performance section of {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
