"""The kernels at the vector width this CPU does not pick by itself.

On a CPU with AVX-512F the kernels use 16-lane vectors; 8-lane AVX2 code is
what runs on every other x86-64 machine (and on a cluster's older nodes).
Numba compiles for ``NUMBA_CPU_FEATURES`` when it is set, so a child process
with the AVX-512 features switched off runs the kernel, assembly and
onnxruntime-equality suites on 8 lanes, here, on this machine.  The other way
round (AVX-512 code on a CPU without it) cannot run, so that case is skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _host_features() -> str:
    from numba.core import codegen

    return codegen.get_host_cpu_features()


def _without_avx512(features: str) -> str:
    return ",".join("-" + f[1:] if f[1:].startswith("avx512") else f for f in features.split(","))


@pytest.mark.skipif("+avx512f" not in _host_features().split(","),
                    reason="this CPU lacks AVX-512F: its own width (8 lanes) is the only one it can run")
@pytest.mark.skipif("NUMBA_CPU_FEATURES" in os.environ, reason="NUMBA_CPU_FEATURES is already set for this run")
def test_kernels_and_models_at_8_lanes_on_an_avx512_cpu():
    env = dict(os.environ, NUMBA_CPU_FEATURES=_without_avx512(_host_features()))
    probe = subprocess.run([sys.executable, "-c", "from pipeline.kernels._conv import LANES; print(LANES)"],
                           env=env, capture_output=True, text=True, cwd=ROOT)
    assert probe.stdout.strip() == "8", probe.stderr
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "not slow",
         "tests/test_kernels.py", "tests/test_kernel_asm.py", "tests/test_onnx_models.py"],
        env=env, capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert " passed" in res.stdout.splitlines()[-1]
