"""Custom fields API: owners and managers define the club's fields, all staff read them."""
from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.clubs.deps import ManagerActor, StaffActor
from app.core.deps import SessionDep
from app.core.schemas import IdPath
from app.customfields import service
from app.customfields.schemas import CustomFieldCreate, CustomFieldRead, CustomFieldUpdate

router = APIRouter(prefix="/api/v1", tags=["custom fields"])

FieldId = IdPath("custom field id")


@router.get("/custom-fields", response_model=list[CustomFieldRead])
def list_fields(session: SessionDep, actor: StaffActor,
                include_archived: Annotated[bool, Query(description="also archived fields")]
                = False):
    """The club's custom member fields in form order."""
    return service.definitions(session, club_id=actor.club_id,
                               include_archived=include_archived)


@router.post("/custom-fields", response_model=CustomFieldRead, status_code=201)
def create_field(session: SessionDep, actor: ManagerActor, body: CustomFieldCreate):
    """Define a field; 409 custom_field_key_taken when the key is already used in the club.

    A repeat of the same request is refused by the unique key, so a retry never makes a second
    field."""
    return service.create_field(session, club_id=actor.club_id, data=body)


@router.get("/custom-fields/{field_id}", response_model=CustomFieldRead)
def get_field(session: SessionDep, actor: StaffActor, field_id: FieldId):
    return service.get_field(session, club_id=actor.club_id, field_id=field_id)


@router.patch("/custom-fields/{field_id}", response_model=CustomFieldRead)
def update_field(session: SessionDep, actor: ManagerActor, field_id: FieldId,
                 body: CustomFieldUpdate):
    """Change label, choices, required, searchable or position; removing a choice members have
    is a 409 custom_choice_in_use with the counts."""
    return service.update_field(session, club_id=actor.club_id, field_id=field_id, data=body)


@router.post("/custom-fields/{field_id}/archive", response_model=CustomFieldRead)
def archive_field(session: SessionDep, actor: ManagerActor, field_id: FieldId):
    """Hide the field from forms and member pages; its values are kept."""
    return service.archive_field(session, club_id=actor.club_id, field_id=field_id)


@router.delete("/custom-fields/{field_id}", status_code=204)
def delete_field(session: SessionDep, actor: ManagerActor, field_id: FieldId):
    """Delete a field no member has a value for (otherwise 409 custom_field_in_use: archive it)."""
    service.delete_field(session, club_id=actor.club_id, field_id=field_id)
    return Response(status_code=204)
