"""Cold start: a fresh process ready to run the shipped model (imports, model load, kernels).

Runs each case in a new interpreter: with Numba's cache warm (the normal case
on a worker after the first run) and with an empty cache directory (the first
compile on a fresh clone).  Writes ``benchmarks/results/coldstart.json``.

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
import numpy as np
import pipeline
from pipeline.cluster._warm import _warm
t1 = time.perf_counter()
model = pipeline.load_model(%r)
t2 = time.perf_counter()
_warm(model)
t3 = time.perf_counter()
print(f"{t1 - t0} {t2 - t1} {t3 - t2} {t3 - t0}")
"""


def _run(cache_dir: str | None) -> list[float]:
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    code = _CHILD % str(ROOT / "data" / "models" / "nuclei-unet.onnx")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return [float(v) for v in out.stdout.split()]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    fields = ("import_s", "model_load_s", "kernels_and_plan_s", "total_s")
    cold, warm = [], []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as empty:
            cold.append(_run(empty))
        with tempfile.TemporaryDirectory() as cache:
            _run(cache)  # fill this cache
            warm.append(_run(cache))
    result = {
        "command": "python -m benchmarks.coldstart --rounds %d" % args.rounds,
        "empty_cache": {f: statistics.median(r[i] for r in cold) for i, f in enumerate(fields)},
        "warm_cache": {f: statistics.median(r[i] for r in warm) for i, f in enumerate(fields)},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "coldstart.json").write_text(json.dumps(result, indent=1))
    print(f"{'':14}{'import':>9}{'model':>9}{'kernels':>9}{'total':>9}   (seconds, median of {args.rounds})")
    for name in ("warm_cache", "empty_cache"):
        r = result[name]
        print(f"{name:14}{r['import_s']:9.2f}{r['model_load_s']:9.2f}{r['kernels_and_plan_s']:9.2f}{r['total_s']:9.2f}")
    return result


if __name__ == "__main__":
    main()
