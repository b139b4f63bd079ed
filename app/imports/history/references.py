"""Finding the member a history row is about, by the reference the user chose.

The club's members are read once into a dict (normalised reference → member id); 50k members
is a few megabytes. A reference two members share (an email used by a couple, say) is
*ambiguous*: rows using it are reported, never guessed. Members that `members.csv` in the same
import would create are *pending*: they get a negative key until the write phase knows their
ids (`settle`). Cards are known the same way (the club's, and those `members.csv` issues), so a
file may name the card instead of the member.
"""
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.errors import Invalid
from app.members import service as members_service
from app.members.models import Card, Member

REFERENCES = ("external_id", "card", "email", "phone")
WHAT = {"external_id": "old-system id", "card": "card", "email": "email", "phone": "phone"}
AMBIGUOUS = 0


class MemberRefs:
    """reference → member key (> 0: a member id; < 0: a member `members.csv` will create)."""

    def __init__(self, kind: str, region: str):
        if kind not in REFERENCES:
            raise Invalid(f"reference must be one of {', '.join(REFERENCES)}",
                          code="invalid_reference")
        self.kind = kind
        self.region = region
        self.keys: dict[str, int] = {}
        self.cards: dict[str, int] = self.keys if kind == "card" else {}
        """card code → member key, for rows that name the card rather than the member."""
        self.shared: dict[str, int] = {}  # ambiguous reference → how many members
        self.pending: list[tuple[dict[str, int], str]] = []
        """pending key -n ↔ self.pending[n - 1]: (self.keys or self.cards, the reference)."""
        self._raw: dict[str, int | str] = {}  # cell as written → key, or the error message
        self._raw_cards: dict[str, int | str] = {}

    # --- building ---------------------------------------------------------------------------

    def normalise(self, raw: str, kind: str | None = None) -> str:
        """The reference as stored; ValueError with a message when it cannot be one."""
        kind = kind or self.kind
        text = raw.strip()
        if kind == "external_id":
            if len(text) > 100:
                raise ValueError("an old-system id has at most 100 characters")
            return text
        if kind == "email":
            return text.lower()
        try:
            if kind == "card":
                return members_service.normalise_card_code(text, field="card")
            return members_service.normalise_phone(text, region=self.region)
        except Invalid as exc:
            raise ValueError(exc.details[0]["message"] if exc.details else exc.message) from None

    def _put(self, ref: str, key: int) -> None:
        known = self.keys.get(ref)
        if known is None:
            self.keys[ref] = key
        elif known != key:
            self.keys[ref] = AMBIGUOUS
            self.shared[ref] = self.shared.get(ref, 1) + 1

    def load(self, session: Session, club_id: int) -> None:
        """Every member of the club (not erased) under the chosen reference."""
        if self.kind == "card":
            rows: Iterable = session.execute(
                select(Card.code, Card.member_id).join(Member, Member.id == Card.member_id)
                .where(Card.club_id == club_id, Member.erased_at.is_(None)))
        else:
            column = {"external_id": Member.external_ref, "email": Member.email,
                      "phone": Member.phone}[self.kind]
            rows = session.execute(select(column, Member.id).where(
                Member.club_id == club_id, column.is_not(None), Member.erased_at.is_(None)))
        for ref, member_id in rows:
            self._put(ref.lower() if self.kind == "email" else ref, member_id)
        if self.kind != "card":
            self.cards.update(session.execute(
                select(Card.code, Card.member_id).join(Member, Member.id == Card.member_id)
                .where(Card.club_id == club_id, Member.erased_at.is_(None))).all())
        self._raw.clear()
        self._raw_cards.clear()

    def _new_pending(self, where: dict[str, int], ref: str) -> int:
        self.pending.append((where, ref))
        where[ref] = -len(self.pending)
        return where[ref]

    def add_pending(self, ref: str | None, card: str | None = None) -> None:
        """A member the import's members.csv would create (dry run: no id yet), under the chosen
        reference and, when the row issues one, its card (the same member key)."""
        key = None
        if ref:
            key = self.keys.get(ref)
            if key is None:
                key = self._new_pending(self.keys, ref)
            elif key == AMBIGUOUS:  # shared by several people: the card names one of them
                key = None
        if card and card not in self.cards:
            if key is None:
                self._new_pending(self.cards, card)
            else:
                self.cards[card] = key
        self._raw.clear()
        self._raw_cards.clear()

    def mark_shared(self, ref: str) -> None:
        """A reference (an email, a phone) several people of members.csv share: ambiguous."""
        if self.keys.get(ref) != AMBIGUOUS:
            self.shared[ref] = self.shared.get(ref, 1) + 1
        self.keys[ref] = AMBIGUOUS
        self._raw.clear()

    def add_card(self, card: str, member_id: int) -> None:
        """A card members.csv issues to a member already in the club (or just matched)."""
        self.cards.setdefault(card, member_id)
        self._raw_cards.clear()

    def settle(self, found: dict[str, int], cards: dict[str, int | None] | None = None) -> None:
        """After members.csv was written: each reference (and card) → its member id."""
        for where, pairs in ((self.keys, found), (self.cards, cards or {})):
            for ref, member_id in pairs.items():
                if member_id is not None and where.get(ref, -1) < 0:
                    where[ref] = member_id
        self._raw.clear()
        self._raw_cards.clear()

    def real(self, key: int) -> int | None:
        """A key from the check phase → the member id now (pending ones after `settle`)."""
        if key > 0:
            return key
        where, ref = self.pending[-key - 1]
        member_id = where.get(ref)
        return member_id if member_id and member_id > 0 else None

    # --- looking up -------------------------------------------------------------------------

    def resolve(self, raw: str) -> int:
        """The member key for a cell; ValueError naming what is wrong (no member, several)."""
        hit = self._raw.get(raw)
        if hit is None:
            try:
                hit = self._lookup(raw)
            except ValueError as exc:
                hit = str(exc)
            if len(self._raw) < 500_000:
                self._raw[raw] = hit
        if isinstance(hit, str):
            raise ValueError(hit)  # noqa: TRY004 - a cached "not found"
        return hit

    def _lookup(self, raw: str) -> int:
        ref = self.normalise(raw)
        if not ref:
            raise ValueError("no member reference")
        key = self.keys.get(ref)
        if key is None:
            raise ValueError(f"no member with this {WHAT[self.kind]}")
        if key == AMBIGUOUS:
            raise ValueError(f"{self.shared.get(ref, 2)} members have this {WHAT[self.kind]}; "
                             "use another reference (e.g. --reference external_id)")
        return key


    def resolve_card(self, raw: str) -> int:
        """The member key for a card cell (the club's cards and those members.csv issues)."""
        hit = self._raw_cards.get(raw)
        if hit is None:
            try:
                code = members_service.normalise_card_code(raw, field="card")
                hit = self.cards.get(code) or "no member has this card"
            except Invalid as exc:
                hit = exc.details[0]["message"] if exc.details else exc.message
            if len(self._raw_cards) < 500_000:
                self._raw_cards[raw] = hit
        if isinstance(hit, str):
            raise ValueError(hit)  # noqa: TRY004 - a cached "not found"
        return hit
