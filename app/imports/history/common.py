"""What every history file shares: options, the import's context, columns, row parsing.

Each kind of file (plans, memberships, …) is a module with `FIELDS` (field → accepted column
names), `REQUIRED`, a `check(ctx, csv, report)` pass that reads every row and remembers only what
the later files and the write need, and a `write(ctx, csv, report)` pass that reads the file
again and writes the rows that passed (rows with errors are skipped by number).
"""
import csv as csv_module
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.clubs import service as clubs_service
from app.clubs.schemas import ClubSettings
from app.core import clock
from app.core.sql import local_day_start
from app.imports.csvfile import (
    CsvFile,
    CsvRow,
    Problem,
    limited_text,
    match_columns,
    normalise_header,
)
from app.imports.history.references import MemberRefs
from app.imports.history.report import FileReport, HistoryReport
from app.memberships.models import Membership

Progress = Callable[[str, str, int, int | None], None]
"""progress(phase "checking" | "importing", file name, bytes done, bytes in the file)."""


@dataclass
class Options:
    reference: str = "external_id"
    dry_run: bool = False
    skip_bad: bool = False
    day_first: bool = True
    renewal_gap_days: int = 31
    """A membership starting at most this many days after the member's previous one ended
    renews it (unless the file names what it renews)."""
    rejects_dir: Path | None = None
    mapping: dict[str, dict[str, str]] = field(default_factory=dict)
    """file kind → {field: the file's column}; wins over the recognised names."""
    future_visits: str = "skip"
    """visits after the import's instant (a same-day export): "skip" them with one warning, or
    "refuse" them, each an error."""
    source: str | None = None
    """a named source layout (`app.imports.history.sources`): its report names and columns."""

    @property
    def mode(self) -> str:
        return "skip_bad" if self.skip_bad else "all_or_nothing"


# --- memberships known to the import -----------------------------------------------------------

class Entry:
    """One membership as the checks see it: from the database or a good row of the file."""

    __slots__ = ("end", "id", "last", "member", "ref", "renews", "row", "start")

    def __init__(self, member: int, start: int, end: int, last: int | None, ref: str | None,
                 row: int = 0, id: int | None = None):
        self.member = member  # member key (see MemberRefs)
        self.start = start  # date ordinals
        self.end = end
        self.last = last  # the last day it ran (cancelled early: the day before); None = void
        self.ref = ref
        self.row = row  # its row in memberships.csv; 0 = already in the database
        self.id = id  # database id once known
        self.renews: int | str | None = None  # entry index, or (checking) the old id named


@dataclass
class Book:
    """The club's memberships during an import: per member, for overlaps, renewals, freezes and
    which membership a visit belongs to. Dates are ordinals; no ORM objects are kept."""

    entries: list[Entry] = field(default_factory=list)
    by_ref: dict[str, int] = field(default_factory=dict)
    by_member: dict[int, list[int]] = field(default_factory=dict)
    loaded: bool = False

    def add(self, entry: Entry) -> int:
        index = len(self.entries)
        self.entries.append(entry)
        if entry.ref is not None:
            self.by_ref[entry.ref] = index
        self.by_member.setdefault(entry.member, []).append(index)
        return index

    def load(self, session: Session, club_id: int) -> None:
        """The memberships already in the club (streamed, kept as ordinals)."""
        if self.loaded:
            return
        self.loaded = True
        m = Membership.__table__.c
        rows = session.execute(
            select(m.id, m.member_id, m.start_date, m.end_date, m.cancelled_on, m.external_ref)
            .where(m.club_id == club_id).order_by(m.id)
            .execution_options(yield_per=20_000))
        for row in rows:
            self.add(Entry(row.member_id, row.start_date.toordinal(), row.end_date.toordinal(),
                           last_ordinal(row.start_date, row.end_date, row.cancelled_on),
                           row.external_ref, 0, row.id))

    def covering(self, member: int, day: int) -> int | None:
        """The entry of the member that ran on this day (latest start wins)."""
        best = None
        for index in self.by_member.get(member, ()):
            e = self.entries[index]
            if e.last is not None and e.start <= day <= e.last and (
                    best is None or e.start > self.entries[best].start):
                best = index
        return best


def last_ordinal(start: date, end: date, cancelled_on: date | None) -> int | None:
    """The membership's last day as an ordinal (see app.analytics.renewals); None if void."""
    if cancelled_on is not None:
        if cancelled_on <= start:
            return None
        if cancelled_on <= end:
            return cancelled_on.toordinal() - 1
    return end.toordinal()


# --- the import's context -----------------------------------------------------------------------

@dataclass
class PlanRef:
    id: int | None
    name: str
    price: Any
    visit_limit: int | None
    duration_days: int | None
    duration_months: int | None


@dataclass
class Context:
    session: Session
    club_id: int
    options: Options
    report: HistoryReport
    zone: ZoneInfo
    settings: ClubSettings
    today: date
    now: datetime
    refs: MemberRefs
    progress: Progress | None = None
    book: Book = field(default_factory=Book)
    plans: dict[str, PlanRef] = field(default_factory=dict)
    """"id:<old id>" and "name:<folded name>" → the plan (id None: plans.csv will create it)."""
    trainers: dict[str, int | None] = field(default_factory=dict)
    """staff email → trainer profile id (None: staff.csv will create it)."""
    state: dict[str, Any] = field(default_factory=dict)
    """what one kind's check leaves for its write (small)."""

    @classmethod
    def create(cls, session: Session, *, club_id: int, options: Options, report: HistoryReport,
               progress: Progress | None = None) -> "Context":
        club = clubs_service.get_club(session, club_id)
        settings = clubs_service.club_settings(club)
        now = clock.now()
        return cls(session, club_id, options, report, clubs_service.club_zone(club), settings,
                   clubs_service.club_today(club, now), now,
                   MemberRefs(options.reference, settings.phone_region), progress)

    def day_start(self, day: date) -> datetime:
        return local_day_start(self.zone, day)

    def tick(self, phase: str, csv: CsvFile) -> None:
        if self.progress:
            self.progress(phase, csv.name, csv.position, csv.size)


def derived_ref(*parts: object) -> str:
    """A stable old-system id for a row whose file has no id column (re-runs find it again)."""
    text = "|".join(str(p) for p in parts)
    return "auto:" + hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:32]


def fold(text: str) -> str:
    return " ".join(text.casefold().split())


# --- columns and rows ---------------------------------------------------------------------------

# fields naming another row by its id: an export's "<field>_external_id", "<field>_code" (…) is
# recognised as the field without a mapping ("member_external_id", "plan_code", …)
REFERENCE_FIELDS = frozenset({"member", "plan", "plan_id", "membership", "membership_id",
                              "package_id", "visit_id", "freeze_id", "renews"})
REFERENCE_SUFFIXES = ("_external_id", "_external_ref", "_ext_id", "_legacy_id", "_code",
                      "_number", "_no", "_ref")


def _by_suffix(headers: list[str], fields: dict[str, tuple[str, ...]],
               chosen: dict[str, str], mapping: dict[str, str]) -> None:
    """Unmatched "<field>_external_id"-style headers → their reference field (in place)."""
    taken = set(chosen.values())
    for header in headers:
        if header in taken:
            continue
        for suffix in REFERENCE_SUFFIXES:
            if header.endswith(suffix):
                base = header[:-len(suffix)]
                target = next((t for t in (base, f"{base}_id") if t in REFERENCE_FIELDS
                               and t in fields and t not in chosen and t not in mapping), None)
                if target:
                    chosen[target] = header
                    taken.add(header)
                break


class Columns:
    """Which column of the file feeds which field; missing required columns are file errors.
    The import's mapping for this kind of file (`Options.mapping`) wins."""

    def __init__(self, csv: CsvFile, fields: dict[str, tuple[str, ...]],
                 required: tuple[str, ...], report: FileReport,
                 one_of: tuple[tuple[str, ...], ...] = (), mapping: dict[str, str] | None = None):
        self.file = csv.name
        self.header, errors = match_columns(csv.headers, fields, mapping)
        _by_suffix(csv.headers, fields, self.header, mapping or {})
        self.shown = dict(zip(csv.headers, csv.original_headers, strict=True))
        report.columns = {f: self.shown[h] for f, h in self.header.items()}
        for message in errors:
            report.add(Problem(csv.name, None, None, message))
        for name in required:
            if name not in self.header:
                report.add(Problem(csv.name, None, name, f"no column for {name}; name a column "
                                   f"{name} (or one of: {', '.join(fields[name][:4])})"))
        for group in one_of:
            if not any(name in self.header for name in group):
                report.add(Problem(csv.name, None, group[0], "needs a column for "
                                   + " or ".join(group)))
        used = set(self.header.values())
        for h in csv.headers:
            if h and h not in used:
                report.add(Problem(csv.name, None, self.shown[h],
                                   "this column is not imported (no field of that name)",
                                   severity="warning"))

    def name(self, field_name: str) -> str:
        header = self.header.get(field_name)
        return self.shown[header] if header else field_name


class Row:
    """One data row being parsed: its cells by field, and the problems found."""

    __slots__ = ("cols", "errors", "number", "raw", "values", "warnings")

    def __init__(self, cols: Columns, row: CsvRow):
        self.cols = cols
        self.values = row.values
        self.number = row.number
        self.raw = row.raw
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []

    def text(self, name: str) -> str:
        header = self.cols.header.get(name)
        return self.values.get(header, "") if header else ""

    def problem(self, name: str | None, message: str, value: str | None = None, *,
                warning: bool = False) -> None:
        problem = Problem(self.cols.file, self.number, self.cols.name(name) if name else None,
                          message, value, "warning" if warning else "error")
        (self.warnings if warning else self.errors).append(problem)

    def take(self, name: str, parse: Callable[..., Any], *args, required: bool = False,
             **kwargs) -> Any:
        text = self.text(name)
        if not text:
            if required:
                self.problem(name, f"{name.replace('_', ' ')} is required")
            return None
        try:
            return parse(text, *args, **kwargs)
        except ValueError as exc:
            self.problem(name, str(exc), text)
            return None

    def string(self, name: str, limit: int, *, required: bool = False) -> str | None:
        return self.take(name, limited_text(limit), required=required)

    def settle(self, report: FileReport) -> bool:
        """Report the row's problems; True when it has no errors (it can be imported)."""
        for problem in self.errors:
            report.reject(problem)
        for problem in self.warnings:
            report.add(problem)
        return not self.errors


def resolve_member(ctx: Context, row: Row) -> int | None:
    """The row's member key: by the chosen reference (`member`), else by its `card`."""
    member_raw, card = row.text("member"), row.text("card")
    name, raw = ("member", member_raw) if member_raw or not card else ("card", card)
    if not raw:
        row.problem("member", "member reference is required")
        return None
    try:
        return ctx.refs.resolve(raw) if name == "member" else ctx.refs.resolve_card(raw)
    except ValueError as exc:
        row.problem(name, str(exc), raw)
        return None


def header_key(name: str) -> str:
    return normalise_header(name)


def write_rejects(path: Path, csv: CsvFile, rejected: dict[int, str]) -> None:
    """The rows not imported, as given plus a `problem` column (streamed from the file)."""
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv_module.writer(out)
        writer.writerow([*csv.original_headers, "problem"])
        for row in csv.rows():
            if row.number in rejected:
                writer.writerow([*row.raw, rejected[row.number]])
