"""Registering, reading and changing members at the front desk."""
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from app.core import clock
from app.core.actors import Role
from app.members.models import Consent, Member, MemberSearchTerm
from app.memberships.models import Membership, Plan


def test_front_desk_registers_a_member_and_reads_it_back(desk):
    created = desk.register("Anna", "Schmidt", email="anna@example.com", phone="+49 151 23456789",
                            birth_date="1990-04-01", gender="female", source="walk_in")
    r = desk.get(f"/members/{created['id']}")
    assert r.status_code == 200
    member = r.json()
    assert member["name"] == "Anna Schmidt"
    assert (member["email"], member["phone"]) == ("anna@example.com", "+4915123456789")
    assert (member["birth_date"], member["gender"], member["source"]) == (
        "1990-04-01", "female", "walk_in")
    assert member["cards"] == []
    assert member["consents"] == {"email": False, "sms": False}
    assert member["membership"]["status"] == "none"


def test_email_is_lower_cased_and_phone_stored_in_e164_read_in_the_club_region(desk, world, client):
    member = desk.register("Jörg", "Müller", email="  Joerg.Mueller@Example.COM ",
                           phone="0151 / 234 567-89")
    assert member["email"] == "joerg.mueller@example.com"
    assert member["phone"] == "+4915123456789"

    london = world.club("Thames Gym", timezone="Europe/London", phone_region="GB")
    staff = world.staff(london, Role.front_desk)
    r = client.post("/api/v1/members", headers=staff.headers,
                    json={"first_name": "Olivia", "last_name": "Smith", "phone": "020 7946 0958"})
    assert r.status_code == 201, r.text
    assert r.json()["phone"] == "+442079460958"


def test_search_columns_are_filled_from_name_and_phone(desk, session):
    created = desk.register("Zoë", "O'Brien-Müller", phone="+49 151 23456789")
    member = session.get(Member, created["id"])
    assert member.search_name == "zoe obrien muller"
    assert member.phone_rev == "98765432151" + "94"
    terms = set(session.scalars(select(MemberSearchTerm.term)
                                .where(MemberSearchTerm.member_id == member.id)))
    assert terms == {"zoe", "obrien", "muller"}


def test_an_invalid_email_is_a_422_naming_the_field(desk):
    r = desk.post("/members", {"first_name": "Anna", "last_name": "Schmidt", "email": "anna@"})
    assert r.status_code == 422
    body = r.json()
    assert body["details"][0]["field"] == "email"
    assert "email" in body["message"] and "valid email" in body["message"]


def test_an_invalid_phone_is_a_422_naming_the_field(desk):
    for phone in ("12", "call me maybe", "+49 151 2"):
        r = desk.post("/members", {"first_name": "Anna", "last_name": "Schmidt", "phone": phone})
        assert r.status_code == 422, phone
        body = r.json()
        assert body["details"][0]["field"] == "phone"
        assert "not a valid phone number" in body["message"]


def test_birth_dates_in_the_future_or_before_1900_are_refused(desk):
    tomorrow = (clock.now().date() + timedelta(days=2)).isoformat()
    for birth_date, hint in ((tomorrow, "future"), ("1899-12-31", "1900")):
        r = desk.post("/members", {"first_name": "A", "last_name": "B", "birth_date": birth_date})
        assert r.status_code == 422
        assert r.json()["details"][0]["field"] == "birth_date"
        assert hint in r.json()["message"]


def test_a_known_email_is_a_409_naming_the_existing_member(desk):
    anna = desk.register("Anna", "Schmidt", email="anna@example.com")
    r = desk.post("/members", {"first_name": "Anne", "last_name": "Schmitt",
                               "email": "ANNA@example.com"})
    assert r.status_code == 409
    body = r.json()
    assert body["error"] == "duplicate_member"
    assert body["details"] == {"member_id": anna["id"], "matched_on": "email"}
    assert "different_person" in body["message"]


def test_a_known_phone_in_another_format_is_a_duplicate_too(desk):
    anna = desk.register("Anna", "Schmidt", phone="+49 151 23456789")
    r = desk.post("/members", {"first_name": "Max", "last_name": "Schmidt",
                               "phone": "0151-2345-6789"})
    assert r.status_code == 409
    assert r.json()["details"] == {"member_id": anna["id"], "matched_on": "phone"}


def test_different_person_overrides_the_duplicate_check(desk, session):
    desk.register("Anna", "Schmidt", email="family@example.com")
    r = desk.post("/members", {"first_name": "Max", "last_name": "Schmidt",
                               "email": "family@example.com", "different_person": True})
    assert r.status_code == 201
    assert session.scalar(select(func.count()).select_from(Member)
                          .where(Member.email == "family@example.com")) == 2


def test_the_same_email_in_another_club_is_not_a_duplicate(desk, other_desk):
    desk.register("Anna", "Schmidt", email="anna@example.com")
    assert other_desk.post("/members", {"first_name": "Anna", "last_name": "Schmidt",
                                        "email": "anna@example.com"}).status_code == 201


def test_a_card_can_be_issued_on_registration(desk):
    member = desk.register("Anna", "Schmidt", card=" 04 a2 3b 1c ")
    assert [(c["code"], c["status"]) for c in member["cards"]] == [("04A23B1C", "active")]


def test_a_taken_card_refuses_the_registration_and_writes_nothing(desk, session):
    desk.register("Anna", "Schmidt", card="04A23B1C")
    r = desk.post("/members", {"first_name": "Max", "last_name": "Mustermann", "card": "04a23b1c",
                               "consents": {"email": True}})
    assert r.status_code == 409 and r.json()["error"] == "card_taken"
    assert session.scalar(select(func.count()).select_from(Member)) == 1
    assert session.scalar(select(func.count()).select_from(Consent)) == 0


def test_consents_given_at_registration_are_recorded_with_source_and_staff(desk):
    member = desk.register("Anna", "Schmidt", email="anna@example.com",
                           consents={"email": True, "sms": False})
    assert member["consents"] == {"email": True, "sms": False}
    history = desk.get(f"/members/{member['id']}/consents").json()["items"]
    assert {(h["channel"], h["granted"], h["source"], h["staff_id"]) for h in history} == {
        ("email", True, "front_desk", desk.staff.user_id),
        ("sms", False, "front_desk", desk.staff.user_id)}


def _sell(session, club_id: int, member_id: int, start: date, months: int = 1,
          visit_limit: int | None = 10, visits_used: int = 3) -> None:
    plan = Plan(club_id=club_id, name="Monthly 10", duration_months=months,
                price=Decimal("39.00"), visit_limit=visit_limit, freeze_days=0,
                auto_renew=False, active=True)
    session.add(plan)
    session.flush()
    end = start + timedelta(days=30 * months - 1)
    session.add(Membership(club_id=club_id, member_id=member_id, plan_id=plan.id,
                           start_date=start, end_date=end, original_end_date=end,
                           price=Decimal("39.00"), visit_limit=visit_limit,
                           visits_used=visits_used))
    session.commit()


def test_the_member_page_shows_the_membership_of_the_day(desk, session):
    member = desk.register("Anna", "Schmidt")
    _sell(session, desk.club.id, member["id"], date(2026, 3, 1))
    r = desk.get(f"/members/{member['id']}", params={"as_of": "2026-03-21"})
    assert r.status_code == 200
    status = r.json()["membership"]
    assert status["status"] == "active" and status["plan_name"] == "Monthly 10"
    assert status["end_date"] == "2026-03-30"
    assert (status["visits_left"], status["days_left"]) == (7, 10)
    later = desk.get(f"/members/{member['id']}", params={"as_of": "2026-04-15"}).json()
    assert later["membership"]["status"] == "expired" and later["as_of"] == "2026-04-15"


def test_the_member_page_defaults_to_today_in_the_club(desk, session):
    member = desk.register("Anna", "Schmidt")
    assert desk.get(f"/members/{member['id']}").json()["membership"]["status"] == "none"
    from app.clubs.service import club_today

    today = club_today(desk.club)
    _sell(session, desk.club.id, member["id"], today - timedelta(days=5))
    read = desk.get(f"/members/{member['id']}").json()
    assert read["as_of"] == today.isoformat() and read["membership"]["status"] == "active"


def test_patch_changes_fields_with_the_same_normalisation(desk):
    member = desk.register("Anna", "Schmidt", email="anna@example.com", phone="+4915123456789")
    r = desk.patch(f"/members/{member['id']}", {"last_name": "Weber",
                                                "email": "A.Weber@Example.com",
                                                "phone": "0170 1234567"})
    assert r.status_code == 200, r.text
    changed = r.json()
    assert changed["name"] == "Anna Weber"
    assert (changed["email"], changed["phone"]) == ("a.weber@example.com", "+491701234567")
    cleared = desk.patch(f"/members/{member['id']}", {"phone": None, "gender": "diverse"}).json()
    assert cleared["phone"] is None and cleared["gender"] == "diverse"
    assert cleared["email"] == "a.weber@example.com"


def test_a_renamed_member_is_found_by_the_new_name_only(desk):
    member = desk.register("Anna", "Schmidt")
    desk.patch(f"/members/{member['id']}", {"last_name": "Weber"})
    assert [i["id"] for i in desk.search("weber")["items"]] == [member["id"]]
    assert desk.search("schmidt")["total"] == 0


def test_patch_applies_the_duplicate_rule(desk):
    anna = desk.register("Anna", "Schmidt", email="anna@example.com")
    max_ = desk.register("Max", "Schmidt", phone="+4915123456789")
    r = desk.patch(f"/members/{max_['id']}", {"email": "anna@example.com"})
    assert r.status_code == 409
    assert r.json()["details"] == {"member_id": anna["id"], "matched_on": "email"}
    assert desk.get(f"/members/{max_['id']}").json()["email"] is None
    r = desk.patch(f"/members/{max_['id']}", {"email": "anna@example.com",
                                              "different_person": True})
    assert r.status_code == 200 and r.json()["email"] == "anna@example.com"
    # keeping one's own email is never a duplicate of oneself
    assert desk.patch(f"/members/{anna['id']}", {"email": "anna@example.com"}).status_code == 200


def test_patch_refuses_invalid_values_and_removing_a_name(desk):
    member = desk.register("Anna", "Schmidt")
    r = desk.patch(f"/members/{member['id']}", {"phone": "123"})
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "phone"
    r = desk.patch(f"/members/{member['id']}", {"first_name": None})
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "first_name"
    r = desk.patch(f"/members/{member['id']}", {"card": "04A2"})
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "card"
    assert desk.get(f"/members/{member['id']}").json()["name"] == "Anna Schmidt"


def test_another_clubs_member_is_not_found_like_a_missing_one(desk, other_desk):
    theirs = other_desk.register("Olga", "Ivanova")
    missing = desk.get("/members/999999")
    assert missing.status_code == 404
    for r in (desk.get(f"/members/{theirs['id']}"),
              desk.patch(f"/members/{theirs['id']}", {"first_name": "Hacked"}),
              desk.post(f"/members/{theirs['id']}/cards", {"code": "ABC123"}),
              desk.post(f"/members/{theirs['id']}/notes", {"text": "hi"}),
              desk.get(f"/members/{theirs['id']}/notes"),
              desk.post(f"/members/{theirs['id']}/consents",
                        {"channel": "sms", "granted": True, "source": "form"}),
              desk.get(f"/members/{theirs['id']}/consents")):
        assert r.status_code == 404
        assert r.json() == missing.json()
    assert other_desk.get(f"/members/{theirs['id']}").json()["first_name"] == "Olga"


def test_a_trainer_reads_members_but_cannot_register_or_change_them(client, world, desk):
    member = desk.register("Anna", "Schmidt")
    trainer = world.staff(desk.club, Role.trainer)
    assert client.get(f"/api/v1/members/{member['id']}", headers=trainer.headers).status_code == 200
    assert client.get("/api/v1/members", params={"q": "anna"},
                      headers=trainer.headers).json()["total"] == 1
    r = client.post("/api/v1/members", json={"first_name": "X", "last_name": "Y"},
                    headers=trainer.headers)
    assert r.status_code == 403 and r.json()["error"] == "forbidden_role"
    r = client.patch(f"/api/v1/members/{member['id']}", json={"first_name": "X"},
                     headers=trainer.headers)
    assert r.status_code == 403


def test_a_device_key_cannot_read_members(client, world, desk):
    member = desk.register("Anna", "Schmidt")
    device = world.device(desk.club)
    for path in (f"/api/v1/members/{member['id']}", "/api/v1/members?q=anna"):
        r = client.get(path, headers=device.headers)
        assert r.status_code == 401 and r.json()["error"] == "not_authenticated"


def test_requests_without_a_login_are_refused(client):
    assert client.get("/api/v1/members").status_code == 401
    r = client.post("/api/v1/members", json={"first_name": "A", "last_name": "B"})
    assert r.status_code == 401
