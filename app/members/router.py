from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from app.clubs.deps import DeskActor, StaffActor
from app.core.deps import SessionDep
from app.core.schemas import IdPath, Page, SmallLimit, SmallOffset
from app.members import service
from app.members.schemas import (
    CardBlock,
    CardCreate,
    CardRead,
    CardReplace,
    ConsentCreate,
    ConsentRead,
    MemberCreate,
    MemberRead,
    MemberSummary,
    MemberUpdate,
    NoteCreate,
    NoteRead,
)

router = APIRouter(prefix="/api/v1", tags=["members"])

MemberId = IdPath("member id")
CardId = IdPath("card id")
AsOf = Annotated[date | None, Query(description="day to evaluate the membership on; "
                                                "default today in the club's timezone")]


@router.post("/members", response_model=MemberRead, status_code=201)
def create_member(session: SessionDep, actor: DeskActor, body: MemberCreate):
    """Register a person; 409 duplicate_member when the email or phone is already known."""
    member = service.register_member(session, actor=actor, data=body)
    return service.member_detail(session, club_id=actor.club_id, member_id=member.id)


@router.get("/members", response_model=Page[MemberSummary])
def search_members(session: SessionDep, actor: StaffActor,
                   q: Annotated[str | None, Query(max_length=100, description=(
                       "part of a name, a phone's last digits or whole number, an email or "
                       "its start, a card code"))] = None,
                   field: Annotated[str | None, Query(max_length=40, description=(
                       "a searchable custom field's key; with `value`, instead of `q`"))] = None,
                   value: Annotated[str | None, Query(max_length=500, description=(
                       "the custom field's value: exact for choice, yes/no, number and date; "
                       "text matches at its start, in any case"))] = None,
                   limit: SmallLimit = 20, offset: SmallOffset = 0, as_of: AsOf = None):
    """Find members by name, phone, email or card (best match first), or by a custom field."""
    if field is not None or value is not None:
        return service.members_with_custom_value(
            session, club_id=actor.club_id, q=q, key=field, value=value, limit=limit,
            offset=offset, as_of=as_of)
    return service.search_members(session, club_id=actor.club_id, q=q, limit=limit,
                                  offset=offset, as_of=as_of)


@router.get("/members/{member_id}", response_model=MemberRead)
def get_member(session: SessionDep, actor: StaffActor, member_id: MemberId, as_of: AsOf = None):
    """A member with cards, current consents and the membership that matters on `as_of`."""
    return service.view_member(session, actor=actor, member_id=member_id, as_of=as_of)


@router.patch("/members/{member_id}", response_model=MemberRead)
def update_member(session: SessionDep, actor: DeskActor, member_id: MemberId,
                  body: MemberUpdate):
    """Change a member's details; same normalisation and duplicate rule as on create."""
    service.change_member(session, actor=actor, member_id=member_id, data=body)
    return service.member_detail(session, club_id=actor.club_id, member_id=member_id)


@router.post("/members/{member_id}/cards", response_model=CardRead, status_code=201)
def issue_card(session: SessionDep, actor: DeskActor, member_id: MemberId, body: CardCreate):
    """Issue a card; 409 card_taken when the code is already used in the club."""
    return service.issue_card(session, club_id=actor.club_id, member_id=member_id,
                              code=body.code)


@router.post("/cards/{card_id}/block", response_model=CardRead)
def block_card(session: SessionDep, actor: DeskActor, card_id: CardId, body: CardBlock):
    """Block a card (lost, stolen, …)."""
    return service.block_card(session, club_id=actor.club_id, card_id=card_id,
                              reason=body.reason)


@router.post("/cards/{card_id}/replace", response_model=CardRead, status_code=201)
def replace_card(session: SessionDep, actor: DeskActor, card_id: CardId, body: CardReplace):
    """Issue a new card to the card's member and block the old one ("replaced")."""
    return service.replace_card(session, club_id=actor.club_id, card_id=card_id,
                                new_code=body.new_code)


@router.post("/members/{member_id}/consents", response_model=ConsentRead, status_code=201)
def add_consent(session: SessionDep, actor: DeskActor, member_id: MemberId,
                body: ConsentCreate):
    """Record that a member granted or withdrew consent for a channel."""
    return service.record_consent(session, actor=actor, member_id=member_id,
                                  channel=body.channel, granted=body.granted, source=body.source)


@router.get("/members/{member_id}/consents", response_model=Page[ConsentRead])
def consent_history(session: SessionDep, actor: StaffActor, member_id: MemberId,
                    limit: SmallLimit = 50, offset: SmallOffset = 0):
    """The member's consent history, newest first."""
    return service.view_consents(session, actor=actor, member_id=member_id, limit=limit,
                                 offset=offset)


@router.post("/members/{member_id}/notes", response_model=NoteRead, status_code=201)
def add_note(session: SessionDep, actor: StaffActor, member_id: MemberId, body: NoteCreate):
    """Add a staff note to a member."""
    return service.add_staff_note(session, actor=actor, member_id=member_id, text=body.text)


@router.get("/members/{member_id}/notes", response_model=Page[NoteRead])
def list_notes(session: SessionDep, actor: StaffActor, member_id: MemberId,
               limit: SmallLimit = 50, offset: SmallOffset = 0):
    """The member's notes, newest first."""
    return service.view_notes(session, actor=actor, member_id=member_id, limit=limit,
                              offset=offset)
