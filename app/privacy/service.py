"""Privacy: the audit log, a person's data export, and erasure on request.

Export and erasure find the person's rows by walking the schema (`app.privacy.graph`), so tables
other packages add are covered without a change here. See docs/privacy.md.
"""
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import phonenumbers
from sqlalchemy import String, Table, cast, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.types import JSON

from app.clubs import service as clubs_service
from app.core import clock, events
from app.core.actors import Actor, MemberActor
from app.core.audit import AuditEntry, record
from app.core.errors import Conflict, Invalid
from app.core.events import MemberErased
from app.imports import storage as import_storage
from app.members import service as members_service
from app.members.models import Card, Consent, Member
from app.privacy import graph
from app.privacy.models import MemberErasure, MemberMerge
from app.registry import metadata

ACTIONS = ("viewed", "created", "updated", "exported", "erased", "merged", "consent_changed",
           "note_added", "imported")
ERASED_TEXT = "(erased)"
ERASED_FIRST_NAME, ERASED_LAST_NAME = "Erased", "Member"
SCRUBBED = "[erased]"

# Rows that are only about the person: deleted on erasure (a table that is absent is skipped).
ERASE_DELETES = ("member_notes", "trainer_client_notes", "member_search_terms",
                 "custom_field_values", "member_app_codes", "member_app_sessions")
# Free-text columns written by the system, not typed about the person: kept on erasure (still
# scrubbed of the person's identifiers). Every other free-text column of the person's rows is
# blanked: see `graph.is_free_text`.
ERASE_KEEPS = {("sale_lines", "description"), ("stage_changes", "reason"),
               ("member_stages", "reason"), ("access_events", "message"),
               ("access_events", "dedup_key"), ("touchpoint_attempts", "provider_ref"),
               ("cards", "block_reason")}
# Short columns about the person that are not free text but go too: a signature's IP address.
ERASE_BLANKS = {("member_app_signatures", "ip_address")}
# Left out of an export: derived from the profile (search index) or bookkeeping of ours: the
# member app code's secret (whoever read the export could make the member's door codes) and the
# member app's device sessions (digests of cookies; the sign-ins show on the timeline).
EXPORT_SKIPS = ("member_search_terms", "member_app_codes", "member_app_sessions")


# --- audit log ---------------------------------------------------------------------------------

def list_audit(session: Session, *, club_id: int, member_id: int | None = None,
               staff_id: int | None = None, action: str | None = None,
               date_from: datetime | None = None, date_to: datetime | None = None,
               limit: int = 50, offset: int = 0) -> dict:
    """Audit entries of the club, newest first, filtered (a period without offset is UTC)."""
    date_from, date_to = (d.replace(tzinfo=UTC) if d and d.tzinfo is None else d
                          for d in (date_from, date_to))
    if date_from and date_to and date_from > date_to:
        raise Invalid("'from' must not be after 'to'", code="invalid_period")
    where = [AuditEntry.club_id == club_id]
    if member_id is not None:
        where += [AuditEntry.entity == "member", AuditEntry.entity_id == member_id]
    if staff_id is not None:
        where.append(AuditEntry.staff_id == staff_id)
    if action:
        where.append(AuditEntry.action == action)
    if date_from:
        where.append(AuditEntry.at >= date_from)
    if date_to:
        where.append(AuditEntry.at < date_to)
    items = list(session.scalars(select(AuditEntry).where(*where)
                                 .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
                                 .limit(limit).offset(offset)))
    total = session.scalar(select(func.count()).select_from(AuditEntry).where(*where))
    return {"items": items, "total": total, "limit": limit, "offset": offset}


# --- export ------------------------------------------------------------------------------------

def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return value


def _rows(session: Session, table: Table, where) -> list[dict]:
    pk = list(table.primary_key.columns)
    return [{k: _plain(v) for k, v in row._mapping.items()}
            for row in session.execute(select(table).where(where).order_by(*pk))]


def privacy_export(session: Session, *, actor: Actor, member_id: int) -> dict:
    """Everything the club holds about a person, table by table, plus the audit entries about
    them (and about records merged into them). Audited as "exported"."""
    return _export(session, club_id=actor.club_id, member_id=member_id, actor=actor)


def own_export(session: Session, *, actor: MemberActor) -> dict:
    """The same export, downloaded by the member themselves in the member app (audited as
    "exported" by the member)."""
    return _export(session, club_id=actor.club_id, member_id=actor.member_id, actor=actor)


def _export(session: Session, *, club_id: int, member_id: int,
            actor: Actor | MemberActor) -> dict:
    member = members_service.get_member(session, club_id=club_id, member_id=member_id)
    members = metadata.tables["members"]
    profile = _rows(session, members, members.c.id == member.id)[0]
    for derived in ("search_name", "phone_rev"):
        profile.pop(derived, None)
    tables = {}
    for name in sorted(graph.owned_tables()):
        if name in EXPORT_SKIPS:
            continue
        rows = _rows(session, metadata.tables[name], graph.owned_where(name, member.id))
        if rows:
            tables[name] = rows
    merged_ids = list(session.scalars(select(MemberMerge.merged_member_id).where(
        MemberMerge.club_id == club_id, MemberMerge.kept_member_id == member.id)))
    audit = metadata.tables["audit_log"]
    entries = _rows(session, audit, (audit.c.club_id == club_id)
                    & (audit.c.entity == "member")
                    & audit.c.entity_id.in_([member.id, *merged_ids]))
    record(session, club_id=club_id, actor=actor, action="exported", member_id=member.id)
    return {"generated_at": clock.now(), "club_id": club_id, "member_id": member.id,
            "erased": member.erased_at is not None, "profile": profile, "tables": tables,
            "merged_member_ids": merged_ids, "audit": entries}


# --- erasure -----------------------------------------------------------------------------------

@dataclass
class Identifiers:
    """What identifies the person in text. `strong` ones are searched club-wide; `weak` ones
    (a first name alone, a birth date) only in the person's own rows."""

    strong: list[str] = field(default_factory=list)
    weak: list[str] = field(default_factory=list)
    cards: dict[str, str] = field(default_factory=dict)  # old code → placeholder

    def replacements(self, *, weak: bool) -> list[tuple[re.Pattern, str]]:
        pairs = [(re.compile(re.escape(old), re.IGNORECASE), new)
                 for old, new in self.cards.items()]
        words = sorted(set(self.strong), key=len, reverse=True)
        pairs += [(re.compile(re.escape(w), re.IGNORECASE), SCRUBBED) for w in words]
        if weak:
            pairs += [(re.compile(rf"(?<!\w){re.escape(w)}(?!\w)", re.IGNORECASE), SCRUBBED)
                      for w in sorted(set(self.weak), key=len, reverse=True)]
        return pairs

    def needles(self, *, weak: bool) -> list[str]:
        found = [*self.cards, *self.strong, *(self.weak if weak else ())]
        return sorted({n.lower() for n in found if n})


def _identifiers(session: Session, member: Member, cards: list[Card], region: str) -> Identifiers:
    ids = Identifiers()
    first, last = (member.first_name or "").strip(), (member.last_name or "").strip()
    if first and last:
        ids.strong += [f"{first} {last}", f"{last} {first}", f"{last}, {first}"]
    if member.email:
        ids.strong.append(member.email)
    if member.phone:
        ids.strong += [member.phone, member.phone.lstrip("+")]
        try:
            number = phonenumbers.parse(member.phone, region.upper())
            national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
            ids.strong += [national, "".join(ch for ch in national if ch.isdigit())]
        except phonenumbers.NumberParseException:
            pass
    ids.weak += [w for w in (first, last) if len(w) >= 2]
    if member.birth_date:
        d = member.birth_date
        ids.weak += [d.isoformat(), f"{d:%d.%m.%Y}", f"{d:%d/%m/%Y}", f"{d:%m/%d/%Y}"]
    ids.strong = [s for s in ids.strong if len(s) >= 5]
    for card in cards:
        ids.cards[card.code] = f"ERASED-{secrets.token_hex(12).upper()}"
    return ids


def _like(needle: str) -> str:
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _scrub_value(value: Any, pairs: list[tuple[re.Pattern, str]]) -> Any:
    if isinstance(value, str):
        for pattern, new in pairs:
            value = pattern.sub(new, value)
        return value
    if isinstance(value, list):
        return [_scrub_value(v, pairs) for v in value]
    if isinstance(value, dict):
        return {k: _scrub_value(v, pairs) for k, v in value.items()}
    return value


def _scrub(session: Session, table: Table, columns, where, ids: Identifiers, *,
           weak: bool) -> int:
    """Replace the person's identifiers inside `columns` of the rows `where`; rows changed."""
    needles = ids.needles(weak=weak)
    pk = list(table.primary_key.columns)
    if not needles or not columns or len(pk) != 1:
        return 0
    pairs = ids.replacements(weak=weak)
    changed = 0
    for column in columns:
        text = func.lower(cast(column, String)) if isinstance(column.type, JSON) \
            else func.lower(column)
        hit = or_(*(text.like(_like(n), escape="\\") for n in needles))
        for key, value in session.execute(select(pk[0], column).where(where, hit)).all():
            new = _scrub_value(value, pairs)
            if new != value:
                session.execute(update(table).where(pk[0] == key).values({column.name: new}))
                changed += 1
    return changed


def _blank(session: Session, table: Table, where) -> int:
    """Blank the free text of the person's rows of `table` (NULL, or "(erased)" when required)."""
    columns = [c for c in graph.text_columns(table)
               if (graph.is_free_text(c) or (table.name, c.name) in ERASE_BLANKS)
               and (table.name, c.name) not in ERASE_KEEPS]
    if not columns:
        return 0
    values = {c.name: (None if c.nullable else ERASED_TEXT) for c in columns}
    return session.execute(update(table).where(where).values(values)).rowcount or 0


def erase_member(session: Session, *, actor: Actor, member_id: int, reason: str,
                 confirm: bool) -> dict:
    """Remove or anonymise the person's data in every table; keep the anonymous facts (visits,
    memberships, sales amounts, stage history) so counts and renewal figures do not change."""
    member = session.scalar(select(Member).where(
        Member.id == member_id, Member.club_id == actor.club_id).with_for_update())
    if member is None:
        members_service.get_member(session, club_id=actor.club_id, member_id=member_id)
    if not confirm:
        raise Invalid("Erasure cannot be undone: send confirm=true to erase this person's data",
                      code="confirmation_required")
    if member.erased_at is not None:
        raise Conflict(f"Member #{member.id}'s data was already erased on "
                       f"{member.erased_at:%Y-%m-%d}", code="already_erased")
    club = clubs_service.get_club(session, actor.club_id)
    now = clock.now()
    cards = list(session.scalars(select(Card).where(Card.member_id == member.id)))
    ids = _identifiers(session, member, cards, clubs_service.club_settings(club).phone_region)
    full_name = ((member.first_name or "").strip(), (member.last_name or "").strip())
    counts: dict[str, int] = {}
    owned = graph.owned_tables()

    _erase_cards(session, club_id=actor.club_id, cards=cards, ids=ids, now=now, counts=counts)
    _erase_owned_rows(session, member_id=member.id, owned=owned, now=now, counts=counts)
    _withdraw_consents(session, actor=actor, member=member, now=now)
    _anonymise_profile(session, member=member, now=now)
    _scrub_identifiers(session, club_id=actor.club_id, member_id=member.id, owned=owned, ids=ids,
                       counts=counts)
    # kept import files (uploads, rejects): the person's cells cannot be cut out of them, so
    # every file of the club that mentions the person is deleted (see app.imports.storage)
    _count(counts, "import_files", import_storage.erase_mentions(
        session, club_id=actor.club_id, needles=[*ids.strong, *ids.cards], names=[full_name]))
    events.publish(session, MemberErased(actor.club_id, member.id))  # the turnstiles forget

    clean_reason = _scrub_value(reason, ids.replacements(weak=True))[:500]
    session.execute(insert(MemberErasure).values(
        club_id=actor.club_id, member_id=member.id, staff_id=actor.user_id, at=now,
        reason=clean_reason, counts=counts))
    record(session, club_id=actor.club_id, actor=actor, action="erased", member_id=member.id,
           fields=sorted(counts))
    return {"member_id": member.id, "erased_at": now, "reason": clean_reason, "counts": counts}


def _count(counts: dict[str, int], name: str, n: int) -> None:
    """Add `n` changed rows of table `name` to the erasure's record (tables with none: absent)."""
    if n:
        counts[name] = counts.get(name, 0) + n


def _erase_cards(session: Session, *, club_id: int, cards: list[Card], ids: Identifiers,
                 now: datetime, counts: dict[str, int]) -> None:
    """Each card gets a random code that can never be issued again, blocked; its access events
    follow."""
    access_events = metadata.tables["access_events"]
    for card in cards:
        placeholder = ids.cards[card.code]
        _count(counts, "access_events", session.execute(
            update(access_events).where(access_events.c.club_id == club_id,
                                        access_events.c.card_code == card.code)
            .values(card_code=placeholder)).rowcount or 0)
        card.code, card.status, card.block_reason = placeholder, "blocked", "erased"
        card.blocked_at = card.blocked_at or now
        _count(counts, "cards", 1)
    session.flush()


def _erase_owned_rows(session: Session, *, member_id: int, owned: dict[str, list[graph.Link]], now: datetime,
                      counts: dict[str, int]) -> None:
    """Rows only about the person go; open tasks are cancelled; free text elsewhere is blanked."""
    for name in ERASE_DELETES:
        if name in owned:
            table = metadata.tables[name]
            _count(counts, name, session.execute(delete(table).where(
                graph.owned_where(name, member_id))).rowcount or 0)
    tasks = metadata.tables["tasks"]
    session.execute(update(tasks).where(tasks.c.member_id == member_id, tasks.c.status == "open")
                    .values(status="cancelled", updated_at=now))
    for name in sorted(owned):
        if name not in ERASE_DELETES:
            _count(counts, name, _blank(session, metadata.tables[name],
                                        graph.owned_where(name, member_id)))


def _withdraw_consents(session: Session, *, actor: Actor, member: Member, now: datetime) -> None:
    """The consent history stays (channel, yes/no, when: no personal data once the member is
    anonymous) as the record of what was allowed when messages went out; a withdrawal closes
    it."""
    for channel, granted in (("email", member.email_consent), ("sms", member.sms_consent)):
        if granted:
            session.add(Consent(club_id=actor.club_id, member_id=member.id, channel=channel,
                                granted=False, source="erasure", recorded_at=now,
                                staff_id=actor.user_id))
    session.flush()


def _anonymise_profile(session: Session, *, member: Member, now: datetime) -> None:
    """Every optional column of the profile emptied (also columns other packages add)."""
    members = metadata.tables["members"]
    keep = {"erased_at", "created_at", "updated_at"}
    values: dict[str, Any] = {c.name: None for c in members.columns
                              if c.nullable and not c.foreign_keys and c.name not in keep}
    values |= {"first_name": ERASED_FIRST_NAME, "last_name": ERASED_LAST_NAME,
               "search_name": "", "email_consent": False, "sms_consent": False,
               "erased_at": now, "updated_at": now}
    session.execute(update(members).where(members.c.id == member.id).values(values))
    session.expire(member)


def _scrub_identifiers(session: Session, *, club_id: int, member_id: int, owned: dict[str, list[graph.Link]],
                       ids: Identifiers, counts: dict[str, int]) -> None:
    """What is left: the person's identifiers inside any text, theirs or elsewhere in the club."""
    for name in sorted(owned):
        table = metadata.tables[name]
        where = graph.owned_where(name, member_id)
        columns = graph.text_columns(table)
        _count(counts, name, _scrub(session, table, columns, where, ids, weak=False))
        _count(counts, name, _scrub(session, table, [c for c in columns if graph.is_free_text(c)],
                                    where, ids, weak=True))
    for table in metadata.sorted_tables:
        if table.name == "members" or "club_id" not in table.c:
            continue
        _count(counts, table.name, _scrub(session, table, graph.text_columns(table),
                                          table.c.club_id == club_id, ids, weak=False))
