"""The model graph: validation, native format, geometry (hand-derived values)."""

import json
import pickle
from fractions import Fraction

import numpy as np
import pytest

from pipeline import errors, load_model
from pipeline.model import Model, Node

rng = np.random.default_rng(0)


def conv(name, src, cin, cout, k=3, **attrs):
    return Node(name, "Conv", (src,), attrs, {"W": rng.normal(size=(cout, cin // attrs.get("groups", 1), k, k)),
                                              "B": rng.normal(size=cout)})


def small_unet():
    return Model(
        [
            conv("c1", "input", 2, 4, pads=1),
            Node("r1", "Relu", ("c1",)),
            Node("p1", "MaxPool", ("r1",), {"kernel": 2}),
            conv("c2", "p1", 4, 4, pads=1),
            Node("up", "Resize", ("c2",), {"scales": (2, 2)}),
            Node("cat", "Concat", ("up", "r1")),
            conv("head", "cat", 8, 3, k=1),
            Node("sm", "Softmax", ("head",)),
        ],
        input_channels=2,
        name="unet",
        metadata={"note": "test"},
    )


# -- geometry, against values derived by hand -------------------------------------
@pytest.mark.parametrize(
    "nodes, halo, stride, scale",
    [
        ([conv("a", "input", 1, 1, k=3, pads=1)], (1, 1, 1, 1), (1, 1), (1, 1)),
        ([conv("a", "input", 1, 1, k=3, pads=1), conv("b", "a", 1, 1, k=3, pads=1)], (2, 2, 2, 2), (1, 1), (1, 1)),
        ([conv("a", "input", 1, 1, k=3, pads=2, dilation=2)], (2, 2, 2, 2), (1, 1), (1, 1)),
        ([conv("a", "input", 1, 1, k=5, pads=0)], (0, 0, 4, 4), (1, 1), (1, 1)),  # valid conv reads ahead
        ([conv("a", "input", 1, 1, k=3, pads=1, stride=2)], (1, 1, 0, 0), (2, 2), (Fraction(1, 2),) * 2),
        ([Node("p", "MaxPool", ("input",), {"kernel": 2})], (0, 0, 0, 0), (2, 2), (Fraction(1, 2),) * 2),
        # 3x3 conv after a 2x pool: 1 px at half resolution = 2 px of input, +1 for the pool's second tap
        ([Node("p", "MaxPool", ("input",), {"kernel": 2}), conv("a", "p", 1, 1, pads=1)], (2, 2, 2, 2), (2, 2),
         (Fraction(1, 2),) * 2),
        ([Node("u", "Resize", ("input",), {"scales": (2, 2)})], (0, 0, 0, 0), (1, 1), (2, 2)),
        # output pixel o of a Pad reads input o - pad_begin: the block needs pad_begin pixels before it
        ([Node("p", "Pad", ("input",), {"pads": (1, 2, 3, 4)})], (1, 2, 0, 0), (1, 1), (1, 1)),
    ],
)
def test_geometry_hand_derived(nodes, halo, stride, scale):
    geo = Model(nodes, input_channels=1).geometry
    assert geo.halo == halo
    assert geo.stride == stride
    assert geo.scale == tuple(Fraction(s) for s in scale)
    assert geo.local


def test_global_pool_is_not_local():
    m = Model([Node("g", "GlobalAveragePool", ("input",)), Node("m", "Mul", ("input", "g"))], input_channels=3)
    assert not m.geometry.local
    assert not m.is_local


def test_shapes_of_unet():
    m = small_unet()
    assert m.output_shape(32, 48) == (3, 32, 48)
    with pytest.raises(errors.ShapeError, match="Concat"):
        m.output_shape(31, 48)


# -- native format ------------------------------------------------------------------
def test_native_round_trip(tmp_path):
    m = small_unet()
    m.save(tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert back.fingerprint == m.fingerprint
    assert back.metadata == {"note": "test"}
    assert load_model(tmp_path / "m" / "model.json").fingerprint == m.fingerprint
    assert [n.name for n in back.nodes] == [n.name for n in m.nodes]


def test_pickle_round_trip_keeps_fingerprint():
    m = small_unet()
    assert pickle.loads(pickle.dumps(m)).fingerprint == m.fingerprint


def _edit_graph(tmp_path, edit):
    small_unet().save(tmp_path / "m")
    path = tmp_path / "m" / "model.json"
    graph = json.loads(path.read_text())
    edit(graph)
    path.write_text(json.dumps(graph))
    return tmp_path / "m"


def test_unknown_op_in_native_file(tmp_path):
    def edit(g):
        g["nodes"][1]["op"] = "Swish"

    with pytest.raises(errors.UnsupportedOpError, match="'r1'.*'Swish'"):
        load_model(_edit_graph(tmp_path, edit))


def test_unknown_attribute_in_native_file(tmp_path):
    def edit(g):
        g["nodes"][0]["attrs"]["padding_mode"] = "reflect"

    with pytest.raises(errors.ModelError, match="'c1'.*unknown attribute.*padding_mode"):
        load_model(_edit_graph(tmp_path, edit))


def test_weights_disagree_with_graph(tmp_path):
    m = small_unet()
    m.save(tmp_path / "m")
    w = dict(np.load(tmp_path / "m" / "weights.npz"))
    w["c2/W"] = np.zeros((4, 3, 3, 3), np.float32)
    np.savez(tmp_path / "m" / "weights.npz", **w)
    with pytest.raises(errors.ModelError, match="'c2'.*weight 'W' should have shape"):
        load_model(tmp_path / "m")


def test_object_arrays_are_never_unpickled(tmp_path):
    small_unet().save(tmp_path / "m")
    w = dict(np.load(tmp_path / "m" / "weights.npz"))
    w["c1/W"] = np.array([object()], dtype=object)
    np.savez(tmp_path / "m" / "weights.npz", **w)
    with pytest.raises(errors.ModelFormatError, match="weights.npz"):
        load_model(tmp_path / "m")


def test_corrupt_json(tmp_path):
    small_unet().save(tmp_path / "m")
    (tmp_path / "m" / "model.json").write_text("{not json")
    with pytest.raises(errors.ModelFormatError, match="not valid JSON"):
        load_model(tmp_path / "m")


def test_missing_model_path(tmp_path):
    with pytest.raises(errors.StorageError, match="does not exist"):
        load_model(tmp_path / "nope")


def test_cycle_is_rejected():
    a = Node("a", "Add", ("input", "b"))
    b = Node("b", "Relu", ("a",))
    with pytest.raises(errors.ModelError, match="cycle"):
        Model([a, b, Node("o", "Relu", ("b",))], input_channels=1)


def test_dangling_input_and_duplicates():
    with pytest.raises(errors.ModelError, match="'ghost'"):
        Model([Node("a", "Relu", ("ghost",))], input_channels=1)
    with pytest.raises(errors.ModelError, match="duplicate"):
        Model([Node("a", "Relu", ("input",)), Node("a", "Relu", ("input",))], input_channels=1)


def test_bad_attribute_values_name_the_node():
    with pytest.raises(errors.ModelError, match="'p'.*kernel"):
        Node("p", "MaxPool", ("input",), {"kernel": (0, 2)})
    with pytest.raises(errors.ModelError, match="'r'.*mode"):
        Node("r", "Resize", ("input",), {"scales": (2, 2), "mode": "cubic"})
    with pytest.raises(errors.ModelError, match="'b'.*NaN"):
        Node("b", "Add", ("input",), {}, {"C": np.array([np.nan])})


def test_summary_mentions_geometry():
    text = small_unet().summary()
    for word in ("halo", "stride", "scale", "parameters", "local"):
        assert word in text


# -- block buffers kept between runs ------------------------------------------------
@pytest.mark.parametrize("head", ["softmax", "conv"])
def test_buffers_kept_between_runs_never_touch_returned_outputs(monkeypatch, head):
    from pipeline.model import get_plan, release_buffers
    from pipeline.model._execute import _thread_pool

    model = small_unet()
    if head == "conv":  # the output is a conv's own buffer (16 channels: no padding to slice off)
        model = Model(list(model.nodes[:-2]) + [conv("head", "cat", 8, 16, k=3, pads=1)], input_channels=2)
    plan = get_plan(model)
    xs = [rng.normal(size=(40, 36, 2)).astype(np.float32) for _ in range(3)]
    monkeypatch.setenv("PIPELINE_KEEP_BUFFERS", "0")
    release_buffers()
    fresh = [plan.run(x) for x in xs]
    assert _thread_pool() == []  # nothing kept when switched off
    monkeypatch.setenv("PIPELINE_KEEP_BUFFERS", "1")
    outs = [plan.run(x) for x in xs]
    kept = {raw.ctypes.data for raw in _thread_pool()}
    assert kept  # the convs' buffers stay with this thread
    again = plan.run(xs[0])
    assert {raw.ctypes.data for raw in _thread_pool()} == kept  # the same memory, nothing new mapped
    for got, want in zip(outs + [again], fresh + [fresh[0]]):
        np.testing.assert_array_equal(got, want)  # earlier outputs untouched by later runs
    assert release_buffers() > 0 and _thread_pool() == []
