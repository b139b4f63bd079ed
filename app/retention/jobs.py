"""The scheduler's jobs. Each one first makes sure this process is the elected scheduler.

"Now" for a job is the app clock (`app.core.clock`), or — in development and tests only — a
simulated clock: `FITCLUB_CLOCK_FILE` names a file holding one ISO-8601 instant with its UTC offset
(`2026-10-24T15:00:00+00:00`), read at every run. A test moves it forward day by day to drive
real `fitclub scheduler` processes through a month in a minute
(`tests/reliability/test_two_of_everything.py`). Only the jobs read it (the web app keeps the
app clock), and the scheduler refuses to start with it when ENVIRONMENT=production.
"""
import logging
import os
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from app.core import clock
from app.core.config import Settings
from app.dues import jobs as dues_jobs
from app.retention import channels as channels_mod
from app.retention.dispatch import dispatch_due
from app.retention.service import run_due_clubs

log = logging.getLogger("fitclub.retention")

CLOCK_FILE_ENV = "FITCLUB_CLOCK_FILE"


def clock_file(settings: Settings) -> str | None:
    """The simulated clock's file, or None for the real clock; refused in production."""
    path = os.environ.get(CLOCK_FILE_ENV) or None
    if path and settings.environment == "production":
        raise RuntimeError(f"{CLOCK_FILE_ENV} is set: a simulated clock is refused in production")
    return path


def job_now(settings: Settings) -> datetime | None:
    """The jobs' "now": the real time or the simulated clock (None: unreadable, skip the run)."""
    path = clock_file(settings)
    if path is None:
        return clock.now()
    try:
        with open(path) as handle:
            at = datetime.fromisoformat(handle.read().strip())
    except (OSError, ValueError) as exc:
        log.warning("simulated clock %s unreadable (%s); skipping this run", path, exc)
        return None
    if at.utcoffset() is None:
        log.warning("simulated clock %s has no UTC offset; skipping this run", path)
        return None
    return at.astimezone(UTC)


def daily_job(factory: sessionmaker[Session], lock, settings: Settings) -> None:
    """Hourly check: run every club whose local 05:00 has passed and whose run is not done yet.

    The daily run includes membership expiry: members whose membership ended move to lapsed,
    then lost; pending touchpoints of a stage they left are cancelled. The dues billing run of
    each club's today goes first (once per club and day: `app.dues.jobs.daily`).
    """
    if not lock.ensure():
        return
    now = job_now(settings)
    if now is None:
        return
    dues_jobs.daily(factory, now=now, settings=settings)
    for report in run_due_clubs(factory, now=now):
        log.info("retention run club %s for %s: %s changes, %s planned, %.2fs", report.club_id,
                 report.as_of, sum(report.transitions.values()),
                 sum(report.scheduled.values()), report.seconds)


def dispatch_job(factory: sessionmaker[Session], lock, settings: Settings) -> None:
    """Every minute: deliver due touchpoints, then the dues emails waiting in the outbox."""
    if not lock.ensure():
        return
    now = job_now(settings)
    if now is None:
        return
    with channels_mod.from_settings(settings) as channels:
        stats = dispatch_due(factory, channels=channels, settings=settings, now=now)
    try:
        dues_jobs.send_notices(factory, settings=settings)
    except Exception:  # the touchpoints went out; the dues emails wait for the next minute
        log.exception("sending the dues notices failed")
    if stats.claimed:
        log.info("dispatched %s touchpoints: %s", stats.claimed, dict(stats.outcomes))
