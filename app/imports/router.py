"""Member import (CSV upload) and member/lead exports (CSV), for managers. See docs/import.md."""
import io
import json
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import StreamingResponse

from app.clubs.deps import ManagerActor
from app.core.deps import SessionDep
from app.core.errors import DomainError, Invalid
from app.imports import exports
from app.imports.members import audit_export, import_members_upload
from app.imports.schemas import ImportMode, MemberImportRead

router = APIRouter(prefix="/api/v1", tags=["imports"])

MAX_UPLOAD = 20 * 1024 * 1024


def _mapping(text: str | None) -> dict[str, str]:
    if text is None or not text.strip():
        return {}
    try:
        mapping = json.loads(text)
    except ValueError:
        mapping = None
    if not isinstance(mapping, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
        raise Invalid('mapping must be a JSON object {"field": "column in the file"}, e.g. '
                      '{"first_name": "Vorname"}', code="invalid_mapping")
    return mapping


def _size(upload: UploadFile) -> int:
    if upload.size is not None:
        return upload.size
    upload.file.seek(0, io.SEEK_END)
    size = upload.file.tell()
    upload.file.seek(0)
    return size


@router.post("/imports/members", response_model=MemberImportRead, responses={
    413: {"description": "the file is larger than 20 MB"},
    422: {"description": "the file cannot be imported at all, or a form field is invalid"}})
def import_members_csv(
    session: SessionDep, actor: ManagerActor,
    file: Annotated[UploadFile, File(description="the CSV file (UTF-8, Windows-1252 or UTF-16; "
                                                 "separated by , ; tab or |), at most 20 MB")],
    mapping: Annotated[str | None, Form(max_length=10_000, description=(
        'JSON {"field": "column"}: which column feeds which field (first_name, last_name, '
        'email, phone, birth_date, gender, card, external_id, source, email_consent, '
        'sms_consent, preferred_channel, note, custom.<key>); columns named like a field or a '
        "known synonym are matched without it"))] = None,
    mode: Annotated[ImportMode, Form()] = ImportMode.all_or_nothing,
    dry_run: Annotated[bool, Form(description="check every row, write nothing")] = False,
    day_first: Annotated[bool, Form(description="read 03/04/2024 as 3 April")] = True,
    update_existing: Annotated[bool, Form(description=(
        "update members the file matches (by external id, then email, then phone) instead of "
        "skipping them"))] = False,
):
    """Import members from a CSV file: a dry run reports every row's problems and writes nothing;
    all_or_nothing writes nothing if any row has an error; skip_bad imports the good rows and
    returns the others as `rejects_csv`. Re-sending the same file creates nothing twice."""
    if _size(file) > MAX_UPLOAD:
        limit = (f"{MAX_UPLOAD >> 20} MB" if MAX_UPLOAD >= 1 << 20 else f"{MAX_UPLOAD >> 10} KB")
        raise DomainError(f"The file is larger than {limit}; split it "
                          "or import it with the command line (fitclub import members)",
                          code="file_too_large", status_code=413)
    fields = _mapping(mapping)
    rejects = io.StringIO() if mode is ImportMode.skip_bad else None
    report = import_members_upload(
        session, club_id=actor.club_id, name=file.filename or "upload.csv", stream=file.file,
        size=_size(file), mapping=fields, mode=mode.value, dry_run=dry_run, day_first=day_first,
        update_existing=update_existing, staff_id=actor.user_id, rejects=rejects)
    body = report.as_dict()
    body["rejects_csv"] = rejects.getvalue() if rejects is not None and report.errors else None
    return body


def _csv_response(name: str, rows) -> StreamingResponse:
    out, _count = exports.write_csv(rows)
    return StreamingResponse(exports.chunks(out), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/exports/members.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}}})
def export_members(session: SessionDep, actor: ManagerActor):
    """Every member (erased people left out) with cards, consents, custom fields and the
    membership that matters today — in the columns the member import reads back."""
    response = _csv_response("members.csv", exports.member_rows(session, club_id=actor.club_id))
    audit_export(session, club_id=actor.club_id, staff_id=actor.user_id, what="members")
    return response


@router.get("/exports/leads.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}}})
def export_leads(session: SessionDep, actor: ManagerActor):
    """Every lead with the person's profile and the pipeline: stage, source, assignee, dates."""
    response = _csv_response("leads.csv", exports.lead_rows(session, club_id=actor.club_id))
    audit_export(session, club_id=actor.club_id, staff_id=actor.user_id, what="leads")
    return response
