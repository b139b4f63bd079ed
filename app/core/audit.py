"""The privacy audit log: one append-only entry per time someone views or changes a member's
personal data (who, when, which fields; never the values). In core because every domain that
shows or changes personal data writes it, and the privacy domain reads it."""
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.core import clock
from app.core.actors import Actor, DeviceActor, MemberActor
from app.core.db import Base, IdMixin
from app.core.types import BigId

MEMBER_LABEL = "member (app)"
"""`actor_label` of what a member did to their own data in the member app."""


class AuditEntry(IdMixin, Base):
    """Who viewed or changed which personal data of whom, when. Append-only."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_club_entity", "club_id", "entity", "entity_id", "at"),
        Index("ix_audit_log_club_at", "club_id", "at"),
        Index("ix_audit_log_club_staff_at", "club_id", "staff_id", "at"),
    )

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=clock.now)
    # a staff user, or (staff_id None) a device / API key / the system, named by `actor_label`
    staff_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    actor_label: Mapped[str | None] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(30))
    entity: Mapped[str] = mapped_column(String(30), default="member")
    entity_id: Mapped[int] = mapped_column(BigId)
    fields: Mapped[list] = mapped_column(JSON, default=list)
    # ids and counts only (e.g. the merged member's id), never personal values
    detail: Mapped[dict | None] = mapped_column(JSON)


def _actor_columns(actor: Actor | DeviceActor | MemberActor | int | str | None
                   ) -> tuple[int | None, str | None]:
    if isinstance(actor, Actor):
        return actor.user_id, None
    if isinstance(actor, MemberActor):
        return None, MEMBER_LABEL
    if isinstance(actor, DeviceActor):
        return None, f"device:{actor.name}"[:100]
    if isinstance(actor, int):
        return actor, None
    if isinstance(actor, str):
        return None, actor[:100]
    return None, "system"


def record(session: Session, *, club_id: int,
           actor: Actor | DeviceActor | MemberActor | int | str | None,
           action: str, member_id: int, fields: tuple[str, ...] | list[str] = (),
           detail: dict | None = None) -> AuditEntry:
    """Append one audit entry: `actor` a staff Actor or user id, a device, the member themselves
    (the member app), a label (an API key's name, "import") or None for the system; `fields` are field NAMES, never values."""
    staff_id, label = _actor_columns(actor)
    entry = AuditEntry(club_id=club_id, at=clock.now(), staff_id=staff_id, actor_label=label,
                       action=action, entity="member", entity_id=member_id,
                       fields=sorted(set(fields)), detail=detail)
    session.add(entry)
    session.flush()
    return entry
