"""pipeline.post.measure: object tables equal skimage.measure.regionprops_table on the whole image."""

import threading

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from skimage.measure import label as sk_label
from skimage.measure import regionprops_table

from pipeline import errors
from pipeline.post import label, measure, write_table

rng = np.random.default_rng(5)
GEOMETRY = ("label", "area", "centroid", "bbox")


def reference(labels, image=None, properties=GEOMETRY):
    return pd.DataFrame(regionprops_table(labels, intensity_image=image, properties=properties))


def assert_table_equal(ours: pd.DataFrame, ref: pd.DataFrame, *, exact_intensity=True):
    assert list(ours.columns) == list(ref.columns)
    assert list(ours["label"]) == sorted(ours["label"])
    for name in ref.columns:
        if name.startswith("intensity") and not exact_intensity:
            np.testing.assert_allclose(ours[name].to_numpy(), ref[name].to_numpy(), rtol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(ours[name].to_numpy(), ref[name].to_numpy(), err_msg=name)


def blobs(shape, density=0.55, connectivity=1):
    return sk_label(rng.random(shape) < density, connectivity=connectivity)


# -- against regionprops_table ----------------------------------------------------------
def test_label_image_on_several_chunkings_with_sparse_labels():
    labels = blobs((31, 37)) * 3  # non-consecutive labels
    image = rng.integers(0, 4000, size=labels.shape).astype(np.uint16)
    ref = reference(labels, image, GEOMETRY + ("intensity_mean", "intensity_min", "intensity_max"))
    props = ("area", "centroid", "bbox", "intensity_mean", "intensity_min", "intensity_max")
    for chunks in (2, (5, 3), (8, 13), ((1, 30), (20, 17)), (31, 37)):
        table = measure(da.from_array(labels, chunks=chunks), image, properties=props)
        assert isinstance(table, dd.DataFrame) and table.npartitions == 1
        assert_table_equal(table.compute(), ref)


def test_stitched_labels_matched_through_the_bijection():
    img = rng.random((40, 44)) < 0.6
    theirs = sk_label(img, connectivity=1)
    intensity = rng.random(img.shape).astype(np.float32)
    ref = reference(theirs, intensity, GEOMETRY + ("intensity_mean",))
    for chunks in (3, (7, 5), 20):
        ours = label(img, chunks=chunks).persist()
        table, ours_np = measure(ours, intensity).compute(), ours.compute()
        to_theirs = dict(zip(ours_np[img], theirs[img]))
        table["label"] = table["label"].map(to_theirs)
        table = table.sort_values("label").reset_index(drop=True)
        assert_table_equal(table, ref, exact_intensity=False)


def test_object_spanning_four_blocks():
    labels = np.zeros((16, 16), np.int32)
    labels[5:12, 3:14] = 4
    labels[0, 15] = 9
    table = measure(da.from_array(labels, chunks=8), np.arange(256.0).reshape(16, 16),
                    properties=GEOMETRY + ("intensity_mean",)).compute()
    assert_table_equal(table, reference(labels, np.arange(256.0).reshape(16, 16), GEOMETRY + ("intensity_mean",)))
    assert table.loc[0, "bbox-0":"bbox-3"].tolist() == [5, 3, 12, 14]


def test_multichannel_image_gives_a_column_per_channel():
    labels = blobs((24, 26))
    image = rng.random((3, 24, 26))
    ref = reference(labels, np.moveaxis(image, 0, -1), ("label", "intensity_mean", "intensity_max"))
    table = measure(da.from_array(labels, chunks=(5, 7)), image, channel_axis=0,
                    properties=("intensity_mean", "intensity_max")).compute()
    assert list(table.columns) == ["label"] + [f"intensity_mean-{c}" for c in range(3)] + [
        f"intensity_max-{c}" for c in range(3)]
    assert_table_equal(table, ref, exact_intensity=False)


def test_three_d_labels():
    labels = blobs((6, 9, 10), 0.3)
    image = rng.integers(0, 100, size=labels.shape)
    ref = reference(labels, image, GEOMETRY + ("intensity_mean",))
    table = measure(da.from_array(labels, chunks=(2, 4, 3)), image).compute()
    assert_table_equal(table, ref)


def test_empty_image_gives_an_empty_table_with_the_columns():
    empty = measure(da.zeros((12, 12), dtype=np.int32, chunks=5)).compute()
    assert empty.empty and list(empty.columns) == list(reference(np.ones((2, 2), int)).columns)
    with_image = measure(np.zeros((6, 6), int), rng.random((2, 6, 6)), channel_axis=0).compute()
    assert with_image.empty
    assert list(with_image.columns) == list(reference(np.ones((2, 2), int), rng.random((2, 2, 2)),
                                                      GEOMETRY + ("intensity_mean",)).columns)


# -- laziness and storage ----------------------------------------------------------------
def test_nothing_is_computed_until_compute():
    calls = []
    lock = threading.Lock()
    img = rng.random((20, 20)) < 0.6

    def spy(block):
        with lock:
            calls.append(block.shape)
        return block

    source = da.from_array(img, chunks=5).map_blocks(spy, dtype=bool, meta=np.empty((0, 0), bool))
    table = measure(label(source), source.astype(np.float64))
    assert calls == []
    out = table.compute()
    assert calls and len(out) == sk_label(img, connectivity=1).max()


def test_write_table_and_to_parquet_round_trip(tmp_path):
    labels = blobs((20, 22))
    table = measure(da.from_array(labels, chunks=7), rng.random(labels.shape))
    expected = table.compute()
    path = write_table(table, tmp_path / "objects.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(path), expected)
    with pytest.raises(errors.OutputExistsError, match="objects.parquet"):
        write_table(table, path)
    pd.testing.assert_frame_equal(pd.read_parquet(path), expected)  # untouched
    write_table(expected.head(2), path, overwrite=True)
    assert len(pd.read_parquet(path)) == 2
    with pytest.raises(errors.StorageError, match="folder"):
        write_table(table, tmp_path / "missing" / "t.parquet")
    table.to_parquet(tmp_path / "dataset", write_index=False)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "dataset"), expected)


# -- bad input ---------------------------------------------------------------------------
def test_bad_input_raises_typed_errors():
    labels = np.ones((6, 6), np.int32)
    with pytest.raises(errors.DTypeError, match="integer"):
        measure(labels.astype(np.float32))
    with pytest.raises(errors.ShapeError, match="shape"):
        measure(labels, np.ones((6, 5)))
    with pytest.raises(errors.ShapeError, match="shape"):
        measure(np.ones(6, np.int32))
    with pytest.raises(errors.InputError, match="perimeter"):
        measure(labels, properties=("area", "perimeter"))
    with pytest.raises(errors.InputError, match="image"):
        measure(labels, properties=("intensity_mean",))
    with pytest.raises(errors.ChannelError, match="channel_axis"):
        measure(labels, np.ones((2, 6, 6)), channel_axis=5)
    with pytest.raises(errors.DTypeError, match="image"):
        measure(labels, np.full((6, 6), "x"))
