"""Cards: issue, block, replace; and the look-ups other domains use."""
import pytest
from sqlalchemy import func, select

from app.core.errors import NotFound
from app.members import service
from app.members.models import Card


@pytest.fixture
def anna(desk) -> dict:
    return desk.register("Anna", "Schmidt")


def test_a_card_is_issued_with_its_code_normalised(desk, anna):
    r = desk.post(f"/members/{anna['id']}/cards", {"code": " 04 a2:3b-1c "})
    assert r.status_code == 201
    card = r.json()
    assert (card["code"], card["status"], card["member_id"]) == ("04A2:3B-1C", "active", anna["id"])
    cards = desk.get(f"/members/{anna['id']}").json()["cards"]
    assert [c["code"] for c in cards] == ["04A2:3B-1C"]


def test_a_code_already_used_in_the_club_is_a_409(desk, anna):
    max_ = desk.register("Max", "Mustermann")
    assert desk.post(f"/members/{anna['id']}/cards", {"code": "ABC123"}).status_code == 201
    r = desk.post(f"/members/{max_['id']}/cards", {"code": "abc 123"})
    assert r.status_code == 409
    assert r.json()["error"] == "card_taken" and r.json()["details"]["member_id"] == anna["id"]
    assert desk.get(f"/members/{max_['id']}").json()["cards"] == []


def test_the_same_code_may_be_used_in_another_club(desk, anna, other_desk):
    desk.post(f"/members/{anna['id']}/cards", {"code": "ABC123"})
    olga = other_desk.register("Olga", "Ivanova")
    assert other_desk.post(f"/members/{olga['id']}/cards", {"code": "ABC123"}).status_code == 201


@pytest.mark.parametrize("code", ["", "   ", "#1234", "ÄBC", "x" * 65, "04\ta2\u00a0!"])
def test_malformed_codes_are_refused_naming_the_field(desk, anna, code):
    r = desk.post(f"/members/{anna['id']}/cards", {"code": code})
    assert r.status_code == 422
    assert r.json()["details"][0]["field"] == "code"
    assert r.json()["message"]


def test_blocking_a_card_records_when_and_why(desk, anna):
    card = desk.post(f"/members/{anna['id']}/cards", {"code": "ABC123"}).json()
    r = desk.post(f"/cards/{card['id']}/block", {"reason": "lost"})
    assert r.status_code == 200
    blocked = r.json()
    assert blocked["status"] == "blocked" and blocked["block_reason"] == "lost"
    assert blocked["blocked_at"] is not None
    again = desk.post(f"/cards/{card['id']}/block", {"reason": "stolen"})
    assert again.status_code == 409 and again.json()["error"] == "card_blocked"
    assert desk.get(f"/members/{anna['id']}").json()["cards"][0]["block_reason"] == "lost"


def test_replacing_a_card_blocks_the_old_one_and_issues_the_new_one(desk, anna):
    old = desk.post(f"/members/{anna['id']}/cards", {"code": "OLD-1"}).json()
    r = desk.post(f"/cards/{old['id']}/replace", {"new_code": "new-2"})
    assert r.status_code == 201
    new = r.json()
    assert (new["code"], new["status"], new["member_id"]) == ("NEW-2", "active", anna["id"])
    cards = {c["code"]: c for c in desk.get(f"/members/{anna['id']}").json()["cards"]}
    assert cards["OLD-1"]["status"] == "blocked" and cards["OLD-1"]["block_reason"] == "replaced"
    assert cards["NEW-2"]["status"] == "active"


def test_a_failed_replacement_leaves_the_old_card_active(desk, anna, session):
    max_ = desk.register("Max", "Mustermann")
    old = desk.post(f"/members/{anna['id']}/cards", {"code": "OLD-1"}).json()
    desk.post(f"/members/{max_['id']}/cards", {"code": "TAKEN"})
    r = desk.post(f"/cards/{old['id']}/replace", {"new_code": "taken"})
    assert r.status_code == 409 and r.json()["error"] == "card_taken"
    assert desk.get(f"/members/{anna['id']}").json()["cards"][0]["status"] == "active"
    assert session.scalar(select(func.count()).select_from(Card)) == 2


def test_replacing_a_lost_card_keeps_why_it_was_blocked(desk, anna):
    old = desk.post(f"/members/{anna['id']}/cards", {"code": "OLD-1"}).json()
    desk.post(f"/cards/{old['id']}/block", {"reason": "lost"})
    assert desk.post(f"/cards/{old['id']}/replace", {"new_code": "NEW-2"}).status_code == 201
    cards = {c["code"]: c for c in desk.get(f"/members/{anna['id']}").json()["cards"]}
    assert cards["OLD-1"]["block_reason"] == "lost" and cards["NEW-2"]["status"] == "active"


def test_another_clubs_card_is_not_found(desk, other_desk):
    olga = other_desk.register("Olga", "Ivanova", card="OLGA-1")
    card_id = olga["cards"][0]["id"]
    for r in (desk.post(f"/cards/{card_id}/block", {"reason": "lost"}),
              desk.post(f"/cards/{card_id}/replace", {"new_code": "MINE-1"}),
              desk.post("/cards/999999/block", {"reason": "lost"})):
        assert r.status_code == 404 and r.json()["error"] == "card_not_found"
    assert other_desk.get(f"/members/{olga['id']}").json()["cards"][0]["status"] == "active"


def test_a_trainer_cannot_issue_or_block_cards(client, world, desk, anna):
    from app.core.actors import Role

    trainer = world.staff(desk.club, Role.trainer)
    card = desk.post(f"/members/{anna['id']}/cards", {"code": "ABC123"}).json()
    r = client.post(f"/api/v1/members/{anna['id']}/cards", json={"code": "X1"},
                    headers=trainer.headers)
    assert r.status_code == 403
    r = client.post(f"/api/v1/cards/{card['id']}/block", json={"reason": "lost"},
                    headers=trainer.headers)
    assert r.status_code == 403


def test_find_by_card_normalises_the_code_and_stays_in_the_club(desk, other_desk, session):
    anna = desk.register("Anna", "Schmidt", card="04A23B1C")
    other_desk.register("Olga", "Ivanova", card="OLGA-1")
    found = service.find_by_card(session, club_id=desk.club.id, code="04 a2 3b 1c")
    assert found is not None
    card, member = found
    assert (card.code, member.id, member.first_name) == ("04A23B1C", anna["id"], "Anna")
    assert service.find_by_card(session, club_id=desk.club.id, code="OLGA-1") is None
    assert service.find_by_card(session, club_id=desk.club.id, code="no such!") is None


def test_find_by_card_returns_blocked_cards_for_the_caller_to_judge(desk, session):
    anna = desk.register("Anna", "Schmidt", card="ABC123")
    desk.post(f"/cards/{anna['cards'][0]['id']}/block", {"reason": "stolen"})
    card, _member = service.find_by_card(session, club_id=desk.club.id, code="abc123")
    assert card.status == "blocked" and card.block_reason == "stolen"


def test_get_member_refuses_another_clubs_member(desk, other_desk, session):
    olga = other_desk.register("Olga", "Ivanova")
    assert service.get_member(session, club_id=other_desk.club.id,
                              member_id=olga["id"]).last_name == "Ivanova"
    with pytest.raises(NotFound):
        service.get_member(session, club_id=desk.club.id, member_id=olga["id"])
