"""`fitclub export all DIR`: everything the club holds, in the history import's CSV layout.

Leaving fitclub is as easy as arriving: the directory this writes is what `fitclub import
history DIR` reads (docs/import.md) — members.csv (the member export's columns), staff.csv,
plans.csv, memberships.csv, freezes.csv, pt_packages.csv and visits.csv. Rows name each other
by the old-system id they were imported with (`external_ref`), or `fitclub-<id>` for what was
created in fitclub; members are named by their `external_id` the same way. Each file is
streamed in id order; visits are written with their UTC instant (`…Z`).
"""
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.access.models import Visit
from app.clubs import service as clubs_service
from app.clubs.models import ClubStaff, StaffUser
from app.core import csvout
from app.imports.exports import PROFILE, member_rows
from app.members.models import Member
from app.memberships.models import Freeze, Membership, Plan
from app.trainers.models import PtPackage, PtProduct, TrainerProfile

FILES = ("members", "staff", "plans", "memberships", "freezes", "pt_packages", "visits")
_EXTERNAL = 1 + PROFILE.index("external_id")  # in member_rows: after fitclub_id


def ref(external_ref: str | None, row_id: int | None) -> str | None:
    """The id a row is exported under: its old-system id, or fitclub-<id>."""
    if row_id is None:
        return None
    return external_ref or f"fitclub-{row_id}"


def _stream(session: Session, statement) -> Iterator[Any]:
    return iter(session.execute(statement.execution_options(yield_per=20_000)))


def _members(session: Session, club_id: int) -> Iterator[list[Any]]:
    rows = member_rows(session, club_id=club_id)
    yield next(rows)
    for row in rows:
        row[_EXTERNAL] = ref(row[_EXTERNAL], row[0])
        yield row


def _staff(session: Session, club_id: int) -> Iterator[list[Any]]:
    yield ["email", "name", "role"]
    yield from ([r.email, r.name, r.role] for r in _stream(session, select(
        StaffUser.email, StaffUser.name, ClubStaff.role).join(
        ClubStaff, ClubStaff.user_id == StaffUser.id).where(ClubStaff.club_id == club_id)
        .order_by(ClubStaff.id)))


def _plans(session: Session, club_id: int) -> Iterator[list[Any]]:
    yield ["plan_id", "name", "duration_months", "duration_days", "price", "visit_limit",
           "category", "freeze_days", "active"]
    for p in session.scalars(select(Plan).where(Plan.club_id == club_id).order_by(Plan.id)):
        yield [ref(p.external_ref, p.id), p.name, p.duration_months, p.duration_days, p.price,
               p.visit_limit, p.category, p.freeze_days, p.active]


def _memberships(session: Session, club_id: int) -> Iterator[list[Any]]:
    yield ["membership_id", "member", "plan", "start_date", "end_date", "price", "status",
           "cancelled_on", "cancel_reason", "renews", "visit_limit", "visits_used",
           "original_end_date"]
    m, renewed = Membership.__table__.alias("m"), Membership.__table__.alias("r")
    for r in _stream(session, select(
            m, Member.external_ref.label("member_ref"), Plan.external_ref.label("plan_ref"),
            renewed.c.external_ref.label("renews_ref"))
            .join(Member, Member.id == m.c.member_id).join(Plan, Plan.id == m.c.plan_id)
            .outerjoin(renewed, renewed.c.id == m.c.renews_id)
            .where(m.c.club_id == club_id, Member.erased_at.is_(None)).order_by(m.c.id)):
        yield [ref(r.external_ref, r.id), ref(r.member_ref, r.member_id),
               ref(r.plan_ref, r.plan_id), r.start_date, r.end_date, r.price,
               "cancelled" if r.cancelled_on else "", r.cancelled_on,
               _reason(r.cancel_reason, r.cancel_note) if r.cancelled_on else None,
               ref(r.renews_ref, r.renews_id), r.visit_limit,
               r.visits_used if r.visit_limit is not None else None, r.original_end_date]


def _reason(reason: str | None, note: str | None) -> str | None:
    """The club's reason key; "other" as its note's text (the import stores it so again)."""
    return (note or reason) if reason == "other" else reason


def _freezes(session: Session, club_id: int) -> Iterator[list[Any]]:
    yield ["freeze_id", "membership", "start_date", "end_date", "reason"]
    for r in _stream(session, select(
            Freeze.id, Freeze.external_ref, Freeze.start_date, Freeze.end_date, Freeze.reason,
            Membership.id.label("membership_id"), Membership.external_ref.label("membership_ref"))
            .join(Membership, Membership.id == Freeze.membership_id)
            .join(Member, Member.id == Membership.member_id)
            .where(Freeze.club_id == club_id, Member.erased_at.is_(None)).order_by(Freeze.id)):
        yield [ref(r.external_ref, r.id), ref(r.membership_ref, r.membership_id), r.start_date,
               r.end_date, r.reason]


def _pt_packages(session: Session, club_id: int) -> Iterator[list[Any]]:
    yield ["package_id", "member", "product", "trainer", "sessions_total", "sessions_left",
           "price", "valid_from", "valid_until"]
    for r in _stream(session, select(
            PtPackage, Member.external_ref.label("member_ref"),
            PtProduct.name.label("product"), StaffUser.email.label("trainer"))
            .join(Member, Member.id == PtPackage.member_id)
            .join(PtProduct, PtProduct.id == PtPackage.product_id)
            .outerjoin(TrainerProfile, TrainerProfile.id == PtPackage.trainer_id)
            .outerjoin(StaffUser, StaffUser.id == TrainerProfile.user_id)
            .where(PtPackage.club_id == club_id, Member.erased_at.is_(None))
            .order_by(PtPackage.id)):
        p = r.PtPackage
        yield [ref(p.external_ref, p.id), ref(r.member_ref, p.member_id), r.product, r.trainer,
               p.sessions_total, p.sessions_left, p.price, p.valid_from, p.valid_until]


def _visits(session: Session, club_id: int) -> Iterator[list[Any]]:
    yield ["member", "occurred_at"]
    for r in _stream(session, select(Visit.member_id, Visit.occurred_at,
                                     Member.external_ref.label("member_ref"))
                     .join(Member, Member.id == Visit.member_id)
                     .where(Visit.club_id == club_id, Member.erased_at.is_(None))
                     .order_by(Visit.id)):
        yield [ref(r.member_ref, r.member_id), r.occurred_at.isoformat().replace("+00:00", "Z")]


WRITERS = {"members": _members, "staff": _staff, "plans": _plans,
           "memberships": _memberships, "freezes": _freezes, "pt_packages": _pt_packages,
           "visits": _visits}


def export_all(session: Session, *, club_id: int, directory: Path) -> dict[str, int]:
    """Write the club's files into `directory` (created; existing files of these names are
    replaced); returns rows per file."""
    clubs_service.get_club(session, club_id)
    directory.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for name in FILES:
        with (directory / f"{name}.csv").open("w", encoding="utf-8-sig", newline="") as out:
            writer = csvout.writer(out, lineterminator="\r\n")
            counts[name] = -1
            for row in WRITERS[name](session, club_id):
                writer.writerow(row)
                counts[name] += 1
    return counts
