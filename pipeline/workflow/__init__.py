"""Batch workflows: validated YAML specs, idempotent runs over many images, run records, schedules.

Also the dataframe API, :func:`predict_many`, shared with the workflow runner.
"""

from ._many import object_tables, predict_many
from ._records import format_history, read_records
from ._run import records_path, run_workflow
from ._schedule import run_on_schedule
from ._spec import WorkflowSpec, load_spec

__all__ = [
    "WorkflowSpec",
    "load_spec",
    "run_workflow",
    "run_on_schedule",
    "read_records",
    "format_history",
    "records_path",
    "predict_many",
    "object_tables",
]
