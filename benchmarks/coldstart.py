"""Cold start: a fresh process ready to run the shipped model (imports, model load, kernels).

Runs each case in a new interpreter: with Numba's cache warm (the normal case
on a worker after the first run) and with an empty cache directory (the first
compile on a fresh clone).  The child starts as a Dask worker does: it
receives the model pickled (the client parsed the ONNX file once), so the
``onnx`` package, whose import alone takes about a second (``ml_dtypes``), is
not on a worker's path; parsing the ONNX file in a fresh process is timed
separately, after the worker's part (``client_onnx_load_s``).  Writes
``benchmarks/results/coldstart.json``.

    python -m benchmarks.coldstart [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

_CHILD = r"""
import time
t0 = time.perf_counter()
import pickle
import numpy as np
import pipeline
from pipeline.cluster._warm import _warm
t1 = time.perf_counter()
with open(%r, "rb") as f:
    model = pickle.load(f)
t2 = time.perf_counter()
_warm(model)
t3 = time.perf_counter()
pipeline.load_model(%r)
t4 = time.perf_counter()
print(f"{t1 - t0} {t2 - t1} {t3 - t2} {t3 - t0} {t4 - t3}")
"""


MODEL = ROOT / "data" / "models" / "nuclei-unet.onnx"


def _pickle_model(path: Path) -> str:
    """Write the shipped model as the scheduler sends it to a worker (pickled) to ``path``."""
    import pickle

    import pipeline

    path.write_bytes(pickle.dumps(pipeline.load_model(MODEL)))
    return str(path)


def _run(model_pickle: str, cache_dir: str | None) -> list[float]:
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    code = _CHILD % (model_pickle, str(MODEL))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return [float(v) for v in out.stdout.split()]


def _machine() -> dict:
    from benchmarks.report import machine_info

    return machine_info()


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=None, help="fresh processes per case (default 3, quick 1)")
    p.add_argument("--quick", action="store_true", help="one round")
    args = p.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 3)
    fields = ("import_s", "model_load_s", "kernels_and_plan_s", "total_s", "client_onnx_load_s")
    cold, warm = [], []
    with tempfile.TemporaryDirectory() as tmp:
        model = _pickle_model(Path(tmp) / "model.pkl")
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as empty:
                cold.append(_run(model, empty))
            with tempfile.TemporaryDirectory() as cache:
                _run(model, cache)  # fill this cache
                warm.append(_run(model, cache))
    result = {
        "command": "python -m benchmarks.coldstart --rounds %d" % args.rounds,
        "machine": _machine(),
        "empty_cache": {f: statistics.median(r[i] for r in cold) for i, f in enumerate(fields)},
        "warm_cache": {f: statistics.median(r[i] for r in warm) for i, f in enumerate(fields)},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "coldstart.json").write_text(json.dumps(result, indent=1))
    print(f"{'':14}{'import':>9}{'model':>9}{'kernels':>9}{'total':>9}{'ONNX parse (client)':>21}"
          f"   (seconds, median of {args.rounds})")
    for name in ("warm_cache", "empty_cache"):
        r = result[name]
        print(f"{name:14}{r['import_s']:9.2f}{r['model_load_s']:9.2f}{r['kernels_and_plan_s']:9.2f}{r['total_s']:9.2f}"
              f"{r['client_onnx_load_s']:21.2f}")
    return result


if __name__ == "__main__":
    main()
