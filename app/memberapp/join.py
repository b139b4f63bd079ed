"""Joining online and renewing in the member app (`/app/join`, `/app/renew`).

The club lists the recurring plans sold online in its `online_plans` setting. A person picks one,
gives their details (name, email, phone, birth date, whether the club may email / text them),
reads the contract's terms — rendered from the plan in the page's language (`terms_text`) —
types their full name and ticks "I accept". Then, in one transaction:

- the person: a new member (`members.service.create_member`); or the member behind an open CRM
  lead with that email address (a prospect without a membership), whose lead the sale wins
  (`crm.leads.on_membership_sold`, through the `MembershipSold` event). Identity is the email
  address only — what sign-in proves: a phone number alone found a lead's record, which a
  stranger knowing the number could then take over and read. A mobile number that another
  member has is not stored on the new record; the desk gets a task to check (merge or ask);
- the contract: a sale with one "contract" line (`billing.service.create_sale` →
  `dues.contracts.fulfil_contract_line`, the one way contracts are sold), paid at the desk
  (method `desk`), starting today (renewing: the day after the member's last membership ends);
- the signature: a `MemberSignature` row with the terms as shown, the name typed, the time, the
  client's address, the plan, the member, the contract — `pending` until the first payment;
- the consents as statements (source `member_app`), the timeline entry "joined online", the
  front desk's task "take the first payment, check the ID", and the confirmation email (queued
  in the dues outbox, sent after the answer) in the page's language.

An email that belongs to a member of the club already (other than an open lead's prospect) makes
no second member: that address gets an email saying it is registered and how to sign in, and
the page says the same as for a new member ("we have sent you an email"), so it tells nobody
who is a member. The form carries a one-time key: sent twice, it signs once and answers the
same. Requests are counted like sign-in requests (per client network and per email address).
The terms the page showed travel as a digest: if the plan changed meanwhile, nothing is signed
and the page shows the new terms.

Not here yet: paying online, and a SEPA mandate taken in the form (the desk sets the payment up
when the person comes in: `dues.contracts.change_payment`).
"""
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.billing import service as billing_service
from app.billing.models import SaleLine
from app.clubs import service as clubs_service
from app.clubs.models import Club
from app.core import clock, i18n
from app.core.actors import Actor, MemberActor, Role
from app.core.config import Settings
from app.core.db import transaction
from app.core.errors import Conflict, Invalid, NotFound
from app.crm import service as crm_service
from app.crm.leads import OPEN_STAGES
from app.crm.models import Lead
from app.dues import notices
from app.dues.contracts import ADULT_AGE, CONTRACT
from app.dues.contracts_schemas import ContractLine
from app.dues.models import Contract
from app.memberapp.models import MemberSignature
from app.memberapp.signin import count_request
from app.members import service as members_service
from app.members.models import Member
from app.members.schemas import MemberCreate
from app.memberships.models import Membership, Plan

IP_LIMIT, EMAIL_LIMIT, WINDOW = 10, 5, timedelta(minutes=15)  # as signing in
KEY = re.compile(r"[A-Za-z0-9_\-]{16,64}")
TIMELINE_KIND = "joined_online"
JOIN_LOCK = 0x6A6F696E  # "join": the advisory lock's first key (the club is the second)
SOURCE = "member_app"
FIELD_CODES = {"first_name": "join_first_name", "last_name": "join_last_name",
               "email": "join_email", "phone": "join_phone", "birth_date": "join_birth_date"}


@dataclass
class Details:
    """What the join form says about the person."""

    first_name: str
    last_name: str
    email: str
    phone: str | None
    birth_date: date | None
    email_ok: bool = False
    sms_ok: bool = False


@dataclass
class Signing:
    """The contract part of the form: the name typed, the tick, the one-time key, the digest of
    the terms shown."""

    typed_name: str
    accepted: bool
    key: str
    shown: str


@dataclass
class Signed:
    """The answer: the same page whatever happened (a new member or an address already
    registered), with the email to look for."""

    email: str
    plan_name: str
    signature_id: int | None = None
    deliver: Callable[[], None] | None = field(default=None, repr=False)


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# ----------------------------------------------------------------------------- the offer

def online_plans(session: Session, *, club: Club) -> list[Plan]:
    """The club's plans sold online: listed in `online_plans`, active and recurring."""
    ids = clubs_service.club_settings(club).online_plans
    if not ids:
        return []
    return list(session.scalars(select(Plan).where(
        Plan.club_id == club.id, Plan.id.in_(ids), Plan.active.is_(True),
        Plan.billing == "recurring").order_by(Plan.price, Plan.name, Plan.id)))


def online_plan(session: Session, *, club: Club, plan_id: int) -> Plan:
    """One plan sold online, else NotFound (another club's, inactive or not sold online)."""
    plan = next((p for p in online_plans(session, club=club) if p.id == plan_id), None)
    if plan is None:
        raise NotFound("This plan is not sold online", code="join_plan_not_found")
    return plan


def price_on(plan: Plan, start: date):
    """The price a contract starting on `start` gets (an announced new price from its day)."""
    if plan.next_price_from is not None and plan.next_price_from <= start:
        return plan.next_price
    return plan.price


def terms_text(lang: str, *, club: Club, plan: Plan, start: date) -> str:
    """The contract's terms as the page shows them and the signature keeps them."""
    def t(key: str, **values) -> str:
        return i18n.text(lang, key, **values)
    period = t(f"period.{plan.billing_period or 'month'}")
    lines = [t("join.terms.head", club=club.name, plan=plan.name),
             t("join.terms.price", amount=i18n.money(lang, price_on(plan, start), club.currency),
               period=period),
             t("join.terms.start", day=i18n.day(lang, start))]
    minimum = plan.minimum_months or 0
    lines.append(t("join.terms.minimum", term=i18n.plural(lang, "unit.months", minimum))
                 if minimum else t("join.terms.no_minimum"))
    notice = (i18n.plural(lang, f"unit.{plan.notice_unit or 'months'}", plan.notice_value)
              if plan.notice_value else t("contract.no_notice"))
    lines.append(t("join.terms.notice", notice=notice))
    after = (t("contract.monthly") if (plan.renewal or "monthly") == "monthly"
             else i18n.plural(lang, "contract.renews", plan.renewal_months or 1))
    lines.append(t("join.terms.after", after=after))
    if plan.joining_fee:
        lines.append(t("join.terms.fee", amount=i18n.money(lang, plan.joining_fee,
                                                           club.currency)))
    lines.append(t("join.terms.payment"))
    return "\n".join(lines)


def renew_start(session: Session, *, club_id: int, member_id: int) -> date:
    """A renewal starts today, or the day after the member's last membership ends."""
    today = clubs_service.club_today_by_id(session, club_id)
    last = session.scalar(select(func.max(Membership.end_date)).where(
        Membership.club_id == club_id, Membership.member_id == member_id,
        Membership.cancelled_on.is_(None)))
    return max(today, last + timedelta(days=1)) if last else today


def running_contract(session: Session, *, club_id: int, member_id: int) -> bool:
    """Whether the member has a contract not cancelled (nothing to renew then)."""
    return session.scalar(select(Contract.id).join(
        Membership, Membership.id == Contract.membership_id).where(
        Contract.club_id == club_id, Contract.member_id == member_id,
        Contract.ends_on.is_(None), Membership.cancelled_on.is_(None)).limit(1)) is not None


# ----------------------------------------------------------------------------- checking

def _checked_details(details: Details) -> MemberCreate:
    try:
        data = MemberCreate(first_name=details.first_name.strip(),
                            last_name=details.last_name.strip(), email=details.email.strip(),
                            phone=(details.phone or "").strip() or None,
                            birth_date=details.birth_date, source=SOURCE)
    except ValidationError as exc:
        first = str(exc.errors()[0]["loc"][0]) if exc.errors()[0]["loc"] else "email"
        raise Invalid(f"Please check {first.replace('_', ' ')}",
                      code=FIELD_CODES.get(first, "join_email"),
                      details={"field": first}) from None
    if not data.email:
        raise Invalid("Please give your email address", code="join_email",
                      details={"field": "email"})
    if data.birth_date is None:
        raise Invalid("Please give your birth date", code="join_birth_date",
                      details={"field": "birth_date"})
    return data


def _same_name(typed: str, first: str, last: str) -> bool:
    def norm(text: str) -> str:
        return " ".join(text.split()).casefold()
    return norm(typed) == norm(f"{first} {last}")


def _check_signing(signing: Signing, *, first: str, last: str) -> None:
    if not KEY.fullmatch(signing.key or ""):
        raise Invalid("The form is out of date; open it again", code="join_form_stale")
    if not signing.accepted:
        raise Invalid("Tick 'I accept' to sign the contract", code="join_not_accepted")
    if not _same_name(signing.typed_name or "", first, last):
        raise Invalid("Type your full name as you gave it above to sign",
                      code="join_name_mismatch")


def _age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _club_actor(club_id: int) -> Actor:
    """The sale's actor: the member app itself — no staff member (`user_id` None: the sale, the
    membership and the lead's win name nobody), front-desk rights (no backdating)."""
    return Actor(user_id=None, name="member app", club_id=club_id,  # type: ignore[arg-type]
                 role=Role.front_desk)


# ----------------------------------------------------------------------------- signing

def _sender(factory: sessionmaker[Session], settings: Settings,
            ids: list[int]) -> Callable[[], None] | None:
    if not ids:
        return None

    def deliver() -> None:
        with transaction(factory) as s:
            notices.send_pending(s, settings=settings, ids=ids)  # else the notices job retries
    return deliver


def _sign_in_link(settings: Settings) -> str:
    return f"{str(settings.public_base_url).rstrip('/')}/app/sign-in"


# long: one signature's whole story — the sale, the record, the timeline, the desk's task and
# the email — reads best in the order it happens
def _sign(s: Session, *, settings: Settings, club: Club, member: Member, plan: Plan,
          start: date, signing: Signing, kind: str, address: str | None, lang: str,
          lead_id: int | None) -> tuple[MemberSignature, int]:
    """Sell the contract (paid at the desk), keep the signature, tell the desk and the member;
    (the signature, the confirmation's notice id)."""
    terms = terms_text(lang, club=club, plan=plan, start=start)
    if digest_of(terms) != signing.shown:
        raise Conflict("The terms changed since the page was opened; read them again",
                       code="join_terms_changed")
    if member.birth_date is not None and _age_on(member.birth_date, start) < ADULT_AGE:
        raise Invalid("Under 18: please join at the desk with a parent or guardian",
                      code="join_minor")
    sale = billing_service.create_sale(
        s, actor=_club_actor(club.id), member_id=member.id,
        lines=[ContractLine(plan_id=plan.id, start_date=start, method="desk")],
        note=f"Signed online in the member app ({kind})")
    contract_id = s.scalar(select(SaleLine.item_id).where(SaleLine.sale_id == sale.id,
                                                          SaleLine.kind == CONTRACT))
    contract = s.get(Contract, contract_id)
    now = clock.now()
    name = f"{member.first_name} {member.last_name}".strip()
    local = now.astimezone(clubs_service.club_zone(club))
    what = "Joined online" if kind == "join" else "Renewed online"
    task = crm_service.desk_task(
        s, club_id=club.id, member_id=member.id,
        title=f"Take {name}'s first payment and check their ID ({what.lower()})",
        details=f"{what} in the member app on {local:%Y-%m-%d %H:%M}: {plan.name} from "
                f"{start.isoformat()}, contract #{contract.id}, paid at the desk. The membership "
                "is pending until the first payment; check the ID against the name signed "
                f"({signing.typed_name!r}).")
    row = MemberSignature(
        club_id=club.id, member_id=member.id, plan_id=plan.id, contract_id=contract.id,
        kind=kind, status="pending", request_key=signing.key, terms_text=terms, language=lang,
        typed_name=" ".join(signing.typed_name.split())[:210], signed_at=now,
        ip_address=(address or None) and address[:64], lead_id=lead_id, task_id=task.id)
    s.add(row)
    s.flush()  # a form sent twice at once: the second fails here (the one-time key)
    crm_service.record(s, club_id=club.id, member_id=member.id, kind=TIMELINE_KIND,
                       channel=crm_service.MEMBER_CHANNEL, occurred_at=now,
                       summary=f"{what} in the member app: {plan.name} from "
                               f"{start.isoformat()}, contract #{contract.id} signed by typing "
                               f"{row.typed_name!r}; pending until paid at the desk")
    subject = i18n.text(lang, "email.joined.subject", club=club.name)
    body = i18n.text(lang, "email.joined.body", club=club.name, name=name, terms=terms,
                     signed=f"{i18n.day(lang, local)} {local:%H:%M}", typed=row.typed_name,
                     number=member.id, link=_sign_in_link(settings))
    notice = notices.queue(s, club_id=club.id, kind="signed", key=f"signed:{row.id}",
                           to=member.email, subject=subject, body=body,
                           payer_id=contract.payer_id, member_id=member.id)
    return row, notice.id


def _prospect(s: Session, *, club_id: int, matches: list[Member],
              email: str) -> tuple[Member, int] | None:
    """Of the members with the email given, the one behind an open lead without a membership (a
    prospect joining): (member, lead id)."""
    matches = [m for m in matches if m.email == email]
    if not matches:
        return None
    row = s.execute(select(Lead.member_id, Lead.id).where(
        Lead.club_id == club_id, Lead.member_id.in_([m.id for m in matches]),
        Lead.stage.in_([st.value for st in OPEN_STAGES]),
        ~select(Membership.id).where(Membership.member_id == Lead.member_id).exists())
        .order_by(Lead.id).limit(1)).first()
    if row is None:
        return None
    return next(m for m in matches if m.id == row.member_id), row.id


def _one_join_at_a_time(s: Session, *, club_id: int) -> None:
    """Joins in one club take turns until their transaction ends: two forms with one email
    address (or phone) at the same moment but different keys make one member, the second one
    seeing the first. PostgreSQL: a transaction-level advisory lock (no row lock, so the club's
    other writes never wait); SQLite has one writer anyway."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(select(func.pg_advisory_xact_lock(JOIN_LOCK, club_id % 2**31)))


def _earlier(s: Session, *, club_id: int, key: str) -> MemberSignature | None:
    return s.scalar(select(MemberSignature).where(MemberSignature.club_id == club_id,
                                                  MemberSignature.request_key == key))


# long: the join's whole decision — who the person is (new, a lead, already registered) —
# reads best in one place
def join(factory: sessionmaker[Session], *, settings: Settings, club_id: int, plan_id: int,
         details: Details, signing: Signing, address: str | None, lang: str) -> Signed:
    """Join online (see the module docstring)."""
    count_request(factory, kind="join", address=address, limit=IP_LIMIT, window=WINDOW,
                  key=(details.email or "").strip().lower()[:254], key_limit=EMAIL_LIMIT)
    data = _checked_details(details)
    _check_signing(signing, first=data.first_name, last=data.last_name)
    try:
        with transaction(factory) as s:
            _one_join_at_a_time(s, club_id=club_id)
            club = clubs_service.get_club(s, club_id)
            plan = online_plan(s, club=club, plan_id=plan_id)
            earlier = _earlier(s, club_id=club_id, key=signing.key)
            if earlier is not None:
                return Signed(data.email, plan.name, earlier.id)
            today = clubs_service.club_today(club)
            if data.birth_date > today:
                raise Invalid("The birth date lies in the future", code="join_birth_date",
                              details={"field": "birth_date"})
            try:
                phone = (members_service.normalise_phone(
                    data.phone, region=clubs_service.club_settings(club).phone_region)
                    if data.phone else None)
            except Invalid:
                raise Invalid("Please check the phone number", code="join_phone",
                              details={"field": "phone"}) from None
            # the person is who their email address says (sign-in proves an address, nothing
            # else): a phone number another member has makes neither a prospect nor an answer
            found = list(s.scalars(select(Member).where(
                Member.club_id == club_id, Member.erased_at.is_(None),
                Member.email == data.email).order_by(Member.id).limit(20)))
            prospect = _prospect(s, club_id=club_id, matches=found, email=data.email)
            if found and prospect is None:
                notice = notices.queue(
                    s, club_id=club_id, kind="signed", key=f"join-known:{signing.key}",
                    to=data.email, member_id=found[0].id,
                    subject=i18n.text(lang, "email.join_known.subject", club=club.name),
                    body=i18n.text(lang, "email.join_known.body", club=club.name,
                                   link=_sign_in_link(settings)))
                return Signed(data.email, plan.name, None,
                              _sender(factory, settings, [notice.id]))
            same_phone = (s.scalars(select(Member).where(
                Member.club_id == club_id, Member.erased_at.is_(None), Member.phone == phone,
                Member.email.is_distinct_from(data.email)).order_by(Member.id).limit(1)).first()
                if phone else None)
            if same_phone is not None:  # kept off the new record; the desk decides
                data = data.model_copy(update={"phone": None})
                phone = None
            if prospect is not None:
                member, lead_id = prospect
                member.phone = member.phone or phone
                member.birth_date = member.birth_date or data.birth_date
            else:
                member, lead_id = members_service.create_member(
                    s, club_id=club_id, data=data, require_custom=False), None
            if same_phone is not None:
                crm_service.desk_task(
                    s, club_id=club_id, member_id=member.id,
                    title=f"Check {data.first_name} {data.last_name}'s mobile number (joined "
                          "online)",
                    details=f"They gave the mobile number of member #{same_phone.id} "
                            f"({same_phone.first_name} {same_phone.last_name}). It was not "
                            "stored: if they are the same person, merge the records; if not, "
                            "ask for their own number.")
            for channel, granted in (("email", details.email_ok), ("sms", details.sms_ok)):
                if channel == "email" or member.phone:
                    members_service.set_consent(s, club_id=club_id, member_id=member.id,
                                                channel=channel, granted=granted,
                                                source=SOURCE)
            row, notice_id = _sign(s, settings=settings, club=club, member=member, plan=plan,
                                   start=today, signing=signing, kind="join", address=address,
                                   lang=lang, lead_id=lead_id)
            return Signed(data.email, plan.name, row.id,
                          _sender(factory, settings, [notice_id]))
    except IntegrityError:  # the same form at the same moment: the first one's answer
        with transaction(factory) as s:
            earlier = _earlier(s, club_id=club_id, key=signing.key)
            if earlier is None:
                raise
            return Signed(data.email, s.get(Plan, earlier.plan_id).name, earlier.id)


def renew(factory: sessionmaker[Session], *, settings: Settings, actor: MemberActor,
          plan_id: int, signing: Signing, address: str | None, lang: str) -> Signed:
    """A signed-in member without a running contract signs a new one; it starts the day after
    their last membership ends (or today), pending until paid at the desk."""
    if not KEY.fullmatch(signing.key or ""):
        raise Invalid("The form is out of date; open it again", code="join_form_stale")
    try:
        with transaction(factory) as s:
            club = clubs_service.get_club(s, actor.club_id)
            plan = online_plan(s, club=club, plan_id=plan_id)
            member = billing_service.require_member(s, club_id=club.id,
                                                    member_id=actor.member_id, for_update=True)
            earlier = _earlier(s, club_id=club.id, key=signing.key)
            if earlier is not None:
                if earlier.member_id != member.id:
                    raise Invalid("The form is out of date; open it again",
                                  code="join_form_stale")
                return Signed(member.email or "", plan.name, earlier.id)
            _check_signing(signing, first=member.first_name, last=member.last_name)
            if running_contract(s, club_id=club.id, member_id=member.id):
                raise Conflict("Your contract runs on; there is nothing to renew",
                               code="renew_not_needed")
            start = renew_start(s, club_id=club.id, member_id=member.id)
            row, notice_id = _sign(s, settings=settings, club=club, member=member, plan=plan,
                                   start=start, signing=signing, kind="renew", address=address,
                                   lang=lang, lead_id=None)
            return Signed(member.email or "", plan.name, row.id,
                          _sender(factory, settings, [notice_id]))
    except IntegrityError:
        with transaction(factory) as s:
            earlier = _earlier(s, club_id=actor.club_id, key=signing.key)
            if earlier is None or earlier.member_id != actor.member_id:
                raise
            return Signed("", s.get(Plan, earlier.plan_id).name, earlier.id)
