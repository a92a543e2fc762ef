"""The synthetic nuclei generator: determinism, chunk-independence, laziness, labels."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

import pipeline.synthetic._nuclei as nuclei_module
from pipeline.errors import DTypeError, InputError, ShapeError
from pipeline.synthetic import NucleiSpec, nuclei, nuclei_block


def _compute(shape, **kwargs):
    image, labels = nuclei(shape, **kwargs)
    return dask.compute(image, labels, scheduler="sync")


def test_dtype_and_shape_contract():
    image, labels = nuclei((300, 200), seed=1, chunks=(128, 96))
    assert isinstance(image, da.Array) and isinstance(labels, da.Array)
    assert image.shape == labels.shape == (300, 200)
    assert image.dtype == np.uint16 and labels.dtype == np.int32
    assert image.chunks == labels.chunks == ((128, 128, 44), (96, 96, 8))
    img, lab = dask.compute(image, labels, scheduler="sync")
    assert img.dtype == np.uint16 and lab.dtype == np.int32 and img.shape == lab.shape == (300, 200)


def test_float32_is_the_unrounded_image():
    counts, _ = nuclei_block((256, 256), seed=4)
    real, _ = nuclei_block((256, 256), seed=4, dtype="float32")
    assert real.dtype == np.float32
    np.testing.assert_array_equal(np.clip(np.rint(real), 0, 65535).astype(np.uint16), counts)
    assert not np.array_equal(real, np.rint(real))  # read noise makes counts real-valued


def test_same_seed_same_image_and_other_seed_differs():
    a_img, a_lab = _compute((256, 320), seed=7, chunks=128)
    b_img, b_lab = _compute((256, 320), seed=7, chunks=128)
    c_img, c_lab = _compute((256, 320), seed=8, chunks=128)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_lab, b_lab)
    assert np.mean(a_img != c_img) > 0.9
    assert np.mean((a_lab > 0) != (c_lab > 0)) > 0.1


def test_two_chunkings_give_identical_arrays():
    coarse = _compute((520, 600), seed=3, chunks=(512, 600))
    fine = _compute((520, 600), seed=3, chunks=((37, 100, 128, 200, 55), (61, 300, 239)))
    np.testing.assert_array_equal(coarse[0], fine[0])
    np.testing.assert_array_equal(coarse[1], fine[1])


@settings(max_examples=8, deadline=None)
@given(
    y0=st.integers(0, 300), x0=st.integers(0, 300), h=st.integers(1, 140), w=st.integers(1, 140),
    seed=st.integers(0, 2**32),
)
def test_any_region_equals_the_whole_image(y0, x0, h, w, seed):
    shape = (y0 + h + 13, x0 + w + 29)
    whole_img, whole_lab = nuclei_block(shape, seed=seed)
    img, lab = nuclei_block(shape, ((y0, y0 + h), (x0, x0 + w)), seed=seed)
    np.testing.assert_array_equal(img, whole_img[y0 : y0 + h, x0 : x0 + w])
    np.testing.assert_array_equal(lab, whole_lab[y0 : y0 + h, x0 : x0 + w])


@pytest.fixture
def render_calls(monkeypatch):
    """The region arguments of every chunk render, recorded as they happen."""
    calls = []
    real = nuclei_module.render_region

    def counting(*args):
        calls.append(args[3:])
        return real(*args)

    monkeypatch.setattr(nuclei_module, "render_region", counting)
    return calls


def test_huge_image_is_lazy_and_one_chunk_is_cheap(render_calls):
    calls = render_calls
    image, labels = nuclei((100_000, 100_000), seed=11, chunks=1024)
    assert image.shape == labels.shape == (100_000, 100_000)
    assert image.numblocks == (98, 98)
    assert calls == []
    corner = image[2048:2148, 4096:4196].compute(scheduler="sync")
    assert corner.shape == (100, 100) and corner.dtype == np.uint16
    assert calls == [(2048, 3072, 4096, 5120)]  # exactly the one chunk holding the slice


def test_label_ids_are_unique_across_chunks_and_objects_span_borders():
    chunk = 64
    _, labels = _compute((512, 512), seed=5, chunks=chunk)
    reach = NucleiSpec().reach
    ids = np.unique(labels[labels > 0])
    boxes = ndimage.find_objects(labels)
    spanning = 0
    for i in ids:
        sy, sx = boxes[i - 1] if i - 1 < len(boxes) else (None, None)
        assert sy is not None
        # one id, one place: an id reused in another chunk would give a box wider than a nucleus
        assert sy.stop - sy.start <= 2 * reach and sx.stop - sx.start <= 2 * reach
        chunks_y = {sy.start // chunk, (sy.stop - 1) // chunk}
        chunks_x = {sx.start // chunk, (sx.stop - 1) // chunk}
        spanning += len(chunks_y) * len(chunks_x) > 1
    assert spanning > 20


def test_touching_and_overlapping_nuclei_exist():
    _, labels = nuclei_block((512, 512), seed=2)
    a, b = labels[:, :-1], labels[:, 1:]
    touching = (a > 0) & (b > 0) & (a != b)
    assert touching.sum() > 20


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_foreground_fraction_in_range(seed):
    image, labels = nuclei_block((1024, 1024), seed=seed)
    fraction = (labels > 0).mean()
    assert 0.15 <= fraction <= 0.35
    # nuclei are brighter than the background around them
    assert np.median(image[labels > 0]) > 1.5 * np.median(image[labels == 0])


def test_background_has_shot_and_read_noise():
    image, labels = nuclei_block((512, 512), seed=9, dtype="float32", coverage=0.02)
    background = image[ndimage.binary_dilation(labels > 0, iterations=8) == 0]
    spec = NucleiSpec()
    # local differences of neighbours cancel the smooth background; left is noise
    diffs = np.diff(image, axis=1)[(ndimage.binary_dilation(labels > 0, iterations=8) == 0)[:, 1:]]
    noise_var = diffs.var() / 2
    expected = spec.read_noise**2 + np.mean(background - spec.offset)  # Gaussian + Poisson
    assert 0.8 * expected < noise_var < 1.2 * expected


def test_radius_and_coverage_options_change_the_image():
    _, small = nuclei_block((512, 512), seed=1, radius=(4, 6))
    _, large = nuclei_block((512, 512), seed=1, radius=(12, 16))
    areas_small = np.bincount(small.ravel())[1:]
    areas_large = np.bincount(large.ravel())[1:]
    assert np.median(areas_small[areas_small > 0]) < np.median(areas_large[areas_large > 0]) / 3
    _, sparse = nuclei_block((512, 512), seed=1, coverage=0.05)
    assert (sparse > 0).mean() < 0.1


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: nuclei((100,), seed=0), ShapeError),
        (lambda: nuclei((0, 10), seed=0), ShapeError),
        (lambda: nuclei((10.5, 10), seed=0), ShapeError),
        (lambda: nuclei((10, 10), seed=-1), InputError),
        (lambda: nuclei((10, 10), seed=1.5), InputError),
        (lambda: nuclei((10, 10), dtype="int8"), DTypeError),
        (lambda: nuclei((10, 10), chunks=(3, 4, 5)), InputError),
        (lambda: nuclei((10, 10), colour="red"), InputError),
        (lambda: nuclei((10, 10), radius=(9, 3)), InputError),
        (lambda: nuclei((10, 10), coverage=0.99), InputError),
        (lambda: nuclei((2_000_000, 2_000_000)), ShapeError),
        (lambda: nuclei_block((10, 10), ((0, 11), (0, 5))), ShapeError),
        (lambda: nuclei_block((10, 10), ((5, 5), (0, 5))), ShapeError),
        (lambda: nuclei_block((10, 10), "everything"), InputError),
    ],
)
def test_bad_input_raises_typed_errors(call, error):
    with pytest.raises(error, match="Expected"):
        call()


def test_image_and_labels_computed_together_render_each_chunk_once(render_calls):
    calls = render_calls
    image, labels = nuclei((200, 300), seed=1, chunks=(100, 150))
    dask.compute(image, labels, scheduler="sync")
    assert sorted(calls) == [(0, 100, 0, 150), (0, 100, 150, 300), (100, 200, 0, 150), (100, 200, 150, 300)]


def test_multi_process_cluster_gives_the_same_bytes():
    from distributed import Client, LocalCluster

    image, labels = nuclei((300, 260), seed=3, chunks=128)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster):
            img, lab = dask.compute(image, labels)
    ref_img, ref_lab = nuclei_block((300, 260), seed=3)
    np.testing.assert_array_equal(img, ref_img)
    np.testing.assert_array_equal(lab, ref_lab)
