"""Workflow specifications: YAML validated into frozen objects.

A spec is data: it is read with ``yaml.safe_load`` semantics, validated by a
pydantic schema that forbids unknown fields, and never evaluated.  Output
names are templates with a fixed set of fields and no attribute or index
access.  Every error names the field and the line of the YAML file.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import SpecError

__all__ = [
    "WorkflowSpec",
    "InputsSpec",
    "StepSpec",
    "OutputSpec",
    "ClusterSpec",
    "ScheduleSpec",
    "load_spec",
    "NAMING_FIELDS",
]

#: Fields an output naming template may use.
NAMING_FIELDS = ("stem", "name", "index", "parent")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputsSpec(_Frozen):
    """Where the images come from: a glob, or a manifest table with a path column."""

    glob: str | None = None
    manifest: str | None = None
    path_column: str = "path"
    priority_column: str | None = "priority"

    @model_validator(mode="after")
    def _one_source(self):
        if (self.glob is None) == (self.manifest is None):
            raise ValueError("give exactly one of 'glob' or 'manifest'")
        return self


class PredictStep(_Frozen):
    chunks: int | tuple[int, int] | None = None
    channel_axis: int | None = None
    level: int = 0
    normalize: Literal["percentile"] | tuple[float, float] | None = "percentile"
    post: Literal["softmax", "argmax"] | None = None
    output_channel: int | None = Field(default=None, ge=0, description="keep only this output channel")


class LabelStep(_Frozen):
    threshold: float = Field(default=0.5, gt=0, lt=1)
    channel: int = Field(default=0, ge=0)
    connectivity: Literal[1, 2] = 1


class MeasureStep(_Frozen):
    intensity: bool = True


class ConvertStep(_Frozen):
    chunks: int = Field(default=1024, ge=16)


class ExportStep(_Frozen):
    table: Literal["parquet", "csv"] = "parquet"
    preview: bool = True


_STEP_TYPES = {
    "convert": ConvertStep,
    "predict": PredictStep,
    "label": LabelStep,
    "measure": MeasureStep,
    "export": ExportStep,
}
_STEP_ORDER = tuple(_STEP_TYPES)


class StepSpec(_Frozen):
    """One step: its kind and its validated parameters."""

    kind: Literal["convert", "predict", "label", "measure", "export"]
    params: ConvertStep | PredictStep | LabelStep | MeasureStep | ExportStep


class OutputSpec(_Frozen):
    dir: str
    naming: str = "{stem}"

    @field_validator("naming")
    @classmethod
    def _safe_template(cls, value: str) -> str:
        for literal, field, spec, conversion in string.Formatter().parse(value):
            if field is None:
                continue
            if field not in NAMING_FIELDS:
                raise ValueError(f"unknown field {{{field}}} in naming template; expected some of {NAMING_FIELDS}")
            if conversion or (spec and not spec.isalnum()):
                raise ValueError(f"naming template field {{{field}}} may not carry a conversion or a format spec")
        if "/" in value or "\\" in value or value.startswith("."):
            raise ValueError("naming template must give a plain name (no '/', no leading '.')")
        return value


class ClusterSpec(_Frozen):
    scheduler: str | None = None
    scheduler_file: str | None = None
    workers: int | None = Field(default=None, ge=1)
    threads_per_worker: int | None = Field(default=None, ge=1)
    max_concurrent_images: int = Field(default=4, ge=1)


class ScheduleSpec(_Frozen):
    """A cron expression (5 fields, or 6 with seconds first) or a fixed interval in seconds."""

    cron: str | None = None
    interval_seconds: float | None = Field(default=None, gt=0)
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from croniter import croniter

        fields = value.split()
        if len(fields) not in (5, 6) or not croniter.is_valid(value if len(fields) == 5 else " ".join(fields[1:])):
            raise ValueError(f"{value!r} is not a valid cron expression (5 fields: minute hour day month weekday)")
        if len(fields) == 6 and not croniter.is_valid(" ".join([fields[0]] + fields[2:])):
            raise ValueError(f"{value!r}: the seconds field is not valid")
        return value

    @model_validator(mode="after")
    def _one_trigger(self):
        if (self.cron is None) == (self.interval_seconds is None):
            raise ValueError("give exactly one of 'cron' or 'interval_seconds'")
        return self


class WorkflowSpec(_Frozen):
    """A validated workflow: inputs, model, steps, outputs, cluster, schedule."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    roots: tuple[str, ...] = Field(min_length=1)
    inputs: InputsSpec
    model: str
    steps: tuple[StepSpec, ...]
    output: OutputSpec
    cluster: ClusterSpec = ClusterSpec()
    schedule: ScheduleSpec | None = None
    priority: Literal["oldest", "newest", "largest", "smallest", "column"] = "oldest"
    records: str | None = None
    #: directory of the spec file; relative paths are resolved against it
    base_dir: str = "."

    @field_validator("steps", mode="before")
    @classmethod
    def _parse_steps(cls, value: Any) -> Any:
        if not isinstance(value, list) or not value:
            raise ValueError("expected a non-empty list of steps such as '- predict: {chunks: 1024}'")
        out = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                item = {item: {}}
            if not isinstance(item, dict) or len(item) != 1:
                raise ValueError(f"step #{i + 1}: expected one mapping 'kind: {{parameters}}'")
            (kind, params), = item.items()
            if kind not in _STEP_TYPES:
                raise ValueError(f"step #{i + 1}: unknown step {kind!r}; expected one of {', '.join(_STEP_TYPES)}")
            try:
                out.append(StepSpec(kind=kind, params=_STEP_TYPES[kind].model_validate(params or {})))
            except ValidationError as exc:
                err = exc.errors()[0]
                where = str(err["loc"][0]) if err["loc"] else "(parameters)"
                msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
                raise ValueError(f"step #{i + 1} {kind!r}, field {where!r}: {msg}") from None
        return out

    @model_validator(mode="after")
    def _check_steps(self):
        kinds = [s.kind for s in self.steps]
        if len(set(kinds)) != len(kinds):
            raise ValueError("each step kind may appear once")
        if [k for k in _STEP_ORDER if k in kinds] != kinds:
            raise ValueError(f"steps must run in the order {' -> '.join(_STEP_ORDER)}")
        if "predict" not in kinds:
            raise ValueError("a workflow needs a 'predict' step")
        if "measure" in kinds and "label" not in kinds:
            raise ValueError("'measure' needs a 'label' step before it")
        return self

    # -- resolved paths --------------------------------------------------------
    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return (p if p.is_absolute() else Path(self.base_dir) / p).resolve()

    @property
    def root_paths(self) -> tuple[Path, ...]:
        return tuple(self.resolve(r) for r in self.roots)

    def check_within_roots(self, path: Path, what: str) -> Path:
        path = path.resolve()
        if not any(path == r or r in path.parents for r in self.root_paths):
            raise SpecError(
                f"{what}: {str(path)!r} lies outside the declared roots "
                f"{[str(r) for r in self.root_paths]}; add its folder to 'roots'."
            )
        return path

    def step(self, kind: str):
        return next((s.params for s in self.steps if s.kind == kind), None)

    def output_name(self, image: Path, index: int) -> str:
        stem = image.name
        for suffix in (".ome.zarr", ".zarr", ".ome.tiff", ".ome.tif", ".tiff", ".tif", ".png", ".jpg", ".jpeg"):
            if stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        return self.output.naming.format(stem=stem, name=image.name, index=index, parent=image.parent.name)


def _line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """Line (1-based) of the YAML node at pydantic location ``loc``."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
            if nxt is None:
                match = next((k for k, v in node.value if getattr(k, "value", None) == key), None)
                return match.start_mark.line + 1 if match is not None else line
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
        line = node.start_mark.line + 1
    return line


def load_spec(path: str | Path) -> WorkflowSpec:
    """Read and validate a workflow spec.

    Raises
    ------
    SpecError
        With the file, the field and the line: unknown field, wrong type,
        missing model, bad cron expression, path outside the declared roots.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(f"Workflow spec {str(path)!r} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"Workflow spec {str(path)!r} cannot be read: {exc}.") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise SpecError(f"{path}:{where.strip() or 'file'}: not valid YAML ({getattr(exc, 'problem', exc)}).") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping at the top level (name, roots, inputs, model, steps, output).")
    if "base_dir" in data:
        raise SpecError(f"{path}: field 'base_dir' is set by pipeline, not by the spec.")
    data = {**data, "base_dir": str(path.resolve().parent)}
    try:
        spec = WorkflowSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p[0].isupper()))
        field = ".".join(str(p) for p in loc) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        step = re.match(r"step #(\d+)(?: '\w+', field '(\w+)')?", msg)
        if loc == ("steps",) and step:
            loc = ("steps", int(step.group(1)) - 1)
            if step.group(2):
                (kind,) = data["steps"][loc[1]].keys()
                loc = loc + (kind, step.group(2))
        line = _line_of(root, loc)
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "missing":
            msg = "required field is missing"
        raise SpecError(f"{path}:{line}: field {field!r}: {msg}.") from None
    _check_paths(spec, path)
    return spec


def _check_paths(spec: WorkflowSpec, path: Path) -> None:
    model = spec.resolve(spec.model)
    if not model.exists():
        raise SpecError(f"{path}: field 'model': {str(model)!r} does not exist.")
    spec.check_within_roots(model, f"{path}: field 'model'")
    spec.check_within_roots(spec.resolve(spec.output.dir), f"{path}: field 'output.dir'")
    if spec.inputs.manifest:
        manifest = spec.resolve(spec.inputs.manifest)
        if not manifest.exists():
            raise SpecError(f"{path}: field 'inputs.manifest': {str(manifest)!r} does not exist.")
        spec.check_within_roots(manifest, f"{path}: field 'inputs.manifest'")
    else:
        glob_root = spec.resolve(spec.inputs.glob.split("*")[0] or ".")
        spec.check_within_roots(glob_root if glob_root.exists() else glob_root.parent, f"{path}: field 'inputs.glob'")
    if spec.records:
        spec.check_within_roots(spec.resolve(spec.records), f"{path}: field 'records'")
