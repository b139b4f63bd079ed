"""The builders that arrange a club's world for the tests: the one place they are written.

`World` (the `world` fixture) goes through the services for what has a login or a key — clubs,
staff with a token, devices — and writes the rest straight into the tables, committed for real:
members (with a card), plans, memberships, freezes, visits, sales, tasks. Those rows are arranged,
not tested, and some tests need what no service writes (a member who joined in 2020, a membership
sold at 08:00 ten months ago). A domain's fixture may be a `World` with a `Profile` of its own:
the names, prices and plan lengths that domain's tests were written against.

`ClubApi` is a club's staff arranging through the HTTP API as they would at the desk: members
registered, plans, memberships sold, café products and stock, trainers, PT products and packages.
`Desk` is one staff user talking to the API.

`Retention` (the `rw` fixture) and `Shop` (the `shop` fixture) are the worlds of two domains whose
fixtures other directories use too (crm, billing).
"""
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import ClassVar
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select

from app.access.models import Visit
from app.billing.models import Payment, Sale
from app.clubs import service as clubs_service
from app.clubs.models import Club
from app.core import clock
from app.core.actors import Role
from app.core.db import transaction
from app.crm.models import Task
from app.memberapp import sessions as member_sessions
from app.members.models import Card, Member
from app.memberships.models import Freeze, Membership, Plan
from app.memberships.rules import end_date_for

PASSWORD = "correct horse battery"
BERLIN = ZoneInfo("Europe/Berlin")
MONTHLY = {"name": "Monthly", "duration_months": 1, "price": "100.00", "freeze_days": 14}
"""The plan `ClubApi.plan()` creates unless told otherwise."""


def local(day: date, hh: int = 12, mm: int = 0) -> datetime:
    """A Berlin wall-clock time on `day`, as an aware UTC instant."""
    return datetime.combine(day, time(hh, mm), tzinfo=BERLIN).astimezone(UTC)


def money(value) -> Decimal:
    return Decimal(str(value))


def _id(thing) -> int:
    """The id of a club (or anything with an `id`), or the id itself."""
    return thing if isinstance(thing, int) else thing.id


@dataclass
class Staff:
    user_id: int
    email: str
    club_id: int
    role: Role
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class DeviceKey:
    device_id: int
    club_id: int
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Device-Key": self.key}


class MemberId(int):
    """A built member's id — use it as the id — that also knows its club, name and card."""

    club_id: int
    first_name: str
    last_name: str
    card: str | None

    @property
    def member_id(self) -> int:
        return int(self)


@dataclass(frozen=True)
class Profile:
    """What a `World`'s builders fill in where a test does not say.

    The formats take `n` (the member's number in this world), `club` (its club's id) and `first`
    (the first name, lower-cased).
    """

    first_name: str = "Anna{n}"
    last_name: str = "Berg"
    card: str | None = None  # a card for each member, e.g. "C{club:03d}{n:05d}"
    email: str | None = None  # e.g. "{first}{n}@example.com"
    phone: str | None = None  # e.g. "+49151000{n:05d}"
    consents: bool = False  # email and SMS consent
    joined: datetime | None = None  # when members were created (None: now)
    plan_name: str = "Monthly"  # may name the plan's {months}
    months: int = 1  # a plan's duration
    price: Decimal = Decimal("49.00")  # of plans and memberships
    freeze_days: int = 14  # a plan's freeze allowance
    membership_months: int | None = None  # a membership given a start only runs this long
    sold_hour: int | None = None  # memberships sold at this hour of their first day (Berlin)
    # and freezes recorded at 08:00 of theirs; None: both now


RETENTION = Profile(first_name="Member{n}", last_name="Test", email="{first}{n}@example.com",
                    phone="+49151000{n:05d}", consents=True,
                    joined=datetime(2020, 1, 1, tzinfo=UTC), plan_name="{months} months",
                    months=12, price=Decimal("300.00"), freeze_days=30, membership_months=12,
                    sold_hour=8)
"""Retention (and crm) members joined long ago, have an email, a phone and both consents; plans
and memberships are yearly, sold at 08:00."""

_AUTO = object()


@dataclass
class World:
    db: object
    profile: Profile = field(default_factory=Profile)
    _n: int = field(default=0)
    _members: int = field(default=0)

    def _next(self) -> int:
        self._n += 1
        return self._n

    # --- through the services: clubs, staff logins, device keys --------------------------------

    def club(self, name: str = "Riverside Fitness", timezone: str = "Europe/Berlin",
             **settings) -> Club:
        with transaction(self.db.sessionmaker) as s:
            club = clubs_service.create_club(s, name=name, timezone=timezone)
            if settings:
                clubs_service.update_club_settings(s, club=club, changes=settings)
            return club

    def staff(self, club: Club, role: Role | str = Role.front_desk, email: str | None = None) -> Staff:
        role = Role(role)
        email = email or f"{role.value}{self._next()}@club{club.id}.test"
        with transaction(self.db.sessionmaker) as s:
            user = clubs_service.create_user(s, email=email, name=email.split("@")[0],
                                             password=PASSWORD)
            clubs_service.grant_role(s, by=None, user=user, club=club, role=role)
            token, _ = clubs_service.login(s, email=email, password=PASSWORD,
                                           ttl=timedelta(days=2))  # outlives a test that moves its clock
            return Staff(user.id, email, club.id, role, token)

    def device(self, club: Club, name: str | None = None, **kwargs) -> DeviceKey:
        """A device and its key; `kwargs` go to `add_device` (direction, protocol, serial_number,
        timezone...)."""
        with transaction(self.db.sessionmaker) as s:
            device, key = clubs_service.add_device(s, club=s.get(Club, club.id),
                                                   name=name or f"turnstile-{self._next()}",
                                                   **kwargs)
            return DeviceKey(device.id, club.id, key)

    def enrol(self, club, first_name: str, last_name: str, **fields) -> int:
        """A member registered through the members service as the desk would (normalised phone
        and email, a card, search terms); `fields` are `MemberCreate`'s."""
        from app.members import service as members_service
        from app.members.schemas import MemberCreate

        with transaction(self.db.sessionmaker) as s:
            return members_service.create_member(s, club_id=_id(club), data=MemberCreate(
                first_name=first_name, last_name=last_name, **fields)).id

    def app_session(self, member: int, device: str | None = "Test browser") -> str:
        """A member signed in to the member app (as after an emailed link); the cookie's token."""
        with transaction(self.db.sessionmaker) as s:
            return member_sessions.start(s, member=s.get(Member, int(member)), channel="email",
                                  device=device, ttl=timedelta(days=30))

    # --- rows written directly ------------------------------------------------------------------

    def member(self, club, first_name: str | None = None, last_name: str | None = None, *,
               card=_AUTO, card_status: str = "active", email=_AUTO, phone=_AUTO,
               birth_date: date | None = None, email_consent: bool | None = None,
               sms_consent: bool | None = None, created_at: datetime | None = None,
               external_ref: str | None = None) -> MemberId:
        """A member (with a card if the profile or `card` gives one); card, email and phone
        default to the profile's formats, None for none."""
        self._members += 1
        n, club_id, p = self._members, _id(club), self.profile
        first_name = first_name or p.first_name.format(n=n)
        last_name = last_name or p.last_name
        names = {"n": n, "club": club_id, "first": first_name.lower()}
        if card is _AUTO:
            card = p.card.format(**names) if p.card else None
        if email is _AUTO:
            email = p.email.format(**names) if p.email else None
        if phone is _AUTO:
            phone = p.phone.format(**names) if p.phone else None
        created_at = created_at or p.joined
        row = {"created_at": created_at, "updated_at": created_at} if created_at else {}
        with transaction(self.db.sessionmaker) as s:
            member = Member(club_id=club_id, first_name=first_name, last_name=last_name,
                            email=email, phone=phone, birth_date=birth_date,
                            email_consent=p.consents if email_consent is None else email_consent,
                            sms_consent=p.consents if sms_consent is None else sms_consent,
                            external_ref=external_ref, **row)
            s.add(member)
            s.flush()
            if card is not None:
                s.add(Card(club_id=club_id, member_id=member.id, code=card, status=card_status,
                           blocked_at=clock.now() if card_status != "active" else None))
            built = MemberId(member.id)
        built.club_id, built.first_name, built.last_name, built.card = (
            club_id, first_name, last_name, card)
        return built

    def plan(self, club, name: str | None = None, *, months: int | None = None,
             days: int | None = None, price=None, freeze_days: int | None = None,
             visit_limit: int | None = None, access_start: time | None = None,
             access_end: time | None = None, auto_renew: bool = False) -> int:
        """A plan of `months` (the profile's unless `days` is given) or `days`."""
        p = self.profile
        if months is None and days is None:
            months = p.months
        with transaction(self.db.sessionmaker) as s:
            plan = Plan(club_id=_id(club), name=name or p.plan_name.format(months=months),
                        duration_months=months, duration_days=days,
                        price=Decimal(price or p.price),
                        freeze_days=p.freeze_days if freeze_days is None else freeze_days,
                        visit_limit=visit_limit, access_start=access_start,
                        access_end=access_end, auto_renew=auto_renew, active=True)
            s.add(plan)
            s.flush()
            return plan.id

    def membership(self, club, member: int, plan: int | None = None, start: date | None = None,
                   end: date | None = None, *, months: int | None = None, price=None,
                   visit_limit: int | None = None, visits_used: int = 0,
                   cancelled_on: date | None = None, cancel_reason: str | None = None,
                   frozen: tuple[date, date] | None = None, sold_at: datetime | None = None,
                   renews_id: int | None = None) -> int:
        """A membership of `plan` (a new plan of the profile's if None) from `start` to `end`.

        Without dates it runs today, from 10 days ago to 20 days ahead; given a start only, it
        runs `months` (or the profile's) from there, else to 20 days ahead. `frozen` (first,
        last day) adds a freeze, which moves the end by its length (`end` is the one before).
        """
        p = self.profile
        today = clock.today(BERLIN)
        start = start or today - timedelta(days=10)
        months = months or p.membership_months
        if end is None:
            end = (end_date_for(start, duration_days=None, duration_months=months) if months
                   else today + timedelta(days=20))
        final = end + (frozen[1] - frozen[0] + timedelta(days=1) if frozen else timedelta(0))
        if plan is None:
            plan = self.plan(club, visit_limit=visit_limit)
        sold_at = sold_at or (local(start, p.sold_hour) if p.sold_hour is not None else None)
        row = {"created_at": sold_at, "updated_at": sold_at} if sold_at else {}
        with transaction(self.db.sessionmaker) as s:
            membership = Membership(
                club_id=_id(club), member_id=int(member), plan_id=plan, start_date=start,
                end_date=final, original_end_date=end, price=Decimal(price or p.price),
                visit_limit=visit_limit, visits_used=visits_used, cancelled_on=cancelled_on,
                cancel_reason=cancel_reason, renews_id=renews_id, **row)
            s.add(membership)
            s.flush()
            membership_id = membership.id
        if frozen:
            self.freeze(club, membership_id, *frozen)
        return membership_id

    def freeze(self, club, membership: int, start: date, end: date, *,
               reason: str = "travel") -> int:
        """A freeze of a membership from `start` to `end` (its end date is the caller's to move)."""
        at = local(start, 8) if self.profile.sold_hour is not None else clock.now()
        with transaction(self.db.sessionmaker) as s:
            freeze = Freeze(club_id=_id(club), membership_id=membership, start_date=start,
                            end_date=end, reason=reason, created_at=at)
            s.add(freeze)
            s.flush()
            return freeze.id

    def failed_dues(self, club, member: int, *, failed_on: date, amount: str = "49.00",
                    method: str = "sepa", status: str = "returned", **settings) -> int:
        """An invoice of `amount` for the member (who pays for themselves) whose collection
        failed (card) or was returned (SEPA) on `failed_on`, as the collectors leave it: the
        debit's money in and the return's out for SEPA. `settings` are the club's
        `DuesSettings` (dunning sequence). Returns the invoice id."""
        from app.dues import invoicing
        from app.dues.models import Collection, DuesSettings, Payer

        club_id = _id(club)
        with transaction(self.db.sessionmaker) as s:
            if settings:
                row = s.scalars(select(DuesSettings).where(DuesSettings.club_id == club_id)).first()
                if row is None:
                    row = DuesSettings(club_id=club_id)
                    s.add(row)
                for key, value in settings.items():
                    setattr(row, key, value)
                s.flush()
            member_row = s.get(Member, int(member))
            payer = Payer(club_id=club_id, member_id=int(member), name=member_row.first_name,
                          email=member_row.email or f"payer{int(member)}@example.test")
            s.add(payer)
            s.flush()
            due = failed_on - timedelta(days=2)
            invoice = invoicing.issue_invoice(
                s, club_id=club_id, payer_id=payer.id, issued_on=due - timedelta(days=5),
                due_on=due, method=method, lines=[invoicing.LineIn(
                    charge_key=f"dues:test:{int(member)}:{due.isoformat()}", kind="dues",
                    description="Monthly dues", gross=Decimal(amount), member_id=int(member))])
            collection = Collection(club_id=club_id, invoice_id=invoice.id, payer_id=payer.id,
                                    attempt=1, method=method, amount=Decimal(amount), due_on=due,
                                    status=status, failed_on=failed_on,
                                    failure_code="AM04" if method == "sepa" else "card_declined")
            s.add(collection)
            s.flush()
            if status == "returned":
                invoicing.record_payment(s, club_id=club_id, invoice_id=invoice.id,
                                         amount=Decimal(amount), method="sepa", occurred_on=due,
                                         collection_id=collection.id)
                invoicing.record_payment(s, club_id=club_id, invoice_id=invoice.id,
                                         amount=-Decimal(amount), method="sepa", kind="return",
                                         occurred_on=failed_on, collection_id=collection.id)
            return invoice.id

    def visits(self, club, member: int, days, hour: int = 18,
               membership: int | None = None) -> None:
        """Visits on these days (at `hour`, Berlin) or at these instants."""
        rows = [{"club_id": _id(club), "member_id": int(member), "membership_id": membership,
                 "occurred_at": d if isinstance(d, datetime) else local(d, hour)} for d in days]
        if rows:
            with transaction(self.db.sessionmaker) as s:
                s.execute(insert(Visit), rows)

    def sale(self, club, member: int, *, total: str, paid: str) -> int:
        """A sale to the member of `total`, `paid` of it by card."""
        with transaction(self.db.sessionmaker) as s:
            sale = Sale(club_id=_id(club), member_id=int(member), total=Decimal(total),
                        created_at=clock.now())
            s.add(sale)
            s.flush()
            if Decimal(paid):
                s.add(Payment(club_id=_id(club), sale_id=sale.id, method="card",
                              kind="payment", amount=Decimal(paid), created_at=clock.now()))
            return sale.id

    def task(self, club, *, title: str, due: date, kind: str = "call", role: str | None = None,
             user: int | None = None, status: str = "open", member: int | None = None) -> int:
        """A task as the retention engine writes it (assigned to a role, a user or nobody)."""
        now = clock.now()
        with transaction(self.db.sessionmaker) as s:
            task = Task(club_id=_id(club), title=title, kind=kind, assignee_role=role,
                        assignee_user_id=user, due_date=due, status=status,
                        member_id=None if member is None else int(member), created_at=now,
                        updated_at=now)
            s.add(task)
            s.flush()
            return task.id


# --- the retention engine's world (retention and crm) ----------------------------------------


class Retention(World):
    """A `World` with the retention profile, and the engine: run a day, dispatch, read stages."""

    D: ClassVar[date] = date(2026, 3, 2)  # a Monday: "today" in most retention tests

    def __init__(self, db, profile: Profile = RETENTION):
        super().__init__(db, profile)

    def regular_visits(self, club, member_id: int, start: date, end: date,
                       weekdays=(0, 2, 4)) -> None:
        days, d = [], start
        while d <= end:
            if d.weekday() in weekdays:
                days.append(d)
            d += timedelta(days=1)
        self.visits(club, member_id, days)

    def run(self, club, day: date = D, **kw):
        from app.retention import service

        return service.run_day(self.db.sessionmaker, club_id=club.id, as_of=day,
                               now=kw.pop("now", local(day, 5)), force=True, **kw)

    def dispatch(self, now: datetime, channels=None, **kw):
        from app.retention.dispatch import dispatch_due

        return dispatch_due(self.db.sessionmaker, channels=channels or self.channels, now=now,
                            **kw)

    @property
    def channels(self):
        from app.retention.channels import Channels, Recording

        if not hasattr(self, "_channels"):
            self._channels = Channels(email=Recording(), sms=Recording())
        return self._channels

    def stage(self, member_id: int):
        from app.retention.models import MemberStage

        with transaction(self.db.sessionmaker) as s:
            return s.scalar(select(MemberStage).where(MemberStage.member_id == member_id))

    def touchpoints(self, member_id: int | None = None, key: str | None = None) -> list:
        from app.retention.models import ScheduledTouchpoint, TouchpointDefinition

        with transaction(self.db.sessionmaker) as s:
            q = (select(ScheduledTouchpoint, TouchpointDefinition.key)
                 .join(TouchpointDefinition,
                       TouchpointDefinition.id == ScheduledTouchpoint.definition_id))
            if member_id is not None:
                q = q.where(ScheduledTouchpoint.member_id == member_id)
            if key is not None:
                q = q.where(TouchpointDefinition.key == key)
            return [(tp, k) for tp, k in s.execute(q.order_by(ScheduledTouchpoint.id))]

    def definition(self, club, key: str):
        """The club's playbook definition `key` (the default playbook is written first)."""
        from app.retention import service
        from app.retention.models import TouchpointDefinition

        with transaction(self.db.sessionmaker) as s:
            service.playbook.ensure_default_playbook(s, club_id=club.id)
            return s.scalar(select(TouchpointDefinition).where(
                TouchpointDefinition.club_id == club.id, TouchpointDefinition.key == key))

    def only(self, club, *keys: str) -> None:
        """Disable every definition except these (keeps a test about one play focused)."""
        from app.retention import service
        from app.retention.models import TouchpointDefinition

        with transaction(self.db.sessionmaker) as s:
            service.playbook.ensure_default_playbook(s, club_id=club.id)
            for d in s.scalars(select(TouchpointDefinition)
                               .where(TouchpointDefinition.club_id == club.id)):
                d.enabled = d.key in keys


# --- through the HTTP API --------------------------------------------------------------------


@dataclass
class Desk:
    """One signed-in staff user of a club, talking to the API (paths below /api/v1)."""

    client: object
    staff: Staff
    club: Club

    @property
    def headers(self) -> dict[str, str]:
        return self.staff.headers

    def get(self, path: str, **kwargs):
        return self.client.get(f"/api/v1{path}", headers=self.headers, **kwargs)

    def post(self, path: str, json=None, **kwargs):
        return self.client.post(f"/api/v1{path}", json=json, headers=self.headers, **kwargs)

    def patch(self, path: str, json=None, **kwargs):
        return self.client.patch(f"/api/v1{path}", json=json, headers=self.headers, **kwargs)

    def delete(self, path: str, **kwargs):
        return self.client.delete(f"/api/v1{path}", headers=self.headers, **kwargs)

    def register(self, first_name: str, last_name: str, **fields) -> dict:
        """A member registered at the desk (POST /members); the answer."""
        r = self.post("/members", {"first_name": first_name, "last_name": last_name, **fields})
        assert r.status_code == 201, r.text
        return r.json()

    def search(self, q: str | None = None, **params) -> dict:
        if q is not None:
            params["q"] = q
        r = self.get("/members", params=params)
        assert r.status_code == 200, r.text
        return r.json()


@dataclass
class Coach:
    """A trainer: their staff login and their profile id."""

    staff: Staff
    id: int

    @property
    def headers(self) -> dict[str, str]:
        return self.staff.headers


ALL_WEEK = [{"weekday": d, "start": "06:00", "end": "22:00"} for d in range(1, 8)]


@dataclass
class ClubApi:
    """A club and its staff, arranging through the HTTP API. Members are rows (`world.member`);
    plans, memberships, products, stock, trainers and PT packages go through the API, as the
    manager unless `staff=` says who."""

    client: object
    world: World
    club: Club
    owner: Staff | None = None
    manager: Staff | None = None
    desk: Staff | None = None
    _n: int = field(default=0)

    plan_body: ClassVar[dict] = MONTHLY  # what `plan()` creates unless told otherwise
    member_body: ClassVar[dict] = {}  # what `register()` sends unless told otherwise

    def _next(self) -> int:
        self._n += 1
        return self._n

    @property
    def db(self):
        return self.world.db

    @property
    def today(self) -> date:
        return clubs_service.club_today(self.club)

    def day(self, offset: int) -> date:
        return self.today + timedelta(days=offset)

    def _ok(self, response, status: int = 201):
        assert response.status_code == status, response.text
        return response.json()

    # --- people

    def member(self, first_name: str | None = None, last_name: str | None = None,
               club: Club | None = None, **fields) -> MemberId:
        """A member of this club (or `club`), written as a row (see `World.member`)."""
        return self.world.member(club or self.club, first_name, last_name, **fields)

    def register(self, first_name: str, last_name: str, staff=None, **fields) -> dict:
        """A member registered through the API, by the desk unless `staff` says who."""
        return Desk(self.client, staff or self.desk, self.club).register(
            first_name, last_name, **(self.member_body | fields))

    def trainer(self, hours: list | None = None, club: Club | None = None,
                manager=None) -> Coach:
        """A trainer: a staff login, a profile and working hours (all week, 06-22, unless given)."""
        club = club or self.club
        manager = manager or self.manager
        staff = self.world.staff(club, Role.trainer)
        coach = Coach(staff, self._ok(self.client.post(
            "/api/v1/trainers", json={"user_id": staff.user_id, "specialities": ["strength"]},
            headers=manager.headers))["id"])
        self._ok(self.client.put(f"/api/v1/trainers/{coach.id}/hours",
                                 json={"intervals": ALL_WEEK if hours is None else hours},
                                 headers=manager.headers), 200)
        return coach

    # --- plans and memberships

    def plan(self, staff=None, **fields) -> dict:
        """A plan (`plan_body` with `fields`); the answer."""
        return self._ok(self.client.post("/api/v1/plans", json=self.plan_body | fields,
                                         headers=(staff or self.manager).headers))

    def sell_membership(self, member_id: int, plan_id: int, staff=None, headers=None, **body):
        """POST a membership sale, by the desk unless `staff` says who; the response."""
        return self.client.post(f"/api/v1/members/{member_id}/memberships",
                                json={"plan_id": plan_id} | body,
                                headers=(staff or self.desk).headers | (headers or {}))

    def membership(self, member_id: int, plan_id: int | None = None, *,
                   start_offset: int | None = 0, staff=None, **body) -> dict:
        """A membership sold by the manager, starting `start_offset` days from today (None: as
        the server decides), of `plan_id` or a new plan; the sale's answer."""
        if start_offset is not None:
            body.setdefault("start_date", self.day(start_offset).isoformat())
        return self._ok(self.sell_membership(member_id, plan_id or self.plan()["id"],
                                             staff=staff or self.manager, **body))

    def recurring_plan(self, staff=None, **fields) -> dict:
        """A recurring plan: 49.00 a month, 12 months minimum, 1 month's notice, then monthly
        (`fields` change it); the answer."""
        body = {"name": "Flex 12", "price": "49.00", "billing": "recurring",
                "billing_period": "month", "minimum_months": 12, "notice_value": 1,
                "notice_unit": "months", "renewal": "monthly"} | fields
        return self._ok(self.client.post("/api/v1/plans", json=body,
                                         headers=(staff or self.manager).headers))

    def contract(self, member_id: int, plan_id: int, staff=None, **line) -> dict:
        """A recurring contract sold by the desk (paid at the desk unless `line` says how);
        the contract as the API reads it."""
        sale = self._ok(self.client.post("/api/v1/sales", json={
            "member_id": member_id,
            "lines": [{"kind": "contract", "plan_id": plan_id, "method": "desk"} | line]},
            headers=(staff or self.desk).headers))
        return self._ok(self.client.get(f"/api/v1/contracts/{sale['lines'][0]['item_id']}",
                                        headers=(staff or self.desk).headers), 200)

    # --- the café

    def product(self, staff=None, **fields) -> dict:
        """A café product (SKU-<n>, drinks, 3.50 unless given); the answer."""
        n = self._next()
        body = {"sku": f"SKU-{n}", "name": f"Product {n}", "category": "drinks",
                "sale_price": "3.50"} | fields
        return self._ok(self.client.post("/api/v1/inventory/products", json=body,
                                         headers=(staff or self.manager).headers))

    def receive(self, product_id: int, quantity: int, unit_cost, staff=None, **extra) -> dict:
        """Stock received for a product; the answer."""
        body = {"product_id": product_id, "quantity": quantity, "unit_cost": str(unit_cost)}
        return self._ok(self.client.post("/api/v1/inventory/receipts", json=body | extra,
                                         headers=(staff or self.manager).headers))

    # --- personal training

    def pt_product(self, sessions: int = 10, price: str = "500.00", validity_days: int = 90,
                   **extra) -> int:
        """A PT package product; its id."""
        body = {"name": f"PT {sessions}x{self._next()}", "sessions": sessions, "price": price,
                "validity_days": validity_days} | extra
        return self._ok(self.client.post("/api/v1/pt-products", json=body,
                                         headers=self.manager.headers))["id"]

    def sell_package(self, member_id: int, product_id: int, staff=None, **body):
        """POST a PT package sale, by the manager unless `staff` says who; the response."""
        return self.client.post(f"/api/v1/members/{member_id}/pt-packages",
                                json={"package_product_id": product_id} | body,
                                headers=(staff or self.manager).headers)

    def package(self, member_id: int, product_id: int | None = None, start_offset: int = -30,
                **body) -> dict:
        """A package sold by the manager, valid from `start_offset` days from today."""
        return self._ok(self.sell_package(member_id, product_id or self.pt_product(),
                                          start_date=self.day(start_offset).isoformat(), **body))

    # --- reading the database in a short transaction of its own (on SQLite an open one would
    # block the API)

    def scalar(self, stmt):
        with self.db.sessionmaker() as s:
            return s.scalar(stmt)

    def scalars(self, stmt) -> list:
        with self.db.sessionmaker() as s:
            return list(s.scalars(stmt))

    def count(self, model, *where, **equal) -> int:
        """Rows of a model, a table or a table's name, matching `where` and `column=value`s."""
        from app.registry import metadata

        table = (metadata.tables[model] if isinstance(model, str)
                 else getattr(model, "__table__", model))
        return self.scalar(select(func.count()).select_from(table).where(
            *where, *(table.c[k] == v for k, v in equal.items())))


class Shop(ClubApi):
    """The memberships world (memberships and billing): a club with a manager and a desk; the
    desk sells."""

    sell = ClubApi.sell_membership

    def sold(self, member_id: int, plan_id: int, staff=None, **body) -> dict:
        """A membership sold by the desk (unless `staff`), as the server dates it; the answer."""
        return self.membership(member_id, plan_id, start_offset=None, staff=staff or self.desk,
                               **body)

    def get_membership(self, membership_id: int, as_of: date | None = None, staff=None) -> dict:
        params = {"as_of": as_of.isoformat()} if as_of else None
        return self._ok(self.client.get(f"/api/v1/memberships/{membership_id}", params=params,
                                        headers=(staff or self.desk).headers), 200)

    @classmethod
    def open(cls, client, world: World) -> "Shop":
        club = world.club()
        return cls(client, world, club, manager=world.staff(club, Role.manager),
                   desk=world.staff(club, Role.front_desk))
