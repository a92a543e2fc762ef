"""pipeline.post.label: labels stitched across blocks equal skimage.measure.label up to renumbering."""

import threading

import dask.array as da
import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from skimage.measure import label as sk_label

from pipeline import errors
from pipeline.post import label

rng = np.random.default_rng(20240611)


def assert_same_objects(ours, theirs):
    """Same foreground, a one-to-one pairing of labels, and our labels 1..N without gaps."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(ours > 0, theirs > 0)
    fg = theirs > 0
    pairs = np.unique(np.stack([ours[fg], theirs[fg]]), axis=1)
    n_ours, n_theirs = len(np.unique(ours[fg])), len(np.unique(theirs[fg]))
    assert pairs.shape[1] == n_ours == n_theirs, "labels are not a bijection of the reference's"
    np.testing.assert_array_equal(np.unique(ours[fg]), np.arange(1, n_ours + 1))


def random_binary(shape, density=0.5, seed=None):
    r = np.random.default_rng(seed) if seed is not None else rng
    return r.random(shape) < density


# -- random images, many chunkings -------------------------------------------------------
@pytest.mark.parametrize("connectivity", [1, 2])
def test_random_images_on_many_chunkings(connectivity):
    for density in ({1: (0.45, 0.6), 2: (0.3, 0.45)}[connectivity]):  # near the percolation threshold
        img = random_binary((23, 25), density)
        ref = sk_label(img, connectivity=connectivity)
        for chunks in (2, (1, 3), (3, 1), (4, 7), ((3, 10, 1, 9), (14, 2, 9)), (23, 25)):
            out = label(img, chunks=chunks, connectivity=connectivity)
            assert_same_objects(out.compute(scheduler="sync"), ref)


@pytest.mark.parametrize("connectivity", [1, 2])
def test_one_pixel_chunks(connectivity):
    img = random_binary((11, 13), 0.55)
    out = label(img, chunks=1, connectivity=connectivity).compute(scheduler="sync")
    assert_same_objects(out, sk_label(img, connectivity=connectivity))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    h=st.integers(1, 14),
    w=st.integers(1, 14),
    cy=st.integers(1, 5),
    cx=st.integers(1, 5),
    density=st.floats(0.2, 0.8),
    connectivity=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_any_chunking(h, w, cy, cx, density, connectivity, seed):
    img = random_binary((h, w), density, seed)
    out = label(img, chunks=(cy, cx), connectivity=connectivity).compute(scheduler="sync")
    assert_same_objects(out, sk_label(img, connectivity=connectivity))


def test_probabilities_thresholded_strictly():
    p = rng.random((30, 26)).astype(np.float32)
    for threshold in (0.3, 0.5, 0.8):
        out = label(da.from_array(p, chunks=(7, 9)), threshold=threshold).compute()
        assert_same_objects(out, sk_label(p > threshold, connectivity=1))
    p = np.full((4, 4), 0.5)
    assert label(p, threshold=0.5).compute().max() == 0


# -- objects spanning 2 and 4 blocks, explicitly ----------------------------------------
def test_bar_across_one_border_gets_one_label():
    img = np.zeros((16, 16), bool)
    img[3, 2:14] = True
    out = label(img, chunks=8).compute()
    np.testing.assert_array_equal(out, img.astype(np.int32))


def test_blob_on_a_four_block_corner():
    yy, xx = np.mgrid[:16, :16]
    img = (yy - 7.5) ** 2 + (xx - 7.5) ** 2 < 12
    out = label(img, chunks=8).compute()
    np.testing.assert_array_equal(out, img.astype(np.int32))
    assert {out[:8, :8].max(), out[:8, 8:].max(), out[8:, :8].max(), out[8:, 8:].max()} == {1}


def test_u_shape_joined_only_through_a_distant_block():
    img = np.zeros((24, 12), bool)
    img[0:23, 1] = True   # left arm, blocks (0,0), (1,0), (2,0)
    img[0:23, 10] = True  # right arm, blocks (0,1), (1,1), (2,1)
    img[22, 1:11] = True  # bottom bar, in the last block row only
    img[2:5, 4:8] = True  # a separate blob between the arms
    ref = sk_label(img, connectivity=1)
    out = label(img, chunks=(8, 6)).compute()
    assert_same_objects(out, ref)
    assert out.max() == 2 and out[0, 1] == out[0, 10]


def test_spiral_is_one_object_on_every_chunking():
    img = np.zeros((21, 21), bool)
    # a square spiral drawn as one path: walk inwards, turning right, leaving a one-pixel gap between turns
    y, x, dy, dx = 0, 0, 0, 1
    lo_y, lo_x, hi_y, hi_x = 0, 0, 20, 20
    for _ in range(21 * 21):
        img[y, x] = True
        ny, nx = y + dy, x + dx
        if not (lo_y <= ny <= hi_y and lo_x <= nx <= hi_x):
            if (dy, dx) == (0, 1):
                lo_y += 2
            elif (dy, dx) == (1, 0):
                hi_x -= 2
            elif (dy, dx) == (0, -1):
                hi_y -= 2
            else:
                lo_x += 2
            dy, dx = dx, -dy
            ny, nx = y + dy, x + dx
            if not (lo_y - 2 <= ny <= hi_y + 2 and lo_x - 2 <= nx <= hi_x + 2) or img[ny, nx] or lo_y > hi_y + 2:
                break
        y, x = ny, nx
    assert sk_label(img, connectivity=1).max() == 1
    assert img.sum() > 150
    for chunks in (2, 3, 4, (5, 3), 7):
        out = label(img, chunks=chunks).compute()
        np.testing.assert_array_equal(out, img.astype(np.int32))


@pytest.mark.parametrize("a, b", [((3, 3), (4, 4)), ((3, 4), (4, 3))])
def test_diagonal_touch_across_a_block_corner(a, b):
    img = np.zeros((8, 8), bool)
    img[a], img[b] = True, True
    four = label(img, chunks=4, connectivity=1).compute()
    eight = label(img, chunks=4, connectivity=2).compute()
    assert four.max() == 2 and four[a] != four[b]
    assert eight.max() == 1 and eight[a] == eight[b] == 1
    assert label(img, chunks=4, connectivity=None).compute().max() == 1


# -- 3-D, planes, channels ---------------------------------------------------------------
@pytest.mark.parametrize("connectivity", [1, 2, 3])
def test_three_d_components(connectivity):
    img = random_binary((7, 9, 10), 0.3 if connectivity == 1 else 0.15)
    ref = sk_label(img, connectivity=connectivity)
    for chunks in (2, (3, 4, 5), (7, 9, 10)):
        assert_same_objects(label(img, chunks=chunks, connectivity=connectivity).compute(), ref)


@pytest.mark.parametrize("connectivity", [1, 2])
def test_per_plane_labels_each_plane_alone(connectivity):
    img = random_binary((4, 12, 13), 0.5)
    planes = [sk_label(p, connectivity=connectivity) for p in img]
    offsets = np.cumsum([0] + [p.max() for p in planes[:-1]])
    ref = np.stack([np.where(p > 0, p + o, 0) for p, o in zip(planes, offsets)])
    out = label(da.from_array(img, chunks=(1, 5, 4)), per_plane=True, connectivity=connectivity).compute()
    assert_same_objects(out, ref)


def test_argmax_and_single_channel_of_class_probabilities():
    p = rng.random((3, 20, 22)).astype(np.float32)
    p /= p.sum(axis=0)
    ref_argmax = sk_label(np.argmax(p, axis=0) != 0, connectivity=1)
    assert_same_objects(label(da.from_array(p, chunks=(1, 6, 7)), channel_axis=0).compute(), ref_argmax)
    channels_last = np.moveaxis(p, 0, -1)
    assert_same_objects(label(channels_last, channel_axis=-1, chunks=5).compute(), ref_argmax)
    assert_same_objects(label(p, channel_axis=0, channel=2, threshold=0.4, chunks=4).compute(), sk_label(p[2] > 0.4, connectivity=1))


def test_keeps_dask_chunks_and_dtype():
    img = da.from_array(random_binary((20, 30)), chunks=(6, 11))
    out = label(img)
    assert out.chunks == img.chunks and out.dtype == np.int32 and out.shape == (20, 30)
    assert label(np.ones((5, 5), np.uint8), chunks=2).compute().dtype == np.int32
    huge = da.zeros((50_000, 50_000), dtype=bool, chunks=25_000)
    assert label(huge).dtype == np.int64  # 2.5e9 pixels could hold more than 2**31 objects; not computed


def test_labels_from_and_to_zarr_on_disk(tmp_path):
    p = rng.random((40, 36)).astype(np.float32)
    src = zarr.create_array(tmp_path / "prob.zarr", shape=p.shape, chunks=(9, 10), dtype="float32")
    src[:] = p
    out = label(da.from_zarr(str(tmp_path / "prob.zarr")), threshold=0.6, connectivity=2)
    out.to_zarr(str(tmp_path / "labels.zarr"))
    stored = zarr.open_array(tmp_path / "labels.zarr", mode="r")
    assert stored.dtype == np.int32 and stored.chunks == (9, 10)
    assert_same_objects(stored[:], sk_label(p > 0.6, connectivity=2))


# -- laziness ----------------------------------------------------------------------------
def test_nothing_is_computed_until_compute():
    calls = []
    lock = threading.Lock()
    img = random_binary((24, 24), 0.5)

    def spy(block):
        with lock:
            calls.append(block.shape)
        return block

    source = da.from_array(img, chunks=6).map_blocks(spy, dtype=bool, meta=np.empty((0, 0), bool))
    out = label(source, connectivity=2)
    assert calls == []
    assert_same_objects(out.compute(), sk_label(img, connectivity=2))
    assert len(calls) == 16  # each input block read exactly once


# -- bad input ---------------------------------------------------------------------------
def test_bad_input_raises_typed_errors():
    with pytest.raises(errors.DTypeError, match="dtype"):
        label(np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(errors.ShapeError, match="shape"):
        label(np.ones(5))
    with pytest.raises(errors.ShapeError, match="empty"):
        label(np.ones((0, 4)))
    with pytest.raises(errors.InputError, match="connectivity"):
        label(np.ones((4, 4)), connectivity=3)
    with pytest.raises(errors.InputError, match="connectivity"):
        label(np.ones((4, 4)), connectivity=0)
    with pytest.raises(errors.InputError, match="threshold"):
        label(np.ones((4, 4)), threshold=float("nan"))
    with pytest.raises(errors.ChannelError, match="channel_axis"):
        label(np.ones((2, 4, 4)), channel_axis=3)
    with pytest.raises(errors.ChannelError, match="channel_axis"):
        label(np.ones((4, 4)), channel=1)
    with pytest.raises(errors.ChannelError, match="channel"):
        label(np.ones((2, 4, 4)), channel_axis=0, channel=2)
    with pytest.raises(errors.ChannelError, match="at least 2 channels"):
        label(np.ones((1, 4, 4)), channel_axis=0)
    with pytest.raises(errors.ShapeError):
        label(np.ones((3, 4)), channel_axis=0)
