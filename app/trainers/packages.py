"""Personal-training products and the packages members buy: the `pt_package` sale line, balances.

A package's balance is spent with one guarded UPDATE: ``sessions_left = sessions_left - 1
WHERE id = :id AND sessions_left > 0``.

Importing this module registers the line kind `pt_package` with billing.
"""
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.billing import service as billing_service
from app.billing.models import Sale, SaleLine
from app.billing.schemas import PaymentIn, SaleRead
from app.billing.service import LineValues
from app.clubs import service as clubs_service
from app.core import clock
from app.core.actors import MANAGERS, Actor
from app.core.errors import Forbidden, Invalid, NotFound
from app.core.types import money
from app.trainers.models import PtPackage, PtProduct, PtSession, TrainerProfile
from app.trainers.schemas import (
    MemberPtPackages,
    PtPackageLine,
    PtPackageRead,
    PtPackageSold,
    PtProductCreate,
)
from app.trainers.service import BOOKED, CANCELLED, bulk_update, get_trainer, zone_for

PT_PACKAGE = "pt_package"


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
    today = clubs_service.club_today_by_id(session, club_id)
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
    as_of = as_of or clubs_service.club_today_by_id(session, club_id, now)
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
    read = _package_reads(session, [package], clubs_service.club_today_by_id(session, actor.club_id))[0]
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


# ----------------------------------------------------------------------------- held by bookings

def held_sessions(session: Session, *, club_id: int, member_id: int,
                  extra_day: date | None = None) -> tuple[dict[int, int], bool]:
    """Which package each of the member's booked sessions will spend, as the closing will
    choose it: every booked, not complimentary session (by its club day, earliest first) goes
    to the package valid that day that expires first and still has room (earliest-deadline-first
    places as many sessions as any assignment could).

    Returns ({package id: sessions held}, whether a new session on `extra_day` finds room too).
    Two reads: the member's packages with sessions left, the days of their booked sessions."""
    zone = zone_for(session, club_id)
    packages = session.execute(
        select(PtPackage.id, PtPackage.valid_from, PtPackage.valid_until,
               PtPackage.sessions_left)
        .where(PtPackage.club_id == club_id, PtPackage.member_id == member_id,
               PtPackage.sessions_left > 0)
        .order_by(PtPackage.valid_until, PtPackage.id)).all()
    starts = session.scalars(select(PtSession.starts_at).where(
        PtSession.club_id == club_id, PtSession.member_id == member_id,
        PtSession.status == BOOKED, PtSession.complimentary.is_(False))).all()
    days = sorted(at.replace(tzinfo=at.tzinfo or UTC).astimezone(zone).date() for at in starts)

    def place(days: list[date]) -> tuple[dict[int, int], int]:
        held = {p.id: 0 for p in packages}
        placed = 0
        for day in days:
            for p in packages:
                if p.valid_from <= day <= p.valid_until and held[p.id] < p.sessions_left:
                    held[p.id] += 1
                    placed += 1
                    break
        return held, placed

    held, placed = place(days)
    fits = extra_day is not None and place(sorted([*days, extra_day]))[1] > placed
    return held, fits


def member_trainers(session: Session, *, club_id: int, member_id: int, today: date) -> list[int]:
    """The trainers a member books with themselves: the home trainers of their packages still
    usable (sessions left, not expired); where such a package names none, the trainer of the
    member's latest session that was not cancelled. Active trainers only."""
    named = session.execute(select(PtPackage.trainer_id).where(
        PtPackage.club_id == club_id, PtPackage.member_id == member_id,
        PtPackage.sessions_left > 0, PtPackage.valid_until >= today).distinct()).scalars().all()
    ids = {t for t in named if t is not None}
    if None in named:
        last = session.scalar(select(PtSession.trainer_id).where(
            PtSession.club_id == club_id, PtSession.member_id == member_id,
            PtSession.status != CANCELLED).order_by(PtSession.starts_at.desc()).limit(1))
        if last is not None:
            ids.add(last)
    if not ids:
        return []
    return list(session.scalars(select(TrainerProfile.id).where(
        TrainerProfile.id.in_(ids), TrainerProfile.active.is_(True))
        .order_by(TrainerProfile.id)))
