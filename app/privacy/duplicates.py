"""Duplicate members: finding likely pairs, remembering "different person", and merging two into one.

Finder: pairs of members of a club with the same email, the same phone (both stored normalised:
lower-cased email, E.164 phone), or the same birth date and a very similar name (folded names
equal, first and last name swapped, or the same first name and a last name one or two edits
apart). Each is one set-based self-join; names are compared only inside birth-date blocks.

Merge: in one transaction every row that refers to the duplicate is moved to the kept member —
found by walking the schema for foreign keys to members.id, so tables added by other packages
move too. Where a unique constraint includes the member column (one stage row per member, one
booking per member and class, …) the kept member's row wins and the duplicate's conflicting row
is deleted (counted as "dropped"); `MERGE_RULES` holds the exceptions. The duplicate's member
row is then DELETED rather than marked: nothing can keep pointing at it (the foreign keys prove
it), search, the finder and every report need no "merged" filter, and no second copy of the
person's details lingers. `member_merges` remembers kept/merged ids and counts per table, so a
repeated merge answers 409 `already_merged` naming the member it went into.
"""
import logging
from datetime import date
from itertools import combinations, groupby

from sqlalchemy import Table, and_, delete, exists, func, select, update
from sqlalchemy.orm import Session, aliased

from app.access.models import Visit
from app.core import clock, events
from app.core.actors import Actor
from app.core.errors import Conflict, Invalid, NotFound
from app.core.events import MembersMerged
from app.members import service as members_service
from app.members.models import Consent, Member, fold
from app.memberships.models import Membership
from app.privacy import graph
from app.privacy import service as privacy_service
from app.privacy.models import DuplicateDismissal, MemberMerge

log = logging.getLogger("fitclub.privacy.duplicates")

REASONS = {"email": "same email", "phone": "same phone",
           "same_name": "same name and birth date",
           "swapped_name": "first and last name swapped, same birth date",
           "similar_name": "very similar name, same birth date"}
TAKE_FIELDS = {"name": ("first_name", "last_name"), "email": ("email",), "phone": ("phone",),
               "birth_date": ("birth_date",), "gender": ("gender",)}
# tables whose duplicate rows are deleted, not moved: the search index (rebuilt from the kept
# member's name) and "different person" verdicts about the duplicate
MERGE_DROPS = ("member_search_terms", "duplicate_dismissals")
LEAD_STAGE_RANK = {"lost": 0, "new": 1, "contacted": 2, "trial_booked": 3, "trial_done": 4,
                   "won": 5}


# --- finding -----------------------------------------------------------------------------------

def _edits(a: str, b: str) -> int:
    """Levenshtein distance (names are short)."""
    if a == b:
        return 0
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def name_match(first_a: str, last_a: str, first_b: str, last_b: str) -> str | None:
    """How two names of people born the same day match: same, swapped, similar, or None."""
    fa, la, fb, lb = fold(first_a), fold(last_a), fold(first_b), fold(last_b)
    if not (fa or la) or not (fb or lb):
        return None
    if (fa, la) == (fb, lb) or f"{fa} {la}".split() == f"{fb} {lb}".split():
        return "same_name"
    if fa == lb and la == fb:
        return "swapped_name"
    if fa and fa == fb and la and lb:
        allowed = 1 if max(len(la), len(lb)) <= 5 else 2
        if _edits(la, lb) <= allowed:
            return "similar_name"
    if la and la == lb and fa and fb and min(len(fa), len(fb)) >= 3 and _edits(fa, fb) <= 1:
        return "similar_name"
    return None


def _pairs(session: Session, club_id: int) -> dict[tuple[int, int], list[str]]:
    a, b = aliased(Member), aliased(Member)
    dismissed = exists().where(DuplicateDismissal.member_a_id == a.id,
                               DuplicateDismissal.member_b_id == b.id)
    base = (a.club_id == club_id, b.club_id == club_id, a.id < b.id, a.erased_at.is_(None),
            b.erased_at.is_(None), ~dismissed)
    found: dict[tuple[int, int], list[str]] = {}
    for reason, condition in (("email", and_(a.email.is_not(None), a.email == b.email)),
                              ("phone", and_(a.phone.is_not(None), a.phone == b.phone))):
        for ida, idb in session.execute(select(a.id, b.id).where(*base, condition)):
            found.setdefault((ida, idb), []).append(reason)
    # names: only people sharing a birth date are compared (one GROUP BY finds those blocks)
    alive = (Member.club_id == club_id, Member.erased_at.is_(None), Member.birth_date.is_not(None))
    shared = (select(Member.birth_date).where(*alive).group_by(Member.birth_date)
              .having(func.count() > 1))
    people = session.execute(select(Member.id, Member.first_name, Member.last_name,
                                    Member.birth_date)
                             .where(*alive, Member.birth_date.in_(shared))
                             .order_by(Member.birth_date, Member.id)).all()
    if people:
        verdicts = {(row[0], row[1]) for row in session.execute(
            select(DuplicateDismissal.member_a_id, DuplicateDismissal.member_b_id)
            .where(DuplicateDismissal.club_id == club_id))}
        for _day, block in groupby(people, key=lambda p: p.birth_date):
            for x, y in combinations(list(block), 2):
                reason = name_match(x.first_name, x.last_name, y.first_name, y.last_name)
                if reason and (x.id, y.id) not in verdicts:
                    found.setdefault((x.id, y.id), []).append(reason)
    return found


def _sides(session: Session, club_id: int, ids: list[int]) -> dict[int, dict]:
    if not ids:
        return {}
    sides = {m.id: {"id": m.id, "name": f"{m.first_name} {m.last_name}", "email": m.email,
                    "phone": m.phone, "birth_date": m.birth_date, "created_at": m.created_at,
                    "memberships": 0, "visits": 0, "last_visit_at": None}
             for m in session.scalars(select(Member).where(Member.club_id == club_id,
                                                           Member.id.in_(ids)))}
    for member_id, n in session.execute(
            select(Membership.member_id, func.count()).where(Membership.member_id.in_(ids))
            .group_by(Membership.member_id)):
        sides[member_id]["memberships"] = n
    for member_id, n, last in session.execute(
            select(Visit.member_id, func.count(), func.max(Visit.occurred_at))
            .where(Visit.member_id.in_(ids)).group_by(Visit.member_id)):
        sides[member_id]["visits"] = n
        sides[member_id]["last_visit_at"] = last
    return sides


def find_duplicates(session: Session, *, club_id: int, limit: int = 50, offset: int = 0) -> dict:
    """Likely duplicate pairs, strongest first (email/phone before names), with a side-by-side."""
    found = _pairs(session, club_id)
    order = {name: i for i, name in enumerate(REASONS)}
    pairs = sorted(found.items(), key=lambda kv: (min(order[r] for r in kv[1]), kv[0]))
    page = pairs[offset:offset + limit]
    sides = _sides(session, club_id, sorted({i for (a, b), _ in page for i in (a, b)}))
    items = [{"member": sides[a], "other": sides[b],
              "reasons": sorted(set(reasons), key=order.get),
              "explanation": "; ".join(REASONS[r] for r in sorted(set(reasons), key=order.get))}
             for (a, b), reasons in page]
    return {"items": items, "total": len(pairs), "limit": limit, "offset": offset}


def dismiss(session: Session, *, actor: Actor, member_id: int,
            other_member_id: int) -> DuplicateDismissal:
    """Remember that two members are different people (repeating it changes nothing)."""
    if member_id == other_member_id:
        raise Invalid("A member cannot be a different person from themselves",
                      code="same_member")
    for mid in (member_id, other_member_id):
        members_service.get_member(session, club_id=actor.club_id, member_id=mid)
    low, high = sorted((member_id, other_member_id))
    existing = session.scalar(select(DuplicateDismissal).where(
        DuplicateDismissal.member_a_id == low, DuplicateDismissal.member_b_id == high))
    if existing:
        return existing
    row = DuplicateDismissal(club_id=actor.club_id, member_a_id=low, member_b_id=high,
                             staff_id=actor.user_id, at=clock.now())
    session.add(row)
    session.flush()
    return row


# --- merging -----------------------------------------------------------------------------------

def _lock(session: Session, club_id: int, ids: list[int]) -> dict[int, Member]:
    rows = session.scalars(select(Member).where(Member.club_id == club_id, Member.id.in_(ids))
                           .order_by(Member.id).with_for_update())
    return {m.id: m for m in rows}


def _missing_duplicate(session: Session, club_id: int, duplicate_id: int) -> Exception:
    merge = session.scalar(select(MemberMerge).where(MemberMerge.club_id == club_id,
                                                     MemberMerge.merged_member_id == duplicate_id))
    if merge is not None:
        return Conflict(f"Member #{duplicate_id} was already merged into member "
                        f"#{merge.kept_member_id} on {merge.at:%Y-%m-%d}; nothing was changed",
                        code="already_merged",
                        details={"kept_member_id": merge.kept_member_id})
    return NotFound("Duplicate member not found", code="member_not_found")


def _unique_sets(table: Table, column) -> list[list]:
    """The other columns of each unique constraint or index that includes `column`."""
    sets = []
    for cols in ([list(c.columns) for c in table.constraints if c.__class__.__name__
                  == "UniqueConstraint"] + [list(ix.columns) for ix in table.indexes if ix.unique]):
        if any(c.name == column.name for c in cols):
            sets.append([c for c in cols if c.name != column.name])
    return sets


def _merge_leads(session: Session, table: Table, column, keep_id: int, dup_id: int) -> int:
    """Both were leads: keep the lead further along the pipeline (the kept member's on a tie)."""
    stages = dict(session.execute(select(column, table.c.stage)
                                  .where(column.in_([keep_id, dup_id]))).all())
    if keep_id not in stages or dup_id not in stages:
        return 0
    if LEAD_STAGE_RANK.get(stages[dup_id], 0) > LEAD_STAGE_RANK.get(stages[keep_id], 0):
        return session.execute(delete(table).where(column == keep_id)).rowcount or 0
    return session.execute(delete(table).where(column == dup_id)).rowcount or 0


MERGE_RULES = {"leads": _merge_leads}


def _move(session: Session, keep_id: int, dup_id: int) -> tuple[dict, dict]:
    moved: dict[str, int] = {}
    dropped: dict[str, int] = {}

    def add(counter: dict, name: str, n: int) -> None:
        if n:
            counter[name] = counter.get(name, 0) + n

    for table, column in graph.member_links():
        if table.name in MERGE_DROPS:
            add(dropped, table.name,
                session.execute(delete(table).where(column == dup_id)).rowcount or 0)
            continue
        if table.name in MERGE_RULES:
            add(dropped, table.name, MERGE_RULES[table.name](session, table, column, keep_id,
                                                             dup_id))
        for others in _unique_sets(table, column):
            other = table.alias("survivor")
            conflict = exists().where(other.c[column.name] == keep_id,
                                      *(other.c[c.name] == c for c in others))
            add(dropped, table.name, session.execute(
                delete(table).where(column == dup_id, conflict)).rowcount or 0)
        add(moved, table.name, session.execute(
            update(table).where(column == dup_id).values({column.name: keep_id})).rowcount or 0)
    return moved, dropped


def _overlaps(session: Session, keep_id: int, dup_id: int) -> list[str]:
    def span(m: Membership) -> tuple[date, date]:
        end = min(m.end_date, m.cancelled_on) if m.cancelled_on else m.end_date
        return m.start_date, end

    rows = list(session.scalars(select(Membership).where(
        Membership.member_id.in_([keep_id, dup_id])).order_by(Membership.start_date)))
    warnings = []
    for k in (m for m in rows if m.member_id == keep_id):
        for d in (m for m in rows if m.member_id == dup_id):
            (ks, ke), (ds, de) = span(k), span(d)
            if ks <= de and ds <= ke and ks <= ke and ds <= de:
                warnings.append(f"Memberships #{k.id} ({ks} to {ke}) and #{d.id} ({ds} to {de}) "
                                "overlap now that they belong to one person; check whether one "
                                "should be cancelled or refunded")
    return warnings


def merge_members(session: Session, *, actor: Actor, keep_id: int, duplicate_id: int,
                  take: dict[str, str] | None = None) -> dict:
    """Merge `duplicate_id` into `keep_id` (see the module docstring); returns what moved.

    `take` picks, per field (name, email, phone, birth_date, gender), whose value the kept
    member ends with: "keep" or "duplicate". Unset: the kept member's, or the duplicate's where
    the kept member has none.
    """
    if keep_id == duplicate_id:
        raise Invalid("A member cannot be merged with themselves", code="same_member")
    members = _lock(session, actor.club_id, [keep_id, duplicate_id])
    keep = members.get(keep_id)
    if keep is None:
        raise NotFound("Member not found", code="member_not_found")
    dup = members.get(duplicate_id)
    if dup is None:
        raise _missing_duplicate(session, actor.club_id, duplicate_id)
    for m in (keep, dup):
        if m.erased_at is not None:
            raise Conflict(f"Member #{m.id}'s data was erased; an erased record cannot be merged",
                           code="member_erased")
    take = {k: v for k, v in (take or {}).items() if v}
    unknown = set(take) - set(TAKE_FIELDS)
    if unknown:
        raise Invalid(f"Unknown field(s) to take: {', '.join(sorted(unknown))}",
                      code="invalid_take")
    taken = []
    for key, columns in TAKE_FIELDS.items():
        side = take.get(key)
        if side is None:
            side = "duplicate" if all(getattr(keep, c) in (None, "") for c in columns) \
                and any(getattr(dup, c) not in (None, "") for c in columns) else "keep"
        if side == "duplicate":
            for c in columns:
                setattr(keep, c, getattr(dup, c))
            taken.append(key)
    warnings = _overlaps(session, keep.id, dup.id)
    session.flush()

    moved, dropped = _move(session, keep.id, dup.id)
    for table, column in graph.member_links():
        left = session.scalar(select(func.count()).select_from(table).where(column == dup.id))
        if left:  # pragma: no cover - a bug, not an input: roll everything back
            raise RuntimeError(f"{left} row(s) of {table.name} still refer to member #{dup.id}")
    # current consents: the latest statement per channel, now that both histories are one
    for channel in ("email", "sms"):
        latest = session.scalar(select(Consent.granted).where(
            Consent.member_id == keep.id, Consent.channel == channel)
            .order_by(Consent.recorded_at.desc(), Consent.id.desc()).limit(1))
        if latest is not None:
            setattr(keep, f"{channel}_consent", bool(latest))
        elif getattr(dup, f"{channel}_consent") and not getattr(keep, f"{channel}_consent"):
            warnings.append(f"The duplicate had {channel} consent without a recorded statement; "
                            "the kept member's setting (no consent) stays")
    session.flush()
    session.expunge(dup)
    session.execute(delete(Member).where(Member.id == dup.id))

    now = clock.now()
    session.add(MemberMerge(club_id=actor.club_id, kept_member_id=keep.id,
                            merged_member_id=dup.id, staff_id=actor.user_id, at=now,
                            taken=taken, moved=moved, dropped=dropped))
    privacy_service.record(session, club_id=actor.club_id, actor=actor, action="merged",
                           member_id=keep.id, fields=[f for k in taken for f in TAKE_FIELDS[k]],
                           detail={"merged_member_id": dup.id})
    session.flush()
    _after_merge(session, club_id=actor.club_id, keep_id=keep.id, dup_id=dup.id)
    return {"kept_member_id": keep.id, "merged_member_id": dup.id, "taken": taken,
            "moved": moved, "dropped": dropped, "warnings": warnings,
            "member": members_service.member_detail(session, club_id=actor.club_id,
                                                    member_id=keep.id)}


def _after_merge(session: Session, *, club_id: int, keep_id: int, dup_id: int) -> None:
    """Bring derived state up to date (the kept member's retention stage, the turnstiles' rows):
    the `MembersMerged` handlers, best effort (the daily run and the nightly sync repair them)."""
    events.publish(session, MembersMerged(club_id, keep_id, dup_id))
