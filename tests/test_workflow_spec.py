"""Workflow specs: validation errors that name field and line; the scheduler's promises."""

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import SpecError
from pipeline.model import Model, Node
from pipeline.workflow._schedule import run_on_schedule
from pipeline.workflow._spec import ScheduleSpec, load_spec

GOOD = """\
name: nightly
roots: [in, out, model]
inputs:
  glob: in/*.zarr
model: model
steps:
  - predict: {chunks: 256}
  - label: {threshold: 0.5, channel: 1}
  - measure
output:
  dir: out
  naming: "{stem}-seg"
schedule:
  cron: "0 2 * * *"
"""


@pytest.fixture
def spec_dir(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    Model([Node("c", "Conv", ("input",), {"pads": 1}, {"W": np.ones((2, 1, 3, 3))})], input_channels=1).save(
        tmp_path / "model")
    return tmp_path


def write(spec_dir: Path, text: str) -> Path:
    p = spec_dir / "wf.yaml"
    p.write_text(text)
    return p


def test_good_spec_is_frozen_and_resolved(spec_dir):
    spec = load_spec(write(spec_dir, GOOD))
    assert [s.kind for s in spec.steps] == ["predict", "label", "measure"]
    assert spec.step("label").channel == 1
    assert spec.resolve(spec.output.dir) == (spec_dir / "out").resolve()
    assert spec.output_name(Path("/x/slide-7.ome.zarr"), 3) == "slide-7-seg"
    with pytest.raises(Exception):
        spec.name = "other"  # frozen


@pytest.mark.parametrize(
    "old, new, pattern",
    [
        ("name: nightly", "name: nightly\ncolour: red", r"wf.yaml:2: field 'colour': unknown field"),
        ("{chunks: 256}", "{chunks: 256, tile: 3}", r"wf.yaml:7: .*step #1 'predict', field 'tile': unknown field"),
        ("{chunks: 256}", "{chunks: large}", r"wf.yaml:7: .*'chunks'.*integer"),
        ("threshold: 0.5", "threshold: 2", r"wf.yaml:8: .*'threshold'.*less than 1"),
        ("model: model", "model: missing-model", r"field 'model': .*missing-model' does not exist"),
        ('cron: "0 2 * * *"', 'cron: "0 25 * * *"', r"wf.yaml:14: field 'schedule.cron': '0 25 \* \* \*' is not a valid cron"),
        ("dir: out", "dir: /etc", r"field 'output.dir': '/etc' lies outside the declared roots"),
        ("glob: in/*.zarr", "glob: /var/*.zarr", r"field 'inputs.glob'.*outside the declared roots"),
        ('naming: "{stem}-seg"', 'naming: "{stem.__class__}"', r"field 'output.naming'.*unknown field \{stem.__class__\}"),
        ('naming: "{stem}-seg"', 'naming: "../{stem}"', r"field 'output.naming'.*plain name"),
        ("  - measure\n", "", None),  # valid: measure is optional
        ("  - label: {threshold: 0.5, channel: 1}\n", "", r"'measure' needs a 'label' step"),
        ("  - predict: {chunks: 256}\n", "", r"needs a 'predict' step"),
        ("  - measure\n", "  - measure\n  - fly\n", r"wf.yaml:10: .*unknown step 'fly'"),
        ("roots: [in, out, model]", "roots: []", r"field 'roots'"),
        ("inputs:\n  glob: in/*.zarr", "inputs:\n  glob: in/*.zarr\n  manifest: m.csv", r"exactly one of 'glob' or 'manifest'"),
    ],
)
def test_bad_specs_give_one_clear_error(spec_dir, old, new, pattern):
    text = GOOD.replace(old, new)
    assert text != GOOD
    if pattern is None:
        load_spec(write(spec_dir, text))
        return
    with pytest.raises(SpecError, match=pattern) as info:
        load_spec(write(spec_dir, text))
    assert "\n" not in str(info.value)


def test_not_yaml_and_not_a_mapping(spec_dir):
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(write(spec_dir, "name: [unclosed\n"))
    with pytest.raises(SpecError, match="expected a mapping"):
        load_spec(write(spec_dir, "- just\n- a list\n"))
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(spec_dir / "nope.yaml")


def test_yaml_tags_cannot_execute_code(spec_dir):
    evil = GOOD.replace("name: nightly", "name: !!python/object/apply:os.system ['touch pwned']")
    with pytest.raises(SpecError):
        load_spec(write(spec_dir, evil))
    assert not (spec_dir / "pwned").exists() and not Path("pwned").exists()


def test_schedule_never_overlaps_and_stops_after_the_run_in_flight():
    active, max_active, started, finished = [0], [0], [], []
    lock = threading.Lock()

    def slow_run():
        with lock:
            active[0] += 1
            max_active[0] = max(max_active[0], active[0])
        started.append(1)
        time.sleep(0.4)  # longer than the interval: the next run must wait, not overlap
        if len(started) == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives while this run is in flight
            time.sleep(0.4)
        with lock:
            active[0] -= 1
        finished.append(1)

    runs = run_on_schedule(ScheduleSpec(interval_seconds=0.2), slow_run, log=lambda s: None)
    assert max_active[0] == 1
    assert runs == 2 and len(started) == 2 and len(finished) == 2  # the second finished, no third began
    assert active[0] == 0


def test_cron_with_seconds_field():
    from pipeline.workflow._schedule import make_trigger

    trig = make_trigger(ScheduleSpec(cron="*/2 * * * * *"))
    assert "second='*/2'" in repr(trig)
    with pytest.raises(Exception):
        ScheduleSpec(cron="*/2 * * * * * *")
