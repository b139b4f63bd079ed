"""The scheduler's jobs. Each one first makes sure this process is the elected scheduler."""
import logging

from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.core.types import utcnow
from app.retention import channels as channels_mod
from app.retention.dispatch import dispatch_due
from app.retention.service import run_due_clubs

log = logging.getLogger("fitclub.retention")


def daily_job(factory: sessionmaker[Session], lock, settings: Settings) -> None:
    """Hourly check: run every club whose local 05:00 has passed and whose run is not done yet.

    The daily run includes membership expiry: members whose membership ended move to lapsed,
    then lost; pending touchpoints of a stage they left are cancelled.
    """
    if not lock.ensure():
        return
    for report in run_due_clubs(factory, now=utcnow()):
        log.info("retention run club %s for %s: %s changes, %s planned, %.2fs", report.club_id,
                 report.as_of, sum(report.transitions.values()),
                 sum(report.scheduled.values()), report.seconds)


def dispatch_job(factory: sessionmaker[Session], lock, settings: Settings) -> None:
    """Every minute: deliver due touchpoints."""
    if not lock.ensure():
        return
    with channels_mod.from_settings(settings) as channels:
        stats = dispatch_due(factory, channels=channels, settings=settings, now=utcnow())
    if stats.claimed:
        log.info("dispatched %s touchpoints: %s", stats.claimed, dict(stats.outcomes))
