"""Whatever is sent, every members endpoint answers 4xx with a message — never a 500."""
import pytest
from sqlalchemy import func, select

from app.members.models import Card, Consent, Member, MemberNote

HUGE = [2**63, 2**64, 10**30, -1, 0]
NUL = "a\x00b"


@pytest.fixture
def anna(desk) -> dict:
    return desk.register("Anna", "Schmidt", card="ANNA-1")


def write_requests(member_id: int, card_id: int) -> list[tuple[str, str, dict]]:
    """A bad body for every write endpoint: NUL bytes, huge text, wrong types, mass assignment."""
    m, c = f"/members/{member_id}", f"/cards/{card_id}"
    return [
        ("post", "/members", {"first_name": NUL, "last_name": "B"}),
        ("post", "/members", {"first_name": "A" * 101, "last_name": "B"}),
        ("post", "/members", {"first_name": "A", "last_name": "B", "email": "x" * 300 + "@a.de"}),
        ("post", "/members", {"first_name": "A", "last_name": "B", "phone": "1" * 500}),
        ("post", "/members", {"first_name": "A", "last_name": "B", "phone": 4915123456789}),
        ("post", "/members", {"first_name": ["A"], "last_name": "B"}),
        ("post", "/members", {"first_name": "A", "last_name": "B", "club_id": 2}),
        ("post", "/members", {"first_name": "A", "last_name": "B", "email_consent": True}),
        ("post", "/members", {"first_name": "A", "last_name": "B", "birth_date": "31.12.1990"}),
        ("post", "/members", {"first_name": "A", "last_name": "B", "gender": "robot"}),
        ("post", "/members", {"first_name": "A", "last_name": "B", "card": "A" * 200}),
        ("post", "/members", {"first_name": "A", "last_name": "B", "consents": {"fax": True}}),
        ("post", "/members", {"first_name": "A", "last_name": "B", "different_person": "maybe"}),
        ("post", "/members", {"last_name": "B"}),
        ("post", "/members", []),
        ("patch", m, {"email": NUL}),
        ("patch", m, {"last_name": ""}),
        ("patch", m, {"birth_date": "1066-10-14"}),
        ("patch", m, {"id": 5}),
        ("post", f"{m}/cards", {"code": NUL}),
        ("post", f"{m}/cards", {"code": 12345}),
        ("post", f"{m}/cards", {"member_id": member_id, "code": "X1"}),
        ("post", f"{c}/block", {"reason": NUL}),
        ("post", f"{c}/block", {"reason": "r" * 201}),
        ("post", f"{c}/block", {}),
        ("post", f"{c}/replace", {"new_code": "ÜBER"}),
        ("post", f"{c}/replace", {"new_code": None}),
        ("post", f"{m}/consents", {"channel": "sms", "granted": True, "source": NUL}),
        ("post", f"{m}/consents", {"channel": None, "granted": True, "source": "x"}),
        ("post", f"{m}/notes", {"text": NUL}),
        ("post", f"{m}/notes", {"text": 42}),
        ("post", f"{m}/notes", {"text": "hi", "staff_id": 1}),
    ]


def test_bad_bodies_are_refused_with_a_message_and_change_nothing(desk, anna, session):
    card_id = anna["cards"][0]["id"]
    for method, path, body in write_requests(anna["id"], card_id):
        r = getattr(desk, method)(path, body)
        assert r.status_code == 422, (method, path, body, r.status_code, r.text)
        payload = r.json()
        assert payload["error"] and payload["message"], (path, body)
    member = desk.get(f"/members/{anna['id']}").json()
    assert member["name"] == "Anna Schmidt" and member["cards"][0]["status"] == "active"
    assert session.scalar(select(func.count()).select_from(Member)) == 1
    assert session.scalar(select(func.count()).select_from(Card)) == 1
    assert session.scalar(select(func.count()).select_from(Consent)) == 0
    assert session.scalar(select(func.count()).select_from(MemberNote)) == 0


def test_a_body_that_is_not_json_is_refused(desk, anna):
    r = desk.client.post("/api/v1/members", content=b"first_name=Anna",
                         headers=desk.headers | {"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["message"]
    r = desk.client.post("/api/v1/members", content=b'{"first_name": "A\\ud800", "last_name": "B"}',
                         headers=desk.headers | {"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "first_name"


@pytest.mark.parametrize("bad_id", HUGE + ["abc", "1.5"])
def test_out_of_range_or_malformed_ids_are_4xx(desk, bad_id):
    requests = [
        ("get", f"/members/{bad_id}", None),
        ("patch", f"/members/{bad_id}", {"first_name": "X"}),
        ("post", f"/members/{bad_id}/cards", {"code": "X1"}),
        ("get", f"/members/{bad_id}/consents", None),
        ("post", f"/members/{bad_id}/consents", {"channel": "sms", "granted": True, "source": "x"}),
        ("get", f"/members/{bad_id}/notes", None),
        ("post", f"/members/{bad_id}/notes", {"text": "hi"}),
        ("post", f"/cards/{bad_id}/block", {"reason": "lost"}),
        ("post", f"/cards/{bad_id}/replace", {"new_code": "X2"}),
    ]
    for method, path, body in requests:
        r = getattr(desk, method)(path, body) if body is not None else desk.get(path)
        assert r.status_code in (404, 422), (path, r.status_code)
        assert r.json()["message"]


def test_the_largest_possible_id_is_simply_not_found(desk):
    r = desk.get(f"/members/{2**63 - 1}")
    assert r.status_code == 404 and r.json()["error"] == "member_not_found"
