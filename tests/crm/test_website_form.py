"""The website's enquiry form: API keys, validation, idempotency and the database rate limit."""
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.core import ratelimit
from app.core.actors import Role
from app.crm import website
from app.crm.models import Interaction, Lead, Task, WebsiteSubmission
from app.members.models import Consent, Member

FORM = {"first_name": "Mia", "last_name": "Wolf", "email": "Mia.Wolf@Example.org",
        "phone": "0151 2345 6789", "message": "Do you have a sauna?", "consent_email": True,
        "utm_source": "google", "utm_medium": "cpc", "utm_campaign": "spring"}


def _key(client, manager, name="www.example-gym.com") -> str:
    r = client.post("/api/v1/website-keys", headers=manager.headers, json={"name": name})
    assert r.status_code == 201, r.text
    assert r.json()["key"].startswith("wk_")
    return r.json()["key"]


def _submit(client, key, **changes):
    body = {k: v for k, v in (FORM | changes).items() if v is not ...}
    return client.post("/api/v1/leads", headers={"X-Api-Key": key}, json=body)


def test_a_website_enquiry_becomes_a_lead_with_consent_and_campaign(client, world, session):
    club = world.club()
    manager, desk = world.staff(club, Role.manager), world.staff(club, Role.front_desk)
    key = _key(client, manager)
    r = _submit(client, key, form_id="form-1")
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "received"
    [lead] = client.get("/api/v1/leads", headers=desk.headers).json()["items"]
    assert (lead["stage"], lead["source"], lead["name"]) == ("new", "website", "Mia Wolf")
    assert (lead["email"], lead["phone"]) == ("mia.wolf@example.org", "+4915123456789")
    assert (lead["utm_source"], lead["utm_medium"], lead["utm_campaign"]) == (
        "google", "cpc", "spring")
    session.rollback()
    member = session.get(Member, lead["member_id"])
    assert (member.email_consent, member.sms_consent, member.source) == (True, False, "website")
    consents = session.execute(select(Consent.channel, Consent.granted, Consent.source)
                               .where(Consent.member_id == member.id)
                               .order_by(Consent.channel)).all()
    assert [tuple(c) for c in consents] == [("email", True, "website_form"),
                                            ("sms", False, "website_form")]
    session.rollback()
    timeline = client.get(f"/api/v1/members/{lead['member_id']}/timeline?kind=website_form",
                          headers=desk.headers).json()["items"]
    assert [i["summary"] for i in timeline] == ["Website form: Do you have a sauna?"]


def test_the_same_form_twice_is_one_lead_and_a_known_person_gets_no_new_record(client, world,
                                                                                 session):
    club = world.club()
    manager, desk = world.staff(club, Role.manager), world.staff(club, Role.front_desk)
    key = _key(client, manager)
    first = _submit(client, key, form_id="abc-123")
    again = _submit(client, key, form_id="abc-123")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    # the same person again, by phone only, with SMS consent: no new member, lead refreshed
    r = _submit(client, key, form_id="abc-124", email=None, phone="+49 151 23456789",
                consent_email=False, consent_sms=True, message="Still interested",
                utm_campaign="summer")
    assert r.status_code == 201 and r.json()["id"] != first.json()["id"]
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Member)) == 1
    assert session.scalar(select(func.count()).select_from(Lead)) == 1
    assert session.scalar(select(func.count()).select_from(WebsiteSubmission)) == 2
    member = session.scalar(select(Member))
    lead = session.scalar(select(Lead))
    # an unticked box withdraws nothing, and a ticked one grants nothing to a known person:
    # the desk gets a task to confirm it with them
    assert member.email_consent and not member.sms_consent
    [task] = session.scalars(select(Task).where(Task.member_id == member.id))
    assert (task.kind, task.assignee_role, task.status) == ("follow_up", "front_desk", "open")
    assert task.title == "Website form asked to receive SMS again (they had said no) — confirm with them"
    assert lead.utm_campaign == "summer"
    assert session.scalar(select(func.count()).select_from(Interaction).where(
        Interaction.kind == "website_form")) == 2
    # a lost lead who enquires again is not reopened by the anonymous form: a task says so
    lead_id = lead.id
    session.rollback()
    client.post(f"/api/v1/leads/{lead_id}/stage", headers=desk.headers,
                json={"stage": "lost", "lost_reason": "no_response"})
    assert _submit(client, key).status_code == 201
    kept = client.get(f"/api/v1/leads/{lead_id}", headers=desk.headers).json()
    assert kept["stage"] == "lost"
    assert [h["to_stage"] for h in kept["history"]] == ["new", "lost"]
    titles = [t["title"] for t in client.get(
        f"/api/v1/tasks?member_id={kept['member_id']}", headers=desk.headers).json()["items"]]
    assert "Website form asked to be contacted again (their lead was lost) — confirm with them" \
        in titles


def test_the_form_never_switches_a_withdrawn_consent_back_on(client, world, session):
    """Issue 16, item 5: a member withdrew email consent; the anonymous form with their email and
    consent_email true leaves it withdrawn and asks the desk to confirm instead."""
    club = world.club()
    manager, desk = world.staff(club, Role.manager), world.staff(club, Role.front_desk)
    key = _key(client, manager)
    r = client.post("/api/v1/members", headers=desk.headers, json={
        "first_name": "Zoë", "last_name": "Werner", "email": "zoe@example.org",
        "consents": {"email": True}})
    assert r.status_code == 201, r.text
    member_id = r.json()["id"]
    r = client.post(f"/api/v1/members/{member_id}/consents", headers=desk.headers,
                    json={"channel": "email", "granted": False, "source": "member asked"})
    assert r.status_code in (200, 201), r.text
    for form_id in ("w-1", "w-2"):  # twice: still one task for the desk
        r = _submit(client, key, email="zoe@example.org", phone=None, consent_email=True,
                    form_id=form_id)
        assert r.status_code == 201, r.text
    member = client.get(f"/api/v1/members/{member_id}", headers=desk.headers).json()
    assert member["consents"]["email"] is False
    session.rollback()
    consents = session.execute(select(Consent.granted, Consent.source)
                               .where(Consent.member_id == member_id, Consent.channel == "email")
                               .order_by(Consent.id)).all()
    assert [tuple(c) for c in consents] == [(True, consents[0].source), (False, "member asked")]
    assert "website_form" not in {c.source for c in consents}
    session.rollback()
    tasks = client.get("/api/v1/tasks/today", headers=desk.headers).json()
    asked = [t for t in tasks if t["member_id"] == member_id]
    assert [t["title"] for t in asked] == [
        "Website form asked to receive email again (they had said no) — confirm with them"]
    assert "nothing was changed" in asked[0]["details"]


def test_bad_input_is_refused_with_field_messages(client, world, session):
    club = world.club()
    key = _key(client, world.staff(club, Role.manager))
    cases = {
        "contact": {"email": None, "phone": None},
        "email": {"email": "mia@"},
        "first_name": {"first_name": "x" * 101},
        "message": {"message": "y" * 2001},
        "utm_campaign": {"utm_campaign": "z" * 101},
        "unknown": {"club_id": 7},
        "form_id": {"form_id": "has spaces"},
        "no name": {"first_name": ...},
    }
    for name, changes in cases.items():
        r = _submit(client, key, **changes)
        assert r.status_code == 422, (name, r.text)
        body = r.json()
        assert body["error"] == "validation_error" and body["message"].startswith(
            "Please check the input"), name
        assert body["details"] and all(d["message"] for d in body["details"])
    r = _submit(client, key, email=None, phone=None)
    assert "email address or a phone number" in r.json()["message"]
    r = _submit(client, key, email="mia@")
    assert r.json()["details"][0]["field"] == "email"
    r = _submit(client, key, phone="12")
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "phone"
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Member)) == 0
    assert session.scalar(select(func.count()).select_from(WebsiteSubmission)) == 0


def test_wrong_missing_revoked_and_staff_credentials_are_401(client, world):
    club = world.club()
    manager = world.staff(club, Role.manager)
    key = _key(client, manager)
    assert _submit(client, "wk_not-a-key").status_code == 401
    r = client.post("/api/v1/leads", json=FORM)
    assert r.status_code == 401 and r.json()["error"] == "invalid_api_key"
    r = client.post("/api/v1/leads", headers=manager.headers, json=FORM)  # a staff token
    assert r.status_code == 401
    device = world.device(club)
    assert client.post("/api/v1/leads", headers=device.headers, json=FORM).status_code == 401
    [listed] = client.get("/api/v1/website-keys", headers=manager.headers).json()
    assert "key" not in listed and listed["revoked_at"] is None
    r = client.post(f"/api/v1/website-keys/{listed['id']}/revoke", headers=manager.headers)
    assert r.status_code == 200 and r.json()["revoked_at"]
    r = _submit(client, key)
    assert r.status_code == 401 and "revoked" in r.json()["message"]
    desk = world.staff(club, Role.front_desk)
    assert client.get("/api/v1/website-keys", headers=desk.headers).status_code == 403
    other = world.staff(world.club("Other"), Role.manager)
    assert client.post(f"/api/v1/website-keys/{listed['id']}/revoke",
                       headers=other.headers).status_code == 404


def test_a_flood_is_refused_from_every_worker_because_it_is_counted_in_the_database(
        client, world, app, settings):
    from app.main import create_app

    club = world.club()
    key = _key(client, world.staff(club, Role.manager))
    answers = [_submit(client, key, email=f"p{i}@example.org", phone=None).status_code
               for i in range(website.IP_LIMIT)]
    assert answers.count(201) == website.IP_LIMIT
    r = _submit(client, key, email="one.more@example.org", phone=None)
    assert r.status_code == 429 and r.json()["error"] == "rate_limited"
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert "try again in" in r.json()["message"]
    # bad input and bad keys count too: a flood cannot get past by being malformed
    assert _submit(client, key, email=None, phone=None).status_code == 429
    assert _submit(client, "wk_wrong").status_code == 429
    # another worker process: a second app and client on the same database
    with TestClient(create_app(settings)) as second:
        r = _submit(second, key, email="elsewhere@example.org", phone=None)
        assert r.status_code == 429 and r.headers["Retry-After"]


def test_the_key_limit_holds_per_hour(client, world, db):
    from app.core import clock
    from app.core.db import transaction

    club = world.club()
    key = _key(client, world.staff(club, Role.manager))
    assert _submit(client, key).status_code == 201
    with transaction(db.sessionmaker) as s:  # the key has used its hour already
        from app.core.ratelimit import RateLimitBucket
        from app.crm.models import WebsiteKey
        key_id = s.scalar(select(WebsiteKey.id))
        s.query(RateLimitBucket).filter(RateLimitBucket.bucket == f"website-key:{key_id}") \
            .update({"hits": website.KEY_LIMIT})
    r = _submit(client, key, email="late@example.org", phone=None)
    assert r.status_code == 429 and "website key" in r.json()["message"]
    assert int(r.headers["Retry-After"]) <= 3600
    hits, left = 0, 0
    with transaction(db.sessionmaker) as s:
        hits, left = ratelimit.hit(s, bucket="test", window=website.IP_WINDOW, now=clock.now())
    assert hits == 1 and 1 <= left <= 60


def test_rate_limit_rows_of_ended_windows_are_deleted_so_many_addresses_do_not_grow_the_table(
        client, world, db, session, clock):
    """Issue 16: `rate_limit_buckets` only shrank per address, so many addresses grew it without
    bound. Every new window now deletes the rows of every window that has ended."""
    from datetime import timedelta

    from app.core.ratelimit import RateLimitBucket

    club = world.club()
    key = _key(client, world.staff(club, Role.manager))
    session.execute(RateLimitBucket.__table__.delete())  # the key's creation was not counted
    session.commit()

    def flood(count: int, offset: int) -> None:  # one request from each of `count` addresses
        for n in range(count):
            website.authenticate(db.sessionmaker, key=key, address=f"10.0.{offset}.{n}")

    def rows() -> int:
        count = session.scalar(select(func.count()).select_from(RateLimitBucket))
        session.rollback()  # no transaction left open: SQLite has one writer
        return count

    # at the start of an hour (windows are aligned to whole minutes and hours), so the flood of
    # 120 requests, however slow the machine, stays inside one minute's window
    now = clock.now()
    clock.set(now.replace(minute=0, second=1, microsecond=0) + timedelta(hours=1))
    flood(120, 1)
    assert rows() == 120 + 1  # 120 addresses' minute and the key's hour
    clock.advance(timedelta(minutes=2))  # every address's minute has ended; the key's hour not
    clock.set(clock.now().replace(second=1, microsecond=0))  # again at a minute's start
    flood(120, 2)
    assert rows() == 120 + 1  # this minute's addresses and the key's hour: no old minute
    clock.advance(timedelta(hours=2))
    assert _submit(client, key, email="later@example.org", phone=None).status_code == 201
    assert rows() == 2  # one address's minute and the key's new hour
    assert all(r.expires_at > clock.now() for r in session.scalars(select(RateLimitBucket)))
    session.rollback()
