"""The check-in logs the desk and the managers read: attempts and visits on a club-local day,
and one member's visits. (The decision and the writes are `app.access.service`.)"""
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.access.models import AccessEvent, Visit
from app.access.schemas import AccessEventRead, VisitRead
from app.clubs import service as clubs_service
from app.core.errors import Invalid, NotFound
from app.core.schemas import Page
from app.core.sql import local_day_start
from app.members.models import Member


def _local_day_range(session: Session, club_id: int, day: date | None) -> tuple[datetime, datetime]:
    club = clubs_service.get_club(session, club_id)
    zone = clubs_service.club_zone(club)
    day = day or clubs_service.club_today(club)
    if not 1970 <= day.year <= 2999:
        raise Invalid("date must be between 1970 and 2999", code="invalid_date")
    return local_day_start(zone, day), local_day_start(zone, day + timedelta(days=1))


def _full_name(first: str | None, last: str | None) -> str | None:
    if first is None and last is None:
        return None
    return " ".join(part for part in (first, last) if part)


def list_events(session: Session, *, club_id: int, day: date | None = None,
                allowed: bool | None = None, limit: int = 50,
                offset: int = 0) -> Page[AccessEventRead]:
    """The club's check-in attempts on one club-local day, newest first."""
    start, end = _local_day_range(session, club_id, day)
    where = [AccessEvent.club_id == club_id, AccessEvent.occurred_at >= start,
             AccessEvent.occurred_at < end]
    if allowed is not None:
        where.append(AccessEvent.allowed.is_(allowed))
    total = session.scalar(select(func.count()).select_from(AccessEvent).where(*where))
    fields = [getattr(AccessEvent, name) for name in AccessEventRead.model_fields
              if name != "member_name"]
    rows = session.execute(
        select(*fields, Member.first_name, Member.last_name)
        .outerjoin(Member, Member.id == AccessEvent.member_id)
        .where(*where).order_by(AccessEvent.occurred_at.desc(), AccessEvent.id.desc())
        .limit(limit).offset(offset)
    ).all()
    items = [AccessEventRead(**row._mapping, member_name=_full_name(row.first_name, row.last_name))
             for row in rows]
    return Page[AccessEventRead](items=items, total=total, limit=limit, offset=offset)


def _visit_page(session: Session, where: list, limit: int, offset: int) -> Page[VisitRead]:
    total = session.scalar(select(func.count()).select_from(Visit).where(*where))
    rows = session.execute(
        select(Visit.id, Visit.occurred_at, Visit.member_id, Visit.membership_id,
               Visit.access_event_id, Member.first_name, Member.last_name)
        .join(Member, Member.id == Visit.member_id)
        .where(*where).order_by(Visit.occurred_at.desc(), Visit.id.desc())
        .limit(limit).offset(offset)
    ).all()
    items = [VisitRead(id=r.id, occurred_at=r.occurred_at, member_id=r.member_id,
                       member_name=_full_name(r.first_name, r.last_name) or "",
                       membership_id=r.membership_id, access_event_id=r.access_event_id)
             for r in rows]
    return Page[VisitRead](items=items, total=total, limit=limit, offset=offset)


def list_visits(session: Session, *, club_id: int, day: date | None = None, limit: int = 50,
                offset: int = 0) -> Page[VisitRead]:
    """The club's visits on one club-local day (default today), newest first."""
    start, end = _local_day_range(session, club_id, day)
    return _visit_page(session, [Visit.club_id == club_id, Visit.occurred_at >= start,
                                 Visit.occurred_at < end], limit, offset)


def member_visits(session: Session, *, club_id: int, member_id: int, limit: int = 50,
                  offset: int = 0) -> Page[VisitRead]:
    """One member's visits, newest first."""
    exists = session.scalar(select(Member.id).where(Member.id == member_id,
                                                    Member.club_id == club_id))
    if exists is None:
        raise NotFound("Member not found")
    return _visit_page(session, [Visit.club_id == club_id, Visit.member_id == member_id],
                       limit, offset)
