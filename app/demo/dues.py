"""The demo club's recurring dues: contracts over the last months, billed by the real machinery.

`add_dues` runs after the member history is written (`app.demo.generator.build_demo`), in
transactions of its own. `DUES_MONTHS` before the demo's day the club sets up its billing
(creditor identifier, VAT, fees) and its recurring plans (a price rise announced on one); then,
day by day with the app clock on that day, it does what the club would:

- members whose prepaid membership ran out come back and sign a contract at the desk — a payer,
  a SEPA mandate (a valid German IBAN), a card saved on the provider's page, or payment at the
  desk — starting on the next 1st or 15th; a parent signs two teenagers up and pays for both (the
  household discount); some cancel later (`contracts.cancel_contract`);
- the daily billing run (`app.dues.run.run_billing`) invoices and plans the collections; the
  manager prepares the SEPA file of each collection date up to three days ahead and marks it
  submitted (`sepa_batches`); the card collections due are charged (`cards.charge_due_cards`);
- the bank's returns file (CSV) is imported (`sepa_returns`), the dunning sequence moves on
  (`dunning.advance_dunning`: retries, reminders, fees), members pay what they owe at the desk
  (`desk.pay_invoice`); the club ends the membership of a payer who never pays and writes the
  debt off;
- the outbox is "sent" to a recorder: nothing leaves the machine.

The bank and the card network are played here (`_Bank`, `_CardNetwork`): a habit drawn once per
payer decides which debit comes back (AM04 insufficient funds, MD06 refund requested) and which
card charge is declined. The draws come from a `random.Random` of their own, so the member
history is the same with or without the dues. `DuesResult.stays` says who held a contract from
when to when, for the generator to write their visits.
"""
from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from schwifty import IBAN
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app import wiring
from app.billing import service as billing_service
from app.clubs.models import Club
from app.core import clock
from app.core.actors import Actor, Role
from app.core.config import get_settings
from app.core.db import transaction
from app.core.mail import Email, Sent
from app.demo.data import (
    CANCEL_CONTRACT_P,
    CLUB_BANK,
    CONTRACT_METHODS,
    CONTRACT_PLANS,
    DUES_MAX,
    DUES_MONTHS,
    DUES_PRICE_CHANGE_MONTHS,
    DUES_SETTINGS,
    DUES_SHARE,
    FEMALE,
    PAYER_BANKS,
    PAYER_HABITS,
    STAFF,
)
from app.demo.draw import ascii_name, weighted
from app.dues import (
    cards,
    club_settings,
    contracts,
    desk,
    dunning,
    invoicing,
    notices,
    payers,
    sepa,
    sepa_batches,
    sepa_returns,
)
from app.dues import run as run_module
from app.dues.card_provider import ChargeResult, SavedMethod, SetupStart
from app.dues.contracts_schemas import PayerCreate
from app.dues.models import (
    Collection,
    CollectionBatch,
    Contract,
    DunningCase,
    Invoice,
    Mandate,
    StoredCard,
)
from app.dues.run import run_billing
from app.members import service as members_service
from app.members.models import Member
from app.members.schemas import MemberUpdate
from app.memberships import service as memberships_service
from app.memberships.models import Membership
from app.memberships.rules import add_months
from app.memberships.schemas import PlanCreate

FILE_AHEAD_DAYS = 3  # a SEPA file is prepared this many days before its collection date at most
TEEN_AGES = (14, 16)
GIVE_UP_AFTER = timedelta(days=14)  # a payer who never pays: their membership is ended
WRITE_OFF_AFTER = timedelta(days=7)  # after that: their debts are written off


@dataclass
class Stay:
    """A contract's membership from its first day to its last (or the demo's day)."""

    member_id: int
    membership_id: int
    first: date
    last: date


@dataclass
class DuesResult:
    stays: list[Stay]
    stats: dict[str, int]


@dataclass
class _Signing:
    member_id: int
    sale_day: date
    start: date
    plan: str
    method: str
    habit: str
    nth: int  # the payer's debit (or card charge) that the habit hits
    cancel_on: date | None = None
    guardian: int | None = None  # index into _Dues.parents: someone else pays


@dataclass
class _Parent:
    name: str
    email: str = ""
    payer_id: int | None = None
    mandate_id: int | None = None


class _Outbox:
    """The demo's mail server: accepts every email and keeps none."""

    def send(self, email: Email) -> Sent:
        return Sent(ok=True, message_id=email.message_key)


class _CardNetwork:
    """The card provider as the demo plays it: the hosted page saves a card at once; every charge
    goes through but a payer's declined one (`declines`: saved method → which charge fails)."""

    name = "stripe"

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.pages = 0
        self.declines: dict[str, int] = {}
        self.charges: Counter[str] = Counter()
        self.results: dict[str, ChargeResult] = {}
        self.detached: set[str] = set()

    def create_setup(self, *, payer_ref: str, name: str, email: str | None,
                     customer_ref: str | None, success_url: str, cancel_url: str,
                     metadata: dict[str, str]) -> SetupStart:
        self.pages += 1
        ref = f"cs_demo_{self.pages}"
        return SetupStart(setup_ref=ref, url=f"https://checkout.stripe.com/c/pay/{ref}",
                          customer_ref=customer_ref or f"cus_demo_{payer_ref}")

    def describe_setup(self, setup_ref: str) -> SavedMethod:
        rng = self.rng
        return SavedMethod(status="complete", url=None, customer_ref=None,
                           method_ref=setup_ref.replace("cs_", "pm_"),
                           brand=rng.choice(("visa", "visa", "mastercard", "amex")),
                           last4=f"{rng.randrange(10_000):04d}", exp_month=rng.randint(1, 12),
                           exp_year=clock.now().year + rng.randint(1, 4))

    def charge(self, *, customer_ref: str, method_ref: str, amount: Decimal, currency: str,
               idempotency_key: str, description: str,
               metadata: dict[str, str]) -> ChargeResult:
        self.charges[method_ref] += 1
        ref = f"pi_demo_{metadata['collection_id']}_{metadata['attempt']}"
        if self.declines.get(method_ref) == self.charges[method_ref]:
            self.results[ref] = ChargeResult(
                status="failed", ref=ref, amount=amount, failure_code="insufficient_funds",
                failure_reason="Your card has insufficient funds.")
            return self.results[ref]
        self.results[ref] = ChargeResult(status="succeeded", ref=ref, amount=amount)
        return self.results[ref]

    def find_charge(self, *, ref: str | None, customer_ref: str | None,
                    created_since: datetime, metadata: dict[str, str]) -> ChargeResult | None:
        ref = ref or f"pi_demo_{metadata.get('collection_id')}_{metadata.get('attempt')}"
        return self.results.get(ref)

    def detach(self, method_ref: str) -> bool:
        attached = method_ref not in self.detached
        self.detached.add(method_ref)
        return attached


class _Bank:
    """The payers' banks: which submitted debit comes back, when and why."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.habits: dict[int, tuple[str, int]] = {}  # payer → (habit, which debit)
        self.debits: Counter[int] = Counter()
        self.returns: list[tuple[date, str, Decimal, str]] = []  # booked, e2e id, amount, code

    def submitted(self, payer_id: int, e2e: str, amount: Decimal, on: date,
                  attempt: int) -> None:
        habit, nth = self.habits.get(payer_id, ("good", 0))
        if attempt == 1:  # a retry is the same debit again
            self.debits[payer_id] += 1
        hit = attempt == 1 and self.debits[payer_id] == nth
        if habit == "returned_once" and hit:
            self.returns.append((on + timedelta(days=self.rng.randint(2, 4)), e2e, amount,
                                 "AM04"))
        elif habit == "refund" and hit:
            self.returns.append((on + timedelta(days=self.rng.randint(14, 35)), e2e, amount,
                                 "MD06"))
        elif habit == "broke" and self.debits[payer_id] >= nth:
            self.returns.append((on + timedelta(days=self.rng.randint(2, 3)), e2e, amount,
                                 "AM04"))

    def statement(self, day: date) -> bytes | None:
        """The returns booked by `day` not sent yet, as the bank's CSV file."""
        due = sorted(r for r in self.returns if r[0] <= day)
        if not due:
            return None
        self.returns = [r for r in self.returns if r[0] > day]
        rows = [f"{e2e},{amount},{code},{booked.isoformat()}" for booked, e2e, amount, code in due]
        return ("end_to_end_id,amount,reason_code,date\n" + "\n".join(rows) + "\n").encode()


def add_dues(factory: sessionmaker[Session], *, club_id: int, staff_ids: dict[str, int],
             as_of: date, months: int, seed: int, members: int) -> DuesResult:
    """The club's recurring dues over its last months (see the module docstring)."""
    wiring.install()  # the services publish events (a contract sold, a membership's end moved)
    outer = clock.current()
    with clock.use(clock.SettableClock(outer.now(), tick=False)) as moved:
        dues = _Dues(factory, club_id=club_id, staff_ids=staff_ids, as_of=as_of,
                     months=min(months, DUES_MONTHS), seed=seed, members=members, moved=moved,
                     real_now=outer.now())
        dues.run()
    with transaction(factory) as session:
        return DuesResult(stays=dues.stays(session), stats=dues.stats(session))


class _Dues:
    def __init__(self, factory: sessionmaker[Session], *, club_id: int,
                 staff_ids: dict[str, int], as_of: date, months: int, seed: int, members: int,
                 moved: clock.SettableClock, real_now: datetime):
        self.factory, self.club_id, self.as_of = factory, club_id, as_of
        self.first_day = add_months(as_of, -months) + timedelta(days=1)
        self.members = members
        self.rng = random.Random(seed * 1_000_003 + 424_242)
        self.moved, self.real_now = moved, real_now
        names = {local: name for local, _role, name in STAFF}
        self.manager = Actor(staff_ids["manager"], names["manager"], club_id, Role.manager)
        self.desks = [Actor(staff_ids[d], names[d], club_id, Role.front_desk)
                      for d in ("desk1", "desk2")]
        with factory() as session:
            self.zone = ZoneInfo(session.get(Club, club_id).timezone)
        self.network = _CardNetwork(self.rng)
        self.bank = _Bank(self.rng)
        self.outbox = _Outbox()
        self.settings = get_settings()
        self.plan_ids: dict[str, int] = {}
        self.signings: dict[date, list[_Signing]] = defaultdict(list)
        self.parents: list[_Parent] = []
        self.cancellations: dict[date, list[int]] = defaultdict(list)  # contract ids
        self.desk_visits: dict[date, set[int]] = defaultdict(set)  # payers paying what they owe
        self.scheduled: set[int] = set()  # desk invoices whose payment day is drawn
        self.habit_of: dict[int, str] = {}  # payer → habit (desk payers and the ones who never pay)
        self.desk_payers: list[int] = []
        self.file_days: set[date] = set()
        self.charge_days: set[date] = set()
        self.given_up: dict[int, date] = {}  # payer → the day the club ended it

    # the clock -----------------------------------------------------------------------------
    def _at(self, day: date, hour: int, minute: int = 0) -> None:
        """Move the app clock to a time of a club day (never past the real now on its day)."""
        instant = datetime.combine(day, time(hour, minute), tzinfo=self.zone)
        if instant > self.real_now and clock.today(self.zone, self.real_now) == day:
            instant = self.real_now
        self.moved.set(instant)

    def _desk(self) -> Actor:
        return self.rng.choice(self.desks)

    # the run -------------------------------------------------------------------------------
    def run(self) -> None:
        self._at(self.first_day, 8)
        with transaction(self.factory) as session:
            self._set_up(session)
            self._plan(session)
        day = self.first_day
        while day <= self.as_of:
            self._day(day)
            day += timedelta(days=1)

    def _set_up(self, session: Session) -> None:
        """The club's billing settings and recurring plans, set up on the first day."""
        iban = IBAN.generate("DE", bank_code=CLUB_BANK[0], account_code=CLUB_BANK[1])
        club_settings.update_settings(session, club_id=self.club_id, changes={
            **DUES_SETTINGS, "creditor_iban": iban.compact})
        rise = add_months(self.first_day.replace(day=1), DUES_PRICE_CHANGE_MONTHS)
        for spec in CONTRACT_PLANS:
            plan = memberships_service.create_plan(session, actor=self.manager, data=PlanCreate(
                name=spec.name, category="unlimited", price=spec.price, billing="recurring",
                billing_period=spec.period, minimum_months=spec.minimum_months, notice_value=1,
                notice_unit="months", renewal=spec.renewal, renewal_months=spec.renewal_months,
                joining_fee=spec.joining_fee, next_price=spec.next_price,
                next_price_from=rise if spec.next_price else None))
            self.plan_ids[spec.key] = plan.id

    def _start_after(self, day: date) -> date:
        """Contracts start on the 1st (mostly) or the 15th after signing."""
        first = add_months(day.replace(day=1), 1)
        if day.day < 15 and self.rng.random() < 0.3:
            return day.replace(day=15)
        return first

    def _plan(self, session: Session) -> None:
        """Who signs when, on which plan, paying how; who cancels; the payers' habits."""
        rng, first, last_sale = self.rng, self.first_day, self.as_of
        ended: dict[int, date] = {}
        for member_id, end, cancelled in session.execute(
                select(Membership.member_id, Membership.end_date, Membership.cancelled_on)
                .where(Membership.club_id == self.club_id).order_by(Membership.id)):
            last = cancelled - timedelta(days=1) if cancelled else end
            ended[member_id] = max(ended.get(member_id, last), last)
        # back after their prepaid membership ran out (a week or two later, or during the months)
        span = (last_sale - first).days
        candidates = []
        for member_id, last in sorted(ended.items()):
            if last >= last_sale - timedelta(days=10):
                continue
            sale = last + timedelta(days=1 + rng.randint(0, 10))
            if sale < first:
                sale = first + timedelta(days=rng.randint(0, max(span, 0)))
            if sale <= last_sale:
                candidates.append((member_id, sale))
        count = min(round(self.members * DUES_SHARE), DUES_MAX, len(candidates))
        chosen = rng.sample(candidates, count)
        household = len(chosen) >= 8 and len(candidates) >= count + 2
        teens = rng.sample([c for c in candidates if c not in chosen], 2) if household else []
        plans = [(p.key, p.weight) for p in CONTRACT_PLANS]
        signings = []
        for member_id, sale in sorted(chosen, key=lambda c: (c[1], c[0])):
            method = weighted(rng, CONTRACT_METHODS)
            plan = weighted(rng, plans)
            habit = weighted(rng, PAYER_HABITS[method])
            start = self._start_after(sale)
            cancel_on = None
            if rng.random() < CANCEL_CONTRACT_P[plan]:
                cancel_on = start + timedelta(days=rng.randint(30, 150))
            nth = 1 if plan == "year" else rng.randint(1, 3)  # a yearly contract: one debit
            signings.append(_Signing(member_id, sale, start, plan, method, habit, nth,
                                     cancel_on))
        self._every_story(signings)
        if teens:
            sale = max(t[1] for t in teens)  # after both prepaid memberships ended
            start = add_months(sale.replace(day=1), 1)
            parent = rng.choice(FEMALE)
            self.parents.append(_Parent(name=parent))
            for member_id, _sale in teens:
                signings.append(_Signing(member_id, sale, start, "flex", "sepa", "good", 0,
                                         guardian=0))
        for s in signings:
            self.signings[s.sale_day].append(s)

    def _every_story(self, signings: list[_Signing]) -> None:
        """With ten contracts or more, every way of paying and every way a payment goes wrong
        happens at least once, on monthly plans (a method missing: one of the latest SEPA
        payers; a habit: the earliest payer of its method): the demo shows every figure."""
        monthly = [s for s in signings if s.plan != "year"]
        if len(signings) < 10:
            return
        for method, habits in PAYER_HABITS.items():
            if not any(s.method == method for s in signings):
                spare = next((s for s in reversed(monthly)
                              if s.method == "sepa" and s.habit == "good"), None)
                if spare is not None:
                    spare.method, spare.habit = method, habits[0][0]
        for method, habits in PAYER_HABITS.items():
            ours = [s for s in monthly if s.method == method]
            for habit, _weight in habits[1:]:
                if any(s.habit == habit for s in ours):
                    continue
                usual = next((s for s in ours if s.habit == habits[0][0]), None)
                if usual is not None:
                    usual.habit = habit

    # one day ---------------------------------------------------------------------------------
    def _day(self, day: date) -> None:
        """The day's work in the club's order. The billing run and the dunning sequence run on
        the days they have work (`has_work`: a run without changes nothing); files, card
        charges and desk payments on the days something is due."""
        self._at(day, 8)
        for signing in self.signings.get(day, []):
            with transaction(self.factory) as session:
                self._sign(session, signing)
        cancelled = self.cancellations.pop(day, [])
        for contract_id in cancelled:
            with transaction(self.factory) as session:
                contracts.cancel_contract(session, actor=self._desk(), contract_id=contract_id,
                                          received_on=day,
                                          channel=self.rng.choice(("desk", "email", "letter")))
        self._at(day, 8, 30)
        with self.factory() as session:
            billed = run_module.has_work(session, club_id=self.club_id, day=day)
        if billed:
            run_billing(self.factory, club_id=self.club_id, day=day)
        self._at(day, 9)
        returned = self._returns(day)
        with transaction(self.factory) as session:
            dunned = dunning.has_work(session, club_id=self.club_id, day=day)
            if dunned:
                dunning.advance_dunning(session, club_id=self.club_id, day=day)
                self._give_up(session, day)
        if billed or returned or dunned:
            self._schedule(day)
        self._at(day, 10)
        if day in self.file_days:
            self._file(day)
        self._at(day, 10, 30)
        if day in self.charge_days:
            cards.charge_due_cards(self.factory, club_id=self.club_id, day=day,
                                   provider=self.network)
        self._at(day, 17)
        if day in self.desk_visits:
            self._desk_payments(day)
        self._at(day, 19)
        if cancelled or billed or dunned:
            with transaction(self.factory) as session:
                notices.send_pending(session, settings=self.settings, limit=10_000,
                                     mailer=self.outbox)

    def _schedule(self, day: date) -> None:
        """When the new collections are filed (up to three days ahead) or charged, and when the
        desk payers come in to pay their new invoices (on time, or late after a reminder)."""
        with self.factory() as session:
            for method, due_on in session.execute(
                    select(Collection.method, Collection.due_on).distinct().where(
                        Collection.club_id == self.club_id, Collection.status == "planned",
                        Collection.batch_id.is_(None), Collection.due_on >= day)
                    .order_by(Collection.method, Collection.due_on)):
                if method == "sepa":
                    self.file_days.add(max(day, due_on - timedelta(days=FILE_AHEAD_DAYS)))
                elif method == "card":
                    self.charge_days.add(due_on)
            for invoice_id, payer_id, due_on in session.execute(
                    select(Invoice.id, Invoice.payer_id, Invoice.due_on).where(
                        Invoice.club_id == self.club_id, Invoice.kind == "invoice",
                        Invoice.method == "desk", Invoice.id.not_in(self.scheduled or [0]),
                        Invoice.payer_id.in_(self.desk_payers or [0]))
                    .order_by(Invoice.id)):
                self.scheduled.add(invoice_id)
                late = self.habit_of[payer_id] == "late" and self.rng.random() < 0.5
                delay = self.rng.randint(6, 12) if late else self.rng.randint(0, 2)
                self.desk_visits[max(due_on, day) + timedelta(days=delay)].add(payer_id)

    def _sign(self, session: Session, s: _Signing) -> None:
        """At the desk: the payer, how they pay, the contract sold on a 0.00 receipt."""
        actor, club_id = self._desk(), self.club_id
        relation = "self"
        if s.guardian is not None:
            payer, mandate_id = self._parent(session, actor, s)
            relation = "parent"
        else:
            payer = payers.payer_for_member(session, club_id=club_id, member_id=s.member_id)
            mandate_id = None
            if s.method == "sepa":
                mandate_id = self._mandate(session, actor, payer.id, payer.name, s.sale_day)
        card_id = None
        if s.method == "card":
            card, _link = cards.start_card_setup(session, actor=actor, payer_id=payer.id,
                                                 send_email=False, provider=self.network)
            card = cards.complete_card_setup(session, club_id=club_id,
                                             setup_ref=card.setup_ref, provider=self.network)
            card_id = card.id
            if s.habit == "declined_once":
                self.network.declines[card.method_ref] = max(s.nth, 2)
        if s.method == "sepa" and s.guardian is None:
            self.bank.habits[payer.id] = (s.habit, s.nth)
        if s.method == "desk" or s.habit == "broke":
            self.habit_of[payer.id] = s.habit
        if s.method == "desk":
            self.desk_payers.append(payer.id)
        billing_service.create_sale(session, actor=actor, member_id=s.member_id, lines=[{
            "kind": "contract", "plan_id": self.plan_ids[s.plan], "start_date": s.start,
            "payer_id": payer.id, "payer_relation": relation, "method": s.method,
            "mandate_id": mandate_id, "card_id": card_id}])
        if s.cancel_on is not None and s.cancel_on <= self.as_of:
            contract_id = session.scalar(select(Contract.id).where(
                Contract.member_id == s.member_id).order_by(Contract.id.desc()).limit(1))
            self.cancellations[s.cancel_on].append(contract_id)

    def _mandate(self, session: Session, actor: Actor, payer_id: int, holder: str,
                 day: date) -> int:
        account = f"{self.rng.randrange(10**9, 10**10)}"
        iban = IBAN.generate("DE", bank_code=self.rng.choice(PAYER_BANKS), account_code=account)
        return sepa.create_mandate(session, actor=actor, payer_id=payer_id, iban=iban.compact,
                                   account_holder=holder, signed_on=day).id

    def _parent(self, session: Session, actor: Actor, s: _Signing) -> tuple:
        """The household: the first teenager's parent pays for both; both are minors, siblings."""
        parent = self.parents[s.guardian]
        member = session.get(Member, s.member_id)
        if parent.payer_id is None:
            family = member.last_name
            parent.name = f"{parent.name} {family}"
            local = ".".join(ascii_name(part) for part in parent.name.split())
            parent.email = f"{local}@example.org"
            payer = payers.create_payer(session, club_id=self.club_id, data=PayerCreate(
                name=parent.name, email=parent.email))
            parent.payer_id = payer.id
            parent.mandate_id = self._mandate(session, actor, payer.id, parent.name, s.sale_day)
            age = TEEN_AGES[0]
        else:
            family = parent.name.split(" ", 1)[1]
            age = TEEN_AGES[1]
        born = add_months(s.start, -12 * age - self.rng.randint(1, 10))
        members_service.update_member(session, club_id=self.club_id, member_id=member.id,
                                      data=MemberUpdate(last_name=family, birth_date=born))
        return payers.get_payer(session, club_id=self.club_id,
                                payer_id=parent.payer_id), parent.mandate_id

    def _returns(self, day: date) -> bool:
        """The bank's returns booked by today, imported as its CSV file; the payers who settle
        come to the desk."""
        content = self.bank.statement(day)
        if content is None:
            return False
        with transaction(self.factory) as session:
            report = sepa_returns.import_returns(session, actor=self.manager, content=content,
                                                 filename=f"returns-{day.isoformat()}.csv",
                                                 dry_run=False)
            for row in report["rows"]:
                payer_id = session.scalar(select(Collection.payer_id).where(
                    Collection.club_id == self.club_id,
                    Collection.end_to_end_id == row["end_to_end_id"]))
                habit = self.bank.habits.get(payer_id, ("good", 0))[0]
                if habit == "refund":  # pays at the desk before the retry
                    self.desk_visits[day + timedelta(days=self.rng.randint(2, 6))].add(payer_id)
                elif habit == "returned_once":  # the retry goes through; the fee at the desk
                    self.desk_visits[day + timedelta(days=self.rng.randint(8, 14))].add(payer_id)
        return True

    def _give_up(self, session: Session, day: date) -> None:
        """A payer who never pays: two weeks after the first failure the club ends their
        membership for unpaid dues (the contract ends the day before); a week later it writes
        their debts off, and any that come after."""
        for case in session.scalars(select(DunningCase).where(
                DunningCase.club_id == self.club_id, DunningCase.closed_on.is_(None))
                .order_by(DunningCase.id)).all():
            payer_id = case.payer_id
            if self.habit_of.get(payer_id) != "broke":
                continue
            if payer_id not in self.given_up and case.opened_on <= day - GIVE_UP_AFTER:
                self.given_up[payer_id] = day
                for membership_id in session.scalars(
                        select(Contract.membership_id)
                        .join(Membership, Membership.id == Contract.membership_id)
                        .where(Contract.payer_id == payer_id, Membership.cancelled_on.is_(None),
                               Membership.end_date >= day).order_by(Contract.id)).all():
                    memberships_service.cancel_membership(
                        session, actor=self.manager, membership_id=membership_id,
                        reason="other", note="Ended by the club: dues unpaid")
            ended = self.given_up.get(payer_id)
            if ended is not None and day >= ended + WRITE_OFF_AFTER:
                dunning.write_off(session, actor=self.manager, case_id=case.id)

    def _file(self, day: date) -> None:
        """The SEPA file of each collection date up to three days ahead, marked submitted; the
        bank learns its debits."""
        with self.factory() as session:
            dates = list(session.scalars(
                select(Collection.due_on).where(
                    Collection.club_id == self.club_id, Collection.method == "sepa",
                    Collection.status == "planned", Collection.batch_id.is_(None),
                    Collection.due_on.between(day, day + timedelta(days=FILE_AHEAD_DAYS)))
                .distinct().order_by(Collection.due_on)))
        for collection_date in dates:
            with transaction(self.factory) as session:
                if not sepa_batches.due(session, club_id=self.club_id,
                                        collection_date=collection_date).ready:
                    continue
                batch = sepa_batches.prepare_batch(session, actor=self.manager,
                                                   collection_date=collection_date)
                sepa_batches.mark_submitted(session, actor=self.manager, batch_id=batch.id)
                for payer_id, e2e, amount, attempt in session.execute(
                        select(Collection.payer_id, Collection.end_to_end_id, Collection.amount,
                               Collection.attempt)
                        .where(Collection.batch_id == batch.id).order_by(Collection.id)):
                    self.bank.submitted(payer_id, e2e, amount, collection_date, attempt)

    def _desk_payments(self, day: date) -> None:
        """The payers due at the desk today pay everything they owe."""
        with transaction(self.factory) as session:
            for payer_id in sorted(self.desk_visits.pop(day)):
                actor = self._desk()
                method = self.rng.choice(("card_terminal", "card_terminal", "cash"))
                for invoice in session.scalars(select(Invoice).where(
                        Invoice.club_id == self.club_id, Invoice.payer_id == payer_id,
                        Invoice.kind == "invoice", Invoice.due_on <= day)
                        .order_by(Invoice.id)).all():
                    owed = invoicing.open_amount(session, invoice)
                    if owed > 0:
                        desk.pay_invoice(session, actor=actor, invoice_id=invoice.id,
                                         amount=owed, method=method, desk="front")

    # what it made ------------------------------------------------------------------------------
    def stays(self, session: Session) -> list[Stay]:
        rows = session.execute(
            select(Contract.member_id, Contract.membership_id, Contract.starts_on,
                   Membership.end_date, Membership.cancelled_on)
            .join(Membership, Membership.id == Contract.membership_id)
            .where(Contract.club_id == self.club_id, Contract.starts_on <= self.as_of)
            .order_by(Contract.id))
        return [Stay(m, ms, start, min(end, self.as_of,
                                       cancelled - timedelta(days=1) if cancelled else end))
                for m, ms, start, end, cancelled in rows]

    def stats(self, session: Session) -> dict[str, int]:
        club = self.club_id

        def count(model, *where) -> int:
            return session.scalar(select(func.count()).select_from(model).where(
                model.club_id == club, *where)) or 0

        return {
            "contracts": count(Contract),
            "contracts_running": count(Contract, Contract.starts_on <= self.as_of,
                                       (Contract.ends_on.is_(None))
                                       | (Contract.ends_on >= self.as_of)),
            "mandates": count(Mandate),
            "cards_on_file": count(StoredCard, StoredCard.method_ref.is_not(None)),
            "invoices": count(Invoice),
            "sepa_files": count(CollectionBatch),
            "returned_debits": count(Collection, Collection.status == "returned"),
            "declined_cards": count(Collection, Collection.status == "failed"),
            "dunning_cases": count(DunningCase),
            "dunning_open": count(DunningCase, DunningCase.closed_on.is_(None)),
        }
