"""All benchmarks in one go, then the README performance section: ``python -m benchmarks.run --quick|--full``.

Each benchmark runs in its own Python process (so thread settings and peak
memory of one never leak into another), in order: kernels, end to end,
memory, scaling, cold start.  A benchmark that fails (outputs disagree, a crash) makes
the whole run exit with code 1 and the README is left as it was.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from .report import ROOT
from .report import main as report_main

PARTS = ("kernels", "e2e", "memory", "scaling", "coldstart")
TAKES_TMP = ("e2e", "memory", "scaling")


def run_part(name: str, quick: bool, tmp: str | None) -> tuple[int, float]:
    cmd = [sys.executable, "-m", f"benchmarks.{name}"] + (["--quick"] if quick else [])
    if tmp and name in TAKES_TMP:
        cmd += ["--tmp", tmp]
    print(f"=== {' '.join(['python'] + cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    code = subprocess.run(cmd, cwd=ROOT).returncode
    return code, time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quick", action="store_true", help="smaller sizes and fewer rounds (a few minutes)")
    mode.add_argument("--full", action="store_true", help="full sizes (15-30 minutes)")
    ap.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS), help="run only these benchmarks")
    ap.add_argument("--tmp", default=None, help="directory for temporary Zarr stores (default: the system's)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    failed, took = [], {}
    for name in args.only:
        code, seconds = run_part(name, args.quick, args.tmp)
        took[name] = seconds
        print(f"=== {name}: {'ok' if code == 0 else f'FAILED (exit {code})'} in {seconds:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
    total = time.perf_counter() - t0
    print("=== wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in took.items()) + f"; total {total:.0f} s")
    if failed:
        print(f"=== FAILED: {', '.join(failed)}; README.md not updated", file=sys.stderr)
        return 1
    return report_main([])


if __name__ == "__main__":
    sys.exit(main())
