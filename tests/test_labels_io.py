"""Labels in the NGFF ``labels`` group of an OME-Zarr image: valid, listed, round-tripping."""

import dask.array as da
import numpy as np
import pytest
import zarr

from pipeline import errors, io

rng = np.random.default_rng(3)


@pytest.mark.parametrize("ngff", ["0.4", "0.5"])
def test_labels_group_validates_and_round_trips(tmp_path, ngff):
    from ome_zarr_models import open_ome_zarr

    image = rng.normal(size=(1, 64, 80)).astype(np.float32)
    labels = rng.integers(0, 5, size=(64, 80)).astype(np.int32)
    url = tmp_path / "img.ome.zarr"
    io.write_image(da.from_array(image, chunks=(1, 32, 40)), url, axes=("c", "y", "x"), ngff_version=ngff)
    io.write_labels(da.from_array(labels, chunks=(32, 40)), url, "nuclei", axes=("y", "x"))
    io.write_labels(da.from_array(labels + 1, chunks=(32, 40)), url, "cells", axes=("y", "x"))
    assert io.label_names(url) == ["nuclei", "cells"]
    model = open_ome_zarr(zarr.open_group(str(url / "labels" / "nuclei"), mode="r"), version=ngff)
    assert type(model).__name__ in ("Labels", "ImageLabel", "Image")
    group = zarr.open_group(str(url / "labels" / "nuclei"), mode="r")
    attrs = dict(group.attrs)
    meta = attrs["ome"] if ngff == "0.5" else attrs
    assert meta["image-label"]["source"]["image"] == "../../"
    back = io.open_image(url / "labels" / "nuclei")
    np.testing.assert_array_equal(back.data.compute(), labels)
    assert back.data.dtype == np.int32
    assert io.output_state(url / "labels" / "nuclei").state == "complete"
    # the image itself is untouched and still valid
    open_ome_zarr(zarr.open_group(str(url), mode="r"), version=ngff)
    np.testing.assert_array_equal(io.open_image(url).data.compute(), image)


def test_labels_need_an_ome_zarr_image(tmp_path):
    z = zarr.create_array(tmp_path / "plain.zarr", shape=(8, 8), dtype="f4")
    with pytest.raises(errors.StorageError, match="plain array"):
        io.write_labels(da.zeros((8, 8), dtype=np.int32), tmp_path / "plain.zarr", "x", axes=("y", "x"))
    with pytest.raises(errors.StorageError, match="plain label name"):
        io.write_labels(da.zeros((8, 8), dtype=np.int32), tmp_path / "plain.zarr", "../x", axes=("y", "x"))
    assert z.shape == (8, 8)
