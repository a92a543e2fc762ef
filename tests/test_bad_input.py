"""The bad-input matrix: message naming the thing, exit code, and pre-existing data unchanged."""

import os
import subprocess

import dask.array as da
import numpy as np
import pytest
import zarr

import pipeline.io as io
from pipeline.cli import main

from _cluster_utils import blur_model, tree_digest, write_input


@pytest.fixture
def setup(tmp_path):
    write_input(tmp_path / "in.zarr", shape=(96, 80), chunks=(32, 32), dtype="float32")
    blur_model().save(tmp_path / "m")
    (tmp_path / "keep.txt").write_text("precious")
    return tmp_path


def run(capsys, *args):
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.err.strip()


def check(setup, capsys, args, code, *needles):
    before = tree_digest(setup, skip_markers=False)
    got, err = run(capsys, *args)
    assert got == code, err
    last = err.splitlines()[-1]
    assert last.startswith("pipeline: error: ")
    for needle in needles:
        assert needle in last, last
    after = tree_digest(setup, skip_markers=False)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing that existed changed
    return last


def test_missing_input(setup, capsys):
    check(setup, capsys, ["predict", setup / "nope.zarr", setup / "o.zarr", "--model", setup / "m"], 2,
          "nope.zarr", "does not exist")
    assert not (setup / "o.zarr").exists()


def test_not_a_zarr(setup, capsys):
    (setup / "folder").mkdir()
    (setup / "folder" / "x.txt").write_text("hello")
    check(setup, capsys, ["predict", setup / "folder", setup / "o.zarr", "--model", setup / "m"], 2,
          "folder", "is not a Zarr array or group")
    check(setup, capsys, ["info", setup / "keep.txt"], 2, "keep.txt", "not a Zarr")


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_chunk(setup, capsys, damage):
    chunk = setup / "in.zarr" / "c" / "1" / "0"
    data = chunk.read_bytes()
    chunk.write_bytes(data[: len(data) // 3] if damage == "truncated" else os.urandom(len(data)))
    last = check(setup, capsys, ["predict", setup / "in.zarr", setup / "o.zarr", "--model", setup / "m",
                                 "--chunks", 32, "--workers", 1], 2, "Chunk 'c/1/0'", "in.zarr", "cannot be decoded")
    assert "Traceback" not in last


def test_wrong_dtype(setup, capsys):
    z = zarr.create_array(str(setup / "cx.zarr"), shape=(16, 16), chunks=(8, 8), dtype="complex64")
    z[:] = 1j
    check(setup, capsys, ["predict", setup / "cx.zarr", setup / "o.zarr", "--model", setup / "m"], 2,
          "Expected a numeric image", "complex64")


def test_model_channel_mismatch(setup, capsys):
    io.write_image(da.zeros((3, 32, 32), chunks=16, dtype=np.float32), setup / "rgb.zarr", axes=("c", "y", "x"))
    check(setup, capsys, ["predict", setup / "rgb.zarr", setup / "o.zarr", "--model", setup / "m"], 2,
          "expects 1 input channel", "3 channels on axis 0")


def test_corrupt_model(setup, capsys):
    (setup / "bad").mkdir()
    (setup / "bad" / "model.json").write_bytes(b"\x00garbage" * 10)
    check(setup, capsys, ["predict", setup / "in.zarr", setup / "o.zarr", "--model", setup / "bad"], 2,
          "model.json", "not valid JSON")


def test_output_exists(setup, capsys):
    io.write_image(da.ones((1, 32, 32), chunks=16, dtype=np.float32), setup / "o.zarr", axes=("c", "y", "x"))
    check(setup, capsys, ["predict", setup / "in.zarr", setup / "o.zarr", "--model", setup / "m"], 2,
          "o.zarr", "already exists", "--overwrite")
    check(setup, capsys, ["predict", setup / "in.zarr", setup / "keep.txt", "--model", setup / "m", "--overwrite"], 2,
          "keep.txt", "not a Zarr store")


def test_output_not_writable(setup, capsys):
    check(setup, capsys, ["predict", setup / "in.zarr", setup / "keep.txt" / "o.zarr", "--model", setup / "m"], 2,
          "keep.txt", "is not a directory")
    ro = setup / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(ro)], capture_output=True).returncode:
        pytest.skip("cannot mount a read-only tmpfs here (needs root and CAP_SYS_ADMIN)")
    try:
        check(setup, capsys, ["predict", setup / "in.zarr", ro / "o.zarr", "--model", setup / "m"], 2,
              "ro/o.zarr", "not writable")
    finally:
        subprocess.run(["umount", str(ro)], check=True)


def test_disk_full(tmp_path, capsys):
    full = tmp_path / "full"
    full.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(full)], capture_output=True).returncode:
        pytest.skip("cannot mount a 1 MiB tmpfs here (needs root and CAP_SYS_ADMIN)")
    try:
        write_input(tmp_path / "in.zarr", shape=(640, 640), chunks=(128, 128), dtype="float32")
        blur_model().save(tmp_path / "m")
        (full / "keep.bin").write_bytes(os.urandom(100_000))
        before = tree_digest(full)
        code, err = run(capsys, "predict", tmp_path / "in.zarr", full / "o.zarr", "--model", tmp_path / "m",
                        "--chunks", 128, "--workers", 1, "--compression", "none")
        last = err.splitlines()[-1]
        assert code == 1 and last.startswith("pipeline: error: ")
        assert "No space left on device" in last and "o.zarr" in last
        assert tree_digest(full)["keep.bin"] == before["keep.bin"]
        assert io.output_state(full / "o.zarr").state in ("partial", "absent")
    finally:
        subprocess.run(["umount", str(full)], check=True)


def test_bad_usage(capsys):
    assert main(["predict"]) == 2
    assert main(["predict", "a", "b", "--model", "m", "--workers", "0"]) == 2
    assert main(["predict", "a", "b", "--model", "m", "--overwrite", "--resume"]) == 2
    assert "usage:" in capsys.readouterr().err
