"""Consent history per channel, and staff notes."""
import pytest

from app.core.actors import Role
from app.core.db import transaction
from app.core.errors import Invalid, NotFound
from app.members import service


@pytest.fixture
def anna(desk) -> dict:
    return desk.register("Anna", "Schmidt", email="anna@example.com", phone="+4915123456789")


def test_a_consent_statement_is_kept_and_sets_the_current_flag(desk, anna):
    r = desk.post(f"/members/{anna['id']}/consents",
                  {"channel": "sms", "granted": True, "source": "paper form"})
    assert r.status_code == 201
    consent = r.json()
    assert (consent["channel"], consent["granted"], consent["source"], consent["staff_id"]) == (
        "sms", True, "paper form", desk.staff.user_id)
    assert desk.get(f"/members/{anna['id']}").json()["consents"] == {"email": False, "sms": True}

    desk.post(f"/members/{anna['id']}/consents",
              {"channel": "sms", "granted": False, "source": "phone call"})
    assert desk.get(f"/members/{anna['id']}").json()["consents"]["sms"] is False
    history = desk.get(f"/members/{anna['id']}/consents").json()
    assert history["total"] == 2
    assert [(h["granted"], h["source"]) for h in history["items"]] == [
        (False, "phone call"), (True, "paper form")]  # newest first


def test_other_domains_record_consent_through_the_service(desk, anna, db):
    with transaction(db.sessionmaker) as session:
        consent = service.set_consent(session, club_id=desk.club.id, member_id=anna["id"],
                                      channel="email", granted=False, source="unsubscribe_link")
        assert consent.staff_id is None
    latest = desk.get(f"/members/{anna['id']}/consents").json()["items"][0]
    assert (latest["channel"], latest["granted"], latest["source"]) == (
        "email", False, "unsubscribe_link")
    assert desk.get(f"/members/{anna['id']}").json()["consents"]["email"] is False


def test_set_consent_refuses_unknown_channels_and_other_clubs(desk, anna, other_desk, session):
    with pytest.raises(Invalid) as exc:
        service.set_consent(session, club_id=desk.club.id, member_id=anna["id"],
                            channel="pigeon", granted=True, source="form")
    assert exc.value.details[0]["field"] == "channel"
    with pytest.raises(NotFound):
        service.set_consent(session, club_id=other_desk.club.id, member_id=anna["id"],
                            channel="sms", granted=True, source="form")


@pytest.mark.parametrize("body, field", [
    ({"channel": "pigeon", "granted": True, "source": "form"}, "channel"),
    ({"channel": "sms", "granted": "perhaps", "source": "form"}, "granted"),
    ({"channel": "sms", "granted": True}, "source"),
    ({"channel": "sms", "granted": True, "source": "x" * 51}, "source"),
])
def test_bad_consent_statements_are_refused(desk, anna, body, field):
    r = desk.post(f"/members/{anna['id']}/consents", body)
    assert r.status_code == 422
    assert r.json()["details"][0]["field"] == field
    assert desk.get(f"/members/{anna['id']}/consents").json()["total"] == 0


def test_notes_are_listed_newest_first_with_their_author(desk, anna, world, client):
    trainer = world.staff(desk.club, Role.trainer)
    assert desk.post(f"/members/{anna['id']}/notes", {"text": "Prefers morning classes"}
                     ).status_code == 201
    r = client.post(f"/api/v1/members/{anna['id']}/notes", headers=trainer.headers,
                    json={"text": "Knee injury — no squats"})
    assert r.status_code == 201 and r.json()["staff_id"] == trainer.user_id
    notes = desk.get(f"/members/{anna['id']}/notes").json()
    assert notes["total"] == 2
    assert [n["text"] for n in notes["items"]] == ["Knee injury — no squats",
                                                   "Prefers morning classes"]
    assert notes["items"][1]["staff_id"] == desk.staff.user_id


def test_notes_page(desk, anna):
    for n in range(5):
        desk.post(f"/members/{anna['id']}/notes", {"text": f"note {n}"})
    page = desk.get(f"/members/{anna['id']}/notes", params={"limit": 2, "offset": 1}).json()
    assert page["total"] == 5 and [n["text"] for n in page["items"]] == ["note 3", "note 2"]


@pytest.mark.parametrize("text", ["", "   ", "x" * 5001])
def test_empty_or_overlong_notes_are_refused(desk, anna, text):
    r = desk.post(f"/members/{anna['id']}/notes", {"text": text})
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "text"
    assert desk.get(f"/members/{anna['id']}/notes").json()["total"] == 0


def test_a_note_of_exactly_5000_characters_is_kept(desk, anna):
    r = desk.post(f"/members/{anna['id']}/notes", {"text": "x" * 5000})
    assert r.status_code == 201 and len(r.json()["text"]) == 5000
