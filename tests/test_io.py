"""Storage: reading Zarr v2/v3 and OME-Zarr, chunk-aligned OME-Zarr writes validated against NGFF, imports."""

import dask
import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr
from hypothesis import given
from hypothesis import strategies as st

import pipeline.io as io
from pipeline import errors

rng = np.random.default_rng(0)


def naive_halve(a):
    """Independent 2x2 mean on the last two axes (odd edge dropped), in float64."""
    y, x = a.shape[-2] // 2, a.shape[-1] // 2
    out = np.zeros(a.shape[:-2] + (y, x))
    for dy in (0, 1):
        for dx in (0, 1):
            out += a[..., dy : 2 * y : 2, dx : 2 * x : 2]
    return out / 4


@pytest.mark.parametrize("fmt", [2, 3])
def test_plain_arrays_read_with_axes(tmp_path, fmt):
    data = rng.integers(0, 255, (3, 40, 50)).astype(np.uint8)
    kw = {"dimension_names": ["c", "y", "x"]} if fmt == 3 else {"attributes": {"_ARRAY_DIMENSIONS": ["c", "y", "x"]}}
    z = zarr.create_array(str(tmp_path / "a.zarr"), shape=data.shape, chunks=(1, 16, 16), dtype=data.dtype,
                          zarr_format=fmt, **kw)
    z[:] = data
    img = io.open_image(tmp_path / "a.zarr")
    assert img.format == f"zarr v{fmt}" and img.axes == ("c", "y", "x") and img.channel_axis == 0
    assert img.data.chunks[1] == (16, 16, 8)
    np.testing.assert_array_equal(img.data.compute(), data)


def test_unnamed_plain_array_gets_y_x_last(tmp_path):
    z = zarr.create_array(str(tmp_path / "a.zarr"), shape=(2, 8, 9), chunks=(1, 8, 9), dtype="f4")
    assert io.open_image(tmp_path / "a.zarr").axes == ("dim_0", "y", "x")


@pytest.mark.parametrize("ngff", ["0.4", "0.5"])
def test_ome_zarr_validates_and_round_trips(tmp_path, ngff):
    from ome_zarr_models import open_ome_zarr

    data = rng.normal(size=(2, 3, 70, 90)).astype(np.float32)  # (t, c, y, x)
    arr = da.from_array(data, chunks=(1, 3, 32, 32))
    out = tmp_path / "img.zarr"
    res = io.write_image(arr, out, axes=("t", "c", "y", "x"), ngff_version=ngff, channel_names=["a", "b", "c"],
                         pixel_size=(1.0, 1.0, 0.5, 0.5))
    model = open_ome_zarr(zarr.open_group(str(out), mode="r"), version=ngff)
    assert type(model).__name__ == "Image"
    img = io.open_image(out)
    assert img.format == f"ome-zarr {ngff}" and img.axes == ("t", "c", "y", "x")
    assert img.channel_names == ["a", "b", "c"] and img.pixel_size == (1.0, 1.0, 0.5, 0.5)
    np.testing.assert_array_equal(img.data.compute(), data)
    # the pyramid: level k is the 2x2 mean of level k-1, scale doubles on y and x only
    prev = data.astype(np.float64)
    for level in range(1, img.levels):
        lv = io.open_image(out, level=level)
        expect = naive_halve(prev)
        np.testing.assert_allclose(lv.data.compute(), expect, rtol=1e-6, atol=1e-6)
        assert lv.pixel_size == (1.0, 1.0, 0.5 * 2**level, 0.5 * 2**level)
        prev = lv.data.compute().astype(np.float64)
    assert img.levels == 3 and res["total"] == res["computed"]
    assert io.output_state(out).state == "complete"


def test_integer_pyramid_takes_pixels_not_means(tmp_path):
    labels = rng.integers(0, 5, (1, 64, 64)).astype(np.int32)
    io.write_image(da.from_array(labels, chunks=(1, 16, 16)), tmp_path / "l.zarr", axes=("c", "y", "x"), levels=2)
    np.testing.assert_array_equal(io.open_image(tmp_path / "l.zarr", level=1).data.compute(), labels[:, ::2, ::2])


def test_plain_zarr_output(tmp_path):
    data = rng.normal(size=(5, 33, 20)).astype(np.float32)
    io.write_image(da.from_array(data, chunks=(5, 11, 10)), tmp_path / "p.zarr", axes=("c", "y", "x"), ome=False,
                   compression="blosc")
    z = zarr.open_array(str(tmp_path / "p.zarr"), mode="r")
    assert z.metadata.dimension_names == ("c", "y", "x") and z.chunks == (5, 11, 10)
    assert "blosc" in str(z.compressors).lower()
    np.testing.assert_array_equal(z[:], data)
    assert io.output_state(tmp_path / "p.zarr").state == "complete"


def test_auto_compression_is_shuffled_lz4_for_floats_and_zstd_for_integers(tmp_path):
    floats = rng.random((2, 40, 40)).astype(np.float32)
    labels = rng.integers(0, 9, (1, 40, 40)).astype(np.int32)
    io.write_image(da.from_array(floats, chunks=(2, 20, 20)), tmp_path / "f.zarr", axes=("c", "y", "x"), ome=False)
    io.write_image(da.from_array(labels, chunks=(1, 20, 20)), tmp_path / "l.zarr", axes=("c", "y", "x"), ome=False)
    zf = zarr.open_array(str(tmp_path / "f.zarr"), mode="r")
    zl = zarr.open_array(str(tmp_path / "l.zarr"), mode="r")
    assert "blosc" in str(zf.compressors).lower() and "lz4" in str(zf.compressors).lower()
    assert "shuffle" in str(zf.compressors).lower()
    assert "zstd" in str(zl.compressors).lower()
    np.testing.assert_array_equal(zf[:], floats)
    np.testing.assert_array_equal(zl[:], labels)


def test_auto_compression_resumes_an_output_started_with_zstd(tmp_path):
    data = rng.random((1, 64, 64)).astype(np.float32)
    img = da.from_array(data, chunks=(1, 32, 32))

    def two_then_fail(tasks, label):
        dask.compute(*tasks[:2])
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        io.write_image(img, tmp_path / "o.zarr", axes=("c", "y", "x"), ome=False, compression="zstd",
                       executor=two_then_fail)
    res = io.write_image(img, tmp_path / "o.zarr", axes=("c", "y", "x"), ome=False, resume=True)
    assert res["computed"] == 2
    z = zarr.open_array(str(tmp_path / "o.zarr"), mode="r")
    assert "zstd" in str(z.compressors).lower()
    np.testing.assert_array_equal(z[:], data)
    with pytest.raises(errors.StorageError, match="layout differs"):
        io.write_image(img, tmp_path / "o.zarr", axes=("c", "y", "x"), ome=False, compression="blosc", resume=True)


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_all_zero_blocks_leave_no_chunks_and_others_are_written(tmp_path, dtype):
    """Blocks all of the fill value (0) store no chunk; every other block stores its chunk, zeros and all."""
    data = np.zeros((2, 40, 60), dtype)
    data[:, 20:, :20] = 1  # block (1, 0): all ones
    data[0, 0, 59] = 3  # block (0, 2): one non-zero value
    out = tmp_path / "z.zarr"
    io.write_image(da.from_array(data, chunks=(2, 20, 20)), out, axes=("c", "y", "x"), ome=False)
    z = zarr.open_array(str(out), mode="r")
    assert z.chunks == (2, 20, 20)
    np.testing.assert_array_equal(z[:], data)
    files = sorted(p.relative_to(out / "c").as_posix() for p in (out / "c").rglob("*") if p.is_file())
    assert files == ["0/0/2", "0/1/0"]


@given(st.lists(st.integers(1, 9), min_size=1, max_size=6), st.integers(1, 9))
def test_aligned_chunks_tile_blocks(sizes, last):
    blocks = tuple(sizes) + (last,)
    (c,) = io.aligned_chunks((blocks,))
    bounds = np.cumsum((0,) + blocks)
    # every interior block boundary is a chunk boundary: each chunk lies in exactly one block
    assert all(b % c == 0 for b in bounds[:-1])
    assert c == (blocks[0] if len(blocks) == 1 else np.gcd.reduce(blocks[:-1]))


def test_every_chunk_written_by_one_task(tmp_path):
    """Each stored chunk's extent lies inside exactly one Dask block (the writing task)."""
    ybounds, xbounds = (0, 40, 80, 100), (0, 30, 60, 100)
    arr = da.from_array(rng.normal(size=(1, 100, 100)).astype(np.float32), chunks=(1, (40, 40, 20), (30, 30, 40)))
    io.write_image(arr, tmp_path / "w.zarr", axes=("c", "y", "x"), ome=False)
    z = zarr.open_array(str(tmp_path / "w.zarr"))
    for bounds, c, n in ((ybounds, z.chunks[1], 100), (xbounds, z.chunks[2], 100)):
        for start in range(0, n, c):
            stop = min(start + c, n)
            owners = [i for i in range(len(bounds) - 1) if bounds[i] < stop and start < bounds[i + 1]]
            assert len(owners) == 1 and bounds[owners[0]] <= start and stop <= bounds[owners[0] + 1]
    np.testing.assert_array_equal(z[:], arr.compute())


@pytest.mark.parametrize("scheme", ["file", "memory"])
def test_fsspec_urls(tmp_path, scheme):
    data = rng.normal(size=(1, 48, 40)).astype(np.float32)
    url = f"file://{tmp_path}/u.zarr" if scheme == "file" else "memory://pipeline-test/u.zarr"
    with dask.config.set(scheduler="threads"):
        io.write_image(da.from_array(data, chunks=(1, 16, 16)), url, axes=("c", "y", "x"), levels=2, overwrite=True)
        img = io.open_image(url)
        np.testing.assert_array_equal(img.data.compute(), data)
    assert io.output_state(url).state == "complete"
    assert img.levels == 2


def test_convert_tiled_bigtiff_reads_lazily(tmp_path):
    data = rng.integers(0, 60000, (3, 200, 300)).astype(np.uint16)  # (c, y, x) planar
    tifffile.imwrite(tmp_path / "big.tif", data, bigtiff=True, tile=(64, 64), photometric="minisblack",
                     metadata={"axes": "CYX"})
    img = io.read_any(tmp_path / "big.tif")
    assert isinstance(img.data, da.Array) and img.axes == ("c", "y", "x")
    with dask.config.set(scheduler="threads"):
        io.convert(tmp_path / "big.tif", tmp_path / "big.zarr", chunks=128)
    out = io.open_image(tmp_path / "big.zarr")
    assert out.axes == ("c", "y", "x") and out.data.chunks[-1][0] == 128
    np.testing.assert_array_equal(out.data.compute(), tifffile.imread(tmp_path / "big.tif"))


def test_convert_png_rgb_moves_channels_first(tmp_path):
    import skimage.io

    rgb = rng.integers(0, 255, (50, 60, 3)).astype(np.uint8)
    skimage.io.imsave(tmp_path / "p.png", rgb, check_contrast=False)
    with dask.config.set(scheduler="threads"):
        io.convert(tmp_path / "p.png", tmp_path / "p.zarr", chunks=32)
    out = io.open_image(tmp_path / "p.zarr")
    assert out.axes == ("c", "y", "x")
    np.testing.assert_array_equal(out.data.compute(), np.moveaxis(rgb, -1, 0))


def test_open_errors_name_the_thing(tmp_path):
    with pytest.raises(errors.StorageError, match="does not exist"):
        io.open_image(tmp_path / "missing.zarr")
    (tmp_path / "g.zarr").mkdir()
    zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    with pytest.raises(errors.StorageError, match="without OME-Zarr multiscales"):
        io.open_image(tmp_path / "g.zarr")
    io.write_image(da.zeros((1, 8, 8), chunks=4), tmp_path / "o.zarr", axes=("c", "y", "x"))
    with pytest.raises(errors.StorageError, match="levels 0 to 1"):
        io.open_image(tmp_path / "o.zarr", level=3)
    with pytest.raises(errors.StorageError, match="OME-Zarr axes"):
        io.write_image(da.zeros((8, 8, 2), chunks=4), tmp_path / "bad.zarr", axes=("y", "x", "c"))
    assert not (tmp_path / "bad.zarr").exists()
