"""Member data, for owners and managers: importing members from a CSV file (dry run first),
exporting members and leads, the club's custom fields, and finding and merging duplicates.

Thin over `app.imports` (the member import, exports, stored uploads), `app.customfields.service`
and `app.privacy.duplicates`. The merge page opens both records through the members service's
audited `view_member`.
"""
import io
import re
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import Response, StreamingResponse
from sqlalchemy.orm import Session

from app.core.actors import Actor
from app.core.errors import DomainError, Invalid, NotFound
from app.core.schemas import IdPath
from app.core.types import MAX_ID
from app.customfields import service as custom_fields_service
from app.customfields.schemas import CustomFieldCreate, CustomFieldUpdate, FieldType
from app.imports import exports
from app.imports import storage as import_storage
from app.imports.csvfile import CsvFile, FileProblem
from app.imports.members import audit_export, import_members_upload
from app.members import service as members_service
from app.privacy import duplicates as duplicates_service
from app.web.auth import PageSession, back_to
from app.web.kit import ManagerPage, Tick, build, clean, done, page_router, render, ticked

router = page_router()

FieldId = IdPath("custom field id")
FIELD_TYPES = {"text": "Text", "number": "Number", "date": "Date", "choice": "Choice",
               "yes_no": "Yes / no"}
PROBLEMS_SHOWN = 200


# --- managers: import members (dry run first) ---------------------------------------------------
#
# The uploaded file is kept server-side under a random token for an hour: the dry run and the
# import then read exactly the same bytes (a browser cannot refill a file input, and asking for
# the file twice invites importing a different one than was checked). It is kept in the database
# (app.imports.storage: any worker finds it, only this club, deleted when it expires or when an
# erasure finds the person in it), with the rows an import did not take under the same token.

UPLOAD_TTL = timedelta(hours=1)
MAX_UPLOAD = 20 * 1024 * 1024
TOKEN = r"^[A-Za-z0-9_-]{20,64}$"
Token = Annotated[str, PathParam(pattern=TOKEN, max_length=64)]


def store_upload(session: Session, actor: Actor, name: str, data: bytes) -> str:
    """Keep the upload for an hour; its token."""
    token = secrets.token_urlsafe(24)
    import_storage.store(session, club_id=actor.club_id, user_id=actor.user_id, bundle=token,
                         purpose=import_storage.UPLOAD, name=name, chunks=[data],
                         keep=UPLOAD_TTL)
    return token


def load_upload(session: Session, actor: Actor, token: str, *,
                need_data: bool = True) -> tuple[dict, bytes | None]:
    """The stored upload of this club (404 when unknown, another club's, or older than an hour)."""
    if not re.match(TOKEN, token):
        raise NotFound("This upload is not known", code="upload_not_found")
    stored = import_storage.find(session, club_id=actor.club_id, bundle=token,
                                 purpose=import_storage.UPLOAD)
    used = None
    if stored is None:  # imported already, or unknown / another club's / expired
        used = import_storage.find(session, club_id=actor.club_id, bundle=token,
                                   purpose=import_storage.USED)
        if used is None:
            raise NotFound("This upload is not known (or is more than an hour old); upload the "
                           "file again", code="upload_not_found")
        if need_data:
            raise NotFound("This file was already imported; upload it again to import more",
                           code="upload_used")
    found = stored or used
    meta = {"name": found.name, "club_id": actor.club_id, "user_id": found.user_id,
            "created": found.created_at}
    data = import_storage.read_bytes(session, stored.id) if need_data else None
    return meta, data


def _run_import(session: Session, actor: Actor, meta: dict, data: bytes, *, dry_run: bool,
                mode: str, update_existing: bool, day_first: bool, rejects=None):
    return import_members_upload(session, club_id=actor.club_id, name=meta["name"],
                                 stream=io.BytesIO(data), size=len(data), dry_run=dry_run,
                                 mode=mode, day_first=day_first, update_existing=update_existing,
                                 staff_id=actor.user_id, rejects=rejects)


def _options(update_existing: bool, day_first: bool) -> str:
    return (f"update_existing={'1' if update_existing else '0'}"
            f"&day_first={'1' if day_first else '0'}")


@router.get("/manage/import")
def import_page(request: Request, session: PageSession, actor: ManagerPage):
    return render(request, "crm_import.html", {"title": "Import members", "report": None})


@router.post("/manage/import")
def upload_import(request: Request, session: PageSession, actor: ManagerPage,
                        file: Annotated[UploadFile, File()],
                        update_existing: Tick = None,
                        dates: Annotated[str, Form(pattern=r"^(day_first|month_first)$")]
                        = "day_first"):
    """Keep the file for an hour and show its dry run."""
    back_to(request, None, "/manage/import")
    data = file.file.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise DomainError("The file is larger than 20 MB; split it or import it with the "
                          "command line (fitclub import members)", code="file_too_large",
                          status_code=413)
    if not data.strip():
        raise Invalid("Choose a CSV file to check (the one sent was empty)", code="empty_file")
    name = Path(file.filename or "members.csv").name[:100] or "members.csv"
    try:
        CsvFile.from_bytes(data, name)
    except FileProblem as exc:
        raise Invalid(str(exc), code="import_file_invalid") from None
    token = store_upload(session, actor, name, data)
    return done(request, f"/manage/import/{token}?"
                         f"{_options(ticked(update_existing), dates == 'day_first')}",
                f"{name} uploaded: here is what an import would do. Nothing is written yet.",
                "info", "Dry run")


def _flag(value: str | None, default: bool) -> bool:
    return default if value is None else value in ("1", "on", "true")


Flag = Annotated[str | None, Query(max_length=5)]


@router.get("/manage/import/{token}")
def import_dry_run(request: Request, session: PageSession, actor: ManagerPage, token: Token,
                   update_existing: Flag = None, day_first: Flag = None):
    meta, data = load_upload(session, actor, token)
    update, days = _flag(update_existing, False), _flag(day_first, True)
    try:
        report = _run_import(session, actor, meta, data, dry_run=True, mode="all_or_nothing",
                             update_existing=update, day_first=days)
    except Invalid as exc:
        return render(request, "crm_import.html", {"title": "Import members", "report": None,
                                                    "error": exc.message}, status=422)
    return render(request, "crm_import.html", {
        "title": f"Import {meta['name']}: dry run", "report": report, "token": token,
        "update_existing": update, "day_first": days, "stage": "dry_run",
        "problems": report.problems[:PROBLEMS_SHOWN], "options": _options(update, days)})


@router.post("/manage/import/{token}")
def run_import(request: Request, session: PageSession, actor: ManagerPage, token: Token,
               mode: Annotated[str, Form(pattern=r"^(all_or_nothing|skip_bad)$")],
               update_existing: Tick = None, day_first: Tick = None):
    """Import the file that was checked, in the chosen mode."""
    update, days = ticked(update_existing), ticked(day_first)
    back_to(request, None, f"/manage/import/{token}?{_options(update, days)}")
    meta, data = load_upload(session, actor, token)
    rejects = io.StringIO()
    report = _run_import(session, actor, meta, data, dry_run=False, mode=mode,
                         update_existing=update, day_first=days, rejects=rejects)
    if report.written:
        import_storage.mark_used(session, club_id=actor.club_id, bundle=token)  # not twice
        if report.errors:
            import_storage.store(session, club_id=actor.club_id, user_id=actor.user_id,
                                 bundle=token, purpose=import_storage.REJECTS,
                                 name="rejects.csv", keep=UPLOAD_TTL,
                                 chunks=[rejects.getvalue().encode("utf-8")])
    return render(request, "crm_import.html", {
        "title": f"Import {meta['name']}", "report": report, "token": token,
        "update_existing": update, "day_first": days, "stage": "imported",
        "problems": report.problems[:PROBLEMS_SHOWN], "options": _options(update, days),
        "has_rejects": report.written and bool(report.errors)})


@router.get("/manage/import/{token}/rejects.csv")
def import_rejects(request: Request, session: PageSession, actor: ManagerPage, token: Token,
                   update_existing: Flag = None, day_first: Flag = None):
    """The rows not imported (after an import), or the rows a dry run found bad — the original
    cells plus a `problem` column, to fix and upload again."""
    meta, _ = load_upload(session, actor, token, need_data=False)
    kept = import_storage.find(session, club_id=actor.club_id, bundle=token,
                               purpose=import_storage.REJECTS)
    if kept is not None:
        text = import_storage.read_bytes(session, kept.id).decode("utf-8")
    else:
        _, data = load_upload(session, actor, token)
        out = io.StringIO()
        _run_import(session, actor, meta, data, dry_run=True, mode="all_or_nothing",
                    update_existing=_flag(update_existing, False),
                    day_first=_flag(day_first, True), rejects=out)
        text = out.getvalue()
    stem = Path(meta["name"]).stem or "members"
    return Response("\ufeff" + text, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{stem}.rejects.csv"'})


def _export(session: Session, actor: Actor, what: str) -> StreamingResponse:
    rows = (exports.member_rows(session, club_id=actor.club_id) if what == "members"
            else exports.lead_rows(session, club_id=actor.club_id))
    out, _count = exports.write_csv(rows)
    audit_export(session, club_id=actor.club_id, staff_id=actor.user_id, what=what)
    return StreamingResponse(exports.chunks(out), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{what}.csv"'})


@router.get("/manage/export/members.csv")
def export_members(session: PageSession, actor: ManagerPage):
    return _export(session, actor, "members")


@router.get("/manage/export/leads.csv")
def export_leads(session: PageSession, actor: ManagerPage):
    return _export(session, actor, "leads")


# --- managers: custom fields --------------------------------------------------------------------

def _choices(text: str | None) -> list[str] | None:
    """Choices typed one per line (or separated by commas)."""
    if not clean(text):
        return None
    parts = re.split(r"[\n,;]", text)
    return [p.strip() for p in parts if p.strip()]


def key_from_label(label: str) -> str:
    key = "_".join(re.sub(r"[^0-9a-z]+", " ", label.casefold()).split())
    if key and not key[0].isalpha():
        key = "f_" + key
    return key[:40]


@router.get("/manage/custom-fields")
def custom_fields_page(request: Request, session: PageSession, actor: ManagerPage):
    fields = custom_fields_service.definitions(session, club_id=actor.club_id,
                                               include_archived=True)
    return render(request, "crm_custom_fields.html", {
        "title": "Custom fields", "fields": fields, "types": FIELD_TYPES})


@router.post("/manage/custom-fields")
def add_custom_field(request: Request, session: PageSession, actor: ManagerPage,
                     label: Annotated[str, Form(max_length=200)],
                     type: Annotated[str, Form(max_length=20)],
                     key: Annotated[str | None, Form(max_length=60)] = None,
                     choices: Annotated[str | None, Form(max_length=10_000)] = None,
                     required: Tick = None, searchable: Tick = None):
    back_to(request, None, "/manage/custom-fields")
    if type not in FIELD_TYPES:
        raise Invalid("Choose the type of the field", code="invalid_form")
    data = build(CustomFieldCreate, key=clean(key) or key_from_label(label),
                 label=clean(label), type=FieldType(type),
                 choices=_choices(choices) if type == "choice" else None,
                 required=ticked(required), searchable=ticked(searchable))
    field = custom_fields_service.create_field(session, club_id=actor.club_id, data=data)
    return done(request, "/manage/custom-fields", f"{field.label} ({field.key}) added.", "ok")


@router.post("/manage/custom-fields/{field_id}")
def edit_custom_field(request: Request, session: PageSession, actor: ManagerPage,
                      field_id: FieldId, label: Annotated[str, Form(max_length=200)],
                      choices: Annotated[str | None, Form(max_length=10_000)] = None,
                      required: Tick = None, searchable: Tick = None):
    back_to(request, None, "/manage/custom-fields")
    field = custom_fields_service.get_field(session, club_id=actor.club_id, field_id=field_id)
    changes: dict[str, Any] = {"label": clean(label), "required": ticked(required),
                               "searchable": ticked(searchable)}
    if field.type == "choice":
        changes["choices"] = _choices(choices) or []
    field = custom_fields_service.update_field(session, club_id=actor.club_id, field_id=field_id,
                                               data=build(CustomFieldUpdate, **changes))
    return done(request, "/manage/custom-fields", f"{field.label} saved.", "ok")


@router.post("/manage/custom-fields/{field_id}/archive")
def archive_custom_field(request: Request, session: PageSession, actor: ManagerPage,
                         field_id: FieldId):
    back_to(request, None, "/manage/custom-fields")
    field = custom_fields_service.archive_field(session, club_id=actor.club_id,
                                                field_id=field_id)
    return done(request, "/manage/custom-fields",
                f"{field.label} archived: hidden from forms and pages; its values are kept.",
                "ok")


# --- managers: duplicates -----------------------------------------------------------------------

@router.get("/manage/duplicates")
def duplicates_page(request: Request, session: PageSession, actor: ManagerPage):
    found = duplicates_service.find_duplicates(session, club_id=actor.club_id, limit=50)
    return render(request, "crm_duplicates.html", {"title": "Duplicates", "found": found})


OtherId = Annotated[int, Query(ge=1, le=MAX_ID)]


@router.get("/manage/duplicates/merge")
def merge_confirm(request: Request, session: PageSession, actor: ManagerPage, keep: OtherId,
                  duplicate: OtherId):
    if keep == duplicate:
        raise Invalid("A member cannot be merged with themselves", code="same_member")
    sides = [members_service.view_member(session, actor=actor, member_id=i)  # audited
             for i in (keep, duplicate)]
    return render(request, "crm_merge.html", {"title": "Merge two records", "keep": sides[0],
                                              "dup": sides[1]})


@router.post("/manage/duplicates/merge")
def merge(request: Request, session: PageSession, actor: ManagerPage,
          keep_id: Annotated[int, Form(ge=1, le=MAX_ID)],
          duplicate_id: Annotated[int, Form(ge=1, le=MAX_ID)]):
    back_to(request, None, "/manage/duplicates")
    result = duplicates_service.merge_members(session, actor=actor, keep_id=keep_id,
                                              duplicate_id=duplicate_id)
    moved = sum(result["moved"].values())
    text = (f"#{duplicate_id} was merged into {result['member']['name']} (#{keep_id}); "
            f"{moved} record{'s' if moved != 1 else ''} moved.")
    if result["warnings"]:
        text += " Check: " + " ".join(result["warnings"])
    return done(request, f"/desk/members/{keep_id}", text,
                "warn" if result["warnings"] else "ok", "Merged")


@router.post("/manage/duplicates/dismiss")
def dismiss(request: Request, session: PageSession, actor: ManagerPage,
            member_id: Annotated[int, Form(ge=1, le=MAX_ID)],
            other_member_id: Annotated[int, Form(ge=1, le=MAX_ID)]):
    back_to(request, None, "/manage/duplicates")
    duplicates_service.dismiss(session, actor=actor, member_id=member_id,
                               other_member_id=other_member_id)
    return done(request, "/manage/duplicates",
                f"#{member_id} and #{other_member_id} are marked as different people.", "ok")
