"""The privacy audit is written by the members service, so the desk's pages are audited like the
API (issue 16: the member card page and its note form wrote no audit entry), and exactly once."""
from sqlalchemy import select

from app.core.actors import Role
from app.core.audit import AuditEntry
from tests.web.conftest import csrf_of, sign_in


def _log(session, member_id: int) -> list[tuple]:
    rows = session.execute(select(AuditEntry.action, AuditEntry.staff_id, AuditEntry.fields)
                           .where(AuditEntry.entity_id == member_id)
                           .order_by(AuditEntry.id)).all()
    session.rollback()
    return [(action, staff, list(fields or [])) for action, staff, fields in rows]


def test_the_member_card_and_its_note_form_each_write_one_audit_entry(client, world, session):
    club = world.club()
    desk = world.staff(club, Role.front_desk)
    r = client.post("/api/v1/members", headers=desk.headers,
                    json={"first_name": "Greta", "last_name": "Hansen"})
    assert r.status_code == 201, r.text
    mid = r.json()["id"]
    assert _log(session, mid) == [("created", desk.user_id, [])]

    sign_in(client, desk.email)
    card = client.get(f"/desk/members/{mid}")
    assert card.status_code == 200 and "Greta" in card.text
    assert _log(session, mid)[1:] == [("viewed", desk.user_id, [])]

    answer = client.post(f"/desk/members/{mid}/notes", follow_redirects=False,
                         data={"csrf_token": csrf_of(card.text), "text": "prefers mornings"})
    assert answer.status_code == 303, answer.text
    assert _log(session, mid)[2:] == [("note_added", desk.user_id, ["notes"])]


def test_the_api_still_writes_exactly_one_entry_per_request(client, world, session):
    club = world.club()
    desk = world.staff(club, Role.front_desk)
    mid = client.post("/api/v1/members", headers=desk.headers,
                      json={"first_name": "Ida", "last_name": "Berg"}).json()["id"]
    calls = [("GET", f"/api/v1/members/{mid}", None, ("viewed", [])),
             ("PATCH", f"/api/v1/members/{mid}", {"last_name": "Berger"},
              ("updated", ["last_name"])),
             ("POST", f"/api/v1/members/{mid}/consents",
              {"channel": "email", "granted": True, "source": "desk"},
              ("consent_changed", ["email_consent"])),
             ("GET", f"/api/v1/members/{mid}/consents", None, ("viewed", ["consents"])),
             ("POST", f"/api/v1/members/{mid}/notes", {"text": "x"}, ("note_added", ["notes"])),
             ("GET", f"/api/v1/members/{mid}/notes", None, ("viewed", ["notes"]))]
    for method, path, body, (action, fields) in calls:
        before = len(_log(session, mid))
        r = client.request(method, path, headers=desk.headers, json=body)
        assert r.status_code in (200, 201), r.text
        assert _log(session, mid)[before:] == [(action, desk.user_id, fields)], path
