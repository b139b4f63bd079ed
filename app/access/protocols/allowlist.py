"""Keep ZKTeco devices' user tables in step with memberships and cards.

A device that holds its members with validity dates refuses an expired member even while the
server is unreachable. After a sale, renewal, freeze, unfreeze or cancellation, after a card is
issued, blocked or replaced, and after a merge or an erasure (the events `MemberChanged`,
`CardChanged`, `MembershipSold`, `MembersMerged`, `MemberErased`, handled here as
`app/wiring.py` subscribes), `queue_member` works out what the member's row on the device should
be and queues it, for every active ZKTeco device of the club, in `device_commands`:

* `DATA UPDATE user CardNo=<card>\\tPin=<member id>\\tName=<name>\\tStartTime=<YYYYMMDD>\\tEndTime=<YYYYMMDD>`
  while the member has an active card and a membership valid today or later;
* `DATA DELETE user Pin=<member id>` otherwise (only if fitclub ever sent that PIN to the device).

The validity is one date range (the device keeps one): from today, or the start of the next
membership, to the end of the run of memberships that follow each other without a gap; a freeze
in effect on its first day moves the start to the day after the freeze. A freeze that starts
later is not on the device (online verification refuses it; `sync_club`, run nightly, pushes the
new range when it begins). Visit limits, access hours and debts are checked online only.

The device polls (`getrequest`): `deliver` hands out queued commands (and re-sends ones it never
confirmed after `RESEND_AFTER`), `confirm` records its `devicecmd` results. A newer command for
the same device and PIN deletes a queued older one; an identical command is not queued twice.
"""
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, delete, exists, insert, or_, select, update
from sqlalchemy.orm import Session, aliased

from app.access.protocols.models import DeviceCommand
from app.clubs.models import Device
from app.clubs.service import club_today_by_id
from app.core import clock
from app.core.events import (
    CardChanged,
    MemberChanged,
    MemberErased,
    MembershipSold,
    MembersMerged,
)
from app.members.models import Card, Member
from app.memberships.models import Freeze, Membership

log = logging.getLogger("fitclub.access.allowlist")

PROTOCOL = "zkteco"
RESEND_AFTER = timedelta(minutes=5)
POLL_BATCH = 50
NAME_MAX = 24
CHUNK = 500
PENDING = ("queued", "sent")


@dataclass(frozen=True, slots=True)
class UserState:
    """What the device should hold for one member (None: nothing)."""

    pin: str
    card: str
    name: str
    start: date
    end: date


def user_command(state: UserState) -> str:
    return (f"DATA UPDATE user CardNo={state.card}\tPin={state.pin}\tName={state.name}"
            f"\tStartTime={state.start:%Y%m%d}\tEndTime={state.end:%Y%m%d}")


def delete_command(pin: str) -> str:
    return f"DATA DELETE user Pin={pin}"


def screen_name(first: str | None, last: str | None) -> str:
    """Printable, no tabs or line breaks (they separate fields and commands), at most 24 chars."""
    text = " ".join(" ".join(part for part in (first, last) if part).split())
    return "".join(ch for ch in text if ch.isprintable())[:NAME_MAX].strip()


def validity(memberships: Iterable[Membership], freezes: Iterable[Freeze],
             today: date) -> tuple[date, date] | None:
    """The one date range the device should let the member in (see the module doc)."""
    spans = []
    for m in memberships:
        end = m.end_date
        if m.cancelled_on is not None:
            end = min(end, m.cancelled_on - timedelta(days=1))
        if end < today or end < m.start_date:
            continue
        spans.append((max(m.start_date, today), end))
    if not spans:
        return None
    spans.sort()
    start, end = spans[0]
    for s, e in spans[1:]:
        if s > end + timedelta(days=1):
            break
        end = max(end, e)
    freezes = sorted(freezes, key=lambda f: f.start_date)
    moved = True
    while moved:
        moved = False
        for f in freezes:
            if f.start_date <= start <= f.end_date:
                start, moved = f.end_date + timedelta(days=1), True
    return (start, end) if start <= end else None


def states(session: Session, *, club_id: int, member_ids: Sequence[int],
           as_of: date) -> dict[int, UserState | None]:
    """The desired device row of each member (None: not on the device), in four queries."""
    result: dict[int, UserState | None] = {mid: None for mid in member_ids}
    if not member_ids:
        return result
    people = {r.id: r for r in session.execute(
        select(Member.id, Member.first_name, Member.last_name, Member.erased_at)
        .where(Member.club_id == club_id, Member.id.in_(member_ids)))}
    cards: dict[int, str] = {}
    for member_id, code in session.execute(
            select(Card.member_id, Card.code)
            .where(Card.club_id == club_id, Card.member_id.in_(member_ids),
                   Card.status == "active").order_by(Card.member_id, Card.id)):
        cards[member_id] = code  # the newest active card wins
    memberships: dict[int, list[Membership]] = {}
    for m in session.scalars(select(Membership).where(
            Membership.club_id == club_id, Membership.member_id.in_(member_ids),
            Membership.end_date >= as_of)):
        memberships.setdefault(m.member_id, []).append(m)
    ids = [m.id for ms in memberships.values() for m in ms]
    frozen: dict[int, list[Freeze]] = {}
    if ids:
        owner = {m.id: m.member_id for ms in memberships.values() for m in ms}
        for f in session.scalars(select(Freeze).where(Freeze.membership_id.in_(ids),
                                                      Freeze.end_date >= as_of)):
            frozen.setdefault(owner[f.membership_id], []).append(f)
    for mid in member_ids:
        person = people.get(mid)
        if person is None or person.erased_at is not None or mid not in cards:
            continue
        span = validity(memberships.get(mid, []), frozen.get(mid, []), as_of)
        if span is not None:
            result[mid] = UserState(str(mid), cards[mid], screen_name(person.first_name,
                                                                      person.last_name), *span)
    return result


def _zk_devices(session: Session, club_id: int) -> list[int]:
    return list(session.scalars(select(Device.id).where(
        Device.club_id == club_id, Device.protocol == PROTOCOL, Device.active.is_(True))
        .order_by(Device.id)))


def _sync(session: Session, *, club_id: int, member_ids: Sequence[int],
          device_ids: Sequence[int], as_of: date) -> int:
    """Queue what differs from the last command each device got; the number queued."""
    queued = 0
    now = clock.now()
    for i in range(0, len(member_ids), CHUNK):
        chunk = list(member_ids[i:i + CHUNK])
        wanted = states(session, club_id=club_id, member_ids=chunk, as_of=as_of)
        pins = [str(mid) for mid in chunk]
        last: dict[tuple[int, str], tuple[str, str]] = {}
        for device_id, pin, command, status in session.execute(
                select(DeviceCommand.device_id, DeviceCommand.pin, DeviceCommand.command,
                       DeviceCommand.status)
                .where(DeviceCommand.device_id.in_(device_ids), DeviceCommand.pin.in_(pins))
                .order_by(DeviceCommand.id)):
            last[(device_id, pin)] = (command, status)
        rows = []
        for device_id in device_ids:
            for mid in chunk:
                pin = str(mid)
                state = wanted[mid]
                previous = last.get((device_id, pin))
                if state is None and previous is None:
                    continue  # never sent to this device: nothing to delete
                command = user_command(state) if state else delete_command(pin)
                if previous is not None and previous[0] == command and previous[1] != "failed":
                    continue  # the device has (or will get) exactly this
                rows.append({"club_id": club_id, "device_id": device_id, "pin": pin,
                             "command": command, "status": "queued", "created_at": now,
                             "attempts": 0})
        if rows:
            for row in rows:  # a newer command supersedes one still waiting
                session.execute(delete(DeviceCommand).where(
                    DeviceCommand.device_id == row["device_id"], DeviceCommand.pin == row["pin"],
                    DeviceCommand.status == "queued"))
            session.execute(insert(DeviceCommand), rows)
            queued += len(rows)
    return queued


def queue_member(session: Session, *, club_id: int, member_id: int) -> None:
    """Queue the member's current row (or its deletion) for the club's ZKTeco devices."""
    device_ids = _zk_devices(session, club_id)
    if not device_ids:
        return
    session.flush()
    _sync(session, club_id=club_id, member_ids=[member_id], device_ids=device_ids,
          as_of=club_today_by_id(session, club_id))


# --- event handlers (subscribed in app/wiring.py; best effort: the nightly `sync_club` repairs
# a device whose update failed, and the desk's action stands) ----------------------------------

def on_member_changed(session: Session,
                      event: MemberChanged | CardChanged | MembershipSold) -> None:
    """A sale, freeze, card or erasure changed who may pass: queue the member's new row."""
    queue_member(session, club_id=event.club_id, member_id=event.member_id)


def on_members_merged(session: Session, event: MembersMerged) -> None:
    """The kept member's row gains the merged one's cards; the merged member's row goes."""
    queue_member(session, club_id=event.club_id, member_id=event.kept_member_id)
    queue_member(session, club_id=event.club_id, member_id=event.merged_member_id)


def forget_member(session: Session, event: MemberErased) -> None:
    """Erasure (required): queue the deletion of the person's row on every ZKTeco device, then
    drop every other command that still carries their name or card.

    In this order: whether a device ever got the PIN is read from its commands, so they are
    deleted only after the deletion command is queued. Queueing is best effort (a failure is
    logged and the erasure stands); dropping the old commands is part of the erasure."""
    try:
        with session.begin_nested():
            queue_member(session, club_id=event.club_id, member_id=event.member_id)
    except Exception:  # the erasure must not fail on a device queue; the old rows still go
        log.exception("device deletion for erased member %s of club %s could not be queued",
                      event.member_id, event.club_id)
    session.execute(delete(DeviceCommand).where(
        DeviceCommand.club_id == event.club_id, DeviceCommand.pin == str(event.member_id),
        DeviceCommand.command != delete_command(str(event.member_id))))


def sync_device(session: Session, *, device_id: int) -> int:
    """Push every member who should be on a (new) ZKTeco device; the number of commands queued."""
    device = session.get(Device, device_id)
    if device is None or device.protocol != PROTOCOL:
        return 0
    member_ids = list(session.scalars(select(Card.member_id).distinct().where(
        Card.club_id == device.club_id, Card.status == "active").order_by(Card.member_id)))
    return _sync(session, club_id=device.club_id, member_ids=member_ids, device_ids=[device_id],
                 as_of=club_today_by_id(session, device.club_id))


def sync_club(session: Session, *, club_id: int, as_of: date | None = None) -> int:
    """Nightly: bring every ZKTeco device of the club up to date (ranges that begin or end today)."""
    device_ids = _zk_devices(session, club_id)
    if not device_ids:
        return 0
    with_cards = select(Card.member_id).where(Card.club_id == club_id, Card.status == "active")
    pushed = select(DeviceCommand.pin).where(DeviceCommand.device_id.in_(device_ids))
    member_ids = sorted(set(session.scalars(with_cards)) | {int(pin) for pin in
                                                            session.scalars(pushed.distinct())})
    return _sync(session, club_id=club_id, member_ids=member_ids, device_ids=device_ids,
                 as_of=as_of or club_today_by_id(session, club_id))


# --- delivery and confirmation ------------------------------------------------------------------

_newer = aliased(DeviceCommand)


def deliver(session: Session, *, device_id: int, now: datetime | None = None,
            limit: int = POLL_BATCH) -> list[tuple[int, str]]:
    """The commands to hand out on this poll, oldest first, marked sent: queued ones, and sent
    ones never confirmed for `RESEND_AFTER` that no newer command for the PIN replaces."""
    now = now or clock.now()
    superseded = exists().where(_newer.device_id == DeviceCommand.device_id,
                                _newer.pin == DeviceCommand.pin, _newer.id > DeviceCommand.id)
    rows = session.execute(
        select(DeviceCommand.id, DeviceCommand.command)
        .where(DeviceCommand.device_id == device_id,
               or_(DeviceCommand.status == "queued",
                   and_(DeviceCommand.status == "sent",
                        DeviceCommand.sent_at < now - RESEND_AFTER, ~superseded)))
        .order_by(DeviceCommand.id).limit(limit)).all()
    if rows:
        session.execute(update(DeviceCommand)
                        .where(DeviceCommand.id.in_([r.id for r in rows]))
                        .values(status="sent", sent_at=now,
                                attempts=DeviceCommand.attempts + 1))
    return [(r.id, r.command) for r in rows]


def confirm(session: Session, *, device_id: int, results: Iterable[tuple[int, int]],
            now: datetime | None = None) -> int:
    """Record the device's results (`Return=0`: confirmed, else failed with the code)."""
    now = now or clock.now()
    done = 0
    for command_id, code in results:
        done += session.execute(
            update(DeviceCommand)
            .where(DeviceCommand.id == command_id, DeviceCommand.device_id == device_id,
                   DeviceCommand.status.in_(PENDING))
            .values(status="confirmed" if code == 0 else "failed", confirmed_at=now,
                    return_code=code)).rowcount
    return done


def pending(session: Session, *, device_id: int) -> list[DeviceCommand]:
    """Commands not yet confirmed (queued or sent), oldest first."""
    return list(session.scalars(select(DeviceCommand).where(
        DeviceCommand.device_id == device_id, DeviceCommand.status.in_(PENDING))
        .order_by(DeviceCommand.id)))


def prune(session: Session, *, older_than: timedelta = timedelta(days=30)) -> int:
    """Forget confirmed or failed commands that a newer one for the same PIN replaced."""
    cutoff = clock.now() - older_than
    newer = exists().where(_newer.device_id == DeviceCommand.device_id,
                           _newer.pin == DeviceCommand.pin, _newer.id > DeviceCommand.id)
    return session.execute(delete(DeviceCommand).where(
        DeviceCommand.status.in_(("confirmed", "failed")), DeviceCommand.created_at < cutoff,
        newer)).rowcount
