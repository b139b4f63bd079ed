"""The dues jobs the one scheduler runs: every club's billing run for its own today, then its
dunning and card charges; and the notices' sending.

`daily` is called by the scheduler's daily check (`app.retention.jobs.daily_job`, every few
minutes): a club whose run of the day finished costs one lookup; an unfinished one (killed) is
carried on. After the billing run, the dunning sequence moves on (failed payments open cases,
retries are planned for today) and the card collections due are charged — both safe to repeat
on every check. One club's failure is logged and does not stop the others. `send_notices` runs
with the scheduler's dispatch (every minute).
"""
import logging
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.clubs import service as clubs_service
from app.clubs.models import Club
from app.core.config import Settings
from app.core.db import transaction
from app.dues import cards, dunning, notices
from app.dues.run import RunResult, run_billing

log = logging.getLogger("fitclub.dues")


def daily(factory: sessionmaker[Session], *, day: date | None = None,
          now: datetime | None = None, club_id: int | None = None,
          settings: Settings | None = None) -> list[RunResult]:
    """Run the billing of every club (or of `club_id`) for `day`, else the club's today (at
    `now`, else the app clock); then move its dunning on and, given `settings` (the card
    provider's address), charge its card collections due."""
    with factory() as s:
        stmt = select(Club).order_by(Club.id)
        if club_id is not None:
            stmt = stmt.where(Club.id == club_id)
        clubs = [(club.id, day or clubs_service.club_today(club, now))
                 for club in s.scalars(stmt)]
    results = []
    for cid, club_day in clubs:
        try:
            result = run_billing(factory, club_id=cid, day=club_day)
        except Exception:  # one club's failure must not stop the others
            log.exception("billing run of club %s for %s failed; the next run carries on",
                          cid, club_day)
            continue
        if not result.done_before:
            log.info("billing run club %s for %s: %s invoices, %s lines, %s renewed, %.2fs",
                     cid, club_day, result.invoices, result.lines, result.renewed,
                     result.seconds)
        results.append(result)
        collect(factory, club_id=cid, day=club_day, settings=settings)
    return results


def collect(factory: sessionmaker[Session], *, club_id: int, day: date,
            settings: Settings | None = None) -> None:
    """The club's dunning for `day`, then its card charges due (each failure logged)."""
    try:
        with transaction(factory) as session:
            dunning.advance_dunning(session, club_id=club_id, day=day)
    except Exception:
        log.exception("dunning of club %s for %s failed; the next check carries on",
                      club_id, day)
    if settings is None:
        return
    try:
        cards.charge_due_cards(factory, club_id=club_id, day=day, settings=settings)
    except Exception:
        log.exception("card charges of club %s for %s failed; the next check carries on",
                      club_id, day)


def send_notices(factory: sessionmaker[Session], *, settings: Settings) -> int:
    """Send the dues emails waiting in the outbox (invoices, pre-notifications, reminders...)."""
    with transaction(factory) as session:
        return notices.send_pending(session, settings=settings)
