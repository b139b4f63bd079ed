"""The outbox of the emails recurring dues sends: invoices, pre-notifications, cancellation
confirmations, payment reminders, card links.

A notice is written by `queue` in the transaction that decides it (so a rolled-back decision
sends nothing) under a key unique per club (so deciding twice queues once); the dispatcher sends
what is unsent.

`send_pending` is that dispatcher: it claims unsent notices (FOR UPDATE SKIP LOCKED on
PostgreSQL, so two dispatchers never take the same one), sends each through `app.core.mail`
and records the outcome: `sent_at` when the server accepted it; otherwise `attempts` + 1 and
the `error`, and the notice is tried again on a later run while the failure may pass (a timeout,
a 4xx answer) up to `MAX_ATTEMPTS` tries. A permanent failure (no address, a refused
recipient, a 5xx answer) sets `attempts` to `MAX_ATTEMPTS` at once: it is not tried again.
"""
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.clubs.models import Club
from app.core import clock
from app.core.config import Settings
from app.core.mail import Email, Mailer
from app.dues import bulk
from app.dues.models import Notice

MAX_ATTEMPTS = 5


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


def send_pending(session: Session, *, settings: Settings, limit: int = 100,
                 mailer: Mailer | None = None, ids: list[int] | None = None) -> int:
    """Send up to `limit` unsent notices (oldest first; only those of `ids` when given: what
    must go at once, like an online cancellation's confirmation); how many the server
    accepted."""
    mailer = mailer or Mailer(settings)
    where = [Notice.sent_at.is_(None), Notice.attempts < MAX_ATTEMPTS]
    if ids is not None:
        where.append(Notice.id.in_(ids or [-1]))
    claimed = list(session.scalars(
        select(Notice).where(*where)
        .order_by(Notice.id).limit(limit).with_for_update(skip_locked=True)))
    clubs = {c.id: c.name for c in session.scalars(
        select(Club).where(Club.id.in_({n.club_id for n in claimed})))} if claimed else {}
    sent = 0
    for notice in claimed:
        if not notice.to:
            notice.attempts, notice.error = MAX_ATTEMPTS, "no email address"
            continue
        result = mailer.send(Email(to=notice.to, subject=notice.subject, body=notice.body,
                                   html=notice.html, message_key=f"notice-{notice.id}",
                                   sender_name=clubs.get(notice.club_id)))
        if result.ok:
            notice.sent_at, notice.error = clock.now(), None
            notice.attempts += 1
            sent += 1
        else:
            notice.attempts = notice.attempts + 1 if result.retryable else MAX_ATTEMPTS
            notice.error = (result.error or "failed")[:300]
    session.flush()
    return sent


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
