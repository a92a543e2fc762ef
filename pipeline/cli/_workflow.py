"""``pipeline workflow validate|run|schedule|history FILE``: batch workflows from YAML specs."""

from __future__ import annotations

import sys

__all__ = ["register"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "workflow",
        help="validate, run, schedule a batch workflow (YAML spec) or show its run history",
        description="Batch workflows over many images. 'run' is idempotent: complete outputs are skipped, "
        "partial ones resumed; a failing image is recorded and the others go on (exit 1 if any failed).",
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, help_ in [
        ("validate", "check a spec and list the images it would process"),
        ("run", "run the workflow once"),
        ("schedule", "run the workflow on its schedule in the foreground (Ctrl-C/SIGTERM stops after the run in flight)"),
        ("history", "show the recorded runs"),
    ]:
        q = sub.add_parser(name, help=help_, description=help_)
        q.add_argument("spec", metavar="FILE", help="workflow spec (YAML)")
        if name == "schedule":
            q.add_argument("--max-runs", type=int, metavar="N", help="stop after N runs (default: run until stopped)")
        q.set_defaults(run=globals()[f"_{name}"])


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _validate(args) -> int:
    from ..workflow import load_spec
    from ..workflow._inputs import discover

    spec = load_spec(args.spec)
    jobs = discover(spec)
    print(f"{args.spec}: valid workflow {spec.name!r}: steps {' -> '.join(s.kind for s in spec.steps)}; "
          f"{len(jobs)} image(s); outputs in {spec.resolve(spec.output.dir)}"
          + (f"; schedule {spec.schedule.cron or f'every {spec.schedule.interval_seconds} s'}" if spec.schedule else ""))
    return 0


def _run(args) -> int:
    from ..workflow import run_workflow

    record = run_workflow(args.spec, log=_log)
    failed = [i for i in record.images if i.status == "failed"]
    counts = {s: sum(1 for i in record.images if i.status == s) for s in ("done", "resumed", "skipped", "failed")}
    print(f"run {record.run_id}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    for i in failed:
        print(f"failed: {i.input}: {i.error}", file=sys.stderr)
    return 1 if failed else 0


def _schedule(args) -> int:
    from ..errors import SpecError
    from ..workflow import load_spec, run_on_schedule, run_workflow

    spec = load_spec(args.spec)
    if spec.schedule is None:
        raise SpecError(f"{args.spec}: field 'schedule': expected a schedule (cron or interval_seconds) to run on.")

    def once() -> None:
        record = run_workflow(spec, log=_log)
        _log(f"run {record.run_id}: {record.status}")

    run_on_schedule(spec.schedule, once, log=_log, max_runs=args.max_runs)
    return 0


def _history(args) -> int:
    from ..workflow import format_history, load_spec, read_records, records_path

    spec = load_spec(args.spec)
    print(format_history(read_records(records_path(spec))))
    return 0
