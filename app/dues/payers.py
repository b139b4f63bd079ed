"""Payers: the people who pay for memberships — the member themselves, a parent, a partner.

A payer may be a member of the club (`member_id`) or not. `payer_for_member` gets (or makes)
the member's own payer, the one a contract uses when nobody else is named.
"""
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.billing import service as billing_service
from app.core.db import club_row
from app.core.errors import Conflict, Invalid, NotFound
from app.dues.contracts_schemas import PayerCreate
from app.dues.models import Contract, Invoice, Payer
from app.members.models import Member


def get_payer(session: Session, *, club_id: int, payer_id: int,
              for_update: bool = False) -> Payer:
    """A payer of this club, else NotFound."""
    return club_row(session, Payer, club_id=club_id, row_id=payer_id, for_update=for_update,
                    missing=NotFound("Payer not found", code="payer_not_found"))


def _member_name(member: Member) -> str:
    return f"{member.first_name} {member.last_name}".strip()[:140]


def create_payer(session: Session, *, club_id: int, data: PayerCreate) -> Payer:
    """A new payer; with `member_id` the name and email default to the member's."""
    values = data.model_dump()
    if data.member_id is not None:
        member = billing_service.require_member(session, club_id=club_id,
                                                member_id=data.member_id)
        if member.erased_at is not None:
            raise Invalid("This member's data was erased; they cannot pay",
                          code="member_erased", details={"field": "member_id"})
        values["name"] = values["name"] or _member_name(member)
        values["email"] = values["email"] or member.email
    if not values["name"]:
        raise Invalid("A payer who is not a member needs a name", code="payer_name_required",
                      details={"field": "name"})
    payer = Payer(club_id=club_id, **values)
    session.add(payer)
    session.flush()
    return payer


def update_payer(session: Session, *, club_id: int, payer_id: int, changes: dict) -> Payer:
    """Change a payer's name or contact details (None clears an optional one)."""
    payer = get_payer(session, club_id=club_id, payer_id=payer_id, for_update=True)
    if "name" in changes and not changes["name"]:
        raise Invalid("A payer needs a name", code="payer_name_required",
                      details={"field": "name"})
    for name, value in changes.items():
        setattr(payer, name, value)
    session.flush()
    return payer


def delete_payer(session: Session, *, club_id: int, payer_id: int) -> None:
    """Remove a payer who pays for nothing and was never invoiced."""
    payer = get_payer(session, club_id=club_id, payer_id=payer_id, for_update=True)
    if session.scalar(select(Contract.id).where(Contract.payer_id == payer.id).limit(1)) \
            or session.scalar(select(Invoice.id).where(Invoice.payer_id == payer.id).limit(1)):
        raise Conflict("This payer pays for a contract or was invoiced; the record stays",
                       code="payer_in_use")
    session.delete(payer)
    session.flush()


def list_payers(session: Session, *, club_id: int, q: str | None = None,
                member_id: int | None = None, limit: int = 50,
                offset: int = 0) -> tuple[list[Payer], int]:
    """The club's payers by name (a name prefix `q`, or those who are `member_id`)."""
    where = [Payer.club_id == club_id]
    if q:
        escaped = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(func.lower(Payer.name).like(f"{escaped}%", escape="\\"))
    if member_id is not None:
        where.append(Payer.member_id == member_id)
    total = session.scalar(select(func.count()).select_from(Payer).where(*where))
    rows = list(session.scalars(select(Payer).where(*where).order_by(Payer.name, Payer.id)
                                .limit(limit).offset(offset)))
    return rows, total


def payer_for_member(session: Session, *, club_id: int, member_id: int) -> Payer:
    """The member's own payer (the oldest payer who is this member), made when there is none.

    Callers that sell lock the member first, so two sales cannot make two."""
    payer = session.scalar(select(Payer).where(Payer.club_id == club_id,
                                               Payer.member_id == member_id)
                           .order_by(Payer.id).limit(1))
    if payer is not None:
        return payer
    return create_payer(session, club_id=club_id, data=PayerCreate(member_id=member_id))
