"""Members, their cards, consents and notes, and the derived columns that make search fast.

Search reads btree ranges, not the members table (its one scan, a substring fallback when
nothing matched at a word start, is described in `app.members.service`).

- `search_name` is the folded name ("anna schmidt": lower-case, accents stripped, punctuation
  turned into spaces), for "the name starts with what was typed";
- `member_search_terms` holds each word of that name once per member, with the member's
  search_name as sort key, for "any word starts with what was typed" ("schm" finds Anna
  Schmidt);
- `phone_rev` is the E.164 phone's digits reversed, so "the number ends in 6789" is the prefix
  range `phone_rev >= '9876' AND phone_rev < '9877'`;
- emails are stored lower-cased, so "the email starts with" is a range too.

Prefix matching is written as a range (`col >= p AND col < p'`, p' = p with its last character
incremented), which both SQLite and PostgreSQL answer from a plain btree index. That needs the
columns to compare byte-wise: SQLite's default BINARY collation does; on PostgreSQL the search
columns are declared `COLLATE "C"`. Under a linguistic database collation (en_US.UTF-8, …) a
range is not a prefix, and PostgreSQL answers `LIKE 'x%'` from a plain btree only under C/POSIX
(not even C.UTF-8 on PostgreSQL 15: checked, it scans) — hence no pattern_ops index is needed.

The derived columns and terms are kept in step by mapper/session events below, so any ORM
write of a `Member` (the members service, demo data, merges, erasure) keeps search correct.
Bulk Core inserts bypass events: call `app.members.service.reindex_search` afterwards.
"""
import re
import unicodedata
from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    delete,
    event,
    insert,
    inspect,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.core.db import Base, IdMixin, TimestampMixin
from app.core.types import BigId

MAX_TERM = 100


def SearchString(length: int) -> String:
    """A string compared byte-wise on both backends (BINARY on SQLite, COLLATE "C" on PG)."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


class Member(IdMixin, TimestampMixin, Base):
    """A person the club knows: a prospect until a membership is sold, then a member."""

    __tablename__ = "members"
    __table_args__ = (
        Index("ix_members_club_email", "club_id", "email"),
        Index("ix_members_club_phone", "club_id", "phone"),
        Index("ix_members_club_phone_rev", "club_id", "phone_rev"),
        Index("ix_members_club_search_name", "club_id", "search_name", "id"),
        # the member app finds a person by email, phone or member number in any club
        Index("ix_members_email", "email"),
        Index("ix_members_phone", "phone"),
        Index("ix_members_external_ref", "external_ref"),
        UniqueConstraint("club_id", "external_ref"),
    )

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"), index=True)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str | None] = mapped_column(SearchString(254))
    phone: Mapped[str | None] = mapped_column(String(20))
    birth_date: Mapped[date | None] = mapped_column(Date)
    gender: Mapped[str | None] = mapped_column(String(20))
    search_name: Mapped[str] = mapped_column(SearchString(210), default="")
    phone_rev: Mapped[str | None] = mapped_column(SearchString(20))
    email_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    sms_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    preferred_channel: Mapped[str | None] = mapped_column(String(10))  # email|sms|phone|none
    source: Mapped[str | None] = mapped_column(String(50))
    erased_at: Mapped[datetime | None]
    external_ref: Mapped[str | None] = mapped_column(String(100))
    """The person's id in the club's previous system (imports match and re-run on it)."""


class MemberSearchTerm(IdMixin, Base):
    """One word of a member's folded name: the index behind "any word starts with".

    It carries the member's `search_name` too, so a search sorts its candidates by name from this
    index alone and reads the members table only for the page it returns.
    """

    __tablename__ = "member_search_terms"
    __table_args__ = (
        Index("ix_member_search_terms_club_term", "club_id", "term", "search_name", "member_id"),
        Index("ix_member_search_terms_member_term", "member_id", "term"),
    )

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id", ondelete="CASCADE"))
    term: Mapped[str] = mapped_column(SearchString(MAX_TERM))
    search_name: Mapped[str] = mapped_column(SearchString(210))


class Card(IdMixin, TimestampMixin, Base):
    """An access card or badge; the code is unique within a club."""

    __tablename__ = "cards"
    __table_args__ = (UniqueConstraint("club_id", "code"),)

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"), index=True)
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(10), default="active")
    blocked_at: Mapped[datetime | None]
    block_reason: Mapped[str | None] = mapped_column(String(200))


class Consent(IdMixin, Base):
    """One consent change for a channel, with when and where it came from (history kept)."""

    __tablename__ = "consents"

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"), index=True)
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(10))
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(50))
    recorded_at: Mapped[datetime]
    staff_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))


class MemberNote(IdMixin, Base):
    __tablename__ = "member_notes"

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"), index=True)
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id", ondelete="CASCADE"), index=True)
    staff_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


# --- folding text for search -------------------------------------------------------------------

_APOSTROPHES = re.compile(r"['’ʼ`´]")
_NOT_WORD = re.compile(r"[\W_]+")
_EXTRA_FOLDS = str.maketrans({"ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "æ": "ae",
                              "œ": "oe", "ı": "i"})


def fold(text: str | None) -> str:
    """Text as search compares it: accents stripped, case folded, punctuation → single spaces.

    "Zoë O'Brien-Müller" → "zoe obrien muller"; "Straße" → "strasse".
    """
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    folded = stripped.casefold().translate(_EXTRA_FOLDS)
    folded = _APOSTROPHES.sub("", folded)
    return " ".join(_NOT_WORD.sub(" ", folded).split())


def search_name_for(first_name: str | None, last_name: str | None) -> str:
    return fold(f"{first_name or ''} {last_name or ''}")[:210]


def search_terms_for(search_name: str) -> list[str]:
    """The distinct words of a folded name, in order."""
    return list(dict.fromkeys(word[:MAX_TERM] for word in search_name.split()))


def phone_rev_for(phone: str | None) -> str | None:
    digits = "".join(ch for ch in phone or "" if ch.isdigit())
    return digits[::-1] or None


# --- keeping the derived columns and terms in step ---------------------------------------------

@event.listens_for(Member, "before_insert")
@event.listens_for(Member, "before_update")
def _derive_search_columns(_mapper, _connection, member: Member) -> None:
    member.search_name = search_name_for(member.first_name, member.last_name)
    member.phone_rev = phone_rev_for(member.phone)


def _name_changed(session: Session, member: Member) -> bool:
    if member in session.new:
        return True
    state = inspect(member)
    return (state.attrs.first_name.history.has_changes()
            or state.attrs.last_name.history.has_changes()
            or state.attrs.club_id.history.has_changes())


@event.listens_for(Session, "after_flush")
def _sync_search_terms(session: Session, _flush_context) -> None:
    """Rewrite the search terms of members whose name was inserted or changed in this flush."""
    changed = [obj for obj in (*session.new, *session.dirty)
               if isinstance(obj, Member) and _name_changed(session, obj)]
    if not changed:
        return
    connection = session.connection()
    stale = [m.id for m in changed if m not in session.new]
    if stale:
        connection.execute(delete(MemberSearchTerm).where(MemberSearchTerm.member_id.in_(stale)))
    rows = [{"club_id": m.club_id, "member_id": m.id, "term": term, "search_name": m.search_name}
            for m in changed for term in search_terms_for(m.search_name)]
    if rows:
        connection.execute(insert(MemberSearchTerm), rows)
