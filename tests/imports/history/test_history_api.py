"""The history import over the API: a manager uploads the files, polls the job, reads the report
and the rejects; the front desk may not; a job whose process died is failed, not left running."""
import socket

from sqlalchemy import func, select

from app.core import clock
from app.core.db import transaction
from app.imports.history.models import ImportJob
from app.memberships.models import Membership
from tests.imports.history.conftest import DATA, URL, add_members, upload, wait


def test_an_owner_uploads_the_history_and_polls_until_it_is_imported(
        client, session, world, club):
    # staff.csv gives a manager role, which only owners give (issue 16; tests/clubs/test_role_rule.py)
    manager = world.staff(club, "owner")
    session.rollback()

    r = upload(client, manager.headers, DATA / "clean")
    assert r.status_code == 202, r.text
    started = r.json()
    assert started["status"] in ("queued", "running", "done")
    assert sorted(started["files"]) == sorted(p.name for p in (DATA / "clean").iterdir())

    job = wait(client, manager.headers, started["id"])
    assert job["status"] == "done", job
    report = job["report"]
    assert report["status"] == "imported" and report["written"]
    assert {f["kind"]: f["created"] for f in report["files"]}["visits"] == 16
    figures = report["figures"]  # the check report: the files' totals beside the club's
    assert figures["club_after_import"] and figures["files"]["members"] == 6
    assert figures["files"]["visits_per_month"] == figures["club"]["visits_per_month"]
    assert job["progress"] == {} or job["progress"]["file"]
    assert session.scalar(select(func.count()).select_from(Membership)) == 10


def test_a_dry_run_with_skip_bad_offers_the_rejects_and_writes_nothing(
        client, db, session, world, club):
    manager = world.staff(club, "manager")
    add_members(db, club.id, ["M001", "M002", "M003"])

    r = upload(client, manager.headers, DATA / "messy", dry_run=True, skip_bad=True)
    job = wait(client, manager.headers, r.json()["id"])
    refused = upload(client, manager.headers, DATA / "messy", dry_run=True,
                     future_visits="refuse", mapping='{"visits": {"occurred_at": "occurred_at"}}')
    refused = wait(client, manager.headers, refused.json()["id"])
    assert refused["report"]["errors"] == 10, refused  # … or refused, as asked

    assert job["status"] == "done" and job["report"]["status"] == "checked"
    assert job["report"]["errors"] == 9  # the future visit is skipped with a warning
    assert sorted(job["rejects"]) == ["memberships.rejects.csv", "plans.rejects.csv",
                                      "visits.rejects.csv"]
    csv = client.get(f"{URL}/{job['id']}/rejects/visits.rejects.csv", headers=manager.headers)
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0].endswith("problem") and "M999" in csv.text
    assert session.scalar(select(func.count()).select_from(Membership)) == 0


def test_front_desk_may_not_and_bad_uploads_are_refused(client, world, club):
    desk = world.staff(club, "front_desk")
    manager = world.staff(club, "manager")
    r = upload(client, desk.headers, DATA / "clean")
    assert r.status_code == 403 and r.json()["error"] == "forbidden_role"
    r = client.post(URL, files=[("files", ("contacts.csv", b"a,b\n1,2\n", "text/csv"))],
                    headers=manager.headers)
    assert r.status_code == 422 and "not a history file" in r.json()["message"]
    r = client.post(URL, files=[("files", ("visits.csv", b"a\n", "text/csv")),
                                ("files", ("Visits.CSV", b"a\n", "text/csv"))],
                    headers=manager.headers)
    assert r.status_code == 422 and r.json()["error"] == "duplicate_history_file"
    for mapping in ("not json", '{"visits": "member"}', '{"contacts": {"member": "Kunde"}}'):
        r = upload(client, manager.headers, DATA / "clean", mapping=mapping)
        assert r.status_code == 422 and r.json()["error"] == "invalid_mapping", r.text
    other = world.club(name="Elsewhere")
    stranger = world.staff(other, "manager")
    job = wait(client, manager.headers, upload(client, manager.headers, DATA / "clean",
                                                dry_run=True).json()["id"])
    assert client.get(f"{URL}/{job['id']}", headers=stranger.headers).status_code == 404


def test_a_job_whose_process_died_is_marked_failed(client, db, world, club):
    manager = world.staff(club, "manager")
    with transaction(db.sessionmaker) as s:
        job = ImportJob(club_id=club.id, status="running", dry_run=False, options={},
                        files=["visits.csv"], progress={}, created_at=clock.now(),
                        started_at=clock.now(),
                        runner=f"{socket.gethostname()[:60]}:999999999:gone")  # no such pid
        s.add(job)
        s.flush()
        job_id = job.id
    r = client.get(f"{URL}/{job_id}", headers=manager.headers)
    assert r.status_code == 200
    assert r.json()["status"] == "failed" and "stopped" in r.json()["error"]
