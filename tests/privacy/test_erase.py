"""Erasure on request: no personal data left anywhere, counts and renewal figures unchanged."""
from sqlalchemy import select

from app.core.db import transaction
from app.members.models import Card
from app.retention.models import ScheduledTouchpoint
from tests.privacy.conftest import full_person, scan


def _figures(c, member_id: int) -> dict:
    today = c.today.isoformat()
    year_ago = c.today.replace(year=c.today.year - 1).isoformat()
    renewals = c.ok("GET", "/analytics/renewals", staff=c.manager,
                    params={"from": year_ago, "to": today})
    kpis = c.ok("GET", "/analytics/kpis", staff=c.manager, params={"from": year_ago, "to": today})
    return {"visits": c.count("visits", member_id=member_id),
            "memberships": c.count("memberships", member_id=member_id),
            "sales": c.count("sales", member_id=member_id),
            "stage_changes": c.count("stage_changes", member_id=member_id),
            "renewals": renewals["totals"],
            "kpis": kpis}


def test_erasing_a_person_leaves_no_personal_data_in_any_table_yet_keeps_the_counts(club, db):
    person = full_person(club)
    bystander = full_person(club, first="Bartholomew", last="Okonkwo-Reyes",
                            email="bart@example.net", phone="+4917699887766",
                            birth_date="1979-11-02", card="BO-5523")
    assert scan(db, person.needles), "the builder should have spread the person's data around"
    before = _figures(club, person.id)
    assert (before["renewals"]["ended"], before["renewals"]["renewed"]) == (2, 2)

    r = club.call("POST", f"/members/{person.id}/erase", staff=club.manager,
                  json={"reason": f"asked by email ({person.email})", "confirm": True})
    assert r.status_code == 200, r.text
    result = r.json()
    assert person.email not in result["reason"]
    assert {"cards", "member_notes", "tasks", "interactions", "scheduled_touchpoints",
            "sales"} <= set(result["counts"])

    assert scan(db, person.needles) == []
    assert _figures(club, person.id) == before
    # the other person is untouched
    assert {hit[3] for hit in scan(db, bystander.needles)} >= {
        n.lower() for n in bystander.needles}

    shell = club.ok("GET", f"/members/{person.id}", staff=club.manager)
    assert (shell["first_name"], shell["email"], shell["phone"], shell["birth_date"]) == (
        "Erased", None, None, None)
    assert shell["consents"] == {"email": False, "sms": False}
    assert [c["status"] for c in shell["cards"]] == ["blocked"]
    assert club.count("member_search_terms", member_id=person.id) == 0
    assert club.count("member_notes", member_id=person.id) == 0


def test_an_erased_person_cannot_come_in_be_messaged_or_exported_beyond_the_shell(club, db,
                                                                                  world):
    person = full_person(club)
    with transaction(db.sessionmaker) as s:  # one more message waiting to go out
        sent = s.scalar(select(ScheduledTouchpoint).where(
            ScheduledTouchpoint.member_id == person.id))
        s.add(ScheduledTouchpoint(**{c.name: getattr(sent, c.name) for c in
                                     ScheduledTouchpoint.__table__.columns if c.name != "id"}
                                  | {"cycle": "later", "status": "pending", "sent_at": None,
                                     "attempts": 0}))
    club.ok("POST", f"/members/{person.id}/erase", staff=club.owner,
            json={"reason": "request at the desk", "confirm": True})
    turnstile = world.device(club.club)
    r = club.client.post("/api/v1/access/events", json={"card": person.card},
                         headers=turnstile.headers)
    assert r.status_code == 200 and r.json()["allow"] is False
    r = club.call("POST", f"/members/{person.id}/check-ins")
    assert r.status_code == 404 or r.json().get("allow") is False
    with db.sessionmaker() as s:
        codes = [c.code for c in s.query(Card).filter(Card.member_id == person.id)]
    assert all(code.startswith("ERASED-") for code in codes)
    r = club.call("POST", f"/members/{person.id}/cards", json={"code": codes[0]})
    assert r.status_code == 409  # the placeholder can never be issued again

    assert club.count("scheduled_touchpoints", member_id=person.id, status="pending") == 1
    attempts = club.count("touchpoint_attempts")
    club.send_welcome_email(person.id)
    assert club.count("touchpoint_attempts") == attempts
    assert club.count("scheduled_touchpoints", member_id=person.id, status="pending") == 0
    assert club.count("scheduled_touchpoints", member_id=person.id, status="sent") == 1

    export = club.ok("GET", f"/members/{person.id}/privacy-export", staff=club.manager)
    assert export["erased"] is True
    assert scan_text(export, person.needles) == []

    again = club.call("POST", f"/members/{person.id}/erase", staff=club.manager,
                      json={"reason": "again", "confirm": True})
    assert again.status_code == 409 and again.json()["error"] == "already_erased"

    audit = club.ok("GET", "/audit", staff=club.manager,
                    params={"member_id": person.id, "action": "erased"})
    assert audit["total"] == 1 and audit["items"][0]["staff_id"] == club.owner.user_id
    assert scan_text(audit, person.needles) == []


def scan_text(document, needles) -> list[str]:
    text = repr(document).lower()
    return [n for n in needles if n.lower() in text]


def test_erasure_needs_confirmation_a_manager_and_a_member_of_this_club(club, world):
    person = club.register("Ida", "Lindqvist", email="ida@example.org")
    r = club.call("POST", f"/members/{person['id']}/erase", staff=club.manager,
                  json={"reason": "request", "confirm": False})
    assert r.json()["error"] == "confirmation_required"
    assert r.status_code == 422
    r = club.call("POST", f"/members/{person['id']}/erase", staff=club.desk,
                  json={"reason": "request", "confirm": True})
    assert r.status_code == 403
    other = world.club("Hilltop Gym")
    from app.core.actors import Role
    outsider = world.staff(other, Role.manager)
    r = club.call("POST", f"/members/{person['id']}/erase", staff=outsider,
                  json={"reason": "request", "confirm": True})
    assert r.status_code == 404
    assert club.ok("GET", f"/members/{person['id']}")["email"] == "ida@example.org"
