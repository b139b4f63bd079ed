"""The demo club generator: a seeded, believable history written with bulk inserts.

Small things (the club, staff, the device, plans) go through the services and the ORM. The
history — members, cards, consents, sales, memberships, freezes, visits — is simulated in Python
with a seeded `random.Random` and written in batches of members: bulk Core inserts on SQLite,
`COPY` on PostgreSQL. Ids are assigned here (PostgreSQL: the tables are locked for the
transaction, the sequences read once and moved past the last id at the end), so no row is read
back and memory stays bounded by one batch.

The history follows `app.memberships.rules`: a visit happens only on a day its membership is
active (started, not ended, not cancelled, not frozen), within the plan's access hours, up to its
visit limit (`visits_used` is the count); a renewal starts the day after the renewed membership
ends (after its freezes); a cancelled membership has no visits from `cancelled_on`.

Who stays is driven by one latent "engagement" per member: it sets how often they come and how
likely they renew, and the members who will not renew fade out over their last weeks — so
attendance predicts renewal, the way the retention engine (RETENTION.md) expects.

Then (`DemoOptions.dues`) `app.demo.dues` runs the club's recurring dues over the last months
through the dues services, in transactions of their own, and the contract members' visits are
written here by the same rules (`_History.write_stays`).
"""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from time import perf_counter
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.clubs import service as clubs_service
from app.clubs.models import Club, StaffUser
from app.core import clock
from app.core.actors import Actor, Role
from app.core.db import transaction
from app.demo.data import (
    CANCEL_NOTES,
    CANCEL_P,
    CANCEL_WEIGHTS,
    CLOSE,
    DEMO_CLUB,
    DEMO_CURRENCY,
    DEMO_DOMAIN,
    DEMO_PASSWORD,
    DEMO_TIMEZONE,
    DEVICE_NAME,
    EMAIL_DOMAINS,
    EXTRA_VISIT_P,
    FEMALE,
    FREEZE_P,
    FREEZE_REASONS,
    LAST,
    MALE,
    MOBILE_PREFIXES,
    MONTH_ATTENDANCE,
    MONTH_JOINS,
    OPEN,
    PAY_METHODS,
    PLAN_BY_KEY,
    PLANS,
    PROSPECT_SHARE,
    SLOTS,
    SOURCES,
    STAFF,
    SWITCH,
    WEEKDAY_JOINS,
    WEEKDAY_ROUTINE,
    PlanSpec,
)
from app.demo.draw import ascii_name, weighted
from app.demo.dues import Stay, add_dues
from app.demo.writer import COLUMNS, BulkWriter
from app.members.models import (
    Card,
    Member,
    phone_rev_for,
    search_name_for,
    search_terms_for,
)
from app.memberships import service as memberships_service
from app.memberships.models import Membership
from app.memberships.rules import add_months, end_date_for
from app.memberships.schemas import PlanCreate


@dataclass
class DemoOptions:
    members: int = 600
    months: int = 18
    seed: int = 7
    as_of: date | None = None  # default: today in the club
    visits: bool = True  # False skips access events and visits (search benchmarks)
    dues: bool = True  # recurring contracts over the last months, billed (app.demo.dues)
    batch_size: int = 2000  # members per write batch
    password: str = DEMO_PASSWORD
    club_name: str = DEMO_CLUB
    staff_domain: str = DEMO_DOMAIN  # staff emails are unique in a database: one per club
    progress: Callable[[str], None] | None = None


@dataclass
class StaffLogin:
    email: str
    role: str
    name: str


@dataclass
class DemoResult:
    club_id: int
    club_name: str
    as_of: date
    password: str
    staff: list[StaffLogin]
    device_id: int
    device_name: str
    device_key: str
    counts: dict[str, int] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0  # the whole build, commit included
    write_seconds: float = 0.0  # of which writing rows (inserts / COPY)
    fk_checks: bool = True  # False: PostgreSQL loaded with foreign-key triggers off

    def credentials_block(self) -> str:
        width = max(len(s.email) for s in self.staff)
        title = (f"  {self.club_name} — demo credentials (password for all staff: "
                 f"{self.password})")
        lines = ["=" * 72, title, "-" * 72]
        lines += [f"  {s.email:<{width}}  {s.role:<11} {s.name}" for s in self.staff]
        lines += ["-" * 72, f"  turnstile: {self.device_name} (device {self.device_id})",
                  f"  X-Device-Key: {self.device_key}",
                  "  (shown once: only its hash is stored; `fitclub add-device` makes another)",
                  "=" * 72]
        return "\n".join(lines)


def club_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Club)) or 0


def demo_owner_exists(session: Session) -> bool:
    return session.scalar(select(StaffUser.id).where(StaffUser.email == f"owner@{DEMO_DOMAIN}")
                          ) is not None


def build_demo(factory: sessionmaker[Session], options: DemoOptions | None = None) -> DemoResult:
    """Build the demo club in one transaction and return its credentials and counts."""
    options = options or DemoOptions()
    started = perf_counter()
    with transaction(factory) as session:
        result, history = _build(session, options)
        engine = session.get_bind()
    if options.dues:
        dues = add_dues(factory, club_id=result.club_id, staff_ids=history.staff_ids,
                        as_of=result.as_of, months=options.months, seed=options.seed,
                        members=options.members)
        result.stats.update(dues.stats)
        if options.visits:
            with transaction(factory) as session:
                for table, n in history.write_stays(session, dues.stays).items():
                    result.counts[table] += n
    if engine.dialect.name == "postgresql":  # fresh statistics for the first queries
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in COLUMNS:
                conn.exec_driver_sql(f'ANALYZE "{table}"')
    result.seconds = perf_counter() - started
    return result


# --- set-up through the services ---------------------------------------------------------------

def _build(session: Session, options: DemoOptions) -> tuple[DemoResult, _History]:
    if options.members < 1 or options.months < 1:
        raise ValueError("the demo needs at least one member and one month")
    club = clubs_service.create_club(session, name=options.club_name, timezone=DEMO_TIMEZONE,
                                     currency=DEMO_CURRENCY)
    staff: list[StaffLogin] = []
    staff_ids: dict[str, int] = {}
    for local, role, name in STAFF:
        user = clubs_service.create_user(session, email=f"{local}@{options.staff_domain}",
                                         name=name, password=options.password)
        clubs_service.grant_role(session, by=None, user=user, club=club, role=role)
        staff.append(StaffLogin(user.email, role.value, name))
        staff_ids[local] = user.id
    device, key = clubs_service.add_device(session, club=club, name=DEVICE_NAME, direction="in")
    owner = Actor(user_id=staff_ids["owner"], name=STAFF[0][2], club_id=club.id, role=Role.owner)
    plans = {
        spec.key: memberships_service.create_plan(session, actor=owner, data=PlanCreate(
            name=spec.name, category=spec.category, duration_days=spec.duration_days,
            duration_months=spec.duration_months, price=spec.price, visit_limit=spec.visit_limit,
            access_start=spec.access_start, access_end=spec.access_end,
            freeze_days=spec.freeze_days))
        for spec in PLANS
    }

    as_of = options.as_of or clubs_service.club_today(club)
    reasons = list(clubs_service.club_settings(club).cancellation_reasons)
    history = _History(session, club=club, device_id=device.id, staff_ids=staff_ids,
                       plan_ids={k: p.id for k, p in plans.items()}, reasons=reasons,
                       as_of=as_of, options=options)
    history.run()
    return DemoResult(club_id=club.id, club_name=club.name, as_of=as_of,
                      password=options.password, staff=staff, device_id=device.id,
                      device_name=device.name, device_key=key, counts=dict(history.writer.counts),
                      stats=dict(history.stats), write_seconds=history.writer.seconds,
                      fk_checks=history.writer.fk_checks), history


class _Clock:
    """Local club (day ordinal, minute of day) → aware UTC instant.

    The offset is the one at noon: clocks change at night, while the club is closed.
    """

    def __init__(self, zone: ZoneInfo):
        self.zone = zone
        self._midnight: dict[int, datetime] = {}

    def at(self, ordinal: int, minute: int, second: int = 0) -> datetime:
        base = self._midnight.get(ordinal)
        if base is None:
            noon = datetime.combine(date.fromordinal(ordinal), time(12), tzinfo=self.zone)
            base = noon.astimezone(UTC) - timedelta(hours=12)
            self._midnight[ordinal] = base
        return base + timedelta(seconds=minute * 60 + second)


def _money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


# --- the simulation ----------------------------------------------------------------------------

@dataclass
class _Person:
    index: int
    member_id: int
    first: str
    cards: list[tuple[str, datetime | None]]  # (code, used until) in order
    engagement: float
    vrng: random.Random


@dataclass
class _Routine:
    weekdays: tuple[int, ...]
    minute: int
    show: float
    lo: int
    hi: int


class _History:
    def __init__(self, session: Session, *, club: Club, device_id: int, staff_ids: dict[str, int],
                 plan_ids: dict[str, int], reasons: list[str], as_of: date,
                 options: DemoOptions):
        self.session = session
        self.club_id = club.id
        self.device_id = device_id
        self.staff_ids = staff_ids
        self.plan_ids = plan_ids
        self.reasons = [(r, CANCEL_WEIGHTS.get(r, 5)) for r in reasons] or [("other", 1)]
        self.options = options
        self.rng = random.Random(options.seed)
        self.clock = _Clock(ZoneInfo(club.timezone))
        self.as_of = as_of
        self.as_of_ord = as_of.toordinal()
        self.start = add_months(as_of, -options.months) + timedelta(days=1)
        now = clock.now().astimezone(self.clock.zone)
        # today: nothing after "now"; a date in the past or future: the whole day
        self.cutoff_minute = (now.hour * 60 + now.minute) if now.date() == as_of else 24 * 60
        self.cutoff = self.clock.at(self.as_of_ord, min(self.cutoff_minute, 24 * 60 - 1), 59)
        self.writer = BulkWriter(session)
        self.stats: dict[str, int] = dict.fromkeys(
            ("members", "prospects", "renewals", "lapses", "returns", "freezes", "cancellations",
             "refunds", "card_replacements", "pending", "active_today", "frozen_today"), 0)
        self.day_factor = self._day_factors()
        self.desk = [(staff_ids["desk1"], 42), (staff_ids["desk2"], 40),
                     (staff_ids["manager"], 13), (staff_ids["owner"], 5)]
        self._emails: set[str] = set()

    # calendar ------------------------------------------------------------------------------
    def _day_factors(self) -> dict[int, float]:
        factors = {}
        day = self.start
        while day <= self.as_of:
            f = MONTH_ATTENDANCE[day.month]
            if (day.month, day.day) in ((12, 25), (12, 26), (1, 1)):
                f = 0.0  # closed
            elif (day.month, day.day) in ((12, 24), (12, 31)):
                f = 0.25
            factors[day.toordinal()] = f
            day += timedelta(days=1)
        return factors

    def _join_days(self, n: int) -> list[int]:
        days, weights = [], []
        day = self.start
        while day <= self.as_of:
            days.append(day.toordinal())
            closed = self.day_factor.get(day.toordinal(), 1.0) == 0.0
            weights.append(0.0 if closed else MONTH_JOINS[day.month] * WEEKDAY_JOINS[day.weekday()])
            day += timedelta(days=1)
        return sorted(self.rng.choices(days, weights=weights, k=n))

    def _staff(self) -> int:
        return weighted(self.rng, self.desk)

    def _at(self, ordinal: int, lo: int = 8 * 60, hi: int = 20 * 60) -> datetime:
        """A random moment of a working day, never after the cut-off."""
        at = self.clock.at(ordinal, self.rng.randint(lo, hi), self.rng.randrange(60))
        return min(at, self.cutoff - timedelta(minutes=self.rng.randint(1, 30))) \
            if ordinal >= self.as_of_ord else at

    # the run -------------------------------------------------------------------------------
    def run(self) -> None:
        n = self.options.members
        joins = self._join_days(n)
        prospects = set(self.rng.sample(range(n), max(1, round(n * PROSPECT_SHARE)))) \
            if n >= 20 else {n - 1}
        progress = self.options.progress
        t0 = perf_counter()
        for i, join_ord in enumerate(joins):
            self._member(i, join_ord, prospect=i in prospects)
            if (i + 1) % self.options.batch_size == 0:
                self.writer.flush()
                if progress:
                    progress(f"  {i + 1:>7} members, {self.writer.counts['visits']:>9} visits "
                             f"({perf_counter() - t0:.1f} s, writing {self.writer.seconds:.1f} s)")
        self.writer.finish()

    # one person ----------------------------------------------------------------------------
    def _member(self, index: int, join_ord: int, *, prospect: bool) -> None:
        rng, w = self.rng, self.writer
        member_id = w.new_id("members")
        gender = weighted(rng, (("female", 49), ("male", 48), ("diverse", 1), (None, 2)))
        first = rng.choice(FEMALE if gender == "female" else MALE if gender == "male"
                           else FEMALE + MALE)
        last = rng.choice(LAST)
        email, phone = self._email(first, last, index), self._phone(index)
        if prospect and rng.random() < 0.5:  # a lead often left only one way to reach them
            email, phone = (email, None) if rng.random() < 0.5 else (None, phone)
        age = int(rng.triangular(16, 72, 29))
        birth = _birthday(rng, self.as_of.year - age)
        source = weighted(rng, SOURCES)
        # prospects, and a quarter of members, were known some days before they bought
        lead_days = rng.randint(1, 30) if prospect or rng.random() < 0.25 else 0
        created_ord = max(join_ord - lead_days, self.start.toordinal())
        first_sale_at = self._at(join_ord, 7 * 60, 20 * 60)
        if created_ord < join_ord:
            created_at = self._at(created_ord)
        else:  # walked in and bought at once
            created_at = first_sale_at - timedelta(minutes=rng.randint(3, 15))
        email_ok = email is not None and rng.random() < 0.8
        sms_ok = phone is not None and rng.random() < 0.55
        updated_at = created_at
        consent_source = "signup_form" if source in ("website", "instagram") else "front_desk"
        consent_staff = None if consent_source == "signup_form" else self._staff()
        for channel, granted in (("email", email_ok), ("sms", sms_ok)):
            if not granted:
                continue
            w.rows["consents"].append((w.new_id("consents"), self.club_id, member_id, channel,
                                       True, consent_source, created_at, consent_staff))
            if rng.random() < 0.04:  # withdrawn later (unsubscribe link)
                later = min(created_ord + rng.randint(10, 300), self.as_of_ord)
                at = max(self._at(later), created_at + timedelta(minutes=1))
                w.rows["consents"].append((w.new_id("consents"), self.club_id, member_id,
                                           channel, False, "unsubscribe_link", at, None))
                updated_at = max(updated_at, at)
                if channel == "email":
                    email_ok = False
                else:
                    sms_ok = False
        search_name = search_name_for(first, last)
        w.rows["members"].append((member_id, self.club_id, first, last, email, phone, birth,
                                  gender, search_name, phone_rev_for(phone), email_ok, sms_ok,
                                  source, created_at, updated_at))
        for term in search_terms_for(search_name):
            values = {"id": w.new_id("member_search_terms"), "club_id": self.club_id,
                      "member_id": member_id, "term": term, "search_name": search_name}
            w.rows["member_search_terms"].append(
                tuple(values[c] for c in COLUMNS["member_search_terms"]))
        if prospect:
            self.stats["prospects"] += 1
            return
        self.stats["members"] += 1
        engagement = rng.betavariate(2.2, 1.7)
        # visits come from their own generator, so --no-visits leaves the rest unchanged
        vrng = random.Random(self.options.seed * 1_000_003 + index)
        person = _Person(index, member_id, first, [], engagement, vrng)
        self._cards(person, join_ord, first_sale_at)
        self._life(person, join_ord, first_sale_at)

    def write_stays(self, session: Session, stays: list[Stay]) -> dict[str, int]:
        """The visits of the members on a contract (`app.demo.dues`), by the same routine rules
        as a membership's, from its first day to its last (never after now), in a transaction
        of their own; `visits_used` follows. The rows written per table."""
        self.writer = BulkWriter(session)
        ids = sorted({s.member_id for s in stays})
        first_names = dict(session.execute(select(Member.id, Member.first_name)
                                           .where(Member.id.in_(ids))).all())
        codes = dict(session.execute(select(Card.member_id, Card.code).where(
            Card.club_id == self.club_id, Card.status == "active", Card.member_id.in_(ids))
            .order_by(Card.id)).all())
        unlimited = PLAN_BY_KEY["monthly"]  # a contract's routine: any day, any hour
        for stay in stays:
            vrng = random.Random(self.options.seed * 1_000_003 + 10**9 + stay.membership_id)
            person = _Person(0, stay.member_id, first_names[stay.member_id],
                             [(codes[stay.member_id], None)],
                             self.rng.betavariate(2.2, 1.7), vrng)
            start = stay.first.toordinal()
            used = self._visits(person, stay.membership_id, self._routine(person, unlimited),
                                start, stay.last.toordinal(), [], None, None, start, None)
            session.execute(update(Membership).where(Membership.id == stay.membership_id)
                            .values(visits_used=used))
        self.writer.finish()
        return dict(self.writer.counts)

    def _email(self, first: str, last: str, index: int) -> str:
        a, b = ascii_name(first), ascii_name(last)
        domain = EMAIL_DOMAINS[index % len(EMAIL_DOMAINS)]
        for local in (f"{a}.{b}", f"{a[0]}{b}", f"{a}.{b}{index}"):
            email = f"{local}@{domain}"
            if email not in self._emails:
                self._emails.add(email)
                return email
        raise AssertionError("unreachable: the index makes the last form unique")

    def _phone(self, index: int) -> str:
        # a bijection of the index over 17 prefixes x 10^8 numbers: unique and scattered
        space = len(MOBILE_PREFIXES) * 10**8
        value = (index * 387_420_489 + 12_345_679 + self.options.seed * 7919) % space
        return f"+49{MOBILE_PREFIXES[value // 10**8]}{value % 10**8:08d}"

    def _cards(self, person: _Person, join_ord: int, issued: datetime) -> None:
        """A card issued at the first sale; a few are lost and replaced later."""
        rng, w = self.rng, self.writer
        code = _card_code(person.index, self.options.seed)
        card_id = w.new_id("cards")
        replace_ord = join_ord + rng.randint(30, 400) if rng.random() < 0.03 else None
        if replace_ord is None or replace_ord > self.as_of_ord:
            w.rows["cards"].append((card_id, self.club_id, person.member_id, code, "active",
                                    None, None, issued, issued))
            person.cards = [(code, None)]
            return
        replaced = self._at(replace_ord, 9 * 60, 12 * 60)
        w.rows["cards"].append((card_id, self.club_id, person.member_id, code, "blocked",
                                replaced, "lost card, replaced", issued, replaced))
        new_code = _card_code(10**9 + person.index, self.options.seed)
        w.rows["cards"].append((w.new_id("cards"), self.club_id, person.member_id, new_code,
                                "active", None, None, replaced, replaced))
        person.cards = [(code, replaced), (new_code, None)]
        self.stats["card_replacements"] += 1

    def _routine(self, person: _Person, plan: PlanSpec) -> _Routine:
        rng = self.rng
        e = person.engagement
        per_week = 1 + sum(rng.random() < 0.25 + 0.55 * e for _ in range(3))
        if plan.visit_limit:
            per_week = min(per_week, 2)
        days: list[int] = []
        pool = list(range(7))
        weights = list(WEEKDAY_ROUTINE)
        for _ in range(per_week):
            d = rng.choices(pool, weights=weights)[0]
            weights[pool.index(d)] = 0.0
            days.append(d)
        lo, hi = OPEN, CLOSE
        if plan.access_end is not None:
            lo = max(lo, plan.access_start.hour * 60 + plan.access_start.minute)
            hi = min(hi, plan.access_end.hour * 60 + plan.access_end.minute - 10)
        slots = [s for s in SLOTS if s[0] < hi and s[1] > lo]
        s_lo, s_hi, _ = rng.choices(slots, weights=[s[2] for s in slots])[0]
        minute = rng.randint(max(s_lo, lo), min(s_hi, hi))
        show = 0.36 + 0.38 * e
        return _Routine(tuple(sorted(days)), minute, show, lo, hi)

    def _life(self, person: _Person, join_ord: int, first_sale_at: datetime) -> None:
        """Memberships one after another: renewals, freezes, cancellations, lapses, returns."""
        rng = self.rng
        plan = PLAN_BY_KEY[weighted(rng, [(p.key, p.first_weight) for p in PLANS])]
        routine = self._routine(person, plan)
        start_ord = sale_ord = join_ord
        sale_at = first_sale_at
        renews_id = None
        term = 0
        returning = False
        while True:
            membership_id, end_ord, renew = self._membership(
                person, plan, routine, start_ord=start_ord, sale_ord=sale_ord, sale_at=sale_at,
                renews_id=renews_id, term=term, returning=returning)
            if renew:
                # sold in the last two weeks, or on the first day of the new one
                sale_ord = end_ord + 1 - min(int(rng.expovariate(1 / 5)), 14)
                if sale_ord > self.as_of_ord:
                    return  # not sold yet: the member may still renew
                sale_at = self._at(sale_ord, 7 * 60, 20 * 60)
                renews_id = membership_id
                start_ord = end_ord + 1
                next_key = weighted(rng, SWITCH[plan.key])
                if next_key != plan.key:
                    plan = PLAN_BY_KEY[next_key]
                    routine = self._routine(person, plan)
                person.engagement = min(max(person.engagement + rng.gauss(0.02, 0.08), 0.02),
                                        0.98)
                term += 1
                returning = False
                self.stats["renewals"] += 1
                continue
            if renew is False and end_ord < self.as_of_ord:
                self.stats["lapses"] += 1  # ended, not renewed (cancelled ones are counted apart)
            # some come back after a gap, with a fresh start
            if rng.random() >= 0.32:
                return
            start_ord = end_ord + 1 + int(rng.triangular(10, 330, 45))
            if start_ord > self.as_of_ord:
                return
            sale_ord = start_ord
            sale_at = self._at(sale_ord, 7 * 60, 20 * 60)
            renews_id = None
            term = 0
            returning = True
            person.engagement = rng.betavariate(2.0, 1.8)
            plan = PLAN_BY_KEY[weighted(rng, [(p.key, p.first_weight) for p in PLANS])]
            routine = self._routine(person, plan)
            self.stats["returns"] += 1

    # long: one membership's life day by day (visits, freeze, cancellation, renewal) with state
    # every step shares; a seeded demo depends on the order of its random draws, kept as one piece
    def _membership(self, person: _Person, plan: PlanSpec, routine: _Routine, *, start_ord: int,
                    sale_ord: int, sale_at: datetime, renews_id: int | None, term: int,
                    returning: bool) -> tuple[int, int, bool | None]:
        """Write one membership with its sale, freezes and visits.

        Returns (id, last day, renews?) where renews is None when it was cancelled; the last day
        is the end date, or the day before the cancellation.
        """
        rng, w = self.rng, self.writer
        membership_id = w.new_id("memberships")
        start = date.fromordinal(start_ord)
        original_end = end_date_for(start, duration_days=plan.duration_days,
                                    duration_months=plan.duration_months)
        end_ord = original_end.toordinal()
        span = end_ord - start_ord + 1

        # freezes (up to two for long plans, within the allowance), started by today
        freezes: list[tuple[int, int]] = []
        allowance = plan.freeze_days
        tries = 2 if plan.key == "annual" else 1
        for _ in range(tries):
            if allowance < 5 or span < 25 or rng.random() >= FREEZE_P[plan.key]:
                break
            length = rng.randint(5, allowance)
            lo = (freezes[-1][1] + 10) if freezes else start_ord + 10
            hi = end_ord - 7
            if lo > hi:
                break
            f_start = rng.randint(lo, hi)
            if f_start > self.as_of_ord:
                break
            freezes.append((f_start, f_start + length - 1))
            end_ord += length
            allowance -= length

        # cancellation, effective by today, after any freeze
        cancelled_ord = None
        if rng.random() < CANCEL_P[plan.key] * (1.4 - person.engagement):
            lo = max(start_ord + 14, (freezes[-1][1] + 1) if freezes else 0)
            hi = end_ord - 5
            if lo <= hi:
                c = rng.randint(lo, hi)
                if c <= self.as_of_ord:
                    cancelled_ord = c

        # renew at the end? engagement drives it; first terms churn more
        e = person.engagement
        p_renew = 0.31 + 0.6 * e + (-0.05 if term == 0 else 0.06) - (0.04 if returning else 0)
        renew = cancelled_ord is None and rng.random() < min(max(p_renew, 0.05), 0.97)

        # those who leave fade out over their last weeks (some stop coming altogether)
        fade = None
        if not renew:
            fade_end = cancelled_ord if cancelled_ord is not None else end_ord
            fade_len = rng.randint(21, 70)
            stop = fade_end - rng.randint(5, 25) if rng.random() < 0.35 else None
            fade = (max(fade_end - fade_len, start_ord), fade_end, stop)

        # the sale (a receipt with one membership line, paid in full)
        price = plan.price
        if plan.key == "annual" and date.fromordinal(sale_ord).month in (1, 9):
            price = _money(price * Decimal("0.9"))  # January / September offer
        staff_id = self._staff()
        sale_id = w.new_id("sales")
        method = weighted(rng, PAY_METHODS)
        w.rows["sales"].append((sale_id, self.club_id, person.member_id, staff_id, price, None,
                                sale_at))
        description = (f"{'Renewal' if renews_id else 'Membership'}: {plan.name} "
                       f"{start.isoformat()}–{original_end.isoformat()}")
        w.rows["sale_lines"].append((w.new_id("sale_lines"), self.club_id, sale_id, "membership",
                                     membership_id, description, 1, price, price))
        w.rows["payments"].append((w.new_id("payments"), self.club_id, sale_id, method,
                                   "payment", price, staff_id, sale_at))
        updated_at = sale_at

        for f_start, f_end in freezes:
            made = self._at(max(f_start - rng.randint(0, 5), sale_ord))
            made = max(made, sale_at + timedelta(minutes=5))
            w.rows["freezes"].append((w.new_id("freezes"), self.club_id, membership_id,
                                      date.fromordinal(f_start), date.fromordinal(f_end),
                                      rng.choice(FREEZE_REASONS), self._staff(), made))
            updated_at = max(updated_at, made)
            self.stats["freezes"] += 1

        cancel_reason = cancel_note = refund = None
        if cancelled_ord is not None:
            cancel_reason = weighted(rng, self.reasons)
            notes = CANCEL_NOTES.get(cancel_reason)
            cancel_note = rng.choice(notes) if notes and rng.random() < 0.6 else None
            cancelled_at = max(self._at(cancelled_ord - rng.randint(0, 3)),
                               sale_at + timedelta(minutes=5))
            updated_at = max(updated_at, cancelled_at)
            if plan.key in ("annual", "quarter") and cancel_reason in ("moved_away", "health"):
                unused = end_ord - cancelled_ord + 1
                refund = _money(price * unused / span) if unused > 0 else None
                if refund:
                    w.rows["payments"].append((w.new_id("payments"), self.club_id, sale_id,
                                               method, "refund", -refund, self._staff(),
                                               cancelled_at))
                    self.stats["refunds"] += 1
            self.stats["cancellations"] += 1

        # visits: the routine, from the first day to the last valid one, never after now
        visits_used = 0
        if self.options.visits:
            last_ord = min(end_ord, self.as_of_ord,
                           (cancelled_ord - 1) if cancelled_ord is not None else end_ord)
            first_ord = start_ord
            if term == 0:  # new members take a while for the first visit; engaged ones less
                first_ord += int(person.vrng.expovariate(1 / (1 + 9 * (1 - e))))
            sale_minute = None
            if sale_ord == start_ord:
                local = sale_at.astimezone(self.clock.zone)
                sale_minute = local.hour * 60 + local.minute
            visits_used = self._visits(person, membership_id, routine, first_ord, last_ord,
                                       freezes, fade, plan.visit_limit, start_ord, sale_minute)

        w.rows["memberships"].append((
            membership_id, self.club_id, person.member_id, self.plan_ids[plan.key], start,
            date.fromordinal(end_ord), original_end, price, plan.visit_limit, visits_used,
            renews_id, sale_id,
            date.fromordinal(cancelled_ord) if cancelled_ord is not None else None,
            cancel_reason, cancel_note, refund, sale_at, updated_at))

        if start_ord > self.as_of_ord:
            self.stats["pending"] += 1
        elif end_ord >= self.as_of_ord and (cancelled_ord is None
                                            or cancelled_ord > self.as_of_ord):
            if any(a <= self.as_of_ord <= b for a, b in freezes):
                self.stats["frozen_today"] += 1
            else:
                self.stats["active_today"] += 1
        if cancelled_ord is not None:
            return membership_id, cancelled_ord - 1, None
        return membership_id, end_ord, renew

    def _visits(self, person: _Person, membership_id: int, routine: _Routine, first_ord: int,
                last_ord: int, freezes: list[tuple[int, int]], fade, limit: int | None,
                start_ord: int, sale_minute: int | None) -> int:
        """Emit the visits (access event + visit) of one membership; returns how many."""
        if first_ord > last_ord:
            return 0
        vrng, w, clock = person.vrng, self.writer, self.clock
        rand, randint, randrange = vrng.random, vrng.randint, vrng.randrange
        club_id, device_id, member_id = self.club_id, self.device_id, person.member_id
        events, visits = w.rows["access_events"], w.rows["visits"]
        message = f"Welcome, {person.first}!"  # what app.access says on a granted entry
        dedup_prefix = f"dev:{device_id}:demo-"  # the key app.access gives a device event id
        cards = person.cards
        day_factor = self.day_factor
        weekdays, base, show, lo, hi = (routine.weekdays, routine.minute, routine.show,
                                        routine.lo, routine.hi)
        fade_start, fade_end, stop = fade if fade else (None, None, None)
        as_of_ord, cutoff_minute = self.as_of_ord, self.cutoff_minute
        count = 0
        week = first_ord - date.fromordinal(first_ord).weekday()
        while week <= last_ord:
            candidates = [week + d for d in weekdays]
            if rand() < EXTRA_VISIT_P:
                extra = week + randrange(7)
                if extra not in candidates:
                    candidates.append(extra)
                    candidates.sort()
            for day in candidates:
                if day < first_ord or day > last_ord:
                    continue
                if freezes and any(a <= day <= b for a, b in freezes):
                    continue
                p = show * day_factor.get(day, 1.0)
                if fade_start is not None and day >= fade_start:
                    if stop is not None and day >= stop:
                        continue
                    p *= max(0.06, 1.0 - 0.94 * (day - fade_start) / max(fade_end - fade_start, 1))
                if rand() >= p:
                    continue
                if rand() < 0.12:
                    minute = randint(lo, hi)
                else:
                    minute = min(max(base + randint(-40, 40), lo), hi)
                if day == start_ord and sale_minute is not None and minute <= sale_minute:
                    minute = sale_minute + randint(5, 40)  # bought first, then trained
                    if minute > hi:
                        continue
                if day == as_of_ord and minute >= cutoff_minute:
                    continue
                occurred = clock.at(day, minute, randrange(60))
                code = cards[0][0]
                if len(cards) > 1 and occurred >= cards[0][1]:
                    code = cards[1][0]
                event_id = w.new_id("access_events")
                events.append((event_id, club_id, device_id, f"{dedup_prefix}{event_id}", code,
                               member_id, membership_id, "in", "device", True, "ok", message,
                               occurred, occurred + timedelta(milliseconds=randint(120, 900)),
                               None, None))
                visits.append((w.new_id("visits"), club_id, member_id, membership_id, event_id,
                               occurred))
                count += 1
                if limit is not None and count >= limit:
                    return count
            week += 7
        return count


def _card_code(index: int, seed: int) -> str:
    # a bijection of the index over 2^40 (odd multiplier), printed as a 10-hex-digit RFID UID
    return f"{(index * 0x9E3779B97F + 0x5DEECE66D * (seed + 1)) % (1 << 40):010X}"


def _birthday(rng: random.Random, year: int) -> date:
    month = rng.randint(1, 12)
    return date(year, month, rng.randint(1, 28 if month == 2 else 30))
