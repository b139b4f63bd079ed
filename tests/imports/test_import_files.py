"""Import files live in the database (issue 16, item 9): a history job started through one worker
is shown, with its rejects, by another; nothing stays on the server's disk; kept files expire
after a day; erasing a person deletes the club's kept files that mention them; another club never
finds them."""
import stat
import tempfile
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
import typer
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from app.core.actors import Actor, Role
from app.core.config import get_settings
from app.core.db import transaction
from app.core.errors import NotFound
from app.imports import cli as imports_cli
from app.imports import storage
from app.imports.history import jobs
from app.imports.history.models import ImportJob
from app.imports.models import ImportFile, ImportFilePart
from app.main import create_app
from app.members.models import Member
from app.web.data import load_upload, store_upload
from tests.imports.history.conftest import DATA, URL, add_members, upload, wait

REJECTS = ["memberships.rejects.csv", "plans.rejects.csv", "visits.rejects.csv"]


@pytest.fixture
def club(world):
    return world.club()


@pytest.fixture
def second_worker(settings):
    """Another app on the same database, as a second worker process would be."""
    with TestClient(create_app(settings)) as other:
        yield other


def test_a_finished_job_keeps_its_last_progress_whoever_reads_it(client, second_worker, db,
                                                                  world, club):
    """Done means done on every read: the row keeps the last progress with the outcome (a
    worker that did not run the job reads the row; the running one's live copy is gone)."""
    manager = world.staff(club, "manager")
    add_members(db, club.id, ["M001", "M002", "M003"])
    started = upload(client, manager.headers, DATA / "messy", dry_run=True, skip_bad=True)
    job = wait(second_worker, manager.headers, started.json()["id"])
    thread = jobs._threads.get(job["id"])
    if thread is not None:
        thread.join(timeout=30)
    with transaction(db.sessionmaker) as s:
        row = s.get(ImportJob, job["id"])
        kept = dict(row.progress)
    assert kept["done"] == kept["total"] and kept["file"] == job["progress"]["file"]
    again = second_worker.get(f"{URL}/{job['id']}", headers=manager.headers).json()
    assert again["progress"] == job["progress"]

def stored(session, **where) -> list[ImportFile]:
    """The kept files (read in a transaction of its own: on SQLite it holds the write lock)."""
    session.rollback()
    try:
        return list(session.scalars(select(ImportFile).filter_by(**where)
                                    .order_by(ImportFile.name)))
    finally:
        session.rollback()


def test_a_job_started_on_one_worker_is_shown_with_its_rejects_by_another(
        client, second_worker, db, session, world, club):
    manager = world.staff(club, "manager")
    add_members(db, club.id, ["M001", "M002", "M003"])

    started = upload(client, manager.headers, DATA / "messy", dry_run=True, skip_bad=True)
    assert started.status_code == 202, started.text
    job = wait(second_worker, manager.headers, started.json()["id"])

    assert job["status"] == "done" and job["report"]["errors"] == 9  # + 1 future visit skipped
    assert job["rejects"] == REJECTS
    assert job == second_worker.get(f"{URL}/{job['id']}", headers=manager.headers).json()
    csv = second_worker.get(f"{URL}/{job['id']}/rejects/visits.rejects.csv",
                            headers=manager.headers)
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.headers["cache-control"] == "no-store"
    assert csv.text.splitlines()[0].endswith("problem") and "M999" in csv.text
    assert csv.content == client.get(f"{URL}/{job['id']}/rejects/visits.rejects.csv",
                                     headers=manager.headers).content

    # the rejects are rows of the database; the uploads are gone once the job ended
    bundle = job["options"]["dir"]
    files = stored(session, bundle=bundle)
    assert [(f.purpose, f.name, f.club_id, f.job_id) for f in files] == [
        ("rejects", name, club.id, job["id"]) for name in REJECTS]
    assert all(f.expires_at - f.created_at == timedelta(hours=24) for f in files)
    assert not (Path(tempfile.gettempdir()) / "fitclub-history-imports"
                / f"{job['id']}-{bundle}").exists()


def test_while_a_job_runs_its_files_are_private_and_removed_when_it_ends(
        client, monkeypatch, session, world, club):
    manager = world.staff(club, "owner")  # staff.csv gives a manager role: owners only
    seen: dict[str, object] = {}
    private_dir, copy_to = storage.private_dir, storage.copy_to

    @contextmanager
    def watched_dir():
        with private_dir() as path:
            seen["dir"], seen["dir_mode"] = path, stat.S_IMODE(path.stat().st_mode)
            yield path

    def watched_copy(s, file_id, path):
        copy_to(s, file_id, path)
        seen.setdefault("file_modes", []).append(stat.S_IMODE(path.stat().st_mode))

    monkeypatch.setattr(storage, "private_dir", watched_dir)
    monkeypatch.setattr(storage, "copy_to", watched_copy)

    started = upload(client, manager.headers, DATA / "clean", dry_run=True)
    assert started.status_code == 202
    job = wait(client, manager.headers, started.json()["id"])

    assert job["status"] == "done", job
    assert seen["dir_mode"] == 0o700 and not Path(seen["dir"]).exists()
    # every uploaded file came from the database into the private directory, readable by us only
    assert len(seen["file_modes"]) == len(job["files"]) and set(seen["file_modes"]) == {0o600}
    assert stored(session, job_id=job["id"]) == []  # no rejects; the uploads deleted


def test_an_upload_over_the_limit_leaves_neither_a_job_nor_a_file(client, monkeypatch, session,
                                                                   world, club):
    from app.imports.history import router as history_router

    manager = world.staff(club, "manager")
    monkeypatch.setattr(history_router, "MAX_UPLOAD", 100)
    r = upload(client, manager.headers, DATA / "clean")
    assert r.status_code == 413 and r.json()["error"] == "file_too_large"
    assert session.scalar(select(func.count()).select_from(ImportJob)) == 0
    assert session.scalar(select(func.count()).select_from(ImportFile)) == 0


def test_another_club_finds_neither_the_job_nor_its_rejects(client, db, world, club):
    manager = world.staff(club, "manager")
    stranger = world.staff(world.club(name="Elsewhere"), "manager")
    add_members(db, club.id, ["M001", "M002", "M003"])
    job = wait(client, manager.headers, upload(client, manager.headers, DATA / "messy",
                                                dry_run=True, skip_bad=True).json()["id"])
    assert job["rejects"] == REJECTS

    assert client.get(f"{URL}/{job['id']}", headers=stranger.headers).status_code == 404
    r = client.get(f"{URL}/{job['id']}/rejects/visits.rejects.csv", headers=stranger.headers)
    assert r.status_code == 404 and r.json()["error"] == "rejects_not_found"
    r = client.get(f"{URL}/{job['id']}/rejects/staff.rejects.csv", headers=manager.headers)
    assert r.status_code == 404


def test_rejects_expire_after_a_day_and_are_deleted_when_the_next_file_is_stored(
        client, clock, db, session, world, club):
    manager = world.staff(club, "owner")  # staff.csv gives a manager role: owners only
    add_members(db, club.id, ["M001", "M002", "M003"])
    job = wait(client, manager.headers, upload(client, manager.headers, DATA / "messy",
                                                dry_run=True, skip_bad=True).json()["id"])
    bundle = job["options"]["dir"]
    assert len(stored(session, bundle=bundle)) == 3

    clock.advance(timedelta(hours=24, minutes=1))
    later = client.get(f"{URL}/{job['id']}", headers=manager.headers).json()
    assert later["status"] == "done" and later["rejects"] == []
    r = client.get(f"{URL}/{job['id']}/rejects/visits.rejects.csv", headers=manager.headers)
    assert r.status_code == 404

    nxt = wait(client, manager.headers, upload(client, manager.headers, DATA / "clean",
                                                dry_run=True).json()["id"])
    assert nxt["status"] == "done"
    assert stored(session, bundle=bundle) == []
    assert session.scalar(select(func.count()).select_from(ImportFilePart)) == 0


def test_fitclub_import_purge_deletes_expired_files(clock, db, monkeypatch, session, club):
    with transaction(db.sessionmaker) as s:
        storage.store(s, club_id=club.id, user_id=None, bundle="old", purpose="upload",
                      name="members.csv", chunks=[b"a,b\n"], keep=timedelta(hours=1))
        storage.store(s, club_id=club.id, user_id=None, bundle="new", purpose="upload",
                      name="members.csv", chunks=[b"a,b\n"], keep=timedelta(hours=3))
    clock.advance(timedelta(hours=2))
    monkeypatch.setenv("DATABASE_URL", db.url)
    get_settings.cache_clear()
    cli = typer.Typer()
    imports_cli.register(cli)
    try:
        result = CliRunner().invoke(cli, ["import", "purge"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "1 expired import file deleted" in result.output
    assert [f.bundle for f in stored(session)] == ["new"]


def test_a_file_is_kept_in_parts_and_read_back_whole(db, session, club):
    data = bytes(range(256)) * (storage.PART // 256 * 2 + 10)  # two parts and a bit
    with transaction(db.sessionmaker) as s:
        file_id = storage.store(s, club_id=club.id, user_id=None, bundle="b", purpose="upload",
                                name="visits.csv", chunks=[data[:1000], data[1000:]]).id
    assert session.scalar(select(func.count()).where(ImportFilePart.file_id == file_id)) == 3
    assert storage.read_bytes(session, file_id) == data
    assert session.get(ImportFile, file_id).size == len(data)


def test_the_member_import_page_keeps_its_upload_in_the_database_for_its_club_only(
        clock, db, session, world, club):
    other = world.club(name="Elsewhere")
    actor = Actor(user_id=world.staff(club, "manager").user_id, name="m", club_id=club.id,
                  role=Role.manager)
    stranger = Actor(user_id=world.staff(other, "manager").user_id, name="s",
                     club_id=other.id, role=Role.manager)
    with transaction(db.sessionmaker) as s:
        token = store_upload(s, actor, "members.csv", b"first_name;last_name\nA;B\n")

    meta, data = load_upload(session, actor, token)
    assert meta["name"] == "members.csv" and data == b"first_name;last_name\nA;B\n"
    with pytest.raises(NotFound):
        load_upload(session, stranger, token)
    clock.advance(timedelta(hours=1, minutes=1))
    with pytest.raises(NotFound) as expired:
        load_upload(session, actor, token)
    assert expired.value.code == "upload_not_found"


def test_erasing_a_person_deletes_the_clubs_import_files_that_mention_them(
        client, db, session, world, club):
    manager = world.staff(club, "manager")
    other = world.club(name="Elsewhere")
    with transaction(db.sessionmaker) as s:
        person = Member(club_id=club.id, first_name="Zoë", last_name="Werner",
                        email="zoe.werner@example.com", phone="+4915123456789")
        s.add(person)
        s.flush()
        person_id = person.id
        files = {
            "cells.csv": "first;last;city\nZoë;Werner;Köln\n".encode("cp1252"),
            "email.csv": b"member,email\nM7,ZOE.WERNER@EXAMPLE.COM\n",
            "phone.csv": b"member,mobile\nM7,0151 2345 6789\n",
            "rejects.csv": "name,problem\nWerner Zoë,bad date\n".encode("utf-16"),
            "someone_else.csv": "first;last;phone\nZoë;Müller;0151 99999\n".encode(),
        }
        for name, data in files.items():
            storage.store(s, club_id=club.id, user_id=None, bundle=name[:10], purpose="upload",
                          name=name, chunks=[data])
        storage.store(s, club_id=other.id, user_id=None, bundle="other", purpose="upload",
                      name="email.csv", chunks=[b"zoe.werner@example.com\n"])

    r = client.post(f"/api/v1/members/{person_id}/erase", headers=manager.headers,
                    json={"reason": "asked by email", "confirm": True})
    assert r.status_code == 200, r.text
    assert r.json()["counts"]["import_files"] == 4
    assert [(f.club_id, f.name) for f in stored(session)] == [
        (other.id, "email.csv"), (club.id, "someone_else.csv")]
    left = {f.id for f in stored(session)}
    assert set(session.scalars(select(ImportFilePart.file_id).distinct())) == left


def test_erasure_deletes_a_history_jobs_rejects_that_name_the_person(client, db, session, world,
                                                                      club):
    manager = world.staff(club, "manager")
    with transaction(db.sessionmaker) as s:
        person = Member(club_id=club.id, first_name="Jörg", last_name="Brandt",
                        email="joerg.brandt@example.com", external_ref="M050")
        s.add(person)
        s.flush()
        person_id = person.id
    members = ("external_id,first_name,last_name,email,birth_date\n"
               "M050,Jörg,Brandt,joerg.brandt@example.com,31.02.1990\n"
               "M051,Ida,Kern,ida.kern@example.com,01.02.1990\n"
               "M052,Ute,Lang,ute.lang@example.com,31.02.1991\n").encode()
    r = client.post(URL, files=[("files", ("members.csv", members, "text/csv"))],
                    data={"dry_run": "true", "skip_bad": "true"}, headers=manager.headers)
    job = wait(client, manager.headers, r.json()["id"])
    assert job["rejects"] == ["members.rejects.csv"], job
    rejects = client.get(f"{URL}/{job['id']}/rejects/members.rejects.csv",
                         headers=manager.headers).text
    assert "joerg.brandt@example.com" in rejects

    r = client.post(f"/api/v1/members/{person_id}/erase", headers=manager.headers,
                    json={"reason": "asked at the desk", "confirm": True})
    assert r.status_code == 200, r.text
    assert r.json()["counts"]["import_files"] == 1
    assert client.get(f"{URL}/{job['id']}", headers=manager.headers).json()["rejects"] == []
    r = client.get(f"{URL}/{job['id']}/rejects/members.rejects.csv", headers=manager.headers)
    assert r.status_code == 404
    report = client.get(f"{URL}/{job['id']}", headers=manager.headers).json()["report"]
    assert "joerg.brandt@example.com" not in str(report).lower()
