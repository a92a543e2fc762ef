"""The ``pipeline`` command driven as a user would: subprocesses, exit codes, outputs checked independently."""

import numpy as np
import scipy.ndimage as ndi
import tifffile
import zarr

from pipeline.cli import main

from _cluster_utils import W3, blur_model, run_cli, write_input


def test_help_and_commands():
    res = run_cli("--help")
    assert res.returncode == 0
    for cmd in ("predict", "convert", "info", "Exit codes"):
        assert cmd in res.stdout
    assert run_cli("predict", "--help").returncode == 0
    res = run_cli("frobnicate")
    assert res.returncode == 2 and "invalid choice" in res.stderr


def test_convert_predict_info_end_to_end(tmp_path):
    img = np.random.default_rng(4).integers(0, 4000, (200, 150)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "scan.tif", img, tile=(64, 64))
    blur_model("blur").save(tmp_path / "model")
    res = run_cli("convert", tmp_path / "scan.tif", tmp_path / "scan.zarr", "--chunks", 64)
    assert res.returncode == 0, res.stderr
    report = tmp_path / "report.html"
    res = run_cli("predict", tmp_path / "scan.zarr", tmp_path / "out.zarr", "--model", tmp_path / "model",
                  "--chunks", 64, "--workers", 2, "--report", report)
    assert res.returncode == 0, res.stderr
    assert "Dask dashboard: http://" in res.stderr and "level 0 [" in res.stderr
    assert report.exists() and "bokeh" in report.read_text().lower()
    out = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    expect = np.stack([ndi.correlate(img.astype(np.float64), W3[c, 0], mode="constant") for c in range(2)])
    np.testing.assert_allclose(out["0"][:], expect, rtol=1e-5, atol=1e-2)
    info = run_cli("info", tmp_path / "out.zarr")
    assert info.returncode == 0
    for line in ("shape     (2, 200, 150)", "dtype     float32", "axes      cyx", "state     complete", "blur 0"):
        assert line in info.stdout
    assert "Conv" in run_cli("info", tmp_path / "model").stdout
    assert "absent" in run_cli("info", tmp_path / "nothing.zarr").stdout


def test_plain_zarr_with_channel_axis_in_process(tmp_path, capsys):
    rng = np.random.default_rng(5)
    data = rng.normal(size=(40, 48, 2)).astype(np.float32)
    z = zarr.create_array(str(tmp_path / "in.zarr"), shape=data.shape, chunks=(16, 16, 2), dtype="f4")
    z[:] = data
    from pipeline.model import Model, Node

    W = np.zeros((2, 2, 3, 3), np.float32)
    W[:, :1] = W3
    Model([Node("c", "Conv", ("input",), {"pads": 1}, {"W": W})], input_channels=2, name="two").save(tmp_path / "m")
    code = main(["predict", str(tmp_path / "in.zarr"), str(tmp_path / "o.zarr"), "--model", str(tmp_path / "m"),
                 "--channel-axis", "-1", "--plain-zarr", "--chunks", "16", "--workers", "1"])
    assert code == 0, capsys.readouterr().err
    out = zarr.open_array(str(tmp_path / "o.zarr"), mode="r")
    assert out.metadata.dimension_names == ("y", "x", "c")
    expect = np.stack([ndi.correlate(data[..., 0].astype(np.float64), W3[c, 0], mode="constant") for c in range(2)], -1)
    np.testing.assert_allclose(out[:], expect, atol=1e-4)
    assert main(["predict", str(tmp_path / "in.zarr"), str(tmp_path / "o.zarr"), "--model", str(tmp_path / "m"),
                 "--channel-axis", "-1", "--plain-zarr", "--chunks", "16", "--workers", "1", "--overwrite"]) == 0
