"""Running a workflow on its schedule in the foreground (APScheduler).

No overlapping runs (``max_instances=1``), missed runs coalesced into one
(``coalesce=True``), and SIGINT/SIGTERM stop the scheduler after the run in
flight has finished.
"""

from __future__ import annotations

import signal
import threading
from typing import Callable

from ._spec import ScheduleSpec

__all__ = ["run_on_schedule", "make_trigger"]


def make_trigger(schedule: ScheduleSpec):
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    if schedule.interval_seconds is not None:
        return IntervalTrigger(seconds=schedule.interval_seconds, timezone=schedule.timezone)
    fields = schedule.cron.split()
    if len(fields) == 6:
        second, minute, hour, day, month, dow = fields
        return CronTrigger(second=second, minute=minute, hour=hour, day=day, month=month, day_of_week=dow,
                           timezone=schedule.timezone)
    return CronTrigger.from_crontab(schedule.cron, timezone=schedule.timezone)


def run_on_schedule(
    schedule: ScheduleSpec,
    run_once: Callable[[], object],
    *,
    log: Callable[[str], None] = print,
    max_runs: int | None = None,
) -> int:
    """Call ``run_once`` on ``schedule`` until a signal (or ``max_runs`` runs); returns runs made."""
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED
    from apscheduler.schedulers.background import BackgroundScheduler

    stop = threading.Event()
    runs = 0
    lock = threading.Lock()

    def job() -> None:
        nonlocal runs
        if stop.is_set():
            return
        log("scheduled run starting")
        run_once()

    def on_done(event) -> None:
        nonlocal runs
        with lock:
            runs += 1
            if event.exception is not None:
                log(f"scheduled run failed: {event.exception}")
            if max_runs is not None and runs >= max_runs:
                stop.set()

    scheduler = BackgroundScheduler(timezone=schedule.timezone)
    scheduler.add_listener(on_done, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    job_ref = scheduler.add_job(job, make_trigger(schedule), max_instances=1, coalesce=True,
                                misfire_grace_time=None, id="workflow")
    previous = {}

    def handle(signum, frame) -> None:
        log(f"received {signal.Signals(signum).name}; stopping after the run in flight")
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handle)
    scheduler.start()
    nxt = job_ref.next_run_time
    log(f"next run at {nxt.isoformat() if nxt else 'never'}; Ctrl-C to stop")
    try:
        while not stop.wait(0.2):
            pass
    finally:
        scheduler.shutdown(wait=True)  # waits for the run in flight
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log(f"scheduler stopped after {runs} run(s)")
    return runs
