"""The club website's enquiry form: API keys, a rate limit kept in the database, and submissions.

The website authenticates with `X-Api-Key` (a key a manager created; only its SHA-256 is stored).
Requests are counted per client address (`IP_LIMIT` per minute) and per key (`KEY_LIMIT` per
hour) in `rate_limit_buckets`, one atomic upsert per window, so the limit holds across worker
processes. The count is committed before the submission is looked at: bad input and unknown
keys count too, and a flood is refused with 429 and `Retry-After`.
"""
import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.clubs import service as clubs_service
from app.core import clock
from app.core.actors import Actor
from app.core.db import transaction
from app.core.errors import NotFound, Unauthorized
from app.core.ratelimit import RateLimited, hit
from app.core.security import digest, new_secret
from app.core.sql import dialect_insert
from app.crm import leads
from app.crm.models import (
    Interaction,
    Lead,
    Task,
    WebsiteKey,
    WebsiteSubmission,
)
from app.crm.schemas import LeadStage, WebsiteLeadCreate
from app.members import service as members_service
from app.members.models import Consent, Member
from app.members.schemas import MemberCreate

IP_LIMIT, IP_WINDOW = 20, timedelta(minutes=1)
KEY_LIMIT, KEY_WINDOW = 300, timedelta(hours=1)
CONSENT_SOURCE = "website_form"
WEB_REQUEST_KIND = "follow_up"  # the desk's task for what a known person asked on the form
CHANNEL_WORDS = {"email": "email", "sms": "SMS"}


@dataclass(frozen=True)
class WebsiteCaller:
    key_id: int
    club_id: int


# --- keys -------------------------------------------------------------------------------------

def create_key(session: Session, *, actor: Actor, name: str) -> tuple[WebsiteKey, str]:
    """A new website key; the key itself is returned once and only its hash is kept."""
    key = "wk_" + new_secret()
    row = WebsiteKey(club_id=actor.club_id, name=name, key_hash=digest(key),
                     created_by=actor.user_id, created_at=clock.now())
    session.add(row)
    session.flush()
    return row, key


def list_keys(session: Session, *, actor: Actor) -> list[WebsiteKey]:
    return list(session.scalars(select(WebsiteKey).where(WebsiteKey.club_id == actor.club_id)
                                .order_by(WebsiteKey.id)))


def revoke_key(session: Session, *, actor: Actor, key_id: int) -> WebsiteKey:
    """Stop accepting a key (a repeat is harmless)."""
    row = session.scalar(select(WebsiteKey).where(WebsiteKey.id == key_id,
                                                  WebsiteKey.club_id == actor.club_id))
    if row is None:
        raise NotFound("Website key not found", code="website_key_not_found")
    if row.revoked_at is None:
        row.revoked_at = clock.now()
        session.flush()
    return row


def _ip_bucket(address: str | None) -> str:
    # the address is personal data: only a digest of it is kept
    return "website-ip:" + hashlib.sha256((address or "unknown").encode()).hexdigest()[:40]


def authenticate(factory: sessionmaker[Session], *, key: str | None,
                 address: str | None) -> WebsiteCaller:
    """Count the request, then check the key; the count is committed whatever happens next."""
    now = clock.now()
    with transaction(factory) as session:
        ip_hits, ip_left = hit(session, bucket=_ip_bucket(address), window=IP_WINDOW, now=now)
        row = None
        if key and len(key) <= 200:
            row = session.execute(select(WebsiteKey.id, WebsiteKey.club_id).where(
                WebsiteKey.key_hash == digest(key), WebsiteKey.revoked_at.is_(None))).first()
        key_hits = key_left = 0
        if row is not None:
            key_hits, key_left = hit(session, bucket=f"website-key:{row.id}",
                                     window=KEY_WINDOW, now=now)
    if ip_hits > IP_LIMIT:
        raise RateLimited(f"Too many submissions from this address (at most {IP_LIMIT} a "
                          f"minute); try again in {ip_left} seconds", retry_after=ip_left)
    if row is None:
        raise Unauthorized("Send the website's API key in X-Api-Key (this one is unknown or "
                           "was revoked)" if key else "Send the website's API key in X-Api-Key",
                           code="invalid_api_key")
    if key_hits > KEY_LIMIT:
        raise RateLimited(f"Too many submissions for this website key (at most {KEY_LIMIT} an "
                          f"hour); try again in {key_left} seconds", retry_after=key_left)
    return WebsiteCaller(key_id=row.id, club_id=row.club_id)


# --- submissions ------------------------------------------------------------------------------

def _claim(session: Session, *, caller: WebsiteCaller, form_id: str | None,
           now: datetime) -> tuple[WebsiteSubmission, bool]:
    """The submission row, claimed before anything else; (row, False) for a repeated form_id."""
    if form_id is None:
        row = WebsiteSubmission(club_id=caller.club_id, key_id=caller.key_id, created_at=now)
        session.add(row)
        session.flush()
        return row, True
    table = WebsiteSubmission.__table__
    claimed = session.execute(
        dialect_insert(session, table)
        .values(club_id=caller.club_id, key_id=caller.key_id, form_id=form_id, created_at=now)
        .on_conflict_do_nothing(index_elements=["club_id", "form_id"])
        .returning(table.c.id)).scalar()
    row = session.scalar(select(WebsiteSubmission).where(
        WebsiteSubmission.club_id == caller.club_id, WebsiteSubmission.form_id == form_id))
    return row, claimed is not None


def _find_person(session: Session, *, club_id: int, email: str | None,
                 phone: str | None) -> Member | None:
    """The member with this email (first) or else this phone, if the club knows them."""
    for column, value in ((Member.email, email), (Member.phone, phone)):
        if value:
            member = session.scalar(select(Member).where(Member.club_id == club_id,
                                                         column == value)
                                    .order_by(Member.id).limit(1))
            if member is not None:
                return member
    return None


def _staff_request(session: Session, *, club_id: int, member: Member, lead: Lead | None,
                   asked: list[str], lost: bool, today: date, now: datetime) -> None:
    """A task for the desk: what a known person asked for on the (anonymous) form, to confirm
    with them before anything about them changes. One open task per person is enough."""
    wishes = []
    if asked:
        withdrawn = set(session.scalars(select(Consent.channel).where(
            Consent.member_id == member.id, Consent.channel.in_(asked),
            Consent.granted.is_(False))))
        wishes += [f"to receive {CHANNEL_WORDS[c]}" + (" again (they had said no)"
                                                       if c in withdrawn else "")
                   for c in asked]
    if lost:
        wishes.append("to be contacted again (their lead was lost)")
    if not wishes:
        return
    title = "Website form asked " + "; ".join(wishes) + " — confirm with them"
    if session.scalar(select(Task.id).where(Task.member_id == member.id,
                                            Task.kind == WEB_REQUEST_KIND,
                                            Task.status == "open",
                                            Task.title == title[:200])) is not None:
        return
    session.add(Task(
        club_id=club_id, member_id=member.id, kind=WEB_REQUEST_KIND, title=title[:200],
        details=("Someone sent the website form with this person's email or phone. The form is "
                 "anonymous, so nothing was changed: record their consent (or reopen the lead) "
                 "only after they confirm it to you."),
        assignee_role=None if lead is not None and lead.assignee_user_id else "front_desk",
        assignee_user_id=lead.assignee_user_id if lead is not None else None,
        due_date=today, status="open", created_by=None, created_at=now, updated_at=now))


def submit(session: Session, *, caller: WebsiteCaller,
           data: WebsiteLeadCreate) -> tuple[WebsiteSubmission, bool]:
    """Record a website enquiry: a new person becomes a lead (source website) with the form's
    consent answers. A person the club knows is never changed by the anonymous form: the
    enquiry goes on their timeline, an open lead gets the new campaign, and what they asked for
    (consent to messages, a lost lead reopened) becomes a task for the desk to confirm.
    Returns (submission, created) — created False for a repeated form_id."""
    club_id = caller.club_id
    now = clock.now()
    club = clubs_service.get_club(session, club_id)
    phone = (members_service.normalise_phone(
        data.phone, region=clubs_service.club_settings(club).phone_region)
        if data.phone else None)
    submission, created = _claim(session, caller=caller, form_id=data.form_id, now=now)
    if not created:
        return submission, False
    utm = {"utm_source": data.utm_source, "utm_medium": data.utm_medium,
           "utm_campaign": data.utm_campaign}
    member = _find_person(session, club_id=club_id, email=data.email, phone=phone)
    consents = {"email": data.consent_email, "sms": data.consent_sms}
    known = member is not None
    if member is None:
        member = members_service.create_member(session, club_id=club_id, data=MemberCreate(
            first_name=data.first_name, last_name=data.last_name, email=data.email, phone=phone,
            source="website", different_person=True), require_custom=False)
        # a new person: both answers are their first statement
        for channel, granted in consents.items():
            members_service.set_consent(session, club_id=club_id, member_id=member.id,
                                        channel=channel, granted=granted, source=CONSENT_SOURCE)
    lead = session.scalar(select(Lead).where(Lead.member_id == member.id))
    lost = False
    if lead is None and not leads.has_membership(session, member_id=member.id):
        lead = leads.start_lead(session, club_id=club_id, member_id=member.id,
                                source="website", staff_id=None,
                                source_detail=data.utm_campaign, utm=utm)
    elif lead is not None and lead.stage == LeadStage.lost:
        lost = True  # not reopened by an anonymous form: the desk confirms it first
    elif lead is not None and lead.stage != LeadStage.won:
        leads.reopen_or_refresh(session, lead=lead, note="enquired again on the website",
                                utm=utm)
    if known:
        held = {"email": member.email_consent, "sms": member.sms_consent}
        asked = [channel for channel, granted in consents.items()
                 if granted and not held[channel]]
        _staff_request(session, club_id=club_id, member=member, lead=lead,
                       asked=asked, lost=lost,
                       today=clubs_service.club_today(club), now=now)
    summary = "Website form" + (f": {data.message}" if data.message else " (no message)")
    session.add(Interaction(club_id=club_id, member_id=member.id, kind="website_form",
                            channel="web", summary=summary[:500], occurred_at=now))
    submission.member_id, submission.message = member.id, data.message
    submission.lead_id = lead.id if lead is not None else None
    session.flush()
    return submission, True
