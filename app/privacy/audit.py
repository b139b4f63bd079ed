"""The privacy audit log's writer: one entry per time someone views or changes a member's
personal data. Kept apart from `app.privacy.service` so the members service (which the privacy
service itself uses) can record its own entries without an import cycle."""
from sqlalchemy.orm import Session

from app.core import clock
from app.core.actors import Actor, DeviceActor
from app.privacy.models import AuditEntry


def _actor_columns(actor: Actor | DeviceActor | int | str | None) -> tuple[int | None, str | None]:
    if isinstance(actor, Actor):
        return actor.user_id, None
    if isinstance(actor, DeviceActor):
        return None, f"device:{actor.name}"[:100]
    if isinstance(actor, int):
        return actor, None
    if isinstance(actor, str):
        return None, actor[:100]
    return None, "system"


def record(session: Session, *, club_id: int, actor: Actor | DeviceActor | int | str | None,
           action: str, member_id: int, fields: tuple[str, ...] | list[str] = (),
           detail: dict | None = None) -> AuditEntry:
    """Append one audit entry: `actor` a staff Actor or user id, a device, a label (an API key's
    name, "import") or None for the system; `fields` are field NAMES, never values."""
    staff_id, label = _actor_columns(actor)
    entry = AuditEntry(club_id=club_id, at=clock.now(), staff_id=staff_id, actor_label=label,
                       action=action, entity="member", entity_id=member_id,
                       fields=sorted(set(fields)), detail=detail)
    session.add(entry)
    session.flush()
    return entry
