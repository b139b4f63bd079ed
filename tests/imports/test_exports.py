"""Member and lead CSV exports, and the import API: a manager moves a club's members to another
club through export → import; front desk may do neither; a too-large upload is a 413."""
import csv
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.core.actors import Role
from app.core.audit import AuditEntry
from app.imports import router as imports_router
from app.members.models import Member
from app.registry import metadata

MESSY = Path(__file__).parent / "data" / "members_messy.csv"
DROP = {"fitclub_id", "created_at", "membership_plan", "membership_status", "membership_start",
        "membership_end"}


def read_csv(response) -> list[dict]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


def upload(client, staff, content: bytes, name="members.csv", **form):
    data = {k: (json.dumps(v) if k == "mapping" else str(v).lower() if isinstance(v, bool) else v)
            for k, v in form.items()}
    return client.post("/api/v1/imports/members", headers=staff.headers, data=data,
                       files={"file": (name, content, "text/csv")})


@pytest.fixture
def clubs(world):
    a, b = world.club("Riverside Fitness"), world.club("Hilltop Gym")
    return a, b, world.staff(a, Role.manager), world.staff(b, Role.owner)


def _seed(client, manager):
    """Club A's members as the desk made them: a custom field, cards, consents, odd names."""
    h = manager.headers
    r = client.post("/api/v1/custom-fields", headers=h,
                    json={"key": "shirt_size", "label": "Shirt size", "type": "choice",
                          "choices": ["S", "M", "L"]})
    assert r.status_code == 201, r.text
    r = client.post("/api/v1/custom-fields", headers=h,
                    json={"key": "joined_old_gym", "label": "Joined old gym", "type": "date"})
    assert r.status_code == 201, r.text
    people = [
        {"first_name": "Jürgen", "last_name": "Groß", "email": "juergen@example.de",
         "phone": "0151 23456789", "birth_date": "1980-03-05", "gender": "male",
         "card": "04A23B1C", "consents": {"email": True, "sms": False},
         "preferred_channel": "sms", "source": "walk_in",
         "custom": {"shirt_size": "L", "joined_old_gym": "2015-06-01"}},
        {"first_name": "Zoë", "last_name": "=HYPERLINK(\"x\")", "email": "zoe@example.de",
         "custom": {"shirt_size": "S"}},
        {"first_name": "Ada", "last_name": "Lovelace", "phone": "+44 7911 123456"},
    ]
    for body in people:
        r = client.post("/api/v1/members", headers=h, json=body)
        assert r.status_code == 201, r.text


def test_export_then_import_into_a_fresh_club_round_trips(client, clubs):
    _a, _b, manager_a, owner_b = clubs
    _seed(client, manager_a)
    exported = client.get("/api/v1/exports/members.csv", headers=manager_a.headers)
    rows = read_csv(exported)
    assert [r["last_name"] for r in rows] == ["Groß", "'=HYPERLINK(\"x\")", "Lovelace"]
    assert rows[0]["phone"] == "'+4915123456789"  # a spreadsheet would read + as a formula
    assert rows[0]["card"] == "04A23B1C" and rows[0]["email_consent"] == "true"
    assert rows[0]["custom.shirt_size"] == "L" and rows[0]["custom.joined_old_gym"] == "2015-06-01"
    assert rows[0]["membership_status"] == "none"

    # club B's owner defines the same custom fields, then imports the file unchanged
    for body in ({"key": "shirt_size", "label": "Shirt size", "type": "choice",
                  "choices": ["S", "M", "L"]},
                 {"key": "joined_old_gym", "label": "Joined old gym", "type": "date"}):
        assert client.post("/api/v1/custom-fields", headers=owner_b.headers,
                           json=body).status_code == 201
    report = upload(client, owner_b, exported.content, name="members.csv")
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["written"] and body["summary"]["created"] == 3, body
    assert body["problems"] == [] and body["ignored_columns"] == []

    again = read_csv(client.get("/api/v1/exports/members.csv", headers=owner_b.headers))
    assert [{k: v for k, v in r.items() if k not in DROP} for r in again] == [
        {k: v for k, v in r.items() if k not in DROP} for r in rows]
    # and a second import of the same file creates nothing twice
    second = upload(client, owner_b, exported.content).json()
    assert (second["summary"]["created"], second["summary"]["duplicates"]) == (0, 3)


def test_leads_export_has_the_pipeline_and_imports_as_members(client, clubs):
    _a, _b, manager_a, owner_b = clubs
    r = client.post("/api/v1/leads/manual", headers=manager_a.headers,
                    json={"first_name": "Lea", "last_name": "Sommer", "email": "lea@example.de",
                          "source": "referral", "source_detail": "-friend of Jürgen"})
    assert r.status_code == 201, r.text
    client.post("/api/v1/members", headers=manager_a.headers,
                json={"first_name": "Not", "last_name": "ALead"})
    rows = read_csv(client.get("/api/v1/exports/leads.csv", headers=manager_a.headers))
    assert len(rows) == 1
    assert (rows[0]["first_name"], rows[0]["stage"], rows[0]["lead_source"],
            rows[0]["source_detail"]) == ("Lea", "new", "referral", "'-friend of Jürgen")
    exported = client.get("/api/v1/exports/leads.csv", headers=manager_a.headers).content
    body = upload(client, owner_b, exported, name="leads.csv").json()
    assert body["summary"]["created"] == 1 and body["ignored_columns"] == []


def test_api_dry_run_reports_and_writes_nothing(client, clubs, session):
    _a, _b, manager_a, _ = clubs
    before = {t.name: session.scalar(select(func.count()).select_from(t))
              for t in metadata.sorted_tables}
    session.rollback()
    r = upload(client, manager_a, MESSY.read_bytes(), name="members_messy.csv", dry_run=True)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["dry_run"] and not body["written"]
    assert body["summary"] == {"rows": 11, "created": 5, "updated": 0, "duplicates": 0,
                               "errors": 6}  # row 5 shares row 2's phone: imported too
    assert {"row": 3, "column": "E-Mail"}.items() <= body["problems"][0].items()
    after = {t.name: session.scalar(select(func.count()).select_from(t))
             for t in metadata.sorted_tables}
    assert after == before


def test_api_skip_bad_returns_the_rejects_and_logs_one_audit_entry(client, clubs, session):
    a, _b, manager_a, _ = clubs
    r = upload(client, manager_a, MESSY.read_bytes(), mode="skip_bad",
               mapping={"email_consent": "Newsletter"})
    body = r.json()
    assert r.status_code == 200 and body["written"], body
    assert body["summary"]["created"] == 5 and body["summary"]["errors"] == 6
    rejects = list(csv.reader(io.StringIO(body["rejects_csv"])))
    assert rejects[0][-1] == "problem" and len(rejects) == 1 + 6
    assert session.scalar(select(func.count()).select_from(Member)
                          .where(Member.club_id == a.id)) == 5
    entries = session.execute(select(AuditEntry.action, AuditEntry.staff_id, AuditEntry.detail)
                              .where(AuditEntry.club_id == a.id,
                                     AuditEntry.entity == "member_import")).all()
    assert entries == [("imported", manager_a.user_id, {"rows": 11, "created": 5, "updated": 0})]


def test_api_all_or_nothing_refuses_and_bad_input_is_a_422(client, clubs, session):
    _a, _b, manager_a, _ = clubs
    body = upload(client, manager_a, MESSY.read_bytes()).json()
    assert not body["written"] and "nothing was written" in body["message"]
    assert body["rejects_csv"] is None
    assert session.scalar(select(func.count()).select_from(Member)) == 0
    session.rollback()

    r = upload(client, manager_a, b"", name="empty.csv")
    assert r.status_code == 422 and "empty" in r.json()["message"]
    r = upload(client, manager_a, b"email\nx@example.de\n")
    assert r.status_code == 422 and "no column for first name" in r.json()["message"]
    r = client.post("/api/v1/imports/members", headers=manager_a.headers,
                    data={"mapping": "[1, 2]"}, files={"file": ("m.csv", b"a,b\n", "text/csv")})
    assert r.status_code == 422 and r.json()["error"] == "invalid_mapping"
    r = upload(client, manager_a, b"first_name,last_name\nA,B\n", mode="sometimes")
    assert r.status_code == 422


def test_front_desk_may_not_import_or_export_and_a_big_upload_is_413(client, clubs, world,
                                                                       monkeypatch):
    a, _b, manager_a, _ = clubs
    desk = world.staff(a, Role.front_desk)
    assert upload(client, desk, b"first_name,last_name\nA,B\n").status_code == 403
    assert client.get("/api/v1/exports/members.csv", headers=desk.headers).status_code == 403
    assert client.get("/api/v1/exports/leads.csv", headers=desk.headers).status_code == 403

    monkeypatch.setattr(imports_router, "MAX_UPLOAD", 1024)
    r = upload(client, manager_a, b"first_name,last_name\n" + b"Ann,Lee\n" * 200)
    assert r.status_code == 413 and r.json()["error"] == "file_too_large"
    assert "larger than" in r.json()["message"]
