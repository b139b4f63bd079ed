"""Trainers, personal-training packages and sessions, group classes, results, schedule feed.

Counters many writers touch change with one guarded UPDATE each:
- a package's balance: ``sessions_left = sessions_left - 1 WHERE id = :id AND sessions_left > 0``;
- a session's fate: ``status = :new WHERE id = :id AND status = 'booked'`` (exactly once);
- a class's seats: ``booked_count = booked_count + 1 WHERE id = :id AND booked_count < capacity``.

Booking a PT session locks the member row, then the trainer profile row (``FOR NO KEY UPDATE``
on PostgreSQL; SQLite serialises writers with ``BEGIN IMMEDIATE``), so the overlap checks and
the insert cannot interleave with another booking of the same trainer or member. Every writer
takes those locks in that order (member, then trainer), so two bookings cannot deadlock.
"""
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Integer,
    and_,
    case,
    cast,
    delete,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.billing import service as billing_service
from app.billing.models import Sale, SaleLine
from app.billing.schemas import PaymentIn, SaleRead
from app.billing.service import LineValues
from app.clubs import service as clubs_service
from app.clubs.models import Club, ClubStaff, StaffUser
from app.core import clock
from app.core.actors import DESK, MANAGERS, Actor, Role
from app.core.db import club_row
from app.core.errors import Conflict, Forbidden, Invalid, NotFound
from app.core.schemas import Page
from app.core.types import money
from app.crm import service as crm_service
from app.crm.models import Task
from app.crm.schemas import TaskRead
from app.members.models import Member
from app.trainers.models import (
    ClassBooking,
    ClassOccurrence,
    PtPackage,
    PtProduct,
    PtSession,
    TrainerAbsence,
    TrainerClientNote,
    TrainerHours,
    TrainerProfile,
    TrainerSettings,
)
from app.trainers.schemas import (
    ClientRead,
    HoursIntervalRead,
    HoursRead,
    HoursSet,
    MemberPtPackages,
    PtPackageLine,
    PtPackageRead,
    PtPackageSold,
    PtProductCreate,
    SessionRead,
    TrainerCreate,
    TrainerRead,
    TrainerSettingsRead,
)

PT_PACKAGE = "pt_package"
BOOKED, COMPLETED, NO_SHOW, CANCELLED = "booked", "completed", "no_show", "cancelled"
BLOCKING = (BOOKED, COMPLETED, NO_SHOW)  # sessions that occupy their slot
SCHEDULED = "scheduled"
DEFAULT_PT_CANCEL_HOURS = 24
BOOKING_HORIZON = timedelta(days=366)


# ----------------------------------------------------------------------------- small helpers

def _club(session: Session, club_id: int) -> Club:
    return clubs_service.get_club(session, club_id)


def zone_for(session: Session, club_id: int) -> ZoneInfo:
    return clubs_service.club_zone(_club(session, club_id))


def today_for(session: Session, club_id: int, now: datetime | None = None) -> date:
    return clubs_service.club_today(_club(session, club_id), now)


def format_when(at: datetime, zone: ZoneInfo) -> str:
    local = at.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %Y %H:%M}"


def day_bounds(zone: ZoneInfo, first: date, last: date) -> tuple[datetime, datetime]:
    """[start of `first`, start of the day after `last`) in the club's zone, as UTC instants."""
    lo = datetime.combine(first, time(0), tzinfo=zone).astimezone(UTC)
    hi = datetime.combine(last + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return lo, hi


def full_name(first: str | None, last: str | None) -> str:
    return " ".join(p for p in (first, last) if p) or "?"


def short_name(first: str | None, last: str | None) -> str:
    """First name and the initial of the surname ("Anna B."): what a calendar may show."""
    first = (first or "").strip() or "Member"
    last = (last or "").strip()
    return f"{first} {last[0].upper()}." if last else first


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def add_days(session: Session, column, days: int):
    """SQL: a date column moved by a number of days (portable between SQLite and PostgreSQL)."""
    if _dialect(session) == "sqlite":
        return func.date(column, f"{int(days):+d} days")
    return column + cast(literal(int(days)), Integer)


def dialect_insert(session: Session, model):
    return (postgresql.insert(model) if _dialect(session) == "postgresql"
            else sqlite.insert(model))


def check_instant(at: datetime, now: datetime, *, field: str = "start") -> None:
    if at.utcoffset() is None:
        raise Invalid(f"{field} needs a UTC offset", code="timezone_required")
    if abs(at - now) > BOOKING_HORIZON:
        raise Invalid(f"{field} must be within a year of today", code="outside_horizon",
                      details={"field": field})


def bulk_update(stmt):
    """A bulk UPDATE that leaves objects in the session alone (we re-read what we need)."""
    return stmt.execution_options(synchronize_session=False)


# ----------------------------------------------------------------------------- settings

def get_settings(session: Session, *, club_id: int) -> TrainerSettingsRead:
    """The trainer domain's settings for a club (defaults when none were saved)."""
    hours = session.scalar(select(TrainerSettings.pt_cancel_hours)
                           .where(TrainerSettings.club_id == club_id))
    return TrainerSettingsRead(pt_cancel_hours=DEFAULT_PT_CANCEL_HOURS if hours is None else hours)


def update_settings(session: Session, *, actor: Actor, pt_cancel_hours: int) -> TrainerSettingsRead:
    """Save the club's PT cancellation window (one upsert)."""
    now = clock.now()
    stmt = (dialect_insert(session, TrainerSettings)
            .values(club_id=actor.club_id, pt_cancel_hours=pt_cancel_hours, updated_at=now)
            .on_conflict_do_update(index_elements=["club_id"],
                                   set_={"pt_cancel_hours": pt_cancel_hours, "updated_at": now}))
    session.execute(stmt)
    return get_settings(session, club_id=actor.club_id)


# ----------------------------------------------------------------------------- trainers

def get_trainer(session: Session, *, club_id: int, trainer_id: int,
                for_update: bool = False) -> TrainerProfile:
    """A trainer profile of this club, else NotFound (FOR NO KEY UPDATE when asked)."""
    return club_row(session, TrainerProfile, club_id=club_id, row_id=trainer_id,
                    for_update=for_update,
                    missing=NotFound("Trainer not found", code="trainer_not_found"))


def own_profile(session: Session, actor: Actor) -> TrainerProfile | None:
    """The calling staff user's trainer profile in the acting club, if any."""
    return session.scalar(select(TrainerProfile).where(TrainerProfile.club_id == actor.club_id,
                                                       TrainerProfile.user_id == actor.user_id))


def require_own_profile(session: Session, actor: Actor) -> TrainerProfile:
    profile = own_profile(session, actor)
    if profile is None:
        raise Forbidden("You have no trainer profile in this club; ask a manager to create one",
                        code="no_trainer_profile")
    return profile


def is_self(actor: Actor, trainer: TrainerProfile) -> bool:
    return actor.role == Role.trainer and trainer.user_id == actor.user_id


def require_self_or_manager(actor: Actor, trainer: TrainerProfile, what: str) -> None:
    if actor.role in MANAGERS or is_self(actor, trainer):
        return
    raise Forbidden(f"Only managers and the trainer themselves may see or change {what}",
                    code="not_your_trainer_profile")


def trainer_names(session: Session, trainer_ids: set[int]) -> dict[int, str]:
    if not trainer_ids:
        return {}
    return dict(session.execute(
        select(TrainerProfile.id, StaffUser.name)
        .join(StaffUser, StaffUser.id == TrainerProfile.user_id)
        .where(TrainerProfile.id.in_(trainer_ids))).all())


def _trainer_read(session: Session, trainer: TrainerProfile) -> TrainerRead:
    return TrainerRead(id=trainer.id, user_id=trainer.user_id,
                       name=trainer_names(session, {trainer.id}).get(trainer.id, "?"),
                       specialities=list(trainer.specialities or []), bio=trainer.bio,
                       active=trainer.active, has_feed_token=trainer.feed_token_hash is not None)


def create_trainer(session: Session, *, actor: Actor, data: TrainerCreate) -> TrainerRead:
    """Give a staff user with the trainer role a trainer profile in the actor's club."""
    role = session.scalar(select(ClubStaff.role).where(ClubStaff.club_id == actor.club_id,
                                                       ClubStaff.user_id == data.user_id))
    if role is None:
        raise NotFound("No such staff member in this club", code="staff_not_found")
    if role != Role.trainer.value:
        raise Invalid(f"This staff member's role is {role}; give them the trainer role first",
                      code="not_a_trainer", details={"field": "user_id"})
    if session.scalar(select(TrainerProfile.id).where(TrainerProfile.club_id == actor.club_id,
                                                      TrainerProfile.user_id == data.user_id)):
        raise Conflict("This staff member already has a trainer profile", code="trainer_exists")
    trainer = TrainerProfile(club_id=actor.club_id, user_id=data.user_id,
                             specialities=list(dict.fromkeys(data.specialities)), bio=data.bio,
                             active=data.active)
    session.add(trainer)
    session.flush()
    return _trainer_read(session, trainer)


def update_trainer(session: Session, *, actor: Actor, trainer_id: int,
                   changes: dict) -> TrainerRead:
    """Change a trainer's specialities, bio or active flag."""
    trainer = get_trainer(session, club_id=actor.club_id, trainer_id=trainer_id, for_update=True)
    if changes.get("specialities") is not None:
        trainer.specialities = list(dict.fromkeys(changes["specialities"]))
    if "bio" in changes:
        trainer.bio = changes["bio"]
    if changes.get("active") is not None:
        trainer.active = changes["active"]
    session.flush()
    return _trainer_read(session, trainer)


def read_trainer(session: Session, *, club_id: int, trainer_id: int) -> TrainerRead:
    return _trainer_read(session, get_trainer(session, club_id=club_id, trainer_id=trainer_id))


def list_trainers(session: Session, *, club_id: int, active: bool | None = None
                  ) -> list[TrainerRead]:
    """The club's trainers by name."""
    where = [TrainerProfile.club_id == club_id]
    if active is not None:
        where.append(TrainerProfile.active.is_(active))
    rows = session.execute(select(TrainerProfile, StaffUser.name)
                           .join(StaffUser, StaffUser.id == TrainerProfile.user_id)
                           .where(*where).order_by(StaffUser.name, TrainerProfile.id)).all()
    return [TrainerRead(id=t.id, user_id=t.user_id, name=name,
                        specialities=list(t.specialities or []), bio=t.bio, active=t.active,
                        has_feed_token=t.feed_token_hash is not None) for t, name in rows]


# --- working hours and absences

def get_hours(session: Session, *, club_id: int, trainer_id: int) -> HoursRead:
    trainer = get_trainer(session, club_id=club_id, trainer_id=trainer_id)
    rows = session.execute(select(TrainerHours.weekday, TrainerHours.start_time,
                                  TrainerHours.end_time)
                           .where(TrainerHours.trainer_id == trainer.id)
                           .order_by(TrainerHours.weekday, TrainerHours.start_time)).all()
    return HoursRead(trainer_id=trainer.id, timezone=_club(session, club_id).timezone,
                     intervals=[HoursIntervalRead(weekday=w, start=s, end=e) for w, s, e in rows])


def set_hours(session: Session, *, actor: Actor, trainer_id: int, data: HoursSet) -> HoursRead:
    """Replace a trainer's weekly working hours (booked sessions are not touched)."""
    trainer = get_trainer(session, club_id=actor.club_id, trainer_id=trainer_id, for_update=True)
    session.execute(delete(TrainerHours).where(TrainerHours.trainer_id == trainer.id)
                    .execution_options(synchronize_session=False))
    session.add_all(TrainerHours(club_id=actor.club_id, trainer_id=trainer.id, weekday=iv.weekday,
                                 start_time=iv.start, end_time=iv.end) for iv in data.intervals)
    session.flush()
    return get_hours(session, club_id=actor.club_id, trainer_id=trainer.id)


def add_absence(session: Session, *, actor: Actor, trainer_id: int, start_date: date,
                end_date: date, kind: str, note: str | None) -> tuple[TrainerAbsence, list[int]]:
    """Mark days a trainer is away; answers the sessions already booked on them."""
    trainer = get_trainer(session, club_id=actor.club_id, trainer_id=trainer_id, for_update=True)
    absence = TrainerAbsence(club_id=actor.club_id, trainer_id=trainer.id, start_date=start_date,
                             end_date=end_date, kind=kind, note=note, created_by=actor.user_id,
                             created_at=clock.now())
    session.add(absence)
    session.flush()
    lo, hi = day_bounds(zone_for(session, actor.club_id), start_date, end_date)
    booked = list(session.scalars(
        select(PtSession.id).where(PtSession.trainer_id == trainer.id, PtSession.status == BOOKED,
                                   PtSession.starts_at >= lo, PtSession.starts_at < hi)
        .order_by(PtSession.starts_at)))
    return absence, booked


def list_absences(session: Session, *, club_id: int, trainer_id: int) -> list[TrainerAbsence]:
    trainer = get_trainer(session, club_id=club_id, trainer_id=trainer_id)
    return list(session.scalars(select(TrainerAbsence).where(TrainerAbsence.trainer_id == trainer.id)
                                .order_by(TrainerAbsence.start_date, TrainerAbsence.id)))


def delete_absence(session: Session, *, actor: Actor, trainer_id: int, absence_id: int) -> None:
    trainer = get_trainer(session, club_id=actor.club_id, trainer_id=trainer_id)
    absence = session.scalar(select(TrainerAbsence).where(TrainerAbsence.id == absence_id,
                                                          TrainerAbsence.trainer_id == trainer.id))
    if absence is None:
        raise NotFound("Absence not found", code="absence_not_found")
    session.delete(absence)
    session.flush()


# ----------------------------------------------------------------------------- PT products

def create_product(session: Session, *, actor: Actor, data: PtProductCreate) -> PtProduct:
    """Add a personal-training package product to the actor's club."""
    product = PtProduct(club_id=actor.club_id, **data.model_dump())
    session.add(product)
    session.flush()
    return product


def get_product(session: Session, *, club_id: int, product_id: int) -> PtProduct:
    product = session.scalar(select(PtProduct).where(PtProduct.id == product_id,
                                                     PtProduct.club_id == club_id))
    if product is None:
        raise NotFound("PT package product not found", code="pt_product_not_found")
    return product


def update_product(session: Session, *, actor: Actor, product_id: int,
                   changes: dict) -> PtProduct:
    """Change a product; packages already sold keep their terms."""
    product = get_product(session, club_id=actor.club_id, product_id=product_id)
    for name, value in changes.items():
        if value is not None:
            setattr(product, name, value)
    session.flush()
    return product


def list_products(session: Session, *, club_id: int, active: bool | None = None
                  ) -> list[PtProduct]:
    where = [PtProduct.club_id == club_id]
    if active is not None:
        where.append(PtProduct.active.is_(active))
    return list(session.scalars(select(PtProduct).where(*where)
                                .order_by(PtProduct.name, PtProduct.id)))


# ----------------------------------------------------------------------------- PT packages

def fulfil_pt_package_line(session: Session, *, actor: Actor, sale: Sale,
                           line_spec: PtPackageLine) -> LineValues:
    """Line kind "pt_package": create the member's package with its full balance."""
    if sale.member_id is None:
        raise Invalid("A PT package is sold to a member: give member_id", code="member_required")
    club_id = actor.club_id
    billing_service.require_member(session, club_id=club_id, member_id=sale.member_id,
                                   for_update=True)
    product = get_product(session, club_id=club_id, product_id=line_spec.package_product_id)
    if not product.active:
        raise Invalid(f"The package {product.name!r} is no longer sold",
                      code="pt_product_inactive", details={"field": "package_product_id"})
    if line_spec.price is not None and actor.role not in MANAGERS:
        raise Forbidden("Only a manager may change the price of a package",
                        code="price_override_forbidden")
    if line_spec.trainer_id is not None:
        trainer = get_trainer(session, club_id=club_id, trainer_id=line_spec.trainer_id)
        if not trainer.active:
            raise Invalid("This trainer is not active", code="trainer_inactive",
                          details={"field": "trainer_id"})
    today = today_for(session, club_id)
    start = line_spec.start_date or today
    if start < today and actor.role not in MANAGERS:
        raise Forbidden(f"A package cannot start in the past ({start}); only a manager may "
                        "backdate it", code="start_in_past")
    until = start + timedelta(days=product.validity_days - 1)
    price = money(line_spec.price if line_spec.price is not None else product.price)
    package = PtPackage(club_id=club_id, member_id=sale.member_id, product_id=product.id,
                        trainer_id=line_spec.trainer_id, sale_id=sale.id,
                        sessions_total=product.sessions, sessions_left=product.sessions,
                        price=price, valid_from=start, valid_until=until, created_at=clock.now())
    session.add(package)
    session.flush()
    return LineValues(description=f"PT package: {product.name} ({product.sessions} sessions, "
                                  f"{start.isoformat()}–{until.isoformat()})",
                      unit_price=price, item_id=package.id)


billing_service.register_line_kind(PT_PACKAGE, fulfil_pt_package_line, spec=PtPackageLine)


def _status(p: PtPackage, as_of: date) -> str:
    if as_of < p.valid_from:
        return "pending"
    if as_of > p.valid_until:
        return "expired"
    return "used_up" if p.sessions_left <= 0 else "active"


def _package_reads(session: Session, packages: list[PtPackage], as_of: date
                   ) -> list[PtPackageRead]:
    names = dict(session.execute(select(PtProduct.id, PtProduct.name).where(
        PtProduct.id.in_({p.product_id for p in packages}))).all()) if packages else {}
    return [PtPackageRead(id=p.id, member_id=p.member_id, product_id=p.product_id,
                          product_name=names.get(p.product_id, "?"), trainer_id=p.trainer_id,
                          sale_id=p.sale_id, sessions_total=p.sessions_total,
                          sessions_used=p.sessions_total - p.sessions_left,
                          sessions_left=p.sessions_left, price=money(p.price),
                          valid_from=p.valid_from, valid_until=p.valid_until,
                          status=_status(p, as_of), created_at=p.created_at) for p in packages]


def member_packages(session: Session, *, club_id: int, member_id: int, as_of: date | None = None,
                    now: datetime | None = None) -> MemberPtPackages:
    """A member's packages with live balances: usable ones first (the one expiring first on top)."""
    billing_service.require_member(session, club_id=club_id, member_id=member_id)
    now = now or clock.now()
    as_of = as_of or today_for(session, club_id, now)
    packages = list(session.scalars(
        select(PtPackage).where(PtPackage.club_id == club_id, PtPackage.member_id == member_id)
        .execution_options(populate_existing=True)))
    order = {"active": 0, "pending": 1, "used_up": 2, "expired": 3}

    def rank(p: PtPackage) -> tuple:
        status = _status(p, as_of)
        until = p.valid_until.toordinal()
        return order[status], until if status in ("active", "pending") else -until, p.id

    packages.sort(key=rank)
    booked = session.scalar(select(func.count()).select_from(PtSession).where(
        PtSession.club_id == club_id, PtSession.member_id == member_id,
        PtSession.status == BOOKED, PtSession.complimentary.is_(False),
        PtSession.ends_at > now)) or 0
    available = sum(p.sessions_left for p in packages if _status(p, as_of) == "active")
    return MemberPtPackages(member_id=member_id, as_of=as_of, sessions_available=available,
                            sessions_booked=booked,
                            items=_package_reads(session, packages, as_of))


def sell_package(session: Session, *, actor: Actor, member_id: int, line: PtPackageLine,
                 payments: Sequence[PaymentIn] = (), note: str | None = None) -> PtPackageSold:
    """Sell a PT package through one sale (billing's single sale path)."""
    sale = billing_service.create_sale(session, actor=actor, member_id=member_id, lines=[line],
                                       payments=payments, note=note)
    package_id = session.scalar(select(SaleLine.item_id).where(SaleLine.sale_id == sale.id,
                                                               SaleLine.kind == PT_PACKAGE))
    package = session.get(PtPackage, package_id)
    read = _package_reads(session, [package], today_for(session, actor.club_id))[0]
    sale_read = SaleRead.model_validate(billing_service.get_sale(session, club_id=actor.club_id,
                                                                 sale_id=sale.id))
    return PtPackageSold(**read.model_dump(), sale=sale_read)


def spend_one(session: Session, *, club_id: int, member_id: int, day: date) -> int | None:
    """Spend one session of the package that expires first and is valid on `day`.

    Each candidate gets one guarded UPDATE (… WHERE id = :id AND sessions_left > 0); when a
    concurrent spender took its last session, the next candidate is tried. None: nothing left.
    """
    candidates = session.scalars(
        select(PtPackage.id).where(PtPackage.club_id == club_id,
                                   PtPackage.member_id == member_id,
                                   PtPackage.valid_from <= day, PtPackage.valid_until >= day,
                                   PtPackage.sessions_left > 0)
        .order_by(PtPackage.valid_until, PtPackage.id)).all()
    for package_id in candidates:
        spent = session.execute(bulk_update(
            update(PtPackage).where(PtPackage.id == package_id, PtPackage.sessions_left > 0)
            .values(sessions_left=PtPackage.sessions_left - 1))).rowcount
        if spent == 1:
            return package_id
    return None


# ----------------------------------------------------------------------------- PT sessions

def _session_reads(session: Session, rows: list[PtSession]) -> list[SessionRead]:
    if not rows:
        return []
    trainers = trainer_names(session, {s.trainer_id for s in rows})
    members = {mid: full_name(f, la) for mid, f, la in session.execute(
        select(Member.id, Member.first_name, Member.last_name)
        .where(Member.id.in_({s.member_id for s in rows})))}
    return [SessionRead(
        id=s.id, trainer_id=s.trainer_id, trainer_name=trainers.get(s.trainer_id, "?"),
        member_id=s.member_id, member_name=members.get(s.member_id, "?"), starts_at=s.starts_at,
        ends_at=s.ends_at, duration_minutes=int((s.ends_at - s.starts_at).total_seconds() // 60),
        status=s.status, complimentary=s.complimentary, charged=s.package_id is not None,
        package_id=s.package_id, late_cancel=s.late_cancel, cancelled_by=s.cancelled_by,
        cancel_reason=s.cancel_reason, task_id=s.task_id, created_at=s.created_at)
        for s in rows]


def _get_session(session: Session, *, club_id: int, session_id: int) -> PtSession:
    pt = session.scalar(select(PtSession).where(PtSession.id == session_id,
                                                PtSession.club_id == club_id)
                        .execution_options(populate_existing=True))
    if pt is None:
        raise NotFound("Session not found", code="session_not_found")
    return pt


def read_session(session: Session, *, club_id: int, session_id: int) -> SessionRead:
    return _session_reads(session, [_get_session(session, club_id=club_id,
                                                 session_id=session_id)])[0]


def _may_manage(session: Session, actor: Actor, pt: PtSession) -> None:
    """Desk, managers and owners manage any session; a trainer only their own."""
    if actor.role in DESK:
        return
    profile = own_profile(session, actor)
    if profile is None or profile.id != pt.trainer_id:
        raise Forbidden("Trainers manage their own sessions only", code="not_your_session")


def _trainer_for_booking(session: Session, actor: Actor, trainer_id: int | None) -> int:
    if actor.role == Role.trainer:
        profile = require_own_profile(session, actor)
        if trainer_id is not None and trainer_id != profile.id:
            raise Forbidden("Trainers book sessions with themselves only",
                            code="not_your_session")
        return profile.id
    if trainer_id is None:
        raise Invalid("Choose the trainer: give trainer_id", code="trainer_required",
                      details={"field": "trainer_id"})
    return trainer_id


def _bookable_trainer(session: Session, trainer: TrainerProfile, name: str) -> None:
    role = session.scalar(select(ClubStaff.role).where(ClubStaff.club_id == trainer.club_id,
                                                       ClubStaff.user_id == trainer.user_id))
    if not trainer.active or role != Role.trainer.value:
        raise Conflict(f"{name} is not taking bookings (inactive or no longer a trainer)",
                       code="trainer_inactive")


def _check_hours(session: Session, *, trainer: TrainerProfile, name: str, zone: ZoneInfo,
                 start: datetime, end: datetime) -> None:
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    day = local_start.date()
    absence = session.scalar(select(TrainerAbsence).where(
        TrainerAbsence.trainer_id == trainer.id, TrainerAbsence.start_date <= day,
        TrainerAbsence.end_date >= day).order_by(TrainerAbsence.start_date).limit(1))
    if absence is not None:
        raise Conflict(f"{name} is away ({absence.kind}) from {absence.start_date} to "
                       f"{absence.end_date}", code="trainer_absent",
                       details={"absence_id": absence.id, "kind": absence.kind,
                                "start_date": absence.start_date.isoformat(),
                                "end_date": absence.end_date.isoformat()})
    intervals = session.execute(
        select(TrainerHours.start_time, TrainerHours.end_time)
        .where(TrainerHours.trainer_id == trainer.id,
               TrainerHours.weekday == day.isoweekday())
        .order_by(TrainerHours.start_time)).all()
    if local_end.date() == day and any(a <= local_start.time() and local_end.time() <= b
                                       for a, b in intervals):
        return
    hours = ", ".join(f"{a:%H:%M}–{b:%H:%M}" for a, b in intervals) or "none"
    raise Conflict(f"{format_when(start, zone)}–{local_end:%H:%M} is outside {name}'s working "
                   f"hours on {day:%A}s ({hours})", code="outside_working_hours",
                   details={"weekday": day.isoweekday(),
                            "hours": [[f"{a:%H:%M}", f"{b:%H:%M}"] for a, b in intervals]})


def _check_free(session: Session, *, club_id: int, trainer_id: int, member_id: int,
                start: datetime, end: datetime, zone: ZoneInfo,
                exclude_id: int | None = None) -> None:
    overlap = [PtSession.club_id == club_id, PtSession.status.in_(BLOCKING),
               PtSession.starts_at < end, PtSession.ends_at > start]
    if exclude_id is not None:
        overlap.append(PtSession.id != exclude_id)
    clash = session.scalar(select(PtSession).where(*overlap, PtSession.trainer_id == trainer_id)
                           .order_by(PtSession.starts_at).limit(1))
    if clash is not None:
        raise Conflict(f"The trainer already has a session {format_when(clash.starts_at, zone)}–"
                       f"{clash.ends_at.astimezone(zone):%H:%M}", code="trainer_busy",
                       details={"session_id": clash.id})
    lesson = session.scalar(select(ClassOccurrence).where(
        ClassOccurrence.club_id == club_id, ClassOccurrence.trainer_id == trainer_id,
        ClassOccurrence.status == SCHEDULED, ClassOccurrence.starts_at < end,
        ClassOccurrence.ends_at > start).limit(1))
    if lesson is not None:
        raise Conflict(f"The trainer teaches a class {format_when(lesson.starts_at, zone)}–"
                       f"{lesson.ends_at.astimezone(zone):%H:%M}", code="trainer_busy",
                       details={"class_id": lesson.id})
    check_member_free(session, club_id=club_id, member_id=member_id, start=start, end=end,
                       zone=zone, exclude_id=exclude_id)


def check_member_free(session: Session, *, club_id: int, member_id: int, start: datetime,
                       end: datetime, zone: ZoneInfo, exclude_id: int | None = None,
                       exclude_class: int | None = None) -> None:
    overlap = [PtSession.club_id == club_id, PtSession.status.in_(BLOCKING),
               PtSession.starts_at < end, PtSession.ends_at > start,
               PtSession.member_id == member_id]
    if exclude_id is not None:
        overlap.append(PtSession.id != exclude_id)
    clash = session.scalar(select(PtSession).where(*overlap).order_by(PtSession.starts_at)
                           .limit(1))
    if clash is not None:
        raise Conflict(f"The member already has a session {format_when(clash.starts_at, zone)}–"
                       f"{clash.ends_at.astimezone(zone):%H:%M}", code="member_busy",
                       details={"session_id": clash.id})
    where = [ClassBooking.member_id == member_id, ClassBooking.status == BOOKED,
             ClassOccurrence.status == SCHEDULED, ClassOccurrence.starts_at < end,
             ClassOccurrence.ends_at > start]
    if exclude_class is not None:
        where.append(ClassOccurrence.id != exclude_class)
    lesson = session.scalar(select(ClassOccurrence)
                            .join(ClassBooking, ClassBooking.occurrence_id == ClassOccurrence.id)
                            .where(*where).limit(1))
    if lesson is not None:
        raise Conflict(f"The member is booked into a class {format_when(lesson.starts_at, zone)}–"
                       f"{lesson.ends_at.astimezone(zone):%H:%M}", code="member_busy",
                       details={"class_id": lesson.id})


def _check_package(session: Session, *, club_id: int, member_id: int, day: date) -> None:
    rows = session.execute(select(PtPackage.valid_from, PtPackage.valid_until).where(
        PtPackage.club_id == club_id, PtPackage.member_id == member_id,
        PtPackage.sessions_left > 0)).all()
    if any(valid_from <= day <= valid_until for valid_from, valid_until in rows):
        return
    expired = [until for _start, until in rows if until < day]
    if expired:
        raise Conflict(f"The member's PT package expired on {max(expired)}, before {day}; "
                       "sell a new package", code="package_expired",
                       details={"valid_until": max(expired).isoformat()})
    later = [start for start, _until in rows if start > day]
    if later:
        raise Conflict(f"The member's PT package starts on {min(later)}, after {day}",
                       code="package_not_started", details={"valid_from": min(later).isoformat()})
    raise Conflict("The member has no PT package with sessions left; sell one first",
                   code="no_package_balance")


def _lock_and_check(session: Session, *, actor: Actor, member_id: int, trainer_ids: list[int],
                    trainer_id: int, start: datetime, end: datetime, complimentary: bool,
                    exclude_id: int | None = None) -> None:
    """Lock the member, then the trainer(s) in id order, and check every booking rule."""
    club_id = actor.club_id
    member = billing_service.require_member(session, club_id=club_id, member_id=member_id,
                                            for_update=True)
    if member.erased_at is not None:
        raise Conflict("This member's data was erased", code="member_erased")
    locked = {tid: get_trainer(session, club_id=club_id, trainer_id=tid, for_update=True)
              for tid in sorted(set(trainer_ids))}
    trainer = locked[trainer_id]
    name = trainer_names(session, {trainer.id}).get(trainer.id, "The trainer")
    zone = zone_for(session, club_id)
    _bookable_trainer(session, trainer, name)
    _check_hours(session, trainer=trainer, name=name, zone=zone, start=start, end=end)
    _check_free(session, club_id=club_id, trainer_id=trainer.id, member_id=member_id,
                start=start, end=end, zone=zone, exclude_id=exclude_id)
    if not complimentary:
        _check_package(session, club_id=club_id, member_id=member_id,
                       day=start.astimezone(zone).date())


def book_session(session: Session, *, actor: Actor, member_id: int, start: datetime,
                 duration_minutes: int = 60, trainer_id: int | None = None,
                 complimentary: bool = False, task_id: int | None = None,
                 now: datetime | None = None) -> SessionRead:
    """Book a PT session: trainer free and working, member free, a package valid that day."""
    now = now or clock.now()
    check_instant(start, now)
    start = start.astimezone(UTC)
    end = start + timedelta(minutes=duration_minutes)
    trainer_id = _trainer_for_booking(session, actor, trainer_id)
    if complimentary and task_id is None and actor.role not in MANAGERS:
        raise Forbidden("Only a manager may book a complimentary session",
                        code="complimentary_forbidden")
    if start < now and actor.role not in MANAGERS:
        raise Invalid("This time has passed; only a manager may record a past session",
                      code="session_in_past", details={"field": "start"})
    with session.begin_nested():
        _lock_and_check(session, actor=actor, member_id=member_id, trainer_ids=[trainer_id],
                        trainer_id=trainer_id, start=start, end=end, complimentary=complimentary)
        pt = PtSession(club_id=actor.club_id, trainer_id=trainer_id, member_id=member_id,
                       starts_at=start, ends_at=end, status=BOOKED, complimentary=complimentary,
                       late_cancel=False, task_id=task_id, sequence=0, booked_by=actor.user_id)
        session.add(pt)
        session.flush()
    return _session_reads(session, [pt])[0]


def reschedule_session(session: Session, *, actor: Actor, session_id: int, start: datetime,
                       duration_minutes: int | None = None, trainer_id: int | None = None,
                       now: datetime | None = None) -> SessionRead:
    """Move a booked session (same rules as booking; never charged)."""
    now = now or clock.now()
    club_id = actor.club_id
    check_instant(start, now)
    start = start.astimezone(UTC)
    pt = _get_session(session, club_id=club_id, session_id=session_id)
    _may_manage(session, actor, pt)
    if trainer_id is not None and trainer_id != pt.trainer_id and actor.role == Role.trainer:
        raise Forbidden("Ask the front desk or a manager to move a session to another trainer",
                        code="not_your_session")
    if pt.status != BOOKED:
        raise Conflict(f"This session is {pt.status.replace('_', '-')}; only booked sessions "
                       "can be moved", code="session_closed")
    if pt.starts_at <= now:
        raise Conflict("This session has started; mark it completed or no-show",
                       code="session_started")
    if start < now and actor.role not in MANAGERS:
        raise Invalid("This time has passed; only a manager may record a past session",
                      code="session_in_past", details={"field": "start"})
    minutes = duration_minutes or int((pt.ends_at - pt.starts_at).total_seconds() // 60)
    end = start + timedelta(minutes=minutes)
    new_trainer = trainer_id or pt.trainer_id
    with session.begin_nested():
        _lock_and_check(session, actor=actor, member_id=pt.member_id,
                        trainer_ids=[pt.trainer_id, new_trainer], trainer_id=new_trainer,
                        start=start, end=end, complimentary=pt.complimentary,
                        exclude_id=pt.id)
        moved = session.execute(bulk_update(
            update(PtSession).where(PtSession.id == pt.id, PtSession.status == BOOKED)
            .values(starts_at=start, ends_at=end, trainer_id=new_trainer,
                    sequence=PtSession.sequence + 1, updated_at=clock.now()))).rowcount
        if moved != 1:
            raise Conflict("This session was just closed by someone else", code="session_closed")
    return read_session(session, club_id=club_id, session_id=pt.id)


def _claim(session: Session, pt: PtSession, *, status: str, actor: Actor, now: datetime,
           **values) -> None:
    """The one guarded transition out of 'booked' (exactly once, whoever tries)."""
    claimed = session.execute(bulk_update(
        update(PtSession).where(PtSession.id == pt.id, PtSession.club_id == actor.club_id,
                                PtSession.status == BOOKED)
        .values(status=status, closed_at=now, closed_by=actor.user_id, updated_at=now,
                **values))).rowcount
    if claimed != 1:
        current = session.scalar(select(PtSession.status).where(PtSession.id == pt.id))
        raise Conflict(f"This session is already {(current or 'gone').replace('_', '-')}",
                       code="session_closed", details={"status": current})


def _charge(session: Session, pt: PtSession, *, required: bool) -> int | None:
    if pt.complimentary:
        return None
    day = pt.starts_at.astimezone(zone_for(session, pt.club_id)).date()
    package_id = spend_one(session, club_id=pt.club_id, member_id=pt.member_id, day=day)
    if package_id is None and required:
        raise Conflict(f"The member has no PT package with sessions left valid on {day}; "
                       "sell one first, then complete the session", code="no_package_balance")
    if package_id is not None:
        session.execute(bulk_update(update(PtSession).where(PtSession.id == pt.id)
                                .values(package_id=package_id)))
    return package_id


def complete_session(session: Session, *, actor: Actor, session_id: int,
                     note: str | None = None, now: datetime | None = None) -> SessionRead:
    """Mark a session delivered: spends exactly one session of the package expiring first."""
    return _close(session, actor=actor, session_id=session_id, status=COMPLETED, note=note,
                  now=now)


def mark_no_show(session: Session, *, actor: Actor, session_id: int,
                 now: datetime | None = None) -> SessionRead:
    """The member did not come: the session is spent as if delivered (when a balance is left)."""
    return _close(session, actor=actor, session_id=session_id, status=NO_SHOW, note=None, now=now)


def _close(session: Session, *, actor: Actor, session_id: int, status: str, note: str | None,
           now: datetime | None) -> SessionRead:
    now = now or clock.now()
    pt = _get_session(session, club_id=actor.club_id, session_id=session_id)
    _may_manage(session, actor, pt)
    if pt.status != BOOKED:
        raise Conflict(f"This session is already {pt.status.replace('_', '-')}",
                       code="session_closed", details={"status": pt.status})
    if pt.starts_at > now:
        raise Conflict("This session has not started yet", code="session_not_started")
    with session.begin_nested():
        _claim(session, pt, status=status, actor=actor, now=now)
        _charge(session, pt, required=status == COMPLETED)
        if note:
            session.add(TrainerClientNote(club_id=pt.club_id, trainer_id=pt.trainer_id,
                                          member_id=pt.member_id, session_id=pt.id, text=note,
                                          staff_id=actor.user_id, created_at=now))
        session.flush()
    return read_session(session, club_id=actor.club_id, session_id=pt.id)


def cancel_session(session: Session, *, actor: Actor, session_id: int, by: str = "member",
                   reason: str | None = None, now: datetime | None = None) -> SessionRead:
    """Cancel a booked session; a member's cancellation inside the club's window spends it."""
    now = now or clock.now()
    pt = _get_session(session, club_id=actor.club_id, session_id=session_id)
    _may_manage(session, actor, pt)
    if by == "club" and actor.role not in MANAGERS and actor.role != Role.trainer:
        raise Forbidden("Only a manager or the session's trainer may cancel on the club's "
                        "behalf (free of charge)", code="waive_forbidden")
    if pt.status != BOOKED:
        raise Conflict(f"This session is already {pt.status.replace('_', '-')}",
                       code="session_closed", details={"status": pt.status})
    if pt.starts_at <= now:
        raise Conflict("This session has started; mark it completed or no-show instead",
                       code="session_started")
    window = timedelta(hours=get_settings(session, club_id=actor.club_id).pt_cancel_hours)
    late = by == "member" and not pt.complimentary and pt.starts_at - now < window
    with session.begin_nested():
        _claim(session, pt, status=CANCELLED, actor=actor, now=now, late_cancel=late,
               cancelled_by=by, cancel_reason=reason)
        if late:
            _charge(session, pt, required=False)
    return read_session(session, club_id=actor.club_id, session_id=pt.id)


def list_sessions(session: Session, *, actor: Actor, trainer_id: int | None = None,
                  member_id: int | None = None, date_from: date | None = None,
                  date_to: date | None = None, status: str | None = None, limit: int = 100,
                  offset: int = 0) -> Page[SessionRead]:
    """Sessions by start time; a period is club-local days, both inclusive."""
    where = [PtSession.club_id == actor.club_id]
    if trainer_id is not None:
        where.append(PtSession.trainer_id == trainer_id)
    if member_id is not None:
        where.append(PtSession.member_id == member_id)
    if status is not None:
        where.append(PtSession.status == status)
    if date_from is not None or date_to is not None:
        zone = zone_for(session, actor.club_id)
        lo, hi = day_bounds(zone, date_from or date(2000, 1, 1), date_to or date(2100, 12, 30))
        where += [PtSession.starts_at >= lo, PtSession.starts_at < hi]
    total = session.scalar(select(func.count()).select_from(PtSession).where(*where)) or 0
    rows = list(session.scalars(select(PtSession).where(*where)
                                .order_by(PtSession.starts_at, PtSession.id)
                                .limit(limit).offset(offset)))
    return Page[SessionRead](items=_session_reads(session, rows), total=total, limit=limit,
                             offset=offset)


# ----------------------------------------------------------------------------- clients and notes

def add_client_note(session: Session, *, actor: Actor, trainer_id: int, member_id: int,
                    text: str) -> TrainerClientNote:
    """A trainer's note about a client (read by that trainer and managers only)."""
    trainer = get_trainer(session, club_id=actor.club_id, trainer_id=trainer_id)
    require_self_or_manager(actor, trainer, "this trainer's client notes")
    billing_service.require_member(session, club_id=actor.club_id, member_id=member_id)
    note = TrainerClientNote(club_id=actor.club_id, trainer_id=trainer.id, member_id=member_id,
                             text=text, staff_id=actor.user_id, created_at=clock.now())
    session.add(note)
    session.flush()
    return note


def client_notes(session: Session, *, actor: Actor, trainer_id: int, member_id: int,
                 limit: int = 50, offset: int = 0) -> tuple[list[TrainerClientNote], int]:
    """A trainer's notes about one client, newest first."""
    trainer = get_trainer(session, club_id=actor.club_id, trainer_id=trainer_id)
    require_self_or_manager(actor, trainer, "this trainer's client notes")
    billing_service.require_member(session, club_id=actor.club_id, member_id=member_id)
    where = (TrainerClientNote.trainer_id == trainer.id, TrainerClientNote.member_id == member_id)
    total = session.scalar(select(func.count()).select_from(TrainerClientNote).where(*where))
    notes = list(session.scalars(select(TrainerClientNote).where(*where)
                                 .order_by(TrainerClientNote.created_at.desc(),
                                           TrainerClientNote.id.desc())
                                 .limit(limit).offset(offset)))
    return notes, total or 0


def trainer_clients(session: Session, *, actor: Actor, trainer_id: int,
                    now: datetime | None = None) -> list[ClientRead]:
    """A trainer's clients: members with sessions with them or a package naming them."""
    now = now or clock.now()
    trainer = get_trainer(session, club_id=actor.club_id, trainer_id=trainer_id)
    require_self_or_manager(actor, trainer, "this trainer's clients")
    today = today_for(session, actor.club_id, now)
    s = PtSession
    stats = {row.member_id: row for row in session.execute(
        select(s.member_id,
               func.coalesce(func.sum(case((s.status == COMPLETED, 1), else_=0)), 0)
               .label("done"),
               func.max(case((s.status == COMPLETED, s.starts_at))).label("last"),
               func.min(case((and_(s.status == BOOKED, s.starts_at >= now), s.starts_at)))
               .label("next"))
        .where(s.club_id == actor.club_id, s.trainer_id == trainer.id, s.status != CANCELLED)
        .group_by(s.member_id))}
    homed = set(session.scalars(select(PtPackage.member_id).where(
        PtPackage.club_id == actor.club_id, PtPackage.trainer_id == trainer.id)))
    ids = set(stats) | homed
    if not ids:
        return []
    left = dict(session.execute(
        select(PtPackage.member_id, func.sum(PtPackage.sessions_left))
        .where(PtPackage.club_id == actor.club_id, PtPackage.member_id.in_(ids),
               PtPackage.valid_from <= today,
               PtPackage.valid_until >= today).group_by(PtPackage.member_id)).all())
    names = {mid: full_name(f, la) for mid, f, la in session.execute(
        select(Member.id, Member.first_name, Member.last_name).where(Member.id.in_(ids)))}
    def instant(value) -> datetime | None:  # an aggregate may come back as text on SQLite
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)

    out = [ClientRead(member_id=mid, name=names.get(mid, "?"),
                      sessions_completed=int(stats[mid].done) if mid in stats else 0,
                      last_session_at=instant(stats[mid].last) if mid in stats else None,
                      next_session_at=instant(stats[mid].next) if mid in stats else None,
                      sessions_left=int(left.get(mid) or 0)) for mid in ids]
    return sorted(out, key=lambda c: (c.name.lower(), c.member_id))


# ----------------------------------------------------------------------------- retention hooks

def my_tasks(session: Session, *, actor: Actor, limit: int = 200) -> list[TaskRead]:
    """Open tasks for the trainer role (unassigned) or for the calling user, oldest due first."""
    today = today_for(session, actor.club_id)
    rows = session.execute(
        select(Task, Member.first_name, Member.last_name)
        .outerjoin(Member, Member.id == Task.member_id)
        .where(Task.club_id == actor.club_id, Task.status == "open",
               or_(Task.assignee_user_id == actor.user_id,
                   and_(Task.assignee_user_id.is_(None),
                        Task.assignee_role == Role.trainer.value)))
        .order_by(Task.due_date, Task.id).limit(limit)).all()
    out = []
    for task, first, last in rows:
        data = {f: getattr(task, f) for f in TaskRead.model_fields if hasattr(task, f)}
        data["member_name"] = full_name(first, last) if task.member_id else None
        data["overdue"] = task.due_date < today
        out.append(TaskRead(**data))
    return out


def book_from_task(session: Session, *, actor: Actor, task_id: int, start: datetime,
                   duration_minutes: int = 60, trainer_id: int | None = None,
                   now: datetime | None = None) -> SessionRead:
    """Book the task's member a complimentary session and close the task ("session booked")."""
    task = session.scalar(select(Task).where(Task.id == task_id, Task.club_id == actor.club_id)
                          .with_for_update().execution_options(populate_existing=True))
    if task is None:
        raise NotFound("Task not found", code="task_not_found")
    if actor.role == Role.trainer and not (
            task.assignee_user_id == actor.user_id
            or (task.assignee_user_id is None and task.assignee_role == Role.trainer.value)):
        raise Forbidden("Trainers act on their own tasks and trainer tasks only",
                        code="not_your_task")
    if task.status != "open":
        raise Conflict(f"This task is already {task.status}", code="task_closed")
    if task.member_id is None:
        raise Invalid("This task is not about a member; nobody to book", code="task_no_member")
    with session.begin_nested():
        booked = book_session(session, actor=actor, member_id=task.member_id, start=start,
                              duration_minutes=duration_minutes, trainer_id=trainer_id,
                              complimentary=True, task_id=task.id, now=now)
        crm_service.complete_task(session, actor=actor, task_id=task.id, outcome="session booked")
    return booked
