"""Cancelling a contract online (§312k BGB): a clearly labelled page reachable without signing in,
identification by member number and email or phone, the cancellation recorded through the dues
service with the end from the notice period, the confirmation with the end date sent at once
(read from the local SMTP server), the same answer whatever matched, desk tasks for what a
person must look at; and the same for a signed-in member."""
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.core.i18n import day
from app.crm.models import Interaction, Task
from app.dues.contracts import cancel_end
from app.dues.models import Contract, Notice
from app.memberapp import cancel
from app.memberapp.models import MemberCancellation
from app.memberships.models import Membership
from app.memberships.rules import add_months
from app.web.member_kit import MEMBER_COOKIE
from tests.memberapp.conftest import csrf_of, emails_to, post_form

ANNA = "anna.berg@example.org"


def _anna_with_contract(gym, **plan):
    anna = gym.member("Anna", "Berg", email=ANNA, phone="+4915112345678")
    contract = gym.contract(anna, gym.recurring_plan(**plan)["id"])
    return anna, contract


def _declare(client, **fields):
    page = client.get("/app/cancel")
    assert page.status_code == 200
    data = {"kind": "ordinary", "reason": ""} | fields
    return client.post("/app/cancel", data=data | {"csrf_token": csrf_of(page.text)})


def _contract(gym, contract_id: int) -> Contract:
    with gym.db.sessionmaker() as s:
        return s.get(Contract, contract_id)


def test_the_page_is_labelled_and_reachable_without_signing_in(client, gym):
    for path in ("/app/cancel", "/app/sign-in"):
        page = client.get(path, headers={"Accept-Language": "de"})
        assert page.status_code == 200
        assert '<a class="cancel-link" href="/app/cancel">Verträge hier kündigen</a>' in page.text
    form = client.get("/app/cancel", headers={"Accept-Language": "de"}).text
    assert "Jetzt kündigen" in form and "Mitgliedsnummer" in form
    assert "Ordentliche Kündigung zum nächstmöglichen Zeitpunkt" in form


def test_a_member_cancels_without_signing_in_and_gets_the_end_date_at_once(
        client, gym, smtp, clock):
    anna, sold = _anna_with_contract(gym)
    today = gym.today
    answer = _declare(client, member_number=str(anna), contact=" Anna.Berg@example.org ")
    assert answer.status_code == 200
    assert "Cancellation received" in answer.text and "we have sent the confirmation" in answer.text
    ends = add_months(today, 12) - timedelta(days=1)  # 1 month's notice inside 12 months minimum
    contract = _contract(gym, sold["id"])
    assert contract.ends_on == ends == cancel_end(contract, today)
    assert (contract.cancel_received_on, contract.cancel_channel, contract.cancelled_by) == (
        today, "online", None)
    assert gym.scalar(select(Membership.end_date).where(
        Membership.id == contract.membership_id)) == ends
    [email] = emails_to(smtp, ANNA)  # sent at once, not by the next notices job
    assert email["Subject"] == f"Riverside Fitness: your membership ends on {day('en', ends)}"
    body = email.get_body(("plain",)).get_content()
    assert f"on {day('en', today)} at " in body and "(Europe/Berlin)" in body
    assert f"The contract ends on {day('en', ends)}" in body
    assert gym.scalar(select(Notice.sent_at).where(Notice.kind == "cancellation")) is not None
    [row] = gym.scalars(select(MemberCancellation))
    assert (row.member_id, row.contract_id, row.outcome, row.ends_on, row.signed_in) == (
        anna, sold["id"], "cancelled", ends, False)
    [entry] = gym.scalars(select(Interaction).where(Interaction.kind == "contract_cancelled"))
    assert entry.member_id == anna and entry.channel == "app"
    assert f"Flex 12 ends on {ends.isoformat()}" in entry.summary
    assert ends.isoformat() not in answer.text  # the page says nothing about who matched


def test_the_confirmation_is_in_the_language_the_member_cancelled_in(client, gym, smtp):
    anna, sold = _anna_with_contract(gym)
    page = client.get("/app/cancel", headers={"Accept-Language": "de-DE,de;q=0.9"})
    answer = client.post("/app/cancel", headers={"Accept-Language": "de-DE,de;q=0.9"}, data={
        "kind": "ordinary", "reason": "", "member_number": str(anna), "contact": ANNA,
        "csrf_token": csrf_of(page.text)})
    assert answer.status_code == 200
    ends = _contract(gym, sold["id"]).ends_on
    [email] = emails_to(smtp, ANNA)
    assert email["Subject"] == (f"Riverside Fitness: Ihre Mitgliedschaft endet am "
                                f"{ends:%d.%m.%Y}")
    body = email.get_body(("plain",)).get_content()
    assert f"Der Vertrag endet am {ends:%d.%m.%Y}" in body and " Uhr (Europe/Berlin)" in body


def test_the_answer_is_the_same_whatever_matched(client, gym, smtp):
    anna, sold = _anna_with_contract(gym)
    prepaid = gym.member("Bert", "Prepaid", email="bert@example.org")
    gym.membership(prepaid)
    answers = {
        "match": _declare(client, member_number=str(anna), contact="+49 151 12345678"),
        "wrong contact": _declare(client, member_number=str(anna), contact="x@example.org"),
        "nobody": _declare(client, member_number="999999", contact="x@example.org"),
        "no contract": _declare(client, member_number=str(prepaid), contact="bert@example.org"),
    }

    def shown(r) -> str:  # the page without the parts that echo what was typed and when
        body = r.text[r.text.index("<h1"):r.text.index("</section>")]
        return body[:body.index("<dl")] + body[body.index("</dl>"):]
    assert all(a.status_code == 200 for a in answers.values())
    assert len({shown(a) for a in answers.values()}) == 1
    assert _contract(gym, sold["id"]).ends_on is not None  # the phone matched: cancelled
    outcomes = [r.outcome for r in gym.scalars(select(MemberCancellation)
                                               .order_by(MemberCancellation.id))]
    assert outcomes == ["cancelled", "not_matched", "not_matched", "no_contract"]
    tasks = {t.title: t for t in gym.scalars(select(Task))}
    assert set(tasks) == {"An online cancellation could not be matched to a member",
                          "Answer Bert Prepaid's cancellation from the member app"}
    unmatched = gym.scalars(select(Task).where(Task.member_id.is_(None)))
    assert len(unmatched) == 2  # the number named Anna; the unknown one: the only club's desk
    assert all(t.assignee_role == "front_desk" for t in unmatched)
    assert any("'x@example.org'" in t.details for t in unmatched)


def test_an_extraordinary_cancellation_needs_a_reason_and_goes_to_the_desk(client, gym, smtp):
    anna, sold = _anna_with_contract(gym)
    missing = _declare(client, kind="extraordinary", member_number=str(anna), contact=ANNA)
    assert missing.status_code == 422 and "give the reason" in missing.text
    assert _contract(gym, sold["id"]).ends_on is None
    answer = _declare(client, kind="extraordinary", reason="Moved to Hamburg for work",
                      member_number=str(anna), contact=ANNA)
    assert answer.status_code == 200 and "checks the reason you gave" in answer.text
    assert _contract(gym, sold["id"]).ends_on is not None  # meanwhile an ordinary one
    [task] = gym.scalars(select(Task))
    assert task.member_id == anna and task.title.startswith("Decide on Anna Berg's extraordinary")
    assert "Moved to Hamburg for work" in task.details


def test_declarations_are_throttled_per_member_number(client, gym):
    anna, _sold = _anna_with_contract(gym)
    for _ in range(cancel.NUMBER_LIMIT):
        assert _declare(client, member_number="12345", contact="x@example.org").status_code == 200
    over = _declare(client, member_number="12345", contact="x@example.org")
    assert over.status_code == 429 and "Too many attempts" in over.text
    assert _declare(client, member_number=str(anna), contact=ANNA).status_code == 200


def test_the_cancel_form_needs_its_csrf_token(client, gym):
    anna, sold = _anna_with_contract(gym)
    client.get("/app/cancel")
    r = client.post("/app/cancel", data={"member_number": str(anna), "contact": ANNA,
                                         "kind": "ordinary"})
    assert r.status_code == 403 and "expired" in r.text
    assert _contract(gym, sold["id"]).ends_on is None


def test_a_signed_in_member_cancels_their_own_contract_and_sees_the_end(
        client, gym, smtp, world):
    anna, sold = _anna_with_contract(gym)
    bert = gym.member("Bert", "Other", email="bert@example.org")
    other = gym.contract(bert, gym.recurring_plan(name="Flex B")["id"])
    client.cookies.set(MEMBER_COOKIE, world.app_session(anna), path="/app")
    home = client.get("/app").text
    assert 'href="/app/cancel">Cancel contract here' in home
    page = client.get("/app/cancel").text
    assert f'data-cancel-contract="{sold["id"]}"' in page
    assert f'data-cancel-contract="{other["id"]}"' not in page
    ends = add_months(gym.today, 12) - timedelta(days=1)
    assert f"cancelled today, it ends on {ends.day} " in page

    theirs = post_form(client, "/app/cancel", "/app/cancel/contract",
                       {"contract_id": other["id"], "kind": "ordinary"},
                       follow_redirects=False)
    assert theirs.status_code == 303  # back, with "This contract cannot be cancelled"
    assert "cannot be cancelled" in client.get(theirs.headers["location"]).text
    assert _contract(gym, other["id"]).ends_on is None  # another member's: untouched
    mine = post_form(client, "/app/cancel", "/app/cancel/contract",
                     {"contract_id": sold["id"], "kind": "ordinary"})
    assert mine.status_code == 200
    assert "Flex 12</strong>: ends on" in mine.text
    assert _contract(gym, sold["id"]).ends_on == ends
    assert len(emails_to(smtp, ANNA)) == 1
    [row] = gym.scalars(select(MemberCancellation))
    assert row.signed_in and row.member_number is None and row.outcome == "cancelled"
    assert "You have no running contract" in client.get("/app/cancel").text


def test_without_an_email_address_the_desk_confirms_in_writing(client, gym, smtp):
    carl = gym.member("Carl", "Nomail", email=None, phone="+4915199887766")
    sold = gym.contract(carl, gym.recurring_plan()["id"])
    answer = _declare(client, member_number=str(carl), contact="0151 99887766")
    assert answer.status_code == 200
    assert _contract(gym, sold["id"]).ends_on is not None
    assert smtp.messages == []
    [task] = gym.scalars(select(Task))
    assert task.member_id == carl and task.title == "Confirm Carl Nomail's cancellation in writing"


def test_the_same_declaration_twice_at_once_cancels_once_and_answers_both(gym, db, settings):
    """Two taps on "Cancel now" (or two tabs) in the same instant: one cancellation, one
    confirmation, and both get the same receipt page — never an error that tells them more."""
    if not db.is_postgres:
        pytest.skip("row locks are a PostgreSQL matter (SQLite has one writer at a time)")
    anna, sold = _anna_with_contract(gym)
    barrier, outcomes = threading.Barrier(2), []

    def declare():
        barrier.wait()
        try:
            outcomes.append(cancel.cancel_without_sign_in(
                db.sessionmaker, settings=settings, member_number=str(anna), contact=ANNA,
                kind="ordinary", reason=None, address=None))
        except Exception as exc:  # noqa: BLE001 - the assertion below names it
            outcomes.append(exc)

    threads = [threading.Thread(target=declare) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [type(o).__name__ for o in outcomes] == ["Receipt", "Receipt"], outcomes
    assert sorted(r.outcome for r in gym.scalars(select(MemberCancellation))) == [
        "already_cancelled", "cancelled"]
    assert _contract(gym, sold["id"]).ends_on is not None
    assert len(gym.scalars(select(Notice).where(Notice.kind == "cancellation"))) == 1
