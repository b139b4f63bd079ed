"""The demo club: a history that obeys the membership rules, on both backends, reproducibly."""
import hashlib
from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
import typer
from schwifty import IBAN
from sqlalchemy import and_, func, select
from typer.testing import CliRunner

from app.access.models import AccessEvent, Visit
from app.analytics import money
from app.billing.models import Payment, Sale, SaleLine
from app.clubs import service as clubs_service
from app.clubs.models import Club, Device
from app.demo.data import DEMO_PASSWORD, DEVICE_NAME
from app.demo.generator import DemoOptions, build_demo
from app.dues import invoicing, sepa_file
from app.dues.models import (
    Collection,
    CollectionBatch,
    Contract,
    DuesPayment,
    DuesSettings,
    DunningCase,
    Invoice,
    Mandate,
    Payer,
    StoredCard,
)
from app.members.models import Card, Consent, Member, MemberSearchTerm
from app.memberships import rules
from app.memberships.models import Freeze, Membership, Plan
from app.memberships.rules import Status

AS_OF = date(2026, 6, 15)
BERLIN = ZoneInfo("Europe/Berlin")



def _build(db, **kwargs):
    options = DemoOptions(**({"members": 120, "months": 12, "seed": 11, "as_of": AS_OF} | kwargs))
    return build_demo(db.sessionmaker, options)


def _local_day(instant: datetime) -> date:
    return instant.astimezone(BERLIN).date()


def test_visits_happen_only_on_days_the_membership_lets_the_member_in(db, session):
    result = _build(db)
    memberships = {m.id: m for m in session.scalars(select(Membership))}
    freezes = list(session.scalars(select(Freeze)))
    plans = {p.id: p for p in session.scalars(select(Plan))}
    visits = session.execute(select(Visit.member_id, Visit.membership_id, Visit.occurred_at)).all()
    assert len(visits) == result.counts["visits"] > 1000

    cutoff = datetime.combine(AS_OF + timedelta(days=1), time(0), tzinfo=BERLIN)
    per_member_day = Counter()
    for member_id, membership_id, occurred_at in visits:
        membership = memberships[membership_id]
        day = _local_day(occurred_at)
        assert membership.member_id == member_id
        assert rules.status_on(membership, freezes, day) is Status.active, (membership_id, day)
        plan = plans[membership.plan_id]
        if plan.access_start is not None:  # off-peak: inside the plan's hours
            assert plan.access_start <= occurred_at.astimezone(BERLIN).time() < plan.access_end
        assert occurred_at < cutoff
        per_member_day[(member_id, day)] += 1
    assert max(per_member_day.values()) == 1  # one entry a day: never an anti-passback case

    # the same through the SQL rule, day by day over a sample of days
    day = AS_OF - timedelta(days=300)
    while day <= AS_OF:
        start = datetime.combine(day, time(0), tzinfo=BERLIN)
        outside = session.scalar(
            select(func.count()).select_from(Visit)
            .join(Membership, Membership.id == Visit.membership_id)
            .where(Visit.occurred_at >= start, Visit.occurred_at < start + timedelta(days=1),
                   ~rules.active_on(day)))
        assert outside == 0, day
        day += timedelta(days=7)


def test_visits_used_is_the_count_of_visits_and_limits_hold(db, session):
    _build(db)
    counted = dict(session.execute(
        select(Visit.membership_id, func.count()).group_by(Visit.membership_id)).all())
    limited = 0
    for m in session.scalars(select(Membership)):
        assert m.visits_used == counted.get(m.id, 0), m.id
        if m.visit_limit is not None:
            limited += 1
            assert m.visits_used <= m.visit_limit
    assert limited > 0
    assert any(m.visits_used == m.visit_limit for m in session.scalars(
        select(Membership).where(Membership.visit_limit.is_not(None))))


def test_renewals_start_the_day_after_the_renewed_membership_ends(db, session):
    result = _build(db)
    by_id = {m.id: m for m in session.scalars(select(Membership))}
    renewals = [m for m in by_id.values() if m.renews_id is not None]
    assert len(renewals) == result.stats["renewals"] > 20
    for m in renewals:
        previous = by_id[m.renews_id]
        assert previous.member_id == m.member_id
        assert previous.cancelled_on is None
        assert m.start_date == previous.end_date + timedelta(days=1)
    assert len({m.renews_id for m in renewals}) == len(renewals)  # renewed once at most

    # no member holds two memberships on the same day (counting cancelled ones until cancelled)
    per_member = defaultdict(list)
    for m in by_id.values():
        last = (m.cancelled_on - timedelta(days=1)) if m.cancelled_on else m.end_date
        per_member[m.member_id].append((m.start_date, last))
    for spans in per_member.values():
        spans.sort()
        for (_, end), (start, _) in pairwise(spans):
            assert start > end

    # share renewed at each end (of those that ended by AS_OF, not cancelled): about 70%
    ended = [m for m in by_id.values() if m.end_date < AS_OF and m.cancelled_on is None]
    renewed = {m.renews_id for m in renewals}
    share = sum(m.id in renewed for m in ended) / len(ended)
    assert 0.55 <= share <= 0.85, share


def test_freezes_cancellations_and_sales_are_consistent(db, session):
    result = _build(db)
    plans = {p.id: p for p in session.scalars(select(Plan))}
    freezes = defaultdict(list)
    for f in session.scalars(select(Freeze)):
        freezes[f.membership_id].append(f)
    reasons = clubs_service.club_settings(session.get(Club, result.club_id)).cancellation_reasons
    for m in session.scalars(select(Membership)):
        plan = plans[m.plan_id]
        if plan.billing == "recurring":  # a contract's terms: test_the_demo_has_recurring_dues
            continue
        frozen = sum(rules.freeze_days(f) for f in freezes[m.id])
        assert m.end_date - m.original_end_date == timedelta(days=frozen)
        assert frozen <= plan.freeze_days
        assert m.original_end_date == rules.end_date_for(
            m.start_date, duration_days=plan.duration_days,
            duration_months=plan.duration_months)
        for f in freezes[m.id]:
            assert m.start_date <= f.start_date <= f.end_date <= m.end_date
            assert f.start_date <= AS_OF
            assert m.cancelled_on is None or f.end_date < m.cancelled_on
        if m.cancelled_on is not None:
            assert m.cancel_reason in reasons
            assert m.start_date < m.cancelled_on <= min(m.end_date, AS_OF)
        assert m.sale_id is not None

    # every membership was sold on a receipt with one membership line, paid in full
    lines = session.execute(
        select(SaleLine.item_id, SaleLine.amount, Sale.total, Sale.member_id,
               Membership.member_id, Membership.price)
        .join(Sale, Sale.id == SaleLine.sale_id)
        .join(Membership, and_(Membership.id == SaleLine.item_id,
                               Membership.sale_id == Sale.id))
        .where(SaleLine.kind == "membership")).all()
    assert len(lines) == result.counts["memberships"] == result.counts["sales"]
    for _item, amount, total, sale_member, member, price in lines:
        assert amount == total == price and sale_member == member
    paid = dict(session.execute(select(Payment.sale_id, func.sum(Payment.amount))
                                .where(Payment.kind == "payment").group_by(Payment.sale_id)).all())
    for sale in session.scalars(select(Sale)):  # a contract's receipt: 0.00, nothing paid
        assert paid.get(sale.id, 0) == sale.total
    refunds = session.execute(select(Payment.amount, Membership.refund_amount)
                              .join(Membership, Membership.sale_id == Payment.sale_id)
                              .where(Payment.kind == "refund")).all()
    assert all(amount == -refund for amount, refund in refunds)


def test_every_visit_has_its_allowed_device_event(db, session):
    result = _build(db)
    rows = session.execute(
        select(Visit, AccessEvent).join(AccessEvent, AccessEvent.id == Visit.access_event_id)
    ).all()
    assert len(rows) == result.counts["visits"] == result.counts["access_events"]
    cards = defaultdict(set)
    for member_id, code in session.execute(select(Card.member_id, Card.code)):
        cards[member_id].add(code)
    for visit, event in rows:
        assert event.allowed and event.reason == "ok" and event.source == "device"
        assert event.direction == "in" and event.device_id == result.device_id
        assert event.member_id == visit.member_id and event.membership_id == visit.membership_id
        assert event.occurred_at == visit.occurred_at <= event.received_at
        assert event.card_code in cards[visit.member_id]
        assert event.dedup_key.startswith(f"dev:{result.device_id}:")
    keys = session.scalars(select(AccessEvent.dedup_key)).all()
    assert len(set(keys)) == len(keys)


def test_the_check_in_decision_agrees_with_the_history(db, session):
    """Demo visits replayed through app.access at their own instant are let in; the day after a
    membership lapsed, the member is turned away."""
    from app.access import service as access_service

    as_of = clubs_service.club_today(Club(timezone="Europe/Berlin")) - timedelta(days=1)
    result = _build(db, months=6, as_of=as_of)  # recent: check_in refuses events > 1 year old
    club = session.get(Club, result.club_id)
    clubs_service.update_club_settings(session, club=club, changes={"anti_passback_minutes": 0})
    visits = session.execute(
        select(AccessEvent.card_code, Visit.occurred_at, Card.status, Card.blocked_at)
        .join(AccessEvent, AccessEvent.id == Visit.access_event_id)
        .join(Card, and_(Card.club_id == AccessEvent.club_id, Card.code == AccessEvent.card_code))
        .join(Membership, Membership.id == Visit.membership_id)
        .where(Membership.visit_limit.is_(None)).order_by(Visit.id)).all()
    assert len(visits) > 500
    for _card, occurred_at, status, blocked_at in visits:  # a lost card was used before it was
        assert status == "active" or blocked_at > occurred_at
    visits = [(card, at) for card, at, status, _ in visits if status == "active"]
    for i, (card, occurred_at) in enumerate(visits[::len(visits) // 150]):
        decision = access_service.check_in(
            session, club_id=club.id, occurred_at=occurred_at + timedelta(seconds=1),
            card_code=card, device_id=result.device_id, dedup_key=f"replay-{i}")
        assert (decision.allow, decision.reason) == (True, "ok"), (card, occurred_at, decision)

    renewed = set(session.scalars(select(Membership.renews_id)))
    lapsed = session.execute(
        select(Card.code, Membership.end_date)
        .join(Card, and_(Card.member_id == Membership.member_id, Card.status == "active"))
        .where(Membership.end_date < as_of, Membership.cancelled_on.is_(None),
               Membership.id.not_in([r for r in renewed if r is not None]))).all()
    turned_away = 0
    for i, (card, end) in enumerate(lapsed[:60]):
        noon = datetime.combine(end + timedelta(days=1), time(12), tzinfo=BERLIN)
        decision = access_service.check_in(session, club_id=club.id, occurred_at=noon,
                                           card_code=card, device_id=result.device_id,
                                           dedup_key=f"lapsed-{i}")
        if decision.reason != "membership_not_started":  # unless they came back that very day
            assert not decision.allow and decision.reason == "membership_expired", decision
            turned_away += 1
    assert turned_away > 5
    session.rollback()


def test_members_have_cards_contacts_and_consents_and_prospects_have_no_membership(db, session):
    result = _build(db)
    members = session.scalars(select(Member)).all()
    with_membership = set(session.scalars(select(Membership.member_id).distinct()))
    prospects = [m for m in members if m.id not in with_membership]
    assert len(prospects) == result.stats["prospects"] >= 3
    carded = set(session.scalars(select(Card.member_id).where(Card.status == "active")))
    assert with_membership <= carded and not carded & {p.id for p in prospects}
    emails = [m.email for m in members if m.email]
    phones = [m.phone for m in members if m.phone]
    assert len(set(emails)) == len(emails) and len(set(phones)) == len(phones)
    from app.members.schemas import MemberCreate
    from app.members.service import normalise_phone
    for m in members:
        if m.id in with_membership:
            assert m.email and m.phone and m.birth_date
        MemberCreate(first_name=m.first_name, last_name=m.last_name, email=m.email)
        if m.phone:
            assert normalise_phone(m.phone, region="DE") == m.phone
    consenting = {m.id for m in members if m.email_consent}
    granted = set(session.scalars(select(Consent.member_id).where(
        Consent.channel == "email", Consent.granted.is_(True))))
    assert consenting <= granted and len(consenting) > len(members) / 2


def test_search_columns_match_what_the_members_service_computes(db, session):
    """The generator writes search terms in bulk; reindexing must find nothing to change."""
    from app.members import service as members_service

    result = _build(db)
    columns = ("search_name", "phone_rev")
    before = session.execute(select(Member.id, *[getattr(Member, c) for c in columns])
                             .order_by(Member.id)).all()
    terms_before = sorted(session.execute(
        select(MemberSearchTerm.member_id, MemberSearchTerm.term)).all())
    members_service.reindex_search(session, club_id=result.club_id)
    session.flush()
    after = session.execute(select(Member.id, *[getattr(Member, c) for c in columns])
                            .order_by(Member.id)).all()
    terms_after = sorted(session.execute(
        select(MemberSearchTerm.member_id, MemberSearchTerm.term)).all())
    assert before == after and terms_before == terms_after and terms_before


def test_the_history_has_every_kind_of_story(db):
    stats = _build(db).stats
    for kind in ("renewals", "lapses", "returns", "freezes", "cancellations", "prospects",
                 "active_today", "pending"):
        assert stats[kind] > 0, kind


def _fingerprint(session) -> tuple:
    digest = hashlib.sha256()
    for row in session.execute(
            select(Member.first_name, Member.last_name, Member.email, Member.phone,
                   Member.birth_date, Member.created_at).order_by(Member.id)):
        digest.update(repr(tuple(row)).encode())
    for row in session.execute(
            select(Membership.start_date, Membership.end_date, Membership.visits_used,
                   Membership.cancelled_on, Membership.price, Plan.name)
            .join(Plan, Plan.id == Membership.plan_id).order_by(Membership.id)):
        digest.update(repr(tuple(row)).encode())
    for row in session.execute(select(Visit.occurred_at).order_by(Visit.id)):
        digest.update(repr(tuple(row)).encode())
    for query in (  # the recurring dues
            select(Contract.member_id, Contract.starts_on, Contract.price, Contract.method,
                   Contract.payer_relation, Contract.ends_on).order_by(Contract.id),
            select(Invoice.number, Invoice.issued_on, Invoice.due_on, Invoice.gross,
                   Invoice.method).order_by(Invoice.id),
            select(Collection.status, Collection.due_on, Collection.amount,
                   Collection.failure_code).order_by(Collection.id),
            select(Mandate.iban, Mandate.reference).order_by(Mandate.id),
            select(DunningCase.opened_on, DunningCase.closed_on, DunningCase.outcome)
            .order_by(DunningCase.id)):
        for row in session.execute(query):
            digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


def test_the_same_seed_builds_the_same_club(db, session):
    from tests.conftest import _empty_all_tables

    first = _build(db)
    first_print = _fingerprint(session)
    session.rollback()
    _empty_all_tables(db)
    second = _build(db)
    assert (second.counts, second.stats) == (first.counts, first.stats)
    assert _fingerprint(session) == first_print
    session.rollback()
    _empty_all_tables(db)
    other = _build(db, seed=12)
    assert _fingerprint(session) != first_print and other.counts != first.counts


def test_without_visits_the_rest_of_the_history_is_the_same(db):
    from tests.conftest import _empty_all_tables

    full = _build(db)
    _empty_all_tables(db)
    bare = _build(db, visits=False)
    assert bare.counts["visits"] == bare.counts["access_events"] == 0
    assert bare.counts["memberships"] == full.counts["memberships"]
    assert bare.counts["members"] == full.counts["members"]


def test_staff_sign_in_with_the_printed_password_and_the_device_key_works(db, client):
    result = _build(db, members=30, months=3)
    assert {s.role for s in result.staff} == {"owner", "manager", "front_desk", "trainer"}
    assert len(result.staff) == 7
    for staff in (result.staff[0], result.staff[-1]):  # owner and a trainer (argon2 is slow)
        r = client.post("/api/v1/auth/token",
                        data={"username": staff.email, "password": result.password})
        assert r.status_code == 200, r.text
        me = client.get("/api/v1/me",
                        headers={"Authorization": f"Bearer {r.json()['access_token']}"}).json()
        assert (me["club_id"], me["role"]) == (result.club_id, staff.role)
    assert result.password == DEMO_PASSWORD
    block = result.credentials_block()
    assert result.device_key in block and "owner@demo.fitclub" in block
    with db.sessionmaker() as s:
        device = clubs_service.authenticate_device(s, key=result.device_key)
        assert device.club_id == result.club_id
        assert s.get(Device, device.device_id).name == DEVICE_NAME


@pytest.fixture
def cli(db, monkeypatch):
    """The `fitclub` command with the demo registered, pointed at the test database."""
    from app.core.config import get_settings
    from app.demo.cli import register

    monkeypatch.setenv("DATABASE_URL", db.url)
    get_settings.cache_clear()
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        pass

    register(app)
    yield lambda *args: CliRunner().invoke(app, list(args))
    get_settings.cache_clear()


def test_the_command_builds_the_club_and_prints_credentials_that_work(cli, client):
    out = cli("demo", "--members", "40", "--months", "3", "--as-of", "2026-03-01")
    assert out.exit_code == 0, out.output
    assert "owner@demo.fitclub" in out.output and DEMO_PASSWORD in out.output
    key = next(line.split(": ", 1)[1] for line in out.output.splitlines()
               if "X-Device-Key:" in line)
    assert len(key) >= 40
    r = client.post("/api/v1/auth/token",
                    data={"username": "desk1@demo.fitclub", "password": DEMO_PASSWORD})
    assert r.status_code == 200, r.text

    again = cli("demo", "--if-empty")
    assert again.exit_code == 0 and "demo not built" in again.output
    assert "owner@demo.fitclub" in again.output
    refused = cli("demo", "--members", "40")
    assert refused.exit_code == 2


def test_if_empty_leaves_an_existing_club_alone(cli, world, session):
    world.club(name="Someone Else's Gym")
    out = cli("demo", "--if-empty")
    assert out.exit_code == 0 and "demo not built" in out.output
    assert session.scalar(select(func.count()).select_from(Member)) == 0


def test_rows_added_after_the_demo_get_new_ids(db, session):
    """The generator assigns ids itself; the sequences must continue after them."""
    from app.core import clock

    result = _build(db, members=40, months=3)
    last_member = session.scalar(select(func.max(Member.id)))
    last_event = session.scalar(select(func.max(AccessEvent.id)))
    member = Member(club_id=result.club_id, first_name="New", last_name="Person")
    event = AccessEvent(club_id=result.club_id, device_id=result.device_id, source="device",
                        allowed=False, reason="unknown_card", message="Card not recognised",
                        occurred_at=clock.now(), received_at=clock.now(), direction="in")
    session.add_all([member, event])
    session.flush()
    assert member.id > last_member and event.id > last_event
    session.rollback()


def test_several_demo_clubs_share_one_database(db, session):
    """A chain for the benchmarks (bench.chain): each club with its own staff domain."""
    first = _build(db, members=30, months=2, club_name="Club A", staff_domain="a.demo.fitclub")
    second = _build(db, members=30, months=2, seed=12, club_name="Club B",
                    staff_domain="b.demo.fitclub")
    assert first.club_id != second.club_id
    assert {s.email for s in second.staff} == {s.email.replace("@a.", "@b.")
                                               for s in first.staff}
    per_club = dict(session.execute(select(Member.club_id, func.count())
                                    .group_by(Member.club_id)).all())
    assert per_club == {first.club_id: 30, second.club_id: 30}


def test_the_demo_has_recurring_dues(db, session):
    """The owner opens the demo: members on direct-debit contracts for the last months, a
    household whose parent pays for two teenagers, mandates on valid IBANs and cards on file,
    and the real billing behind it — invoices, SEPA files, returned debits, dunning cases paid
    at the desk or written off — so the money figures have something to show."""
    result = _build(db)
    club = result.club_id
    settings = session.scalars(select(DuesSettings).where(DuesSettings.club_id == club)).one()
    assert settings.creditor_id == "DE98ZZZ09999999999" and IBAN(settings.creditor_iban)
    contracts = session.scalars(select(Contract).where(Contract.club_id == club)).all()
    assert len(contracts) == result.stats["contracts"] >= 10
    plans = {p.id: p for p in session.scalars(select(Plan))}
    memberships = {m.id: m for m in session.scalars(select(Membership))}
    assert {plans[memberships[c.membership_id].plan_id].billing_period
            for c in contracts} == {"month", "year"}
    assert {c.method for c in contracts} == {"sepa", "card", "desk"}
    for c in contracts:  # within the last six months, each a membership of its own
        assert AS_OF - timedelta(days=190) < c.starts_on and c.starts_on.day in (1, 15)
        assert memberships[c.membership_id].member_id == c.member_id

    # the household: a parent (not a member) pays for two minors, the second 10 % off
    households = [c for c in contracts if c.payer_relation == "parent"]
    assert len(households) == 2 and len({c.payer_id for c in households}) == 1
    parent = session.get(Payer, households[0].payer_id)
    assert parent.member_id is None
    for c in households:
        member = session.get(Member, c.member_id)
        assert rules.add_months(member.birth_date, 18 * 12) > c.starts_on  # under 18
        assert parent.name.endswith(member.last_name)
    first, second = sorted(households, key=lambda c: c.id)
    assert second.price == (first.price * Decimal("0.9")).quantize(Decimal("0.01"))

    # how they pay: mandates on valid IBANs, saved cards
    mandates = session.scalars(select(Mandate).where(Mandate.club_id == club)).all()
    assert mandates and all(IBAN(m.iban).bic for m in mandates)
    saved = session.scalars(select(StoredCard).where(StoredCard.club_id == club)).all()
    assert saved and all(card.method_ref and card.last4 for card in saved)

    # the billing behind it: gap-free invoices, SEPA files that pass the schema, a return
    invoices = session.scalars(select(Invoice).where(Invoice.club_id == club)
                               .order_by(Invoice.id)).all()
    assert len(invoices) == result.stats["invoices"] > 20
    assert {i.issued_on for i in invoices} <= {AS_OF - timedelta(days=d) for d in range(190)}
    batches = session.scalars(select(CollectionBatch).where(CollectionBatch.club_id == club)
                              ).all()
    assert batches and all(b.submitted_at for b in batches)
    sepa_file.validate(batches[-1].xml.encode())
    returned = session.scalars(select(Collection).where(
        Collection.club_id == club, Collection.status == "returned")).all()
    assert returned and {c.failure_code for c in returned} <= {"AM04", "MD06"}
    for c in returned:
        assert session.scalar(select(DuesPayment.amount).where(
            DuesPayment.event_key == f"return:{c.end_to_end_id}")) == -c.amount
    assert session.scalar(select(func.count()).select_from(Collection).where(
        Collection.club_id == club, Collection.method == "card",
        Collection.status == "failed")) >= 1

    # dunning: every case's story told; some paid at the desk, one written off
    cases = session.scalars(select(DunningCase).where(DunningCase.club_id == club)).all()
    assert len(cases) == result.stats["dunning_cases"] >= 3
    outcomes = {c.outcome for c in cases}
    assert {"recovered", "written_off"} <= outcomes
    desk_paid = session.scalars(select(DuesPayment.invoice_id).where(
        DuesPayment.club_id == club, DuesPayment.desk.is_not(None))).all()
    assert {c.invoice_id for c in cases if c.outcome == "recovered"} & set(desk_paid)
    for c in cases:  # recovered: paid after it opened, at the desk or by a retry
        if c.outcome == "recovered":
            assert session.scalar(select(func.sum(DuesPayment.amount)).where(
                DuesPayment.invoice_id == c.invoice_id, DuesPayment.kind == "payment",
                DuesPayment.occurred_on >= c.opened_on)) > 0
        elif c.outcome is None:
            assert invoicing.open_amount(session, session.get(Invoice, c.invoice_id)) > 0

    # and so the owner's money figures show MRR, its movement, receivables and failures
    mrr = money.mrr_report(session, club_id=club, as_of=AS_OF).items
    assert mrr[-1].mrr > 0 and sum(m.new for m in mrr) > 0 and sum(m.churned for m in mrr) > 0
    ages = money.receivables_report(session, club_id=club, as_of=AS_OF).items
    assert sum(a.amount for a in ages) > 0
    rates = money.collections_report(session, club_id=club, as_of=AS_OF).items
    assert any(r.failed for r in rates) and any(r.recovered for r in rates)
