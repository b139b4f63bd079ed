"""Within one member import: which keys must be unique, and who shares a phone or an email.

Only the old system's id and the card identify a person: a second row with either is an error.
Families, couples and a parent with teenagers share a phone or an email in every real club
list, so a repeat of those is a *warning* naming the other row; both people are imported, and
each gets a note naming the other (until members can be linked as one household). A row whose
email or phone belongs to a member of the club under another old-system id is a new person too,
noted on both. The privacy duplicate finder still lists such pairs (same email / same phone):
the desk decides, never the import.
"""
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.core import clock
from app.members.models import Member, MemberNote

UNIQUE = (("external_ref", "external_id", "external id"), ("card", "card", "card"))
SHARED = (("email", "email", "email"), ("phone", "phone", "phone"))


@dataclass
class SeenKeys:
    """Keys of the good rows so far (normalised), and the shared contacts found on the way."""

    unique: dict[str, dict[str, int]] = field(
        default_factory=lambda: {"external_ref": {}, "card": {}})
    contacts: dict[str, dict[str, int]] = field(
        default_factory=lambda: {"email": {}, "phone": {}})
    names: dict[int, str] = field(default_factory=dict)
    """row number → the person's name, for rows with an email or phone (to name them later)."""
    pairs: list[tuple[str, int, int]] = field(default_factory=list)
    """(label, earlier row, later row) sharing a contact."""
    with_members: list[tuple[str, int, int]] = field(default_factory=list)
    """(label, member id already in the club, row) sharing a contact."""
    ids: dict[int, int] = field(default_factory=dict)
    """row number → the member created for it (rows with an email or phone)."""

    @staticmethod
    def _value(row, attr: str) -> str | None:
        return row.card if attr == "card" else row.member.get(attr)

    def check(self, row, problem: Callable[..., object]) -> None:
        """Errors for a repeated old-system id or card; warnings for a shared email or phone."""
        for attr, name, label in UNIQUE:
            value = self._value(row, attr)
            if value and (first := self.unique[attr].get(value)):
                row.errors.append(problem(row, name, f"the same {label} as row {first}"))
        for attr, name, label in SHARED:
            value = row.member.get(attr)
            if value and (first := self.contacts[attr].get(value)):
                row.warnings.append(problem(
                    row, name, f"the same {label} as row {first} ({self.names[first]}): both "
                    "are imported", severity="warning"))

    def remember(self, row) -> None:
        for attr, _name, _label in UNIQUE:
            if value := self._value(row, attr):
                self.unique[attr].setdefault(value, row.number)
        for attr, _name, label in SHARED:
            if value := row.member.get(attr):
                first = self.contacts[attr].setdefault(value, row.number)
                if first != row.number:
                    self.pairs.append((label, first, row.number))
        if row.member.get("email") or row.member.get("phone"):
            self.names[row.number] = f"{row.member['first_name']} {row.member['last_name']}"

    def created(self, rows: list, ids: list[int | None]) -> None:
        """The members written for a batch's new rows."""
        for row, member_id in zip(rows, ids, strict=True):
            if member_id is not None and row.number in self.names:
                self.ids[row.number] = member_id

    def write_notes(self, session: Session, *, club_id: int, staff_id: int | None) -> int:
        """One note on each member who shares a contact, naming the others; returns how many."""
        about: dict[int, list[str]] = {}
        for label, first, later in self.pairs:
            a, b = self.ids.get(first), self.ids.get(later)
            if a is None or b is None:
                continue
            about.setdefault(a, []).append(f"{label} with {self.names[later]} (member #{b})")
            about.setdefault(b, []).append(f"{label} with {self.names[first]} (member #{a})")
        known = {m.id: f"{m.first_name} {m.last_name}" for m in session.execute(
            select(Member.id, Member.first_name, Member.last_name).where(
                Member.club_id == club_id,
                Member.id.in_({m for _, m, _ in self.with_members} or {0})))}
        for label, member_id, row_number in self.with_members:
            mine = self.ids.get(row_number)
            if mine is None or member_id not in known:
                continue
            about.setdefault(mine, []).append(
                f"{label} with {known[member_id]} (member #{member_id})")
            about.setdefault(member_id, []).append(
                f"{label} with {self.names[row_number]} (member #{mine})")
        now = clock.now()
        notes = [{"club_id": club_id, "member_id": member_id, "staff_id": staff_id,
                  "created_at": now,
                  "text": "Import from the old system: shares the "
                          + "; the ".join(dict.fromkeys(parts)) + " (a family or household?)"}
                 for member_id, parts in about.items()]
        if notes:
            session.execute(insert(MemberNote), notes)
        return len(notes)
