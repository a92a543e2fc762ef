"""Every kernel a worker warms up with comes back from Numba's disk cache in the next process.

A kernel Numba cannot key stably (a jitted helper in its closure, say) is
compiled again by every new worker process: seconds of cold start, and one
more cache entry on disk each time.  The first child process below fills the
cache if it is not full already; the second must find everything there and
save nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_WARM = """
import numpy as np
import pipeline
from pipeline import kernels as K
from pipeline.cluster._warm import _warm

_warm(pipeline.load_model("data/models/nuclei-unet.onnx"))
# the layer kinds the shipped model lacks
x = np.ones((9, 40, 8), np.float32)
K.conv2d(x, K.pack_conv_weights(np.ones((8, 1, 3, 3), np.float32), 8), None)
K.conv2d(x, K.pack_conv_weights(np.ones((16, 8, 3, 3), np.float32)), None, stride=(2, 2))
K.conv_transpose2d(x, K.pack_conv_transpose_weights(np.ones((8, 48, 3, 3), np.float32)), stride=(2, 2))
"""


def _run_warm() -> str:
    env = dict(os.environ, NUMBA_DEBUG_CACHE="1")
    res = subprocess.run([sys.executable, "-c", _WARM], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_a_second_worker_process_compiles_nothing():
    _run_warm()
    saved = [line for line in _run_warm().splitlines() if "data saved" in line]
    assert not saved, "kernels compiled again in a fresh process (not found in the cache):\n" + "\n".join(saved)
