"""History import over the API, for managers: upload the files → a job; poll it."""
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, File, Form, Path, Request, UploadFile
from fastapi.responses import Response, StreamingResponse

from app.clubs.deps import ManagerActor
from app.core.deps import SessionDep
from app.core.errors import DomainError, Invalid
from app.core.schemas import IdPath
from app.imports import storage
from app.imports.history import jobs
from app.imports.history.common import Options
from app.imports.history.schemas import FutureVisits, HistoryJobRead, Reference
from app.imports.history.service import KINDS, kind_of, parse_mapping
from app.imports.history.sources import SOURCES, source_layout

router = APIRouter(prefix="/api/v1", tags=["imports"])

MAX_UPLOAD = 1 << 30  # all files together
CHUNK = 1 << 20


def _chunks(upload: UploadFile, budget: list[int]):
    """The upload's bytes, 1 MB at a time (413 once all files together pass the limit)."""
    while chunk := upload.file.read(CHUNK):
        budget[0] -= len(chunk)
        if budget[0] < 0:
            raise DomainError(f"The files are larger than {MAX_UPLOAD >> 20} MB together; "
                              "import them with the command line (fitclub import history)",
                              code="file_too_large", status_code=413)
        yield chunk


@router.post("/imports/history", response_model=HistoryJobRead, status_code=202, responses={
    413: {"description": "the files are larger than 1 GB together"},
    422: {"description": "a file name is not a history file, or a form field is invalid"}})
def upload_history(
    request: Request, session: SessionDep, actor: ManagerActor, background: BackgroundTasks,
    files: Annotated[list[UploadFile], File(description=(
        "the CSV files, named by what they hold: members.csv, staff.csv, plans.csv, "
        "memberships.csv, freezes.csv, pt_packages.csv, visits.csv (see docs/import.md)"))],
    dry_run: Annotated[bool, Form(description="check every file, write nothing")] = False,
    skip_bad: Annotated[bool, Form(description=(
        "import the good rows; the bad ones are offered as rejects files (default: all or "
        "nothing)"))] = False,
    reference: Annotated[Reference, Form(description="how rows name their member")]
    = Reference.external_id,
    day_first: Annotated[bool, Form(description="read 03/04/2024 as 3 April")] = True,
    renewal_gap_days: Annotated[int, Form(ge=0, le=366, description=(
        "a membership starting at most this many days after the previous one ended renews "
        "it"))] = 31,
    mapping: Annotated[str | None, Form(max_length=10_000, description=(
        'per file, which column feeds which field: JSON {"visits": {"member": "Kunde"}, '
        '"memberships": {"plan": "Tarifcode"}}'))] = None,
    future_visits: Annotated[FutureVisits, Form(description=(
        "visits after now (an export taken today): skip them with one warning, or refuse "
        "each as an error"))] = FutureVisits.skip,
    source: Annotated[str | None, Form(alias="from", max_length=50, description=(
        "the system the files were exported from (its report names and columns are read "
        f"with no mapping): {', '.join(sorted(SOURCES))}"))] = None,
):
    """Start a history import (or its dry run) in the background; poll
    `GET /api/v1/imports/history/{job_id}` for progress and the report. Importing the same files
    again creates nothing twice."""
    layout = source_layout(source)
    kinds: dict[str, UploadFile] = {}
    for upload in files:
        kind = kind_of(upload.filename or "", layout)
        if kind is None:
            raise Invalid(f"{upload.filename!r} is not a history file; name the files "
                          + ", ".join(f"{k}.csv" for k in KINDS), code="not_a_history_file")
        if kind in kinds:
            raise Invalid(f"two files hold {kind}: {kinds[kind].filename!r} and "
                          f"{upload.filename!r}", code="duplicate_history_file")
        kinds[kind] = upload
    options = Options(reference=reference.value, dry_run=dry_run, skip_bad=skip_bad,
                      day_first=day_first, renewal_gap_days=renewal_gap_days,
                      mapping=parse_mapping(mapping), future_visits=future_visits.value,
                      source=layout.name if layout else None)
    job = jobs.create_job(session, club_id=actor.club_id, staff_id=actor.user_id,
                          options=options, names=[u.filename for u in kinds.values()])
    budget = [MAX_UPLOAD]  # too large: the request's transaction (job and files) rolls back
    for kind, upload in kinds.items():
        jobs.store_upload(session, job, kind=kind, chunks=_chunks(upload, budget))
    background.add_task(jobs.start, request.app.state.sessionmaker, job.id)
    return jobs.read_job(session, club_id=actor.club_id, job_id=job.id)


@router.get("/imports/history/{job_id}", response_model=HistoryJobRead)
def read_history_job(session: SessionDep, actor: ManagerActor,
                     job_id: IdPath("import job id")):
    """A history import job: status (queued, running, done, failed), progress, report."""
    return jobs.read_job(session, club_id=actor.club_id, job_id=job_id)


@router.get("/imports/history/{job_id}/rejects/{name}", response_class=Response,
            responses={200: {"content": {"text/csv": {}}}})
def history_rejects(request: Request, session: SessionDep, actor: ManagerActor,
                    job_id: IdPath("import job id"),
                    name: Annotated[str, Path(max_length=100, pattern=r"^[a-z_]+\.rejects\.csv$",
                                              description="e.g. memberships.rejects.csv")]):
    """The rows of one file that were not imported, with a `problem` column: fix and upload
    (kept for a day after the import)."""
    stored = jobs.rejects_file(session, club_id=actor.club_id, job_id=job_id, name=name)
    factory, file_id = request.app.state.sessionmaker, stored.id

    def body():  # 1 MB at a time, whatever the file's size
        with factory() as reader:
            yield from storage.chunks(reader, file_id)

    return StreamingResponse(body(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})
