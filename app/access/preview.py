"""What the door would say to a member now, without an attempt: the member app's "get in" page
shows it next to the code (frozen, payment overdue, no membership …).

The same statements and the same judgement as `service.check_in` step 2 (`_membership_statement`,
`_judge`) — read only: no attempt is recorded, no visit counted, nothing locked.
"""
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from app.access import service
from app.core import clock
from app.core.errors import NotFound

STATES = tuple(r.value for r in service.Reason if r not in (
    service.Reason.unknown_card, service.Reason.code_expired, service.Reason.card_blocked,
    service.Reason.override, service.Reason.device_granted, service.Reason.device_refused))
"""The reasons `door_state` can give: the member is known and no card is involved."""


@dataclass(frozen=True, slots=True)
class DoorState:
    allow: bool
    reason: str
    """`service.Reason` (ok, membership_frozen, payment_overdue, debt, no_membership …)."""
    frozen_until: date | None = None
    starts_on: date | None = None
    ended_on: date | None = None


def door_state(session, *, club_id: int, member_id: int,
               at: datetime | None = None) -> DoorState:
    """The decision a member's check-in would get at `at` (default now), not recorded."""
    at = at or clock.now()
    conn = session.connection()
    row = conn.execute(service._RESOLVE_MEMBER, {"club_id": club_id,
                                                 "member_id": member_id}).first()
    if row is None or row.member_id is None or row.erased_at is not None:
        raise NotFound("Member not found", code="member_not_found")
    settings = service._club_settings(club_id, row.timezone, row.settings)
    zone = ZoneInfo(row.timezone)
    local = at.astimezone(zone)
    statement = service._MEMBERSHIP_AND_DEBT if settings.block_on_debt else service._MEMBERSHIP
    m = conn.execute(statement, {
        "club_id": club_id, "member_id": member_id, "day": local.date(),
        "since": at - timedelta(minutes=settings.anti_passback_minutes), "at": at}).first()
    allow, reason, _message = service._judge(m, settings, local.date(), local, zone,
                                             row.first_name)
    if m is None:
        return DoorState(allow, reason.value)
    ended = m.cancelled_on if reason == service.Reason.membership_cancelled else m.end_date
    return DoorState(allow, reason.value, frozen_until=m.frozen_until, starts_on=m.start_date,
                     ended_on=ended)
