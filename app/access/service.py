"""The check-in decision (one function for every entry point) and the visit log.

`check_in` is the only place that decides whether someone may enter. The device endpoint, the
front desk and the protocol adapters (ZKTeco, Hikvision, IronLogic) all call it. It runs on the
hot path of a turnstile, so it speaks SQLAlchemy Core through the session's connection with
prebuilt statements:

1. resolve club settings + card + member, and the device row when a device calls (one SELECT);
   a card number in the member app's code form (16 digits starting with 98; no card is issued
   in it) is read by its member key instead and checked against the member's secret
   (`app.access.member_codes`: its own SELECT, then step 2 on its own; a key no member has
   falls back to the card read) — a plain card's path is unchanged;
2. the membership that counts on the club-local day, its plan's hours and freeze, the last
   entry inside the anti-passback window, whether an open dunning case refuses entry
   (`payment_overdue`: a correlated EXISTS on the member's index) and, if the club blocks on
   debt, the member's debt (one SELECT; skipped when there is no member);
3. record the attempt: `INSERT ... ON CONFLICT (club_id, dedup_key) DO NOTHING RETURNING id`;
   on conflict the stored answer is read back and returned instead (nothing else is written);
4. for a granted entry: the guarded `UPDATE memberships SET visits_used = visits_used + 1`
   (0 rows: the limit was reached by a concurrent check-in, the attempt is re-recorded as
   denied), then `INSERT INTO visits`, then the `VisitGranted` event's handlers (retention's
   at-risk recovery, class attendance; see `app/wiring.py`).

On PostgreSQL steps 1 + 2 are one statement for a card once this process has seen the club
(its timezone and settings are checked in that same read), and steps 3 + 4 are one statement
(data-modifying CTEs) into which the `VisitGranted` handlers' SQL is folded
(`app.core.events.Folded`). The device endpoint runs it on an autocommit connection
(`device_work(autocommit=True)`), so a granted turnstile entry is two statements and nothing
else: no BEGIN, COMMIT or savepoint. Only a membership with a visit limit opens a transaction
around the grant, so that losing the race for its last visit re-records the attempt as refused
atomically. SQLite: 2 reads + 3 writes + the handlers, in one transaction. A denial is one read
and one write; a repeated event the same read, the INSERT that conflicts and one read of the
stored answer.

The device endpoint finds the device behind its key once per process (`device_for_key`) and
checks the key against the device row in step 1, so a revoked or rotated key is refused on its
next event; at most once a minute per device and process it adds a guarded
`UPDATE devices SET last_seen_at`.
"""
import hmac
import logging
import time as _clock
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Boolean,
    Date,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.access import member_codes
from app.access.models import AccessEvent, MemberAppCode, Visit
from app.billing import service as billing_service
from app.clubs import service as clubs_service
from app.clubs.models import Club, Device
from app.clubs.schemas import ClubSettings
from app.core import clock, driver, events
from app.core.actors import MANAGERS, Actor, DeviceActor
from app.core.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from app.core.events import VisitGranted
from app.core.security import digest
from app.dues import dunning
from app.dues.models import DunningCase
from app.members import service as members_service
from app.members.models import Card, Member
from app.memberships.models import Freeze, Membership, Plan

log = logging.getLogger("fitclub.access")

FUTURE_TOLERANCE = timedelta(minutes=5)
MAX_EVENT_AGE = timedelta(days=366)
REPLAY_AFTER = timedelta(minutes=2)
DEVICE_SEEN_EVERY = 60.0  # seconds between last_seen_at writes per device and process
SOURCES = ("device", "desk", "replay")
DIRECTIONS = ("in", "out")

class Reason(StrEnum):
    ok = "ok"
    unknown_card = "unknown_card"
    code_expired = "code_expired"
    card_blocked = "card_blocked"
    no_membership = "no_membership"
    membership_not_started = "membership_not_started"
    membership_expired = "membership_expired"
    membership_frozen = "membership_frozen"
    membership_cancelled = "membership_cancelled"
    outside_access_hours = "outside_access_hours"
    visit_limit_reached = "visit_limit_reached"
    anti_passback = "anti_passback"
    debt = "debt"
    payment_overdue = "payment_overdue"
    override = "override"
    device_granted = "device_granted"
    device_refused = "device_refused"


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one check-in attempt; `replayed` is True when it is an earlier answer."""

    allow: bool
    reason: str
    message: str
    member_id: int | None = None
    member_name: str | None = None
    visit_id: int | None = None
    access_event_id: int | None = None
    replayed: bool = False
    payment_problem: dict | None = None  # at the desk: `dues.dunning.payment_problem`


# --- prebuilt statements (compiled once, cached by SQLAlchemy) ----------------------------------

_clubs, _cards, _members = Club.__table__, Card.__table__, Member.__table__
_ms, _plans, _freezes = Membership.__table__, Plan.__table__, Freeze.__table__
_events, _visits, _devices = AccessEvent.__table__, Visit.__table__, Device.__table__
_dunning = DunningCase.__table__
_app_codes = MemberAppCode.__table__

_DEVICE_COLUMNS = (_devices.c.direction.label("device_direction"),
                   _devices.c.active.label("device_active"),
                   _devices.c.key_hash.label("device_key_hash"))
_NO_DEVICE = tuple(literal(None).label(c.name) for c in _DEVICE_COLUMNS)

# the device row rides along (its direction, and whether its key still opens it), so a cached
# key -> device mapping costs no query of its own and a revoked key is refused at once
_RESOLVE_CARD = (
    select(_clubs.c.timezone, _clubs.c.settings, _cards.c.status.label("card_status"),
           _members.c.id.label("member_id"), _members.c.first_name, _members.c.erased_at,
           *_DEVICE_COLUMNS)
    .select_from(
        _clubs.outerjoin(_cards, and_(_cards.c.club_id == _clubs.c.id,
                                      _cards.c.code == bindparam("code")))
        .outerjoin(_members, _members.c.id == _cards.c.member_id)
        .outerjoin(_devices, and_(_devices.c.id == bindparam("device_id"),
                                  _devices.c.club_id == _clubs.c.id)))
    .where(_clubs.c.id == bindparam("club_id"))
)

# a member app code (`member_codes`): the member its key names, with the secret to check it by
_RESOLVE_APP_CODE = (
    select(_clubs.c.timezone, _clubs.c.settings, literal(None).label("card_status"),
           _members.c.id.label("member_id"), _members.c.first_name, _members.c.erased_at,
           *_DEVICE_COLUMNS, _app_codes.c.secret)
    .select_from(
        _clubs.outerjoin(_app_codes, and_(_app_codes.c.club_id == _clubs.c.id,
                                          _app_codes.c.key == bindparam("key")))
        .outerjoin(_members, _members.c.id == _app_codes.c.member_id)
        .outerjoin(_devices, and_(_devices.c.id == bindparam("device_id"),
                                  _devices.c.club_id == _clubs.c.id)))
    .where(_clubs.c.id == bindparam("club_id"))
)

_RESOLVE_MEMBER = (
    select(_clubs.c.timezone, _clubs.c.settings, literal(None).label("card_status"),
           _members.c.id.label("member_id"), _members.c.first_name, _members.c.erased_at,
           *_NO_DEVICE)
    .select_from(
        _clubs.outerjoin(_members, and_(_members.c.club_id == _clubs.c.id,
                                        _members.c.id == bindparam("member_id"))))
    .where(_clubs.c.id == bindparam("club_id"))
)

# rank of a membership on the day: 0 valid with visits left, 1 valid but used up, 2 frozen,
# 3 starts later, 4 over (cancelled or ended) -- the same precedence as rules.status_on.
_RANK_VALID, _RANK_USED_UP, _RANK_FROZEN, _RANK_PENDING, _RANK_OVER = range(5)


def _membership_statement(with_debt: bool, member=None):
    """Step 2; `member` is the member id (default: the `member_id` parameter)."""
    member = bindparam("member_id") if member is None else member
    day = bindparam("day", type_=Date())
    cancelled = and_(_ms.c.cancelled_on.is_not(None), _ms.c.cancelled_on <= day)
    rank = case(
        (cancelled, _RANK_OVER),
        (_ms.c.start_date > day, _RANK_PENDING),
        (_ms.c.end_date < day, _RANK_OVER),
        (_freezes.c.id.is_not(None), _RANK_FROZEN),
        (or_(_ms.c.visit_limit.is_(None), _ms.c.visits_used < _ms.c.visit_limit), _RANK_VALID),
        else_=_RANK_USED_UP,
    )
    stopped = case((and_(_ms.c.cancelled_on.is_not(None), _ms.c.cancelled_on < _ms.c.end_date),
                    _ms.c.cancelled_on), else_=_ms.c.end_date)
    candidates = (
        select(_ms.c.id, _ms.c.start_date, _ms.c.end_date, _ms.c.cancelled_on, _ms.c.visit_limit,
               _ms.c.visits_used, _plans.c.access_start, _plans.c.access_end,
               _freezes.c.end_date.label("frozen_until"), rank.label("rank"),
               stopped.label("stopped"))
        .select_from(
            _ms.join(_plans, _plans.c.id == _ms.c.plan_id)
            .outerjoin(_freezes, and_(_freezes.c.membership_id == _ms.c.id,
                                      _freezes.c.start_date <= day, _freezes.c.end_date >= day)))
        .where(_ms.c.member_id == member, _ms.c.club_id == bindparam("club_id"))
        .subquery("candidates")
    )
    c = candidates.c
    last_entry = (
        select(func.max(_visits.c.occurred_at))
        .where(_visits.c.member_id == member,
               _visits.c.club_id == bindparam("club_id"),
               _visits.c.occurred_at > bindparam("since"),
               _visits.c.occurred_at <= bindparam("at"))
        .scalar_subquery()
    )
    # an open dunning case whose entry block has begun (ix_dues_dunning_member)
    overdue = exists(select(_dunning.c.id).where(
        _dunning.c.member_id == member, _dunning.c.club_id == bindparam("club_id"),
        _dunning.c.closed_on.is_(None), _dunning.c.blocks_entry_from <= day))
    columns = [c.id, c.start_date, c.end_date, c.cancelled_on, c.visit_limit, c.visits_used,
               c.access_start, c.access_end, c.frozen_until, c.rank, last_entry.label("last_entry"),
               overdue.label("overdue")]
    if with_debt:
        columns.append(billing_service.debt_expression(bindparam("club_id"), member)
                       .label("debt"))
    # within a rank every row has the second key either NULL or not, so NULL order is moot:
    # valid ones that end first are used first, the next to start, the most recently over
    second = case((c.rank <= _RANK_USED_UP, c.end_date), (c.rank == _RANK_PENDING, c.start_date))
    return select(*columns).order_by(c.rank, second, c.stopped.desc(), c.id.desc()).limit(1)


_MEMBERSHIP = _membership_statement(with_debt=False)
_MEMBERSHIP_AND_DEBT = _membership_statement(with_debt=True)


def _card_and_membership_statement(with_debt: bool):
    """PostgreSQL: steps 1 and 2 in one read for a card, the membership computed for the card's
    member with the club's timezone and settings as last seen by this process; `check_in` uses
    it only when the same read shows them unchanged (else it reads step 2 on its own)."""
    card_member = (select(_cards.c.member_id)
                   .where(_cards.c.club_id == bindparam("club_id"),
                          _cards.c.code == bindparam("code"))
                   .scalar_subquery())
    resolved = _RESOLVE_CARD.subquery("resolved")
    membership = _membership_statement(with_debt, card_member).subquery("membership")
    return select(resolved, membership).select_from(resolved.outerjoin(membership, true()))


_CARD_AND_MEMBERSHIP = {False: _card_and_membership_statement(False),
                        True: _card_and_membership_statement(True)}

_CLAIM = {
    "postgresql": postgresql.insert(_events)
    .on_conflict_do_nothing(index_elements=[_events.c.club_id, _events.c.dedup_key])
    .returning(_events.c.id),
    "sqlite": sqlite.insert(_events)
    .on_conflict_do_nothing(index_elements=[_events.c.club_id, _events.c.dedup_key])
    .returning(_events.c.id),
}
_RECORD = insert(_events).returning(_events.c.id)

_STORED = (
    select(_events.c.id, _events.c.allowed, _events.c.reason, _events.c.message,
           _events.c.member_id, _events.c.card_code, _events.c.direction, _members.c.first_name,
           _visits.c.id.label("visit_id"))
    .select_from(_events.outerjoin(_members, _members.c.id == _events.c.member_id)
                 .outerjoin(_visits, _visits.c.access_event_id == _events.c.id))
    .where(_events.c.club_id == bindparam("club_id"), _events.c.dedup_key == bindparam("key"))
)

_COUNT_VISIT = (
    update(_ms)
    .where(_ms.c.id == bindparam("b_membership_id"),
           or_(_ms.c.visit_limit.is_(None), _ms.c.visits_used < _ms.c.visit_limit))
    .values(visits_used=_ms.c.visits_used + 1)
)

_REDECIDE = (
    update(_events).where(_events.c.id == bindparam("b_event_id"))
    .values(allowed=bindparam("b_allowed"), reason=bindparam("b_reason"),
            message=bindparam("b_message"))
)

_ADD_VISIT = insert(_visits).returning(_visits.c.id)


def _grant_statement(folds: tuple[events.Folded, ...] = ()):
    """PostgreSQL: steps 3 and 4 of a granted entry in one statement (one round trip), with
    the `VisitGranted` handlers' folded SQL (`folds`) gated on the visit being written.

    The claim, the guarded count and the visit are data-modifying CTEs: nothing is counted or
    logged when the claim conflicts (a replay: no row comes back), and no visit is written when
    the count matched no row unless `g_visit_anyway` (nothing to count, or a forced entry).
    The visit's foreign key to the new event is checked at the end of the statement, when the
    claim's row exists. SQLite has no data-modifying CTEs and takes the three statements above.
    """
    def typed(name, column):
        return bindparam(name, type_=column.type)

    claim = (postgresql.insert(_events)
             .values({c.name: typed(f"e_{c.name}", c) for c in _events.c if c.name != "id"})
             .on_conflict_do_nothing(index_elements=[_events.c.club_id, _events.c.dedup_key])
             .returning(_events.c.id)
             .cte("claim"))
    counted = (update(_ms)
               .where(_ms.c.id == bindparam("g_membership_id", type_=_ms.c.id.type),
                      or_(_ms.c.visit_limit.is_(None), _ms.c.visits_used < _ms.c.visit_limit),
                      exists(select(claim.c.id)))
               .values(visits_used=_ms.c.visits_used + literal_column("1"),  # (no onupdate in a CTE)
                       updated_at=typed("e_received_at", _ms.c.updated_at))
               .returning(_ms.c.id)
               .cte("counted"))
    visit = (insert(_visits)
             .from_select(["club_id", "member_id", "membership_id", "access_event_id",
                           "occurred_at"],
                          select(typed("e_club_id", _visits.c.club_id),
                                 typed("e_member_id", _visits.c.member_id),
                                 typed("g_visit_membership_id", _visits.c.membership_id),
                                 claim.c.id, typed("e_occurred_at", _visits.c.occurred_at))
                          .where(or_(bindparam("g_visit_anyway", type_=Boolean()),
                                     exists(select(counted.c.id)))))
             .returning(_visits.c.id)
             .cte("visit"))
    statement = select(claim.c.id.label("event_id"),
                       select(counted.c.id).scalar_subquery().label("counted_id"),
                       select(visit.c.id).scalar_subquery().label("visit_id")).select_from(claim)
    gate = exists(select(visit.c.id))
    follow_ups = [cte for fold in folds for cte in fold.ctes(gate)]
    return statement.add_cte(*follow_ups) if follow_ups else statement


_grants: dict[tuple[events.Folded, ...], object] = {}


def _grant_with(folds: tuple[events.Folded, ...]):
    """The grant statement with these follow-ups, built once per set of them."""
    statement = _grants.get(folds)
    if statement is None:
        statement = _grants[folds] = _grant_statement(folds)
    return statement

_TOUCH_DEVICE = (
    update(_devices)
    .where(_devices.c.id == bindparam("b_device_id"),
           or_(_devices.c.last_seen_at.is_(None), _devices.c.last_seen_at < bindparam("b_stale")))
    .values(last_seen_at=bindparam("b_now"))
)

_device_seen: dict[int, float] = {}


# --- per-process caches of what rarely changes -------------------------------------------------

KNOWN_KEYS_MAX = 1024
_known_keys: dict[str, DeviceActor] = {}
"""Device key digest -> the device it opened, in this process. Only the device's id and club
are used from it (they never change); `check_in(device_key=...)` re-reads the device row in its
first query, so a revoked device or a rotated key is refused on its very next event."""

_clubs_seen: dict[int, tuple[str, dict | None, ClubSettings]] = {}
"""Club id -> (timezone, settings JSON, parsed settings) as last read, in this process."""


def device_for_key(session: Session, *, key: str) -> DeviceActor:
    """The device a key belongs to, looked up once per process; pass the key on to
    `device_check_in`, which checks it is still valid (unknown keys are never cached)."""
    hashed = digest(key)
    device = _known_keys.get(hashed)
    if device is None:
        device = clubs_service.authenticate_device(session, key=key)
        if len(_known_keys) >= KNOWN_KEYS_MAX:
            _known_keys.clear()
        _known_keys[hashed] = device
    return device


def forget_device_key(key: str) -> None:
    _known_keys.pop(digest(key), None)


def _club_settings(club_id: int, timezone: str, raw: dict | None) -> ClubSettings:
    """The club's settings parsed from the JSON just read, re-parsed only when it changed."""
    seen = _clubs_seen.get(club_id)
    if seen is not None and seen[0] == timezone and seen[1] == raw:
        return seen[2]
    settings = ClubSettings.model_validate(raw or {})
    if len(_clubs_seen) >= KNOWN_KEYS_MAX:
        _clubs_seen.clear()
    _clubs_seen[club_id] = (timezone, raw, settings)
    return settings


# --- messages: short, plain ASCII, no personal data beyond the first name ------------------------

def _day(d: date, ref: date) -> str:
    text = f"{d.day} {d:%B}"
    return text if d.year == ref.year else f"{text} {d.year}"


def _hhmm(t: time) -> str:
    return f"{t:%H:%M}"


def _outside_hours(start: time | None, end: time | None, now: time) -> str | None:
    """None when `now` is inside [start, end) (a window may wrap midnight), else a message."""
    if start is None and end is None:
        return None
    if start is not None and end is not None and end <= start:  # e.g. 22:00-06:00
        inside = now >= start or now < end
    else:
        inside = (start is None or now >= start) and (end is None or now < end)
    if inside:
        return None
    if start is not None and (end is None or now < start):
        return f"Come back after {_hhmm(start)}"
    return f"Your plan allows entry until {_hhmm(end)}"


# --- the decision ----------------------------------------------------------------------------

# long: the turnstile hot path, steps 1-4 of the module docstring in order, each one statement;
# split into helpers it costs a call and a re-read of shared state per check-in (#19 measures it)
def check_in(session: Session, *, club_id: int, occurred_at: datetime,
             card_code: str | None = None, member_id: int | None = None,
             device_id: int | None = None, dedup_key: str | None = None,
             source: str = "device", direction: str | None = "in", staff_id: int | None = None,
             override_reason: str | None = None,
             recorded_outcome: bool | None = None,
             device_key: str | None = None) -> Decision:
    """Decide and record one check-in attempt (the same rules for every device and the desk).

    `recorded_outcome` is for events a controller already decided on its own (offline logs,
    ATTLOG/rtlog records): the rules still run to find the member and membership, but what is
    stored is what happened at the door; a disagreement is kept with the server's view in the
    message, so nobody who walked in is missing and no visit is invented.

    `direction=None` means the device's configured direction (read with the card). With
    `device_key` (the key the device sent), the device row must still be active under that key:
    it is checked in the first read, before anything is written.
    """
    if recorded_outcome is not None and source == "desk":
        raise Invalid("Only device events carry a recorded outcome", code="invalid_check_in")
    if source not in SOURCES or not (direction in DIRECTIONS
                                     or (direction is None and device_id is not None)):
        raise Invalid("source must be device, desk or replay and direction in or out",
                      code="invalid_check_in")
    if (card_code is None) == (member_id is None):
        raise Invalid("Give either a card code or a member id", code="invalid_check_in")
    if override_reason is not None and staff_id is None:
        raise Invalid("An override needs the staff member who gives it", code="invalid_check_in")
    if occurred_at.utcoffset() is None:
        raise Invalid("occurred_at needs a UTC offset", code="timezone_required")
    now = clock.now()
    if occurred_at - now > FUTURE_TOLERANCE:
        raise Invalid("occurred_at is in the future; check the device's clock",
                      code="occurred_in_future")
    if now - occurred_at > MAX_EVENT_AGE:
        raise Invalid("occurred_at is more than a year ago; it cannot be recorded",
                      code="occurred_too_long_ago")
    occurred_at = occurred_at.astimezone(UTC)
    session.flush()  # Core below: make the caller's pending ORM changes visible first
    conn = session.connection()
    postgres = conn.dialect.name == "postgresql"

    # 1. club settings, card, member (and the device). On PostgreSQL, for a club this process
    #    has seen, step 2 rides along, computed with the club's timezone and settings as seen
    #    last; it is used only if this same read shows them unchanged.
    #    A card number in the member app's code form whose key is a member's of this club is
    #    that member's app code (`member_codes`); any other is a card.
    app_code = None
    if (card_code is not None and len(card_code) == member_codes.LENGTH
            and member_codes.looks_like(card_code)):
        app_code = conn.execute(_RESOLVE_APP_CODE, {
            "club_id": club_id, "key": member_codes.key_of(card_code),
            "device_id": device_id}).first()
        if app_code is not None and app_code.secret is None:
            app_code = None
    seen = (_clubs_seen.get(club_id) if postgres and card_code is not None and app_code is None
            else None)
    if app_code is not None:
        row = app_code
    elif seen is not None:
        seen_zone, seen_raw, seen_settings = seen
        seen_at = occurred_at.astimezone(ZoneInfo(seen_zone))
        row = driver.first(conn, _CARD_AND_MEMBERSHIP[seen_settings.block_on_debt], {
            "club_id": club_id, "code": card_code, "device_id": device_id,
            "day": seen_at.date(), "at": occurred_at,
            "since": occurred_at - timedelta(minutes=seen_settings.anti_passback_minutes),
        })
        ahead = row is not None and row.timezone == seen_zone and row.settings == seen_raw
    elif card_code is not None:
        row = conn.execute(_RESOLVE_CARD, {"club_id": club_id, "code": card_code,
                                           "device_id": device_id}).first()
    else:
        row = conn.execute(_RESOLVE_MEMBER, {"club_id": club_id, "member_id": member_id}).first()
    if device_key is not None and (row is None or not row.device_active or not hmac.compare_digest(
            row.device_key_hash or "", digest(device_key))):
        forget_device_key(device_key)
        raise Unauthorized("Unknown or revoked device key", code="invalid_device_key")
    if row is None:
        raise NotFound("Club not found")
    if direction is None:
        direction = row.device_direction if row.device_direction in DIRECTIONS else "in"
    if member_id is not None and (row.member_id is None or row.erased_at is not None):
        raise NotFound("Member not found")
    settings = _club_settings(club_id, row.timezone, row.settings)
    zone = ZoneInfo(row.timezone)
    local = occurred_at.astimezone(zone)
    day = local.date()
    known = row.member_id is not None and row.erased_at is None
    mid = row.member_id if known else None
    first_name = row.first_name if known else None

    allow, reason, message = False, Reason.ok, ""
    m = None  # the membership that counts (step 2)
    membership_id = None
    countable = False  # the membership is valid today: a granted entry counts against it
    if direction == "out":
        allow, message = True, f"Goodbye, {first_name}!" if first_name else "Goodbye!"
    elif not known:
        reason, message = Reason.unknown_card, "Card not recognised, please see the front desk"
    elif app_code is not None and not member_codes.verify(app_code.secret, card_code,
                                                          occurred_at):
        reason, message = Reason.code_expired, member_codes.EXPIRED_MESSAGE
    elif row.card_status is not None and row.card_status != "active":
        reason, message = Reason.card_blocked, "Card blocked, please see the front desk"
    else:
        # 2. the membership that counts, the last entry, the debt
        if seen is not None and ahead:
            m = row if row.id is not None else None
        else:
            statement = _MEMBERSHIP_AND_DEBT if settings.block_on_debt else _MEMBERSHIP
            since = occurred_at - timedelta(minutes=settings.anti_passback_minutes)
            m = conn.execute(statement, {"club_id": club_id, "member_id": mid, "day": day,
                                         "since": since, "at": occurred_at}).first()
        allow, reason, message = _judge(m, settings, day, local, zone, first_name)
        if m is not None:
            membership_id = m.id
            countable = m.rank in (_RANK_VALID, _RANK_USED_UP)

    if not allow and override_reason is not None:
        allow, reason = True, Reason.override
        message = f"Let in by staff (was: {message})"
    elif recorded_outcome is not None and recorded_outcome != allow and direction == "in":
        if recorded_outcome:
            reason, message = Reason.device_granted, f"Let in by the device (server: {message})"
        else:
            reason, message = Reason.device_refused, "Refused by the device"
        allow = recorded_outcome

    # 3. record the attempt; a key seen before returns the earlier answer and writes nothing
    event = {
        "club_id": club_id, "device_id": device_id, "dedup_key": dedup_key,
        "card_code": card_code, "member_id": mid, "membership_id": membership_id,
        "direction": direction, "source": source, "allowed": allow, "reason": reason.value,
        "message": message, "occurred_at": occurred_at, "received_at": now,
        "staff_id": staff_id, "override_reason": override_reason if reason is Reason.override else None,
        "identified_by": ("member" if card_code is None
                          else "card" if app_code is None else "app_code"),
    }
    granted = allow and direction == "in"
    forced = reason in (Reason.override, Reason.device_granted)  # in even with no visits left
    counted = True
    if granted and postgres:
        visited = VisitGranted(club_id, mid, occurred_at, day)
        event_id, counted, visit_id, done = _grant_on_postgres(
            session, conn, event, visited, membership_id=membership_id, countable=countable,
            forced=forced, limited=countable and m is not None and m.visit_limit is not None)
    elif dedup_key is None:
        event_id = conn.execute(_RECORD, event).scalar_one()
    else:
        event_id = conn.execute(_CLAIM[conn.dialect.name], event).scalar()
    if event_id is None:
        return _stored(conn, club_id=club_id, dedup_key=dedup_key, card_code=card_code,
                       member_id=member_id, direction=direction)
    if not granted:
        return Decision(allow, reason.value, message, mid, first_name, None, event_id)

    # 4. count the visit against the membership (guarded), then log the visit
    if countable and not postgres:
        counted = conn.execute(_COUNT_VISIT, {"b_membership_id": membership_id}).rowcount == 1
        if not counted and not forced:
            conn.execute(_REDECIDE, _REFUSED | {"b_event_id": event_id})
    if not counted and not forced:  # (PostgreSQL: re-recorded with the grant)
        return Decision(False, _REFUSED["b_reason"], _REFUSED["b_message"], mid, first_name,
                        None, event_id)
    if postgres:  # the folded handlers ran in the grant statement
        events.publish(session, visited, done=done)
    else:
        visit_id = conn.execute(_ADD_VISIT, {
            "club_id": club_id, "member_id": mid,
            "membership_id": membership_id if countable else None,
            "access_event_id": event_id, "occurred_at": occurred_at,
        }).scalar_one()
        events.publish(session, VisitGranted(club_id, mid, occurred_at, day))
    return Decision(True, reason.value, message, mid, first_name, visit_id, event_id)


_REFUSED = {"b_allowed": False, "b_reason": Reason.visit_limit_reached.value,
            "b_message": "No visits left on this membership"}
"""A granted attempt re-recorded as refused: a concurrent entry took the last visit."""


def _grant_on_postgres(session: Session, conn, event: dict, visited: VisitGranted, *,
                       membership_id: int | None, countable: bool, forced: bool,
                       limited: bool) -> tuple[int | None, bool, int | None, tuple]:
    """Steps 3 + 4 of a granted entry on PostgreSQL: (event id or None for a replay, counted,
    visit id, the handlers that ran folded in).

    One statement with the `VisitGranted` handlers' folded SQL. On the turnstile's autocommit
    connection it commits by itself; a visit-limited membership wraps it and the re-decision (a
    concurrent entry took the last visit) in a transaction of their own, closed here on every
    path. If the folded statement fails for a reason other than a lost connection (a lock
    timeout on a member's stage row, say), the entry is granted without the folds and the
    handlers run afterwards as best-effort follow-ups, as on SQLite."""
    autocommit = events.autocommitting(session)
    if autocommit and events.required(VisitGranted):
        raise RuntimeError("VisitGranted has required handlers: the turnstile's autocommit "
                           "check-in cannot run them in the entry's transaction")
    params = {f"e_{name}": value for name, value in event.items()}
    params.update(g_membership_id=membership_id if countable else None,
                  g_visit_membership_id=membership_id if countable else None,
                  g_visit_anyway=not countable or forced)
    folded = events.folded(VisitGranted)
    for _handler, fold in folded:
        params.update(fold.params(visited))
    paired = autocommit and limited and not forced
    if paired:
        conn.exec_driver_sql("BEGIN")
    try:
        try:
            wrote = driver.first(conn, _grant_with(tuple(f for _h, f in folded)), params)
            done = tuple(h for h, _f in folded)
        except DBAPIError as error:
            if not folded or error.connection_invalidated or not autocommit:
                raise
            log.warning("the folded follow-ups of a granted entry failed (%s); granting "
                        "without them", type(error.orig).__name__)
            if paired:
                conn.exec_driver_sql("ROLLBACK")
                conn.exec_driver_sql("BEGIN")
            wrote, done = driver.first(conn, _grant_with(()), params), ()
        if wrote is None:  # a replay: nothing was written
            event_id, counted, visit_id = None, True, None
        else:
            event_id, visit_id = wrote.event_id, wrote.visit_id
            counted = not countable or wrote.counted_id is not None
            if not counted and not forced:
                conn.execute(_REDECIDE, _REFUSED | {"b_event_id": event_id})
    except BaseException:
        if paired and not conn.invalidated:
            conn.exec_driver_sql("ROLLBACK")
        raise
    if paired:
        conn.exec_driver_sql("COMMIT")
    return event_id, counted, visit_id, done


def _judge(m, settings: ClubSettings, day: date, local: datetime, zone: ZoneInfo,
           first_name: str) -> tuple[bool, Reason, str]:
    """The rules after the card: membership state, debt, hours, anti-passback, visits left."""
    if m is None:
        return False, Reason.no_membership, "No membership, please see the front desk"
    if m.rank == _RANK_FROZEN:
        return False, Reason.membership_frozen, f"Frozen until {_day(m.frozen_until, day)}"
    if m.rank == _RANK_PENDING:
        return False, Reason.membership_not_started, f"Membership starts on {_day(m.start_date, day)}"
    if m.rank == _RANK_OVER:
        if m.cancelled_on is not None and m.cancelled_on <= day:
            return (False, Reason.membership_cancelled,
                    f"Membership cancelled on {_day(m.cancelled_on, day)}")
        return False, Reason.membership_expired, f"Membership expired on {_day(m.end_date, day)}"
    if m.overdue:
        return False, Reason.payment_overdue, "Please see the front desk about your payment"
    if settings.block_on_debt and Decimal(str(m.debt)) > Decimal("0.005"):
        return False, Reason.debt, "Please settle your balance at the front desk"
    hours = _outside_hours(m.access_start, m.access_end, local.time())
    if hours:
        return False, Reason.outside_access_hours, hours
    if m.last_entry is not None:
        at = _hhmm(m.last_entry.astimezone(zone).time())
        return False, Reason.anti_passback, f"Already checked in at {at}"
    if m.rank == _RANK_USED_UP:
        return False, Reason.visit_limit_reached, "No visits left on this membership"
    return True, Reason.ok, f"Welcome, {first_name}!"


def _stored(conn, *, club_id: int, dedup_key: str, card_code: str | None,
            member_id: int | None, direction: str) -> Decision:
    """The answer recorded earlier under this key (the same key for another card is refused)."""
    row = conn.execute(_STORED, {"club_id": club_id, "key": dedup_key}).first()
    if row is None:  # the first attempt vanished between the conflict and this read
        raise Conflict("This event is being recorded right now; retry", code="event_in_flight")
    same = row.card_code == card_code and row.direction == direction and (
        member_id is None or row.member_id == member_id)
    if not same:
        raise Invalid("This event id (or Idempotency-Key) was already used for a different "
                      "check-in", code="event_id_reused")
    return Decision(row.allowed, row.reason, row.message, row.member_id, row.first_name,
                    row.visit_id, row.id, replayed=True)


def device_check_in(session: Session, *, device: DeviceActor, card: str, event_id: str | None,
                    occurred_at: datetime | None, direction: str | None,
                    key: str | None = None) -> Decision:
    """A turnstile's event: deduplicated by the device's own event id, decided at its time.

    Without a `direction` the device's configured one applies (read with the card). With the
    `key` the device sent, `device` may come from `device_for_key`'s cache: the key is checked
    against the device row in the decision's first read.
    """
    code = members_service.normalise_card_code(card, field="card")
    now = clock.now()
    occurred_at = occurred_at or now
    # first: on the autocommit connection the decision commits as it is written, and nothing
    # after it may turn a recorded entry into an error for the device
    touch_device(session, device_id=device.device_id, now=now)
    decision = check_in(
        session, club_id=device.club_id, occurred_at=occurred_at, card_code=code,
        device_id=device.device_id,
        dedup_key=f"dev:{device.device_id}:{event_id}" if event_id else None,
        source="replay" if now - occurred_at > REPLAY_AFTER else "device",
        direction=direction, device_key=key)
    return decision


def touch_device(session: Session, *, device_id: int, now: datetime) -> None:
    """Note that a device is alive, at most once a minute per device and process."""
    tick = _clock.monotonic()
    if tick - _device_seen.get(device_id, -DEVICE_SEEN_EVERY) < DEVICE_SEEN_EVERY:
        return
    session.connection().execute(_TOUCH_DEVICE, {
        "b_device_id": device_id, "b_now": now,
        "b_stale": now - timedelta(seconds=DEVICE_SEEN_EVERY)})
    _device_seen[device_id] = tick


def desk_check_in(session: Session, *, actor: Actor, member_id: int,
                  override_reason: str | None = None,
                  idempotency_key: str | None = None) -> Decision:
    """Check a member in by hand; managers and owners may let a denied member in with a reason."""
    if override_reason is not None and actor.role not in MANAGERS:
        raise Forbidden("Only a manager or owner can let a member in despite a denial",
                        code="override_forbidden")
    decision = check_in(
        session, club_id=actor.club_id, occurred_at=clock.now(), member_id=member_id,
        dedup_key=f"desk:{actor.user_id}:{idempotency_key}" if idempotency_key else None,
        source="desk", direction="in", staff_id=actor.user_id, override_reason=override_reason)
    problem = dunning.payment_problem(
        session, club_id=actor.club_id, member_id=member_id,
        today=clubs_service.club_today_by_id(session, actor.club_id))
    return replace(decision, payment_problem=problem) if problem else decision
