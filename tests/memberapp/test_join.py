"""Joining online (/app/join) and renewing (/app/renew): the plans the club sells online, the
details, the contract's terms shown and signed (a typed name and "I accept"), the contract sold
through the dues service (paid at the desk), the signature kept, the desk's task, the timeline,
the confirmation email (read from the local SMTP server); an open lead won; an address already
registered making no second member (and the same answer); a form sent twice signing once; bad
input answered with words and nothing written; a plan not sold online not found."""
import re
from datetime import date

from sqlalchemy import select

from app.billing.models import Sale
from app.crm.models import Interaction, Lead, Task
from app.dues.models import Contract
from app.memberapp.models import MemberSignature
from app.members.models import Consent, Member
from app.memberships.models import Membership
from app.web.member_kit import MEMBER_COOKIE
from tests.memberapp.conftest import csrf_of, emails_to

ANNA = "anna.berg@example.org"
HIDDEN = re.compile(r'name="(key|shown|club_id)" value="([^"]*)"')
ERROR = re.compile(r'id="join-error">([^<]*)<')


def _online(gym, **plan) -> dict:
    """A recurring plan sold online (49.00 a month, 12 months minimum, 1 month's notice)."""
    sold = gym.recurring_plan(joining_fee="19.00", **plan)
    r = gym.client.patch("/api/v1/club/settings", json={"online_plans": [sold["id"]]},
                         headers=gym.manager.headers)
    assert r.status_code == 200, r.text
    return sold


def _form(client, path: str, lang: str | None = None) -> dict:
    page = client.get(path, headers={"Accept-Language": lang} if lang else {})
    assert page.status_code == 200, page.text
    return {"csrf_token": csrf_of(page.text)} | dict(HIDDEN.findall(page.text))


def _details(**changes) -> dict:
    return {"first_name": "Anna", "last_name": "Berg", "email": ANNA, "phone": "0151 12345678",
            "birth_date": "1990-04-02", "email_ok": "on", "typed_name": "anna  Berg",
            "accept": "on"} | changes


def _join(client, plan_id: int, form: dict | None = None, lang: str | None = None, **changes):
    form = form or _form(client, f"/app/join/{plan_id}", lang)
    return client.post(f"/app/join/{plan_id}", data=form | _details(**changes),
                       headers={"Accept-Language": lang} if lang else {})


def _counts(gym) -> tuple[int, ...]:
    return tuple(gym.count(model) for model in (Member, Contract, Membership, MemberSignature,
                                                Sale, Task))


def test_joining_signs_a_contract_paid_at_the_desk(client, gym, smtp, clock):
    plan = _online(gym)
    listing = client.get("/app/join")
    assert listing.status_code == 200 and f'data-online-plan="{plan["id"]}"' in listing.text
    form_page = client.get(f"/app/join/{plan['id']}")
    assert "Minimum term: 12 months" in form_page.text and "Joining fee: €19.00" in form_page.text
    answer = _join(client, plan["id"])
    assert answer.status_code == 200, answer.text
    assert f"We have sent an email to {ANNA}" in answer.text and "pending" in answer.text
    [member] = gym.scalars(select(Member).where(Member.email == ANNA))
    assert (member.first_name, member.phone, member.birth_date, member.source) == (
        "Anna", "+4915112345678", date(1990, 4, 2), "member_app")
    assert (member.email_consent, member.sms_consent) == (True, False)
    assert {(c.channel, c.granted, c.source) for c in gym.scalars(
        select(Consent).where(Consent.member_id == member.id))} == {
        ("email", True, "member_app"), ("sms", False, "member_app")}
    [contract] = gym.scalars(select(Contract).where(Contract.member_id == member.id))
    assert (contract.method, contract.starts_on, str(contract.price), str(contract.joining_fee)) \
        == ("desk", gym.today, "49.00", "19.00")
    [sig] = gym.scalars(select(MemberSignature))
    assert (sig.member_id, sig.plan_id, sig.contract_id, sig.kind, sig.status) == (
        member.id, plan["id"], contract.id, "join", "pending")
    assert sig.typed_name == "anna Berg" and sig.ip_address == "testclient"
    assert sig.signed_at is not None and sig.language == "en"
    assert sig.terms_text.startswith('Riverside Fitness: membership contract "Flex 12"')
    assert "Dues: €49.00 per month" in sig.terms_text and "Notice period: 1 month" in sig.terms_text
    task = gym.scalar(select(Task).where(Task.id == sig.task_id))
    assert task.member_id == member.id and "first payment" in task.title and "ID" in task.title
    [entry] = gym.scalars(select(Interaction).where(Interaction.kind == "joined_online"))
    assert entry.member_id == member.id and entry.channel == "app"
    assert "Flex 12" in entry.summary and "pending until paid at the desk" in entry.summary
    [email] = emails_to(smtp, ANNA)
    body = email.get_body(("plain",)).get_content()
    assert email["Subject"] == "Riverside Fitness: your contract — pending until paid at the desk"
    assert "Dues: €49.00 per month" in body and f"member number is {member.id}" in body
    assert "http://testserver/app/sign-in" in body


def test_the_page_and_the_email_speak_the_pages_language(client, gym, smtp):
    plan = _online(gym)
    answer = _join(client, plan["id"], lang="de")
    assert answer.status_code == 200 and "Vielen Dank" in answer.text
    [email] = emails_to(smtp, ANNA)
    assert email["Subject"] == "Riverside Fitness: Ihr Vertrag — aktiv nach Zahlung am Empfang"
    assert "Beitrag: 49,00\u00a0€ pro Monat" in email.get_body(("plain",)).get_content()
    assert gym.scalar(select(MemberSignature.language)) == "de"


def test_an_open_lead_is_the_person_joining_and_is_won(client, gym, smtp):
    plan = _online(gym)
    r = client.post("/api/v1/leads/manual", headers=gym.desk.headers, json={
        "first_name": "Anna", "last_name": "Berg", "email": ANNA, "source": "walk_in"})
    assert r.status_code == 201, r.text
    lead_member = r.json()["member_id"]
    assert _join(client, plan["id"]).status_code == 200  # the lead's address: the lead joins
    assert gym.count(Member) == 1  # no second record: the prospect joined
    lead = gym.scalar(select(Lead).where(Lead.member_id == lead_member))
    assert lead.stage == "won" and lead.won_membership_id is not None
    sig = gym.scalar(select(MemberSignature))
    assert (sig.member_id, sig.lead_id) == (lead_member, lead.id)
    assert gym.scalar(select(Member.email).where(Member.id == lead_member)) == ANNA
    assert len(emails_to(smtp, ANNA)) == 1


def test_a_lead_known_by_phone_only_is_not_whoever_types_the_number(client, gym, smtp):
    """Identity is the email address (what sign-in proves): a walk-in lead who left only a
    phone number is not taken over by a join with that number; the number is kept off the new
    record and the desk is asked to check."""
    plan = _online(gym)
    r = client.post("/api/v1/leads/manual", headers=gym.desk.headers, json={
        "first_name": "Anna", "last_name": "Berg", "phone": "+4915112345678",
        "source": "walk_in"})
    lead_member = r.json()["member_id"]
    assert _join(client, plan["id"]).status_code == 200  # Anna's details, +49 151 12345678
    joined = gym.scalar(select(Member).where(Member.email == ANNA))
    assert joined.id != lead_member and joined.phone is None
    assert gym.scalar(select(Lead.stage).where(Lead.member_id == lead_member)) != "won"
    task = gym.scalar(select(Task).where(Task.member_id == joined.id,
                                         Task.title.like("Check %mobile number%")))
    assert f"member #{lead_member}" in task.details
    assert [m["Subject"] for m in emails_to(smtp, ANNA)] == [
        "Riverside Fitness: your contract — pending until paid at the desk"]  # not "registered"


def test_a_registered_address_makes_no_second_member_and_gets_the_same_answer(
        client, gym, smtp):
    plan = _online(gym)
    gym.member("Anna", "Berg", email=ANNA)
    before = _counts(gym)
    answer = _join(client, plan["id"], first_name="Someone", typed_name="Someone Berg")
    assert answer.status_code == 200
    assert f"We have sent an email to {ANNA}" in answer.text  # as for a new member
    assert _counts(gym) == before
    [email] = emails_to(smtp, ANNA)
    assert email["Subject"] == "Riverside Fitness: you are registered with us already"
    assert "http://testserver/app/sign-in" in email.get_body(("plain",)).get_content()


def test_the_same_form_sent_twice_signs_once(client, gym, smtp):
    plan = _online(gym)
    form = _form(client, f"/app/join/{plan['id']}")
    first = _join(client, plan["id"], form=form)
    second = _join(client, plan["id"], form=form)
    assert first.status_code == second.status_code == 200
    assert "We have sent an email" in second.text
    assert (gym.count(Member), gym.count(Contract), gym.count(MemberSignature)) == (1, 1, 1)
    assert len(emails_to(smtp, ANNA)) == 1


def test_bad_input_is_answered_in_words_and_writes_nothing(client, gym):
    plan = _online(gym)
    before = _counts(gym)
    cases = [({"email": "not-an-email"}, "Please give a valid email address."),
             ({"first_name": "  "}, "Please give your first name."),
             ({"phone": "12"}, "Please check the mobile number"),
             ({"birth_date": ""}, "Please give your date of birth."),
             ({"accept": ""}, "Please tick"),
             ({"typed_name": "A. Berg"}, "Please type your full name as you gave it above."),
             ({"birth_date": gym.today.replace(year=gym.today.year - 16).isoformat()},
              "Under 18?")]
    for n, (changes, words) in enumerate(cases):
        answer = _join(client, plan["id"], **{"email": f"anna{n}@example.org"} | changes)
        assert answer.status_code == 422, (changes, answer.status_code)
        assert words in ERROR.search(answer.text).group(1), (changes, answer.text)
        assert 'value="Berg"' in answer.text  # what was typed stays in the form
    stale = _form(client, f"/app/join/{plan['id']}") | {"shown": "0" * 32}
    answer = _join(client, plan["id"], form=stale, email="anna9@example.org")
    assert answer.status_code == 409 and "The terms have changed" in answer.text
    assert _counts(gym) == before


def test_joining_is_throttled_like_signing_in(client, gym):
    plan = _online(gym)
    for _ in range(5):
        assert _join(client, plan["id"], accept="").status_code == 422
    answer = _join(client, plan["id"])
    assert answer.status_code == 429 and "Too many attempts" in answer.text
    assert gym.count(Member) == 0


def test_a_plan_not_sold_online_is_not_found(client, gym):
    _online(gym)
    other = gym.recurring_plan(name="Staff only")
    page = client.get(f"/app/join/{other['id']}")
    assert page.status_code == 404 and "This plan is not sold online." in page.text
    assert f'data-online-plan="{other["id"]}"' not in client.get("/app/join").text
    form = _form(client, "/app/sign-in")  # its CSRF token is the form cookie's
    form |= {"key": "k" * 24, "shown": "0" * 32, "club_id": gym.club.id}
    answer = client.post(f"/app/join/{other['id']}", data=form | _details(),
                         follow_redirects=False)
    assert answer.status_code == 303
    assert gym.count(Member) == 0 and gym.count(MemberSignature) == 0


def test_a_member_whose_membership_ends_renews_after_it(client, gym, smtp, world):
    plan = _online(gym)
    anna = gym.member("Anna", "Berg", email=ANNA)
    end = gym.day(20)
    world.membership(gym.club, anna, world.plan(gym.club), start=gym.day(-340), end=end)
    client.cookies.set(MEMBER_COOKIE, world.app_session(anna), path="/app")
    assert f'href="/app/renew/{plan["id"]}"' in client.get("/app/renew").text
    form = _form(client, f"/app/renew/{plan['id']}")
    answer = client.post(f"/app/renew/{plan['id']}",
                         data=form | {"typed_name": "Anna Berg", "accept": "on"})
    assert answer.status_code == 200, answer.text
    [contract] = gym.scalars(select(Contract).where(Contract.member_id == anna))
    assert contract.starts_on == date.fromordinal(end.toordinal() + 1)
    sig = gym.scalar(select(MemberSignature))
    assert (sig.kind, sig.member_id, sig.contract_id) == ("renew", anna, contract.id)
    assert gym.scalar(select(Interaction.summary).where(
        Interaction.kind == "joined_online")).startswith("Renewed online")
    again = client.get("/app/renew")
    assert "data-running" in again.text  # the contract runs on: nothing to renew
    assert len(emails_to(smtp, ANNA)) == 1


def test_the_same_form_sent_twice_at_once_signs_once(app, client, gym, smtp):
    """Two requests with one key at the same moment (a double tap): one member, one contract,
    both answered with the first signature."""
    from concurrent.futures import ThreadPoolExecutor

    from app.memberapp import join

    plan = _online(gym)
    form = _form(client, f"/app/join/{plan['id']}")
    details = join.Details("Anna", "Berg", ANNA, None, date(1990, 4, 2))
    signing = join.Signing("Anna Berg", True, form["key"], form["shown"])

    def sign(_n):
        return join.join(app.state.sessionmaker, settings=app.state.settings,
                         club_id=gym.club.id, plan_id=plan["id"], details=details,
                         signing=signing, address="203.0.113.9", lang="en")

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(sign, range(2)))
    assert answers[0].signature_id == answers[1].signature_id is not None
    assert (gym.count(Member), gym.count(Contract), gym.count(MemberSignature)) == (1, 1, 1)


def test_erasing_a_member_who_joined_online_blanks_the_signature(client, gym, smtp):
    plan = _online(gym)
    assert _join(client, plan["id"]).status_code == 200
    member = gym.scalar(select(Member.id).where(Member.email == ANNA))
    r = client.post(f"/api/v1/members/{member}/erase", headers=gym.manager.headers,
                    json={"reason": "asked at the desk", "confirm": True})
    assert r.status_code == 200, r.text
    sig = gym.scalar(select(MemberSignature))
    assert (sig.typed_name, sig.terms_text, sig.ip_address) == ("(erased)", "(erased)", None)
    assert sig.contract_id is not None and sig.signed_at is not None  # the fact stays
