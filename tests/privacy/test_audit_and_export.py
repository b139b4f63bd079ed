"""The audit log (who viewed or changed whose data) and a person's privacy export."""
from datetime import timedelta

from app.core import clock
from tests.privacy.conftest import full_person


def entries(c, **params) -> list[tuple]:
    page = c.ok("GET", "/audit", staff=c.manager, params=params)
    return [(e["action"], e["entity_id"], e["staff_id"], e["fields"]) for e in page["items"]]


def test_viewing_and_changing_a_member_is_logged_with_field_names_never_values(club):
    desk = club.desk.user_id
    m = club.register("Greta", "Hansen", email="greta@example.org", phone="+4915100011122")
    mid = m["id"]
    club.ok("GET", f"/members/{mid}")
    club.ok("PATCH", f"/members/{mid}", json={"email": "greta.h@example.org",
                                               "birth_date": "1992-03-04"})
    club.ok("POST", f"/members/{mid}/consents", json={"channel": "sms", "granted": True,
                                                       "source": "front_desk"})
    club.ok("POST", f"/members/{mid}/notes", json={"text": "prefers mornings"})
    club.ok("GET", f"/members/{mid}/notes")
    club.ok("GET", "/members", params={"q": "greta"})  # a search is not viewing a profile

    assert entries(club, member_id=mid) == [
        ("viewed", mid, desk, ["notes"]),
        ("note_added", mid, desk, ["notes"]),
        ("consent_changed", mid, desk, ["sms_consent"]),
        ("updated", mid, desk, ["birth_date", "email"]),
        ("viewed", mid, desk, []),
        ("created", mid, desk, []),
    ]
    log = club.ok("GET", "/audit", staff=club.manager, params={"member_id": mid})
    text = repr(log)
    for value in ("greta", "hansen", "1992-03-04", "15100011122", "mornings"):
        assert value not in text.lower()

    # filters: action, staff, period; paging
    assert [e[0] for e in entries(club, member_id=mid, action="viewed")] == ["viewed", "viewed"]
    assert entries(club, staff_id=club.manager.user_id) == []
    later = (clock.now() + timedelta(minutes=5)).isoformat()
    assert entries(club, **{"from": later}) == []
    assert entries(club, **{"from": "2000-01-01T00:00:00", "to": "2000-01-02"}) == []
    r = club.call("GET", "/audit", staff=club.manager, params={"from": later, "to": "2000-01-01"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_period"
    assert len(entries(club, member_id=mid, to=later)) == 6
    page = club.ok("GET", "/audit", staff=club.manager, params={"limit": 2, "offset": 1})
    assert (len(page["items"]), page["total"]) == (2, 6)


def test_only_managers_read_the_log_and_nobody_can_change_it(club, world):
    assert club.call("GET", "/audit").status_code == 403
    assert club.call("GET", "/audit", staff=club.owner).status_code == 200
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert club.call(method, "/audit", staff=club.owner).status_code == 405
    assert club.call("GET", "/audit", staff=club.manager,
                     params={"action": "deleted"}).status_code == 422
    other = world.club("Hilltop Gym")
    from app.core.actors import Role
    club.register("Greta", "Hansen")
    outsider = world.staff(other, Role.manager)
    assert club.ok("GET", "/audit", staff=outsider)["total"] == 0


def test_the_privacy_export_holds_everything_about_the_person_and_is_audited(club, db):
    person = full_person(club)
    export = club.ok("GET", f"/members/{person.id}/privacy-export", staff=club.manager)
    assert export["member_id"] == person.id and export["erased"] is False
    profile = export["profile"]
    assert (profile["first_name"], profile["email"], profile["phone"], profile["birth_date"]) == (
        person.first, person.email, person.phone, person.birth_date)
    tables = export["tables"]
    assert [c["code"] for c in tables["cards"]] == [person.card]
    assert {c["channel"] for c in tables["consents"]} == {"email", "sms"}
    assert "knee rehab" in tables["member_notes"][0]["text"]
    assert len(tables["memberships"]) == 2 and len(tables["visits"]) >= 1
    assert any("Vanilla shake" in line["description"] for line in tables["sale_lines"])
    assert len(tables["payments"]) == 3 and all("amount" in p for p in tables["payments"])
    assert tables["access_events"] and tables["tasks"] and tables["interactions"]
    sent = tables["scheduled_touchpoints"][0]
    assert sent["recipient"] == person.email and person.first in sent["body"]
    assert tables["touchpoint_attempts"][0]["ok"] is True
    assert tables["stage_changes"] and tables["member_stages"]
    assert "member_search_terms" not in tables
    assert {e["action"] for e in export["audit"]} >= {"created", "note_added"}
    assert isinstance(tables["sales"][0]["total"], str)  # money as exact decimal text

    log = club.ok("GET", "/audit", staff=club.manager,
                  params={"member_id": person.id, "action": "exported"})
    assert log["total"] == 1
    assert club.call("GET", f"/members/{person.id}/privacy-export").status_code == 403
    assert club.call("GET", "/members/999999/privacy-export",
                     staff=club.manager).status_code == 404


def test_the_export_of_a_kept_member_includes_what_was_merged_into_them(club):
    keep = club.register("Ola", "Nordmann", email="ola@example.org")
    dup = club.register("Ola", "Nordman", email="ola@example.org")
    club.ok("POST", f"/members/{dup['id']}/notes", json={"text": "from the old record"})
    club.ok("POST", f"/members/{keep['id']}/merge", staff=club.manager,
            json={"duplicate_id": dup["id"]})
    export = club.ok("GET", f"/members/{keep['id']}/privacy-export", staff=club.manager)
    assert export["merged_member_ids"] == [dup["id"]]
    assert [n["text"] for n in export["tables"]["member_notes"]] == ["from the old record"]
    assert {(e["entity_id"], e["action"]) for e in export["audit"]} >= {
        (dup["id"], "created"), (dup["id"], "note_added"), (keep["id"], "merged")}
