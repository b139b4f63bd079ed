"""The outbox of the emails recurring dues sends: invoices, pre-notifications, cancellation
confirmations, payment reminders, card links.

A notice is written by `queue` in the transaction that decides it (so a rolled-back decision
sends nothing) under a key unique per club (so deciding twice queues once); the dispatcher sends
what is unsent.
"""
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core import clock
from app.dues import bulk
from app.dues.models import Notice


def queue(session: Session, *, club_id: int, kind: str, key: str, to: str | None,
          subject: str, body: str, html: str | None = None, payer_id: int | None = None,
          member_id: int | None = None) -> Notice:
    """Queue one email under `key` (unique per club); the same key again returns the first."""
    known = session.scalars(select(Notice).where(Notice.club_id == club_id,
                                                 Notice.key == key)).first()
    if known is not None:
        return known
    notice = Notice(club_id=club_id, kind=kind, key=key, to=to, subject=subject, body=body,
                    html=html, payer_id=payer_id, member_id=member_id, created_at=clock.now())
    try:
        with session.begin_nested():
            session.add(notice)
            session.flush()
    except IntegrityError:  # queued by a concurrent transaction under the same key
        return session.scalars(select(Notice).where(Notice.club_id == club_id,
                                                    Notice.key == key)).one()
    return notice


def queue_fresh(session: Session, *, club_id: int, rows: list[dict]) -> int:
    """Queue many emails at once under keys nothing queued yet (the billing run's invoices: the
    keys name invoices written in the same transaction); a key taken already fails the whole
    transaction, as a second writer of the same rows would. Each row: kind, key, to, subject,
    body, and optionally html, payer_id, member_id."""
    if not rows:
        return 0
    now = clock.now()
    bulk.insert_rows(session, Notice, [
        {"club_id": club_id, "html": None, "payer_id": None, "member_id": None, **row,
         "created_at": now} for row in rows])
    return len(rows)
