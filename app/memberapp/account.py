"""A member's own settings in the app: consents and the preferred channel, and the download of
their data.

A consent changed here is a statement in the member's consent history (`consents`, source
"member_app", through the members service: the flag the retention engine reads changes with
it); a changed preferred channel changes the member's record. Both are audited (the member as
the actor) and put on the member's timeline for the staff. The download is the privacy export
(`app.privacy.service.own_export`), audited as exported by the member.
"""
from sqlalchemy.orm import Session

from app.core import audit
from app.core.actors import MemberActor
from app.core.errors import Invalid
from app.crm import service as crm_service
from app.members import service as members_service
from app.members.schemas import MemberUpdate, PreferredChannel
from app.privacy import service as privacy_service

CONSENT_SOURCE = "member_app"
CHANNELS = ("email", "sms")


def change_preferences(session: Session, *, actor: MemberActor, email: bool, sms: bool,
                       preferred: str | None) -> list[str]:
    """Set the member's consents and preferred channel ("" or None: no preference); the names
    of what changed."""
    member = members_service.get_member(session, club_id=actor.club_id,
                                        member_id=actor.member_id)
    try:
        preferred_channel = PreferredChannel(preferred) if preferred else None
    except ValueError:
        raise Invalid("Choose email, SMS, phone or no messages", code="preferred_invalid") \
            from None
    wanted = {"email": email, "sms": sms}
    addresses = {"email": member.email, "sms": member.phone}
    changed, said = [], []
    for channel in CHANNELS:
        current = member.email_consent if channel == "email" else member.sms_consent
        if wanted[channel] == current:
            continue
        if wanted[channel] and not addresses[channel]:
            raise Invalid("The club has no address for this channel", code="consent_no_address")
        members_service.set_consent(session, club_id=actor.club_id, member_id=actor.member_id,
                                    channel=channel, granted=wanted[channel],
                                    source=CONSENT_SOURCE)
        changed.append(f"{channel}_consent")
        said.append(f"{'agreed to' if wanted[channel] else 'withdrew'} "
                    f"{'email' if channel == 'email' else 'SMS'}")
    new_preferred = preferred_channel.value if preferred_channel else None
    if new_preferred != member.preferred_channel:
        members_service.update_member(session, club_id=actor.club_id, member_id=actor.member_id,
                                      data=MemberUpdate(preferred_channel=preferred_channel))
        changed.append("preferred_channel")
        said.append(f"prefers {new_preferred or 'no channel in particular'}")
    if changed:
        audit.record(session, club_id=actor.club_id, actor=actor, action="consent_changed",
                     member_id=actor.member_id, fields=changed)
        crm_service.record(session, club_id=actor.club_id, member_id=actor.member_id,
                           kind="consent", channel=crm_service.MEMBER_CHANNEL,
                           summary="In the member app: " + ", ".join(said))
        session.flush()
    return changed


def export(session: Session, *, actor: MemberActor) -> dict:
    """Everything the club holds about the member (the privacy export), for their download."""
    return privacy_service.own_export(session, actor=actor)
