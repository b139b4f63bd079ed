"""Members: create, read, update and search; cards, consents and notes.

Other domains call `get_member`, `find_by_card`, `set_consent` and `normalise_card_code`.
"""
import re
from datetime import date

import phonenumbers
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    delete,
    distinct,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from app.clubs import service as clubs_service
from app.clubs.models import Club
from app.core import audit, clock, events
from app.core.actors import Actor
from app.core.errors import Conflict, Invalid, NotFound
from app.core.events import CardChanged
from app.core.sql import successor
from app.customfields import service as custom_fields
from app.customfields.models import CustomFieldValue
from app.members.models import (
    Card,
    Consent,
    Member,
    MemberNote,
    MemberSearchTerm,
    fold,
    phone_rev_for,
    search_name_for,
    search_terms_for,
)
from app.members.schemas import Channel, MemberCreate, MemberUpdate
from app.memberships import rules

CARD_CODE = re.compile(r"[A-Z0-9._:\-]{1,64}")
APP_CODE_PREFIX = "98"
APP_CODE = re.compile(APP_CODE_PREFIX + r"[0-9]{14}")
"""The member app's rotating codes (`app.access.member_codes`): no card is issued in this form."""
PHONE_LIKE = re.compile(r"\+?[\d\s()./\-]+")
MIN_PHONE_DIGITS = 4
MIN_EMAIL_PREFIX = 3
MIN_WORD_PREFIX = 2
MIN_SUBSTRING = 3
MAX_QUERY_WORDS = 5
SEARCH_RANKS = {"exact": 0, "prefix": 1, "word": 2, "substring": 3}


def field_error(field: str, message: str) -> Invalid:
    """A 422 shaped like request validation errors, naming the field."""
    return Invalid(f"Please check the input — {field}: {message}", code="validation_error",
                   details=[{"field": field, "message": message, "type": "value_error"}])


# --- normalisation -----------------------------------------------------------------------------

def normalise_card_code(code: str, *, field: str = "code") -> str:
    """A card code as stored and compared: all whitespace removed, upper-cased.

    Readers print the same UID as "04 a2 3b 1c" or "04A23B1C"; both become "04A23B1C". Every
    code is upper-cased (not only hex ones), so codes are case-insensitive. Allowed after that:
    A-Z, 0-9 and `. _ : -`, 1 to 64 characters; anything else is a 422 naming `field`.
    """
    normalised = "".join(code.split()).upper()
    if not CARD_CODE.fullmatch(normalised):
        raise field_error(field, "a card code is 1-64 letters, digits or . _ : - "
                                 "(spaces are ignored)")
    return normalised


def check_issuable(code: str, *, field: str = "code") -> str:
    """A normalised card code that may be issued: not in the member app's code form."""
    if APP_CODE.fullmatch(code):
        raise field_error(field, "16 digits starting with 98 is the form of member app codes; "
                                 "a card cannot have it")
    return code


def normalise_phone(phone: str, *, region: str, field: str = "phone") -> str:
    """Parse a phone number in any format (national ones read in `region`) into E.164."""
    try:
        number = phonenumbers.parse(phone, region.upper())
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        example = phonenumbers.example_number(region.upper())
        hint = (", e.g. " + phonenumbers.format_number(
            example, phonenumbers.PhoneNumberFormat.INTERNATIONAL) if example else "")
        raise field_error(field, f"'{phone}' is not a valid phone number; numbers without a "
                                 f"country code are read as {region.upper()} — write it with "
                                 f"+country code{hint}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _club(session: Session, club_id: int) -> Club:
    return clubs_service.get_club(session, club_id)


def _check_birth_date(club: Club, birth_date: date | None) -> None:
    if birth_date is not None and birth_date > clubs_service.club_today(club):
        raise field_error("birth_date", "birth date cannot be in the future")


# --- members -----------------------------------------------------------------------------------

def get_member(session: Session, *, club_id: int, member_id: int) -> Member:
    """This club's member with this id; another club's one, or a missing one, is NotFound."""
    member = session.scalar(select(Member).where(Member.id == member_id,
                                                 Member.club_id == club_id))
    if member is None:
        raise NotFound("Member not found", code="member_not_found")
    return member


def _find_duplicate(session: Session, *, club_id: int, email: str | None, phone: str | None,
                    exclude_id: int | None = None) -> tuple[int, str] | None:
    conditions = []
    if email:
        conditions.append(Member.email == email)
    if phone:
        conditions.append(Member.phone == phone)
    if not conditions:
        return None
    stmt = select(Member.id, Member.email, Member.phone).where(Member.club_id == club_id,
                                                               or_(*conditions))
    if exclude_id is not None:
        stmt = stmt.where(Member.id != exclude_id)
    rows = session.execute(stmt.order_by(Member.id).limit(20)).all()
    by_email = next((row for row in rows if email and row.email == email), None)
    if by_email:
        return by_email.id, "email"
    return (rows[0].id, "phone") if rows else None


def _refuse_duplicate(session: Session, *, club_id: int, email: str | None, phone: str | None,
                      exclude_id: int | None = None) -> None:
    found = _find_duplicate(session, club_id=club_id, email=email, phone=phone,
                            exclude_id=exclude_id)
    if found:
        member_id, matched_on = found
        raise Conflict(f"Member #{member_id} already has this {matched_on}; open that record, "
                       "or send different_person=true if this really is someone else",
                       code="duplicate_member",
                       details={"member_id": member_id, "matched_on": matched_on})


def _card_taken(session: Session, *, club_id: int, code: str) -> Conflict | None:
    owner = session.scalar(select(Card.member_id).where(Card.club_id == club_id, Card.code == code))
    if owner is None:
        return None
    return Conflict(f"Card {code} is already issued in this club (member #{owner})",
                    code="card_taken", details={"code": code, "member_id": owner})


def _insert_card(session: Session, *, club_id: int, member_id: int, code: str) -> Card:
    """Insert an active card; a code taken meanwhile is a 409, not a broken transaction."""
    check_issuable(code)
    taken = _card_taken(session, club_id=club_id, code=code)
    if taken:
        raise taken
    card = Card(club_id=club_id, member_id=member_id, code=code, status="active")
    try:
        with session.begin_nested():
            session.add(card)
            session.flush()
    except IntegrityError:
        raise _card_taken(session, club_id=club_id, code=code) or Conflict(
            f"Card {code} is already issued in this club", code="card_taken") from None
    return card


def create_member(session: Session, *, club_id: int, data: MemberCreate,
                  staff_id: int | None = None, require_custom: bool = True) -> Member:
    """Create a member (or prospect), optionally issuing a card and recording consents.

    `require_custom=False` skips the club's required custom fields (for callers that cannot ask
    for them, such as the website form); values given are still validated.
    """
    club = _club(session, club_id)
    phone = (normalise_phone(data.phone, region=clubs_service.club_settings(club).phone_region)
             if data.phone else None)
    _check_birth_date(club, data.birth_date)
    card_code = (check_issuable(normalise_card_code(data.card, field="card"), field="card")
                 if data.card else None)
    if not data.different_person:
        _refuse_duplicate(session, club_id=club_id, email=data.email, phone=phone)
    if card_code:
        taken = _card_taken(session, club_id=club_id, code=card_code)
        if taken:
            raise taken
    custom_fields.validate(session, club_id=club_id, values=data.custom or {},
                           creating=require_custom)
    consents = data.consents.model_dump(exclude_none=True) if data.consents else {}
    member = Member(club_id=club_id, first_name=data.first_name, last_name=data.last_name,
                    email=data.email, phone=phone, birth_date=data.birth_date,
                    gender=data.gender.value if data.gender else None, source=data.source,
                    preferred_channel=(data.preferred_channel.value
                                       if data.preferred_channel else None),
                    search_name=search_name_for(data.first_name, data.last_name),
                    phone_rev=phone_rev_for(phone),
                    email_consent=bool(consents.get("email")),
                    sms_consent=bool(consents.get("sms")))
    session.add(member)
    session.flush()
    if card_code:
        _insert_card(session, club_id=club_id, member_id=member.id, code=card_code)
    now = clock.now()
    for channel, granted in consents.items():
        session.add(Consent(club_id=club_id, member_id=member.id, channel=channel,
                            granted=granted, source="front_desk", recorded_at=now,
                            staff_id=staff_id))
    session.flush()
    if data.custom:
        custom_fields.set_values(session, club_id=club_id, member_id=member.id,
                                 values=data.custom)
    return member


def update_member(session: Session, *, club_id: int, member_id: int,
                  data: MemberUpdate) -> Member:
    """Change any of a member's fields; email and phone follow the same rules as on create."""
    member = get_member(session, club_id=club_id, member_id=member_id)
    changes = data.model_dump(exclude_unset=True, exclude={"different_person", "custom"})
    club = _club(session, club_id)
    if changes.get("phone"):
        changes["phone"] = normalise_phone(
            changes["phone"], region=clubs_service.club_settings(club).phone_region)
    if "birth_date" in changes:
        _check_birth_date(club, changes["birth_date"])
    if changes.get("gender") is not None:
        changes["gender"] = changes["gender"].value
    if changes.get("preferred_channel") is not None:
        changes["preferred_channel"] = changes["preferred_channel"].value
    new_email = changes.get("email") if changes.get("email") != member.email else None
    new_phone = changes.get("phone") if changes.get("phone") != member.phone else None
    if not data.different_person:
        _refuse_duplicate(session, club_id=club_id, email=new_email, phone=new_phone,
                          exclude_id=member.id)
    if data.custom:
        custom_fields.validate(session, club_id=club_id, values=data.custom, creating=False)
    for name, value in changes.items():
        setattr(member, name, value)
    member.search_name = search_name_for(member.first_name, member.last_name)
    member.phone_rev = phone_rev_for(member.phone)
    session.flush()
    if data.custom:
        custom_fields.set_values(session, club_id=club_id, member_id=member.id,
                                 values=data.custom)
    return member


def _cards_of(session: Session, *, club_id: int, member_ids: list[int]) -> list[Card]:
    if not member_ids:
        return []
    return list(session.scalars(select(Card).where(Card.club_id == club_id,
                                                   Card.member_id.in_(member_ids))
                                .order_by(Card.member_id, Card.id)))


def member_detail(session: Session, *, club_id: int, member_id: int,
                  as_of: date | None = None) -> dict:
    """Everything the desk shows on a member's page: fields, cards, consents, membership today.

    `custom_shown` (label and text of each custom value, for the member card page) is not part
    of `MemberRead`.
    """
    member = get_member(session, club_id=club_id, member_id=member_id)
    as_of = as_of or clubs_service.club_today_by_id(session, club_id)
    summary = rules.summaries(session, [member.id], as_of)[member.id]
    custom = custom_fields.values_for(session, club_id=club_id, member_ids=[member.id])[member.id]
    return {
        "id": member.id, "first_name": member.first_name, "last_name": member.last_name,
        "name": f"{member.first_name} {member.last_name}", "email": member.email,
        "phone": member.phone, "birth_date": member.birth_date, "gender": member.gender,
        "source": member.source, "preferred_channel": member.preferred_channel,
        "created_at": member.created_at,
        "updated_at": member.updated_at,
        "consents": {"email": member.email_consent, "sms": member.sms_consent},
        "cards": _cards_of(session, club_id=club_id, member_ids=[member.id]),
        "membership": summary.as_dict(), "as_of": as_of,
        "custom": {key: custom_fields.json_value(value) for key, value in custom.items()},
        "custom_shown": custom_fields.shown(session, club_id=club_id, values=custom),
    }


# --- search ------------------------------------------------------------------------------------
#
# Every branch below reads one btree range (see app/members/models.py) and yields
# (member_id, rank, search_name). The page is the union ordered by (rank, search_name, id) with
# a member's first — best — occurrence kept; it joins the members table only for the rows it
# returns. The total is exact: when the ordered read reached the end of the candidates it is the
# number of distinct members seen, otherwise one COUNT(DISTINCT) over the same index ranges.


def _starts_with(column, prefix: str) -> ColumnElement[bool]:
    """`column` starts with `prefix`, as a range an ordinary btree index answers (see models)."""
    return and_(column >= prefix, column < successor(prefix))


def _rank(name: str):
    return literal_column(str(SEARCH_RANKS[name])).label("rank")


def _members_branch(club_id: int, rank: str, *conditions) -> Select:
    return select(Member.id.label("member_id"), _rank(rank), Member.search_name).where(
        Member.club_id == club_id, *conditions)


def _words_branch(club_id: int, words: list[str]) -> Select:
    """Members with, for every typed word, a name word starting with it (in any order).

    The longest typed word drives the index range; the others are checked per candidate
    through the member's few terms. Names that start with the whole text are left to the
    (better-ranked) name-prefix branch, so the two do not overlap.
    """
    terms = MemberSearchTerm
    driver, *others = sorted(dict.fromkeys(words), key=len, reverse=True)
    stmt = select(terms.member_id, _rank("word"), terms.search_name).where(
        terms.club_id == club_id, _starts_with(terms.term, driver),
        ~_starts_with(terms.search_name, " ".join(words)))
    for word in others:
        other = aliased(MemberSearchTerm)
        stmt = stmt.where(exists().where(other.member_id == terms.member_id,
                                         _starts_with(other.term, word)))
    return stmt


def _candidate_branches(club_id: int, q: str, region: str) -> list[Select]:
    """The (member_id, rank, search_name) selects for one query text."""
    branches: list[Select] = []
    try:
        code = normalise_card_code(q)
    except Invalid:
        code = None
    if code:
        branches.append(select(Card.member_id, _rank("exact"), Member.search_name)
                        .join(Member, Member.id == Card.member_id)
                        .where(Card.club_id == club_id, Card.code == code))

    digits = "".join(ch for ch in q if ch.isdigit())
    if PHONE_LIKE.fullmatch(q) and len(digits) >= MIN_PHONE_DIGITS:
        try:
            number = phonenumbers.parse(q, region.upper())
            e164 = (phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
                    if phonenumbers.is_valid_number(number) else None)
        except phonenumbers.NumberParseException:
            e164 = None
        if e164:
            branches.append(_members_branch(club_id, "exact", Member.phone == e164))
        branches.append(_members_branch(club_id, "prefix",
                                        _starts_with(Member.phone_rev, digits[::-1])))

    if " " not in q and ("@" in q or len(q) >= MIN_EMAIL_PREFIX):
        email = q.lower()
        if "@" in q:
            branches.append(_members_branch(club_id, "exact", Member.email == email))
        branches.append(_members_branch(club_id, "prefix", _starts_with(Member.email, email)))

    words = fold(q).split()[:MAX_QUERY_WORDS]
    if words:
        branches.append(_members_branch(club_id, "prefix",
                                        _starts_with(Member.search_name, " ".join(words))))
        if len(words) > 1 or len(words[0]) >= MIN_WORD_PREFIX:
            branches.append(_words_branch(club_id, words))
    return branches


def _substring_branch(club_id: int, q: str) -> Select | None:
    """Last resort when nothing matched at a word start: every typed word anywhere in the name.

    This reads the club's whole (club_id, search_name) index, so it runs only on a miss, and
    only for text that looks like a name (a mistyped card, phone or email never scans).
    """
    words = fold(q).split()[:MAX_QUERY_WORDS]
    looks_like_a_name = not any(ch.isdigit() or ch == "@" for ch in q)
    if not looks_like_a_name or max(map(len, words), default=0) < MIN_SUBSTRING:
        return None
    return _members_branch(club_id, "substring",
                           *[Member.search_name.contains(word, autoescape=True) for word in words])


_PAGE_COLUMNS = (Member.id, Member.first_name, Member.last_name, Member.email, Member.phone)


def _ranked_page(session: Session, *, club_id: int, branches: list[Select], limit: int,
                 offset: int, unique: bool = False) -> tuple[list, int]:
    """A page of the union of `branches`, each member once at its best rank, and the total.

    `unique` says the branches cannot yield a member twice, so the total is counted in the same
    pass (the substring scan uses it: one pass over the index instead of two).
    """
    cand = (branches[0] if len(branches) == 1 else union_all(*branches)).subquery("cand")
    member_id, rank, name = cand.c[0], cand.c[1], cand.c[2]
    wanted, fetch = offset + limit, 2 * (offset + limit) + 10
    while True:
        columns = [member_id.label("member_id"), rank.label("rank"), name.label("name")]
        if unique:
            columns.append(func.count().over().label("n"))
        top = select(*columns).order_by(rank, name, member_id).limit(fetch).subquery("top")
        rows = session.execute(
            select(top, *_PAGE_COLUMNS).join(Member, Member.id == top.c.member_id)
            .order_by(top.c.rank, top.c.name, top.c.member_id)
        ).all()
        firsts: dict[int, Row] = {}
        for row in rows:  # a member's first row is its best rank
            firsts.setdefault(row.member_id, row)
        exhausted = len(rows) < fetch
        if exhausted or unique or len(firsts) >= wanted:
            break
        fetch *= 4
    ordered = list(firsts.values())
    if exhausted:
        total = len(ordered)
    elif unique:
        total = rows[0].n
    else:
        total = session.scalar(select(func.count(distinct(member_id))))
    return ordered[offset:offset + limit], total


def _browse_page(session: Session, *, club_id: int, limit: int, offset: int) -> tuple[list, int]:
    rows = session.execute(
        select(*_PAGE_COLUMNS).where(Member.club_id == club_id)
        .order_by(Member.search_name, Member.id).limit(limit).offset(offset)
    ).all()
    total = session.scalar(select(func.count()).select_from(Member)
                           .where(Member.club_id == club_id))
    return rows, total


def search_members(session: Session, *, club_id: int, q: str | None, limit: int = 20,
                   offset: int = 0, as_of: date | None = None) -> dict:
    """One search box: part of a name, a phone's last digits or whole number, email, card code.

    Best match first: exact card / phone / email (rank 0); then the full name, the phone's
    last digits or the email starting with the text (1); then names where every typed word
    starts some word of the name, in any order (2); only when nothing matched so far, typed
    words anywhere inside the name (3). Within a rank by name, then id. An empty `q` lists the
    club's members by name. A single letter matches the start of the full name only.
    """
    q = " ".join((q or "").split())
    if "\x00" in q:
        raise field_error("q", "text must not contain NUL characters")
    club = _club(session, club_id)
    if not q:
        rows, total = _browse_page(session, club_id=club_id, limit=limit, offset=offset)
    else:
        region = clubs_service.club_settings(club).phone_region
        branches = _candidate_branches(club_id, q, region)
        rows, total = (_ranked_page(session, club_id=club_id, branches=branches, limit=limit,
                                    offset=offset) if branches else ([], 0))
        if total == 0 and (fallback := _substring_branch(club_id, q)) is not None:
            rows, total = _ranked_page(session, club_id=club_id, branches=[fallback],
                                       limit=limit, offset=offset, unique=True)
    return _summary_page(session, club=club, rows=rows, total=total, limit=limit,
                         offset=offset, as_of=as_of)


def member_hits(session: Session, *, club_id: int, member_ids: list[int],
                as_of: date | None = None) -> dict:
    """These members of the club as a page of search hits (as `search_members` answers), by
    name — for a search answered elsewhere (a scanned member app code at the desk)."""
    club = _club(session, club_id)
    rows = session.execute(
        select(*_PAGE_COLUMNS).where(Member.club_id == club_id, Member.id.in_(member_ids))
        .order_by(Member.search_name, Member.id)).all()
    return _summary_page(session, club=club, rows=rows, total=len(rows), limit=len(rows),
                         offset=0, as_of=as_of)


def members_with_custom_value(session: Session, *, club_id: int, key: str | None,
                              value: str | None, q: str | None = None, limit: int = 20,
                              offset: int = 0, as_of: date | None = None) -> dict:
    """Members whose searchable custom field `key` matches `value`, by name (a page).

    Exact for choice, yes/no, number and date; text case-insensitively at its start. One range
    of the field's value index, joined to members for the page only.
    """
    if q and q.strip():
        raise field_error("q", "search either by text (q) or by a custom field (field and "
                               "value), not both")
    if not key:
        raise field_error("field", "name the custom field to search by (its key)")
    if value is None:
        raise field_error("value", "give the value to look for")
    club = _club(session, club_id)
    where = (Member.club_id == club_id, *custom_fields.value_conditions(
        session, club_id=club_id, key=key, value=value))
    matches = select(*_PAGE_COLUMNS).join(CustomFieldValue,
                                          CustomFieldValue.member_id == Member.id).where(*where)
    rows = session.execute(matches.order_by(Member.search_name, Member.id)
                           .limit(limit).offset(offset)).all()
    total = session.scalar(select(func.count()).select_from(CustomFieldValue).where(*where[1:]))
    return _summary_page(session, club=club, rows=rows, total=total, limit=limit,
                         offset=offset, as_of=as_of)


def _summary_page(session: Session, *, club: Club, rows: list, total: int, limit: int,
                  offset: int, as_of: date | None) -> dict:
    """A page of search hits: the members' names, contacts, active cards and status today."""
    club_id = club.id
    ids = [row.id for row in rows]
    as_of = as_of or clubs_service.club_today(club)
    statuses = rules.summaries(session, ids, as_of)
    codes: dict[int, list[str]] = {member_id: [] for member_id in ids}
    if ids:
        for member_id, code in session.execute(
                select(Card.member_id, Card.code)
                .where(Card.club_id == club_id, Card.member_id.in_(ids), Card.status == "active")
                .order_by(Card.id)):
            codes[member_id].append(code)
    items = [{"id": row.id, "name": f"{row.first_name} {row.last_name}",
              "first_name": row.first_name, "last_name": row.last_name, "email": row.email,
              "phone": row.phone, "cards": codes[row.id],
              "membership": statuses[row.id].as_dict()} for row in rows]
    return {"items": items, "total": total, "limit": limit, "offset": offset}


def reindex_search(session: Session, *, club_id: int, batch: int = 5000) -> int:
    """Recompute search_name, phone_rev and search terms for a club (after bulk Core inserts)."""
    session.flush()
    session.execute(delete(MemberSearchTerm).where(MemberSearchTerm.club_id == club_id))
    table = Member.__table__
    count, last_id = 0, 0
    while True:
        rows = session.execute(
            select(Member.id, Member.first_name, Member.last_name, Member.phone)
            .where(Member.club_id == club_id, Member.id > last_id).order_by(Member.id).limit(batch)
        ).all()
        if not rows:
            return count
        derived = [{"b_id": r.id, "b_name": search_name_for(r.first_name, r.last_name),
                    "b_phone_rev": phone_rev_for(r.phone)} for r in rows]
        session.execute(update(table).where(table.c.id == bindparam("b_id"))
                        .values(search_name=bindparam("b_name"),
                                phone_rev=bindparam("b_phone_rev")), derived)
        terms = [{"club_id": club_id, "member_id": d["b_id"], "term": term,
                  "search_name": d["b_name"]}
                 for d in derived for term in search_terms_for(d["b_name"])]
        if terms:
            session.execute(insert(MemberSearchTerm), terms)
        count += len(rows)
        last_id = rows[-1].id


# --- cards -------------------------------------------------------------------------------------

def _get_card(session: Session, *, club_id: int, card_id: int) -> Card:
    card = session.scalar(select(Card).where(Card.id == card_id, Card.club_id == club_id))
    if card is None:
        raise NotFound("Card not found", code="card_not_found")
    return card


def issue_card(session: Session, *, club_id: int, member_id: int, code: str) -> Card:
    """Give a member a new active card; a code already used in the club is a 409 card_taken."""
    member = get_member(session, club_id=club_id, member_id=member_id)
    card = _insert_card(session, club_id=club_id, member_id=member.id,
                        code=normalise_card_code(code))
    events.publish(session, CardChanged(club_id, card.member_id, card.id))
    return card


def block_card(session: Session, *, club_id: int, card_id: int, reason: str) -> Card:
    """Block a card (lost, stolen, …); the turnstile refuses it from now on."""
    card = _get_card(session, club_id=club_id, card_id=card_id)
    if card.status == "blocked":
        raise Conflict(f"Card {card.code} is already blocked ({card.block_reason})",
                       code="card_blocked")
    card.status, card.blocked_at, card.block_reason = "blocked", clock.now(), reason
    session.flush()
    events.publish(session, CardChanged(club_id, card.member_id, card.id))
    return card


def replace_card(session: Session, *, club_id: int, card_id: int, new_code: str) -> Card:
    """Issue a new card to the same member and block the old one with reason "replaced".

    An old card that is already blocked (say, "lost") keeps its status and reason.
    """
    old = _get_card(session, club_id=club_id, card_id=card_id)
    code = check_issuable(normalise_card_code(new_code, field="new_code"), field="new_code")
    new = _insert_card(session, club_id=club_id, member_id=old.member_id, code=code)
    if old.status != "blocked":
        old.status, old.blocked_at, old.block_reason = "blocked", clock.now(), "replaced"
    session.flush()
    events.publish(session, CardChanged(club_id, new.member_id, new.id))
    return new


def find_by_card(session: Session, *, club_id: int, code: str) -> tuple[Card, Member] | None:
    """The card with this code (normalised) in the club and its member, whatever its status."""
    try:
        code = normalise_card_code(code)
    except Invalid:
        return None
    row = session.execute(select(Card, Member).join(Member, Member.id == Card.member_id)
                          .where(Card.club_id == club_id, Card.code == code)).first()
    return (row[0], row[1]) if row else None


# --- consents ----------------------------------------------------------------------------------

def set_consent(session: Session, *, club_id: int, member_id: int, channel: str | Channel,
                granted: bool, source: str, staff_id: int | None = None) -> Consent:
    """Record a consent statement for a channel (history kept) and set the member's flag."""
    try:
        channel = Channel(channel)
    except ValueError:
        raise field_error("channel", "channel must be email or sms") from None
    source = (source or "").strip()
    if not source or len(source) > 50:
        raise field_error("source", "source must be 1-50 characters")
    member = get_member(session, club_id=club_id, member_id=member_id)
    consent = Consent(club_id=club_id, member_id=member.id, channel=channel.value,
                      granted=bool(granted), source=source, recorded_at=clock.now(),
                      staff_id=staff_id)
    session.add(consent)
    if channel is Channel.email:
        member.email_consent = bool(granted)
    else:
        member.sms_consent = bool(granted)
    session.flush()
    return consent


def consent_history(session: Session, *, club_id: int, member_id: int, limit: int = 50,
                    offset: int = 0) -> dict:
    """A member's consent statements, newest first."""
    get_member(session, club_id=club_id, member_id=member_id)
    where = (Consent.club_id == club_id, Consent.member_id == member_id)
    items = list(session.scalars(select(Consent).where(*where)
                                 .order_by(Consent.recorded_at.desc(), Consent.id.desc())
                                 .limit(limit).offset(offset)))
    total = session.scalar(select(func.count()).select_from(Consent).where(*where))
    return {"items": items, "total": total, "limit": limit, "offset": offset}


# --- notes -------------------------------------------------------------------------------------

def add_note(session: Session, *, club_id: int, member_id: int, text: str,
             staff_id: int | None = None) -> MemberNote:
    """Attach a staff note to a member."""
    get_member(session, club_id=club_id, member_id=member_id)
    note = MemberNote(club_id=club_id, member_id=member_id, staff_id=staff_id, text=text,
                      created_at=clock.now())
    session.add(note)
    session.flush()
    return note


def list_notes(session: Session, *, club_id: int, member_id: int, limit: int = 50,
               offset: int = 0) -> dict:
    """A member's notes, newest first."""
    get_member(session, club_id=club_id, member_id=member_id)
    where = (MemberNote.club_id == club_id, MemberNote.member_id == member_id)
    items = list(session.scalars(select(MemberNote).where(*where)
                                 .order_by(MemberNote.created_at.desc(), MemberNote.id.desc())
                                 .limit(limit).offset(offset)))
    total = session.scalar(select(func.count()).select_from(MemberNote).where(*where))
    return {"items": items, "total": total, "limit": limit, "offset": offset}


# --- what staff do with a member, audited ----------------------------------------------------
# Every way staff view or change a person's data (the API, the desk's pages) goes through these,
# so each writes exactly one privacy audit entry (`app.privacy.audit`); the functions above stay
# unaudited for other domains' own use.

def register_member(session: Session, *, actor: Actor, data: MemberCreate) -> Member:
    """Staff register a person (audited: created)."""
    member = create_member(session, club_id=actor.club_id, data=data, staff_id=actor.user_id)
    audit.record(session, club_id=actor.club_id, actor=actor, action="created",
                 member_id=member.id)
    return member


def view_member(session: Session, *, actor: Actor, member_id: int,
                as_of: date | None = None) -> dict:
    """Staff open a member's record: `member_detail`, audited (viewed)."""
    detail = member_detail(session, club_id=actor.club_id, member_id=member_id, as_of=as_of)
    audit.record(session, club_id=actor.club_id, actor=actor, action="viewed",
                 member_id=member_id)
    return detail


def change_member(session: Session, *, actor: Actor, member_id: int,
                  data: MemberUpdate) -> Member:
    """Staff change a member's details (audited: updated, with the field names)."""
    member = update_member(session, club_id=actor.club_id, member_id=member_id, data=data)
    audit.record(session, club_id=actor.club_id, actor=actor, action="updated",
                 member_id=member_id,
                 fields=list(data.model_dump(exclude_unset=True, exclude={"different_person"})))
    return member


def record_consent(session: Session, *, actor: Actor, member_id: int, channel: str | Channel,
                   granted: bool, source: str) -> Consent:
    """Staff record a consent statement (audited: consent_changed)."""
    consent = set_consent(session, club_id=actor.club_id, member_id=member_id, channel=channel,
                          granted=granted, source=source, staff_id=actor.user_id)
    audit.record(session, club_id=actor.club_id, actor=actor, action="consent_changed",
                 member_id=member_id, fields=[f"{consent.channel}_consent"])
    return consent


def view_consents(session: Session, *, actor: Actor, member_id: int, limit: int = 50,
                  offset: int = 0) -> dict:
    """Staff read a member's consent history (audited: viewed consents)."""
    page = consent_history(session, club_id=actor.club_id, member_id=member_id, limit=limit,
                           offset=offset)
    audit.record(session, club_id=actor.club_id, actor=actor, action="viewed",
                 member_id=member_id, fields=["consents"])
    return page


def add_staff_note(session: Session, *, actor: Actor, member_id: int, text: str) -> MemberNote:
    """Staff add a note to a member (audited: note_added)."""
    note = add_note(session, club_id=actor.club_id, member_id=member_id, text=text,
                    staff_id=actor.user_id)
    audit.record(session, club_id=actor.club_id, actor=actor, action="note_added",
                 member_id=member_id, fields=["notes"])
    return note


def view_notes(session: Session, *, actor: Actor, member_id: int, limit: int = 50,
               offset: int = 0) -> dict:
    """Staff read a member's notes (audited: viewed notes)."""
    page = list_notes(session, club_id=actor.club_id, member_id=member_id, limit=limit,
                      offset=offset)
    audit.record(session, club_id=actor.club_id, actor=actor, action="viewed",
                 member_id=member_id, fields=["notes"])
    return page
