"""History imports run for the API: a background thread of the web process per upload.

The job's row (`import_jobs`) holds its state; the import itself runs in one transaction of its
own, so a job that fails or whose process dies leaves nothing half-written. Progress lives in
this process's memory (and, on PostgreSQL, is copied to the row every few seconds so another
worker process can show it; SQLite's single writer is busy with the import meanwhile).

The uploaded files and the rejects files are kept in the database (app.imports.storage, bundle
`options["dir"]`), so every worker can show a job and offer its rejects. While the job runs, its
files are copied to a private temporary directory (0700, files 0600) that is removed when the job
ends; the uploads are then deleted, the rejects kept for a day.

A job is *running* in the process named by its `runner` (host:pid:token). When someone reads a
queued or running job whose process is gone — this process without the thread, or a dead pid on
this host — the job is marked failed: nothing of it was written, upload again.
"""
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.core import clock
from app.core.db import transaction
from app.core.errors import DomainError, Invalid, NotFound
from app.imports import storage
from app.imports.history.common import Options
from app.imports.history.models import ImportJob
from app.imports.history.service import import_history, kind_of
from app.imports.models import ImportFile

log = logging.getLogger(__name__)

RUNNER = f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
PROGRESS_EVERY = 2.0  # seconds between progress copies to the row (PostgreSQL)
ACTIVE = ("queued", "running")

_progress: dict[int, dict] = {}
_threads: dict[int, threading.Thread] = {}
_pending: set[int] = set()
_lock = threading.Lock()


def bundle(job: ImportJob) -> str:
    """The token naming the job's stored files (random: ids repeat across databases)."""
    return (job.options or {}).get("dir") or ""


def create_job(session: Session, *, club_id: int, staff_id: int | None, options: Options,
               names: list[str]) -> ImportJob:
    """The job's row (queued); the caller stores the uploads with `store_upload`."""
    job = ImportJob(club_id=club_id, staff_id=staff_id, kind="history", status="queued",
                    dry_run=options.dry_run,
                    options={"reference": options.reference, "skip_bad": options.skip_bad,
                             "day_first": options.day_first, "dry_run": options.dry_run,
                             "renewal_gap_days": options.renewal_gap_days,
                             "mapping": options.mapping, "future_visits": options.future_visits,
                             "source": options.source, "dir": uuid.uuid4().hex},
                    files=names, progress={}, runner=RUNNER, created_at=clock.now())
    session.add(job)
    session.flush()
    with _lock:
        _pending.add(job.id)  # alive until its thread starts (after the upload's commit)
    return job


def store_upload(session: Session, job: ImportJob, *, kind: str, chunks) -> int:
    """Keep one uploaded file of the job (as `<kind>.csv`) in the database; its size."""
    stored = storage.store(session, club_id=job.club_id, user_id=job.staff_id,
                           bundle=bundle(job), purpose=storage.UPLOAD, name=f"{kind}.csv",
                           chunks=chunks, job_id=job.id)
    return stored.size


def start(factory: sessionmaker[Session], job_id: int) -> None:
    """Run the job in a background thread of this process."""
    thread = threading.Thread(target=_run, args=(factory, job_id), daemon=True,
                              name=f"history-import-{job_id}")
    with _lock:
        _progress[job_id] = {}
        _threads[job_id] = thread
        _pending.discard(job_id)
    thread.start()


def _run(factory: sessionmaker[Session], job_id: int) -> None:
    owner: tuple[int, str, int | None] | None = None  # club, bundle, staff
    rejects_dir = None
    try:
        with storage.private_dir() as directory:
            with transaction(factory) as session:
                job = session.get(ImportJob, job_id)
                job.status, job.started_at, job.runner = "running", clock.now(), RUNNER
                club_id, settings = job.club_id, dict(job.options)
                owner = (club_id, bundle(job), job.staff_id)
                uploads = storage.listing(session, club_id=club_id, bundle=owner[1],
                                          purpose=storage.UPLOAD)
                (directory / "files").mkdir(mode=0o700)
                for stored in uploads:
                    storage.copy_to(session, stored.id, directory / "files" / stored.name)
            if not uploads:
                raise Invalid("The uploaded files are gone (more than a day old, or deleted by "
                              "an erasure); upload them again", code="import_files_gone")
            files = {kind_of(p.name): p for p in sorted((directory / "files").iterdir())}
            rejects_dir = directory / "rejects"
            options = Options(reference=settings["reference"], dry_run=settings["dry_run"],
                              skip_bad=settings["skip_bad"], day_first=settings["day_first"],
                              renewal_gap_days=settings["renewal_gap_days"],
                              mapping=settings.get("mapping") or {},
                              future_visits=settings.get("future_visits", "skip"),
                              source=settings.get("source"), rejects_dir=rejects_dir)
            pg = factory.kw["bind"].dialect.name == "postgresql"
            last = [0.0]

            def progress(phase: str, name: str, done: int, total: int | None) -> None:
                state = {"phase": phase, "file": name, "done": done, "total": total}
                with _lock:
                    _progress[job_id] = state
                if pg and time.monotonic() - last[0] > PROGRESS_EVERY:
                    last[0] = time.monotonic()
                    with transaction(factory) as s:
                        s.execute(update(ImportJob).where(ImportJob.id == job_id)
                                  .values(progress=state))

            with transaction(factory) as session:
                report = import_history(session, club_id=club_id, files=files, options=options,
                                        progress=progress, staff_id=owner[2])
            _finish(factory, job_id, "done", owner=owner, report=report.as_dict())
    except DomainError as exc:
        _finish(factory, job_id, "failed", owner=owner, error=exc.message)
    except Exception:
        log.exception("history import job %s failed", job_id)
        _finish(factory, job_id, "failed", owner=owner, error="the import stopped on an "
                "unexpected error (see the server log); nothing of it was written")
    finally:
        with _lock:
            _progress.pop(job_id, None)
            _threads.pop(job_id, None)


def _finish(factory: sessionmaker[Session], job_id: int, status: str, *,
            owner: tuple[int, str, int | None] | None, report: dict | None = None,
            error: str | None = None) -> None:
    """The job's outcome; its rejects files go to the database (by name in the report), its
    uploads are deleted — in one transaction."""
    with transaction(factory) as session:
        if owner is not None:
            club_id, files, staff_id = owner
            for entry in (report or {}).get("files", []):
                path = Path(entry["rejects"]) if entry.get("rejects") else None
                entry["rejects"] = path.name if path is not None and path.is_file() else None
                if entry["rejects"]:
                    with path.open("rb") as source:
                        storage.store(session, club_id=club_id, user_id=staff_id, bundle=files,
                                      purpose=storage.REJECTS, name=path.name, job_id=job_id,
                                      chunks=iter(lambda s=source: s.read(storage.PART), b""))
            storage.discard(session, club_id=club_id, bundle=files, purpose=storage.UPLOAD)
        with _lock:  # the last progress is kept with the outcome: the row is exact once done
            last = _progress.get(job_id)
        final = {"progress": last} if last is not None else {}
        session.execute(update(ImportJob).where(ImportJob.id == job_id).values(
            status=status, report=report, error=error, finished_at=clock.now(), **final))


def _alive(job: ImportJob) -> bool:
    """Is the process that runs this job still running it?"""
    if job.runner == RUNNER:
        with _lock:
            thread = _threads.get(job.id)
            pending = job.id in _pending
        return pending or (thread is not None and thread.is_alive())
    host, _, rest = (job.runner or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname()[:60] or not pid.isdigit():
        return True  # another machine's worker: it cannot be asked from here
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_job(session: Session, *, club_id: int, job_id: int) -> dict:
    """The job as the API shows it; a job whose process is gone is marked failed first."""
    job = session.scalar(select(ImportJob).where(ImportJob.id == job_id,
                                                 ImportJob.club_id == club_id))
    if job is None:
        raise NotFound("No such import job", code="import_job_not_found")
    if job.status in ACTIVE and not _alive(job):
        job.status, job.finished_at = "failed", clock.now()
        job.error = ("the process running this import stopped (a restart or a crash); nothing "
                     "of it was written — upload the files again")
        session.flush()
    progress = dict(job.progress or {})
    if job.status in ACTIVE:  # this process's fresher copy, while it runs the job
        with _lock:
            progress = dict(_progress.get(job.id) or progress)
    if progress.get("total"):
        progress["percent"] = round(100 * progress["done"] / progress["total"], 1)
    rejects = []
    if job.status == "done":
        rejects = [f.name for f in storage.listing(session, club_id=club_id, bundle=bundle(job),
                                                   purpose=storage.REJECTS)]
    return {"id": job.id, "status": job.status, "dry_run": job.dry_run,
            "options": job.options, "files": job.files, "progress": progress,
            "report": _public(job.report), "error": job.error, "rejects": rejects,
            "created_at": job.created_at, "started_at": job.started_at,
            "finished_at": job.finished_at}


def _public(report: dict | None) -> dict | None:
    """The report without server paths (rejects are offered by name)."""
    if not report:
        return report
    files = [{**f, "rejects": Path(f["rejects"]).name if f.get("rejects") else None}
             for f in report.get("files", [])]
    return {**report, "files": files}


def rejects_file(session: Session, *, club_id: int, job_id: int, name: str) -> ImportFile:
    """The job's stored rejects file of that name (404: unknown, another club's, expired)."""
    job = session.scalar(select(ImportJob).where(ImportJob.id == job_id,
                                                 ImportJob.club_id == club_id))
    found = None
    if job is not None and name.endswith(".rejects.csv") and bundle(job):
        found = storage.find(session, club_id=club_id, bundle=bundle(job),
                             purpose=storage.REJECTS, name=name)
    if found is None:
        raise NotFound("No such rejects file for this import (they are kept for a day)",
                       code="rejects_not_found")
    return found
