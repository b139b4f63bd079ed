"""The dues jobs the one scheduler runs: every club's billing run for its own today.

`daily` is called by the scheduler's daily check (`app.retention.jobs.daily_job`, every few
minutes): a club whose run of the day finished costs one lookup; an unfinished one (killed) is
carried on. One club's failure is logged and does not stop the others.
"""
import logging
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.clubs import service as clubs_service
from app.clubs.models import Club
from app.dues.run import RunResult, run_billing

log = logging.getLogger("fitclub.dues")


def daily(factory: sessionmaker[Session], *, day: date | None = None,
          now: datetime | None = None, club_id: int | None = None) -> list[RunResult]:
    """Run the billing of every club (or of `club_id`) for `day`, else the club's today (at
    `now`, else the app clock)."""
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
    return results
