"""Importing members from a CSV file (the club's old spreadsheet or previous system).

`import_members` reads the file once, streaming, in batches of `BATCH` rows:

1. each row's cells are parsed and checked (names, email, phone, birth date, card code, consents,
   custom fields) → problems naming row and column;
2. within the file, a second row with an external id or card already used by an earlier good
   row is an error; a shared email or phone is a warning, and both people are imported and
   noted (see `shared_contacts`; only the keys and names are remembered, not the rows);
3. the batch is matched against the club's members (external id first, then email, then phone):
   a match is a *duplicate* — skipped and reported with the member's id and what matched — or,
   with `update_existing`, the member is updated (non-empty cells only);
4. unless this is a dry run, the batch is written: new members with one Core insert per table
   (members, search terms, cards, consents with source "import", notes, custom values).

Modes: `all_or_nothing` (the default) writes inside one savepoint and rolls it back when any row
has an error — the report then says nothing was written; `skip_bad` writes the good rows and
sends the bad ones to `rejects` (the original cells plus a `problem` column). A dry run writes
nothing and reports what would happen. Re-running a file creates nothing twice: its rows match
the members created the first time.

The caller owns the transaction (the request session, or the CLI's unit of work).
"""
import csv as csv_module
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, BinaryIO, Literal, TextIO

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import insert, or_, select
from sqlalchemy.orm import Session

from app.clubs import service as clubs_service
from app.core import clock
from app.core.audit import AuditEntry
from app.core.errors import DomainError, Invalid
from app.customfields import service as custom_fields
from app.customfields.models import CustomField, CustomFieldValue
from app.imports.csvfile import (
    CsvFile,
    CsvRow,
    FileProblem,
    Problem,
    limited_text,
    match_columns,
    normalise_header,
    parse_bool,
    parse_date,
)
from app.imports.shared_contacts import SeenKeys
from app.members import service as members_service
from app.members.models import (
    Card,
    Consent,
    Member,
    MemberNote,
    MemberSearchTerm,
    phone_rev_for,
    search_name_for,
    search_terms_for,
)
from app.members.schemas import MIN_BIRTH_DATE, Gender, PreferredChannel

Mode = Literal["all_or_nothing", "skip_bad"]
MODES: tuple[str, ...] = ("all_or_nothing", "skip_bad")
Reference = Literal["external_id", "card", "email", "phone"]

BATCH = 1000
MAX_PROBLEMS = 10_000  # kept in the report; beyond that only counted
MAX_NAME, MAX_SOURCE, MAX_REF, MAX_NOTE = 100, 50, 100, 10_000

# field → accepted column names besides the field's own (compared normalised, English/German)
FIELDS: dict[str, tuple[str, ...]] = {
    "first_name": ("firstname", "first", "given_name", "forename", "vorname", "prenom"),
    "last_name": ("lastname", "last", "surname", "family_name", "nachname", "familienname",
                  "nom"),
    "email": ("e_mail", "mail", "email_address", "e_mail_address", "e_mail_adresse",
              "emailadresse", "email_adresse"),
    "phone": ("mobile", "mobile_phone", "mobile_number", "cell", "cell_phone", "phone_number",
              "telephone", "telefon", "telefonnummer", "tel", "handy", "mobil", "mobilnummer",
              "mobiltelefon"),
    "birth_date": ("birthdate", "date_of_birth", "dob", "birthday", "born", "geburtsdatum",
                   "geburtstag", "geb_datum"),
    "gender": ("sex", "geschlecht", "anrede", "salutation"),
    "card": ("card_code", "card_number", "card_no", "card_id", "karte", "kartennummer",
             "karten_nr", "karten_nummer", "chip", "badge", "rfid", "transponder"),
    "external_id": ("external_ref", "external_reference", "member_id", "member_number",
                    "member_no",
                    "membership_number", "mitgliedsnummer", "mitglieds_nr", "mitgliedsnr",
                    "mitglied_nr", "kundennummer", "kunden_nr", "customer_number", "customer_id",
                    "old_id", "legacy_id"),
    "source": ("lead_source", "quelle", "herkunft"),
    "email_consent": ("email_opt_in", "e_mail_opt_in", "newsletter", "email_einwilligung",
                      "e_mail_einwilligung", "einwilligung_e_mail", "einwilligung_email"),
    "sms_consent": ("sms_opt_in", "sms_einwilligung", "einwilligung_sms"),
    "preferred_channel": ("channel", "contact_channel", "kontaktweg", "bevorzugter_kontakt",
                          "bevorzugter_kontaktweg"),
    "note": ("notes", "comment", "comments", "remark", "remarks", "bemerkung", "bemerkungen",
             "notiz", "notizen", "kommentar", "anmerkung"),
}
REQUIRED = ("first_name", "last_name")
# Columns our own export writes that an import reads past without a word (see exports.py).
EXPORT_ONLY = frozenset({
    "fitclub_id", "membership_plan", "membership_status", "membership_start", "membership_end",
    "created_at", "problem",
    # the leads export's pipeline columns
    "stage", "lead_source", "source_detail", "utm_source", "utm_medium", "utm_campaign",
    "assignee", "trial_date", "lost_reason", "first_contact_at", "won_at", "lost_at"})

_GENDERS = {
    Gender.female: {"female", "f", "w", "woman", "weiblich", "frau", "fr", "mrs", "ms", "miss"},
    Gender.male: {"male", "m", "man", "mannlich", "männlich", "maennlich", "herr", "hr", "mr"},
    Gender.diverse: {"diverse", "d", "divers", "x", "other", "non_binary", "nonbinary"},
    Gender.unspecified: {"unspecified", "u", "unknown", "unbekannt", "keine_angabe", "n_a"},
}
_GENDER_WORDS = {word: gender for gender, words in _GENDERS.items() for word in words}
_MIDNIGHT = re.compile(r"(\S+)[ T]00:00(?::00)?")
_FORMULA_QUOTED = re.compile(r"'[=+\-@\t\r]")


@dataclass
class MemberImportReport:
    """What an import did (or, on a dry run, would do)."""

    file: str
    dry_run: bool
    mode: Mode
    update_existing: bool = False
    rows: int = 0
    created: int = 0
    updated: int = 0
    duplicates: int = 0
    errors: int = 0
    written: bool = False
    problems: list[Problem] = field(default_factory=list)
    problems_total: int = 0
    columns: dict[str, str] = field(default_factory=dict)
    """field → the file's column (as the file spells it)."""
    ignored_columns: list[str] = field(default_factory=list)
    references: dict[str, int | None] | None = None
    """With `reference=...`: each imported or matched row's key (normalised as stored) → member
    id (None: would be created, on a dry run). For the history import's member look-ups."""
    shared_references: set[str] = field(default_factory=set)
    """References (an email, a phone) that rows of different people share."""
    cards: dict[str, tuple[str | None, int | None]] = field(default_factory=dict)
    """With `reference=...` other than card: each row's card → (its reference key, member id)."""

    def add(self, problem: Problem) -> None:
        self.problems_total += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)

    @property
    def file_errors(self) -> list[Problem]:
        return [p for p in self.problems if p.row is None and p.severity == "error"]

    @property
    def ok(self) -> bool:
        """Nothing wrong: no row errors and no file-level error."""
        return self.errors == 0 and not self.file_errors

    def summary(self) -> str:
        done = self.written or (not self.dry_run and not self.errors and not self.file_errors)
        create, update = ("created", "updated") if done else ("would create", "would update")
        text = (f"{self.file}: {self.rows} rows — {create} {self.created}, {update} "
                f"{self.updated}, duplicates {self.duplicates}, errors {self.errors}")
        if self.dry_run:
            return text + " — dry run, nothing was written"
        if not self.written:
            text += " — nothing was written"
            if self.mode == "all_or_nothing" and self.errors:
                text += " (all_or_nothing: fix the errors, or import with skip_bad)"
        elif self.errors:
            text += f" — {self.errors} rows with errors were skipped (see the rejects)"
        return text

    def as_dict(self) -> dict:
        return {
            "file": self.file, "dry_run": self.dry_run, "mode": self.mode,
            "update_existing": self.update_existing, "written": self.written,
            "summary": {"rows": self.rows, "created": self.created, "updated": self.updated,
                        "duplicates": self.duplicates, "errors": self.errors},
            "message": self.summary(), "columns": self.columns,
            "ignored_columns": self.ignored_columns,
            "problems": [p.as_dict() for p in self.problems],
            "problems_total": self.problems_total,
        }


@dataclass
class _Row:
    """One data row, parsed: what to write, and what is wrong with it."""

    number: int
    raw: list[str]
    cells: dict[str, str]  # normalised header → the cell as written
    member: dict[str, Any] = field(default_factory=dict)
    card: str | None = None
    note: str | None = None
    consents: dict[str, bool] = field(default_factory=dict)
    custom: dict[int, Any] = field(default_factory=dict)
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    match: tuple[int, str] | None = None  # (member id, "external id" | "email" | "phone")

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class _Context:
    file: str
    columns: dict[str, str]  # field → normalised header
    shown: dict[str, str]  # normalised header → the header as the file spells it
    custom: dict[str, CustomField]  # "custom.<key>" → field
    region: str
    today: date
    day_first: bool


def custom_field_names(fields: list[CustomField]) -> dict[str, tuple[str, ...]]:
    """"custom.<key>" → the column names that feed it: the key, the label, custom_<key>."""
    return {f"custom.{f.key}": (f"custom_{f.key}", f.key, f.label) for f in fields}


def unquote_formula(text: str) -> str:
    """Undo an export's CSV-injection guard: "'+4930…" → "+4930…" (only before = + - @)."""
    return text[1:] if _FORMULA_QUOTED.match(text) else text


# --- parsing one row ---------------------------------------------------------------------------

def _email(text: str) -> str:
    try:
        return validate_email(text, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None


def _phone(text: str, region: str) -> str:
    try:
        return members_service.normalise_phone(text, region=region)
    except Invalid as exc:
        raise ValueError(exc.details[0]["message"] if exc.details else exc.message) from None


def _birth_date(text: str, ctx: _Context) -> date | None:
    if m := _MIDNIGHT.fullmatch(text):  # "1985-03-04 00:00:00" from a spreadsheet
        text = m[1]
    value = parse_date(text, day_first=ctx.day_first)
    if value is not None and value > ctx.today:
        raise ValueError("birth date cannot be in the future")
    if value is not None and value < MIN_BIRTH_DATE:
        raise ValueError("birth date must be in 1900 or later")
    return value


def _gender(text: str) -> str:
    gender = _GENDER_WORDS.get(normalise_header(text))
    if gender is None:
        raise ValueError("not a gender; write female, male, diverse or unspecified "
                         "(f/m/d, w, Herr/Frau are understood too)")
    return gender.value


def _channel(text: str) -> str:
    word = normalise_header(text)
    word = {"e_mail": "email", "mail": "email", "text": "sms", "telefon": "phone", "call": "phone",
            "anruf": "phone", "keine": "none", "no": "none"}.get(word, word)
    try:
        return PreferredChannel(word).value
    except ValueError:
        raise ValueError("not a channel; write email, sms, phone or none") from None


def _card(text: str) -> str:
    try:
        return members_service.check_issuable(
            members_service.normalise_card_code(text, field="card"), field="card")
    except Invalid as exc:
        raise ValueError(exc.details[0]["message"] if exc.details else exc.message) from None


def _parse_row(row: CsvRow, ctx: _Context) -> _Row:
    """The row's cells → a `_Row`, every problem with its column."""
    result = _Row(row.number, row.raw, row.values)

    def cell(name: str) -> str:
        header = ctx.columns.get(name)
        return unquote_formula(row.values.get(header, "")) if header else ""

    def problem(name: str, message: str, value: str | None) -> None:
        result.errors.append(Problem(ctx.file, row.number, ctx.shown.get(ctx.columns.get(name, ""),
                                                                           name), message, value))

    def take(name: str, parse: Callable[[str], Any]) -> Any:
        text = cell(name)
        if not text:
            return None
        try:
            return parse(text)
        except ValueError as exc:
            problem(name, str(exc), text)
            return None

    for name in REQUIRED:
        if not cell(name):
            problem(name, f"{name.replace('_', ' ')} is missing", None)
    member = result.member
    member["first_name"] = take("first_name", limited_text(MAX_NAME))
    member["last_name"] = take("last_name", limited_text(MAX_NAME))
    member["email"] = take("email", _email)
    member["phone"] = take("phone", lambda t: _phone(t, ctx.region))
    member["birth_date"] = take("birth_date", lambda t: _birth_date(t, ctx))
    member["gender"] = take("gender", _gender)
    member["source"] = take("source", limited_text(MAX_SOURCE))
    member["preferred_channel"] = take("preferred_channel", _channel)
    member["external_ref"] = take("external_id", limited_text(MAX_REF))
    result.card = take("card", _card)
    result.note = take("note", limited_text(MAX_NOTE))
    for channel in ("email", "sms"):
        granted = take(f"{channel}_consent", parse_bool)
        if granted is not None:
            result.consents[channel] = granted
    for name, custom in ctx.custom.items():
        if name not in ctx.columns:
            if custom.required:
                result.errors.append(Problem(ctx.file, row.number, name,
                                             f"{custom.label} is required (no column for it)"))
            continue
        value = take(name, lambda t, f=custom: custom_fields.parse_text(f, t))
        if value is not None:
            result.custom[custom.id] = value
        elif custom.required and not any(p.column == ctx.shown[ctx.columns[name]]
                                         for p in result.errors):
            problem(name, f"{custom.label} is required", None)
    return result


# --- the import --------------------------------------------------------------------------------

def _problem(ctx: _Context, row: _Row, name: str, message: str,
             severity: str = "error") -> Problem:
    """A problem with field `name` of `row`, naming the column and the cell as written."""
    header = ctx.columns[name]
    return Problem(ctx.file, row.number, ctx.shown[header], message, row.cells.get(header),
                   severity)


def _match(session: Session, club_id: int, rows: list[_Row], ctx: _Context,
           seen: SeenKeys) -> None:
    """Find each good row's existing member (external id, then email, then phone) and check its
    card against the club's cards — two queries for the batch."""
    refs = {r.member["external_ref"] for r in rows if r.member.get("external_ref")}
    emails = {r.member["email"] for r in rows if r.member.get("email")}
    phones = {r.member["phone"] for r in rows if r.member.get("phone")}
    by: dict[str, dict[str, tuple[int, str | None]]] = {"external_ref": {}, "email": {},
                                                         "phone": {}}
    conditions = [column.in_(values) for column, values in
                  ((Member.external_ref, refs), (Member.email, emails), (Member.phone, phones))
                  if values]
    if conditions:
        for found in session.execute(
                select(Member.id, Member.external_ref, Member.email, Member.phone)
                .where(Member.club_id == club_id, or_(*conditions)).order_by(Member.id)):
            for attr, found_by in by.items():
                value = getattr(found, attr)
                if value is not None:
                    found_by.setdefault(value, (found.id, found.external_ref))
    codes = {r.card for r in rows if r.card}
    owners = dict(session.execute(select(Card.code, Card.member_id).where(
        Card.club_id == club_id, Card.code.in_(codes))).all()) if codes else {}
    for row in rows:
        ref = row.member.get("external_ref")
        for attr, label in (("external_ref", "external id"), ("email", "email"),
                            ("phone", "phone")):
            value = row.member.get(attr)
            if value and value in by[attr]:
                member_id, their_ref = by[attr][value]
                if attr != "external_ref" and ref and their_ref and their_ref != ref:
                    row.warnings.append(_problem(
                        ctx, row, attr, f"member #{member_id} has this {label} too, under "
                        f"another external id ({their_ref}): imported as another person",
                        "warning"))
                    seen.with_members.append((label, member_id, row.number))
                    continue
                row.match = (member_id, label)
                break
        owner = owners.get(row.card) if row.card else None
        if owner is not None and (row.match is None or owner != row.match[0]):
            row.errors.append(_problem(ctx, row, "card",
                                       f"card {row.card} is already issued to member #{owner}"))


def _insert_new(session: Session, club_id: int, rows: list[_Row], staff_id: int | None,
                by_id: dict[int, CustomField]) -> list[int]:
    """Insert new members and everything that hangs on them; one statement per table."""
    now = clock.now()
    records = []
    for row in rows:
        data = dict(row.member, club_id=club_id, created_at=now, updated_at=now,
                    email_consent=bool(row.consents.get("email")),
                    sms_consent=bool(row.consents.get("sms")),
                    search_name=search_name_for(row.member["first_name"],
                                                row.member["last_name"]),
                    phone_rev=phone_rev_for(row.member.get("phone")))
        records.append(data)
    ids = list(session.scalars(insert(Member).returning(Member.id, sort_by_parameter_order=True),
                               records))
    terms, cards, consents, notes, values = [], [], [], [], []
    for member_id, row, data in zip(ids, rows, records, strict=True):
        terms += [{"club_id": club_id, "member_id": member_id, "term": term,
                   "search_name": data["search_name"]}
                  for term in search_terms_for(data["search_name"])]
        if row.card:
            cards.append({"club_id": club_id, "member_id": member_id, "code": row.card,
                          "status": "active", "created_at": now, "updated_at": now})
        consents += [{"club_id": club_id, "member_id": member_id, "channel": channel,
                      "granted": granted, "source": "import", "recorded_at": now,
                      "staff_id": staff_id} for channel, granted in row.consents.items()]
        if row.note:
            notes.append({"club_id": club_id, "member_id": member_id, "staff_id": staff_id,
                          "text": row.note, "created_at": now})
        values += [{"club_id": club_id, "member_id": member_id, "field_id": field_id,
                    "created_at": now, "updated_at": now,
                    **custom_fields.value_columns(by_id[field_id], value)}
                   for field_id, value in row.custom.items()]
    for model, batch in ((MemberSearchTerm, terms), (Card, cards), (Consent, consents),
                         (MemberNote, notes), (CustomFieldValue, values)):
        if batch:
            session.execute(insert(model), batch)
    return ids


def _update_existing(session: Session, club_id: int, rows: list[_Row],
                     staff_id: int | None) -> None:
    """Update matched members with the row's non-empty cells (ORM: search terms follow)."""
    members = {m.id: m for m in session.scalars(select(Member).where(
        Member.club_id == club_id, Member.id.in_([r.match[0] for r in rows])))}
    noted = set(session.execute(select(MemberNote.member_id, MemberNote.text).where(
        MemberNote.club_id == club_id, MemberNote.member_id.in_(list(members)),
        MemberNote.text.in_([r.note for r in rows if r.note] or [""]))).all())
    cards = set(session.scalars(select(Card.member_id).where(
        Card.club_id == club_id, Card.code.in_([r.card for r in rows if r.card] or [""]))))
    now = clock.now()
    for row in rows:
        member = members[row.match[0]]
        for name, value in row.member.items():
            if value is not None and not (name == "external_ref" and member.external_ref):
                setattr(member, name, value)
        for channel, granted in row.consents.items():
            if getattr(member, f"{channel}_consent") != granted:
                session.add(Consent(club_id=club_id, member_id=member.id, channel=channel,
                                    granted=granted, source="import", recorded_at=now,
                                    staff_id=staff_id))
                setattr(member, f"{channel}_consent", granted)
        if row.card and member.id not in cards:
            session.add(Card(club_id=club_id, member_id=member.id, code=row.card,
                             status="active"))
        if row.note and (member.id, row.note) not in noted:
            session.add(MemberNote(club_id=club_id, member_id=member.id, staff_id=staff_id,
                                   text=row.note, created_at=now))
    session.flush()
    for row in rows:
        if row.custom:
            custom_fields.set_values(session, club_id=club_id, member_id=row.match[0],
                                     values=row.custom)


class _Rejects:
    """Rejected rows as the user gave them plus a `problem` column, streamed to `out`."""

    def __init__(self, out: TextIO | None, original_headers: list[str]):
        self.out = out
        headers = list(original_headers)
        normalised = [normalise_header(h) for h in headers]
        # a rejects file being re-imported already has a problem column: reuse it
        self.slot = normalised.index("problem") if "problem" in normalised else None
        if self.slot is None:
            headers.append("problem")
        self.width = len(original_headers)
        self.writer = csv_module.writer(out) if out is not None else None
        if self.writer:
            self.writer.writerow(headers)

    def write(self, row: _Row, problems: list[Problem]) -> None:
        if self.writer is None:
            return
        text = "; ".join(f"{p.column}: {p.message}" if p.column else p.message for p in problems)
        cells = (list(row.raw) + [""] * self.width)[:self.width]
        if self.slot is not None:
            cells[self.slot] = text
        else:
            cells.append(text)
        self.writer.writerow(cells)


def _batches(rows: Iterator[CsvRow], size: int) -> Iterator[list[CsvRow]]:
    batch: list[CsvRow] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _reference_key(row: _Row, reference: Reference) -> str | None:
    if reference == "card":
        return row.card
    return row.member.get("external_ref" if reference == "external_id" else reference)


def _audit(session: Session, *, club_id: int, staff_id: int | None, actor_label: str | None,
           action: str, entity: str, fields: list[str], detail: dict) -> None:
    """One entry in the privacy audit log for a whole import or export (field names and counts,
    never values)."""
    session.add(AuditEntry(club_id=club_id, staff_id=staff_id,
                           actor_label=None if staff_id else (actor_label or "import"),
                           action=action, entity=entity, entity_id=0, fields=sorted(fields),
                           detail=detail))
    session.flush()


def audit_export(session: Session, *, club_id: int, staff_id: int | None, what: str) -> None:
    """Log an export of the club's members or leads ("exported", entity members_export…)."""
    _audit(session, club_id=club_id, staff_id=staff_id, actor_label=None, action="exported",
           entity=f"{what}_export", fields=[], detail={"what": what})


def _match_file_columns(csv: CsvFile, names: Mapping[str, object],
                        mapping: Mapping[str, str] | None,
                        report: MemberImportReport) -> tuple[dict[str, str], dict[str, str]]:
    """The file's columns for each field (and the headers as the file wrote them); problems with
    the columns (a missing required one, a bad mapping, an ignored one) go to `report`."""
    columns, mapping_errors = match_columns(csv.headers, names, mapping)
    shown = dict(zip(csv.headers, csv.original_headers, strict=True))
    report.columns = {name: shown[header] for name, header in columns.items()}
    used = set(columns.values())
    report.ignored_columns = [shown[h] for h in csv.headers
                              if h and h not in used and h not in EXPORT_ONLY]
    for message in mapping_errors:
        report.add(Problem(csv.name, None, None, message))
    for name in REQUIRED:
        if name not in columns:
            report.add(Problem(csv.name, None, name,
                               f"no column for {name.replace('_', ' ')}; name the column "
                               f"(e.g. {name}) or map it"))
    for header in report.ignored_columns:
        report.add(Problem(csv.name, None, header, "this column is not imported (no field "
                           "of that name; map it to a field or custom field to import it)",
                           severity="warning"))
    return columns, shown


def _sort_rows(parsed: list[_Row], ctx: _Context, report: MemberImportReport, out: _Rejects,
               update_existing: bool) -> tuple[list[_Row], list[_Row]]:
    """A batch's rows to create and to update; bad rows and skipped duplicates are reported."""
    creates, updates = [], []
    for row in parsed:
        if row.ok:
            for problem in row.warnings:
                report.add(problem)
        if not row.ok:
            report.errors += 1
            for problem in row.errors:
                report.add(problem)
            out.write(row, row.errors)
            continue
        if row.match is None:
            creates.append(row)
        elif update_existing:
            updates.append(row)
        else:
            report.duplicates += 1
            member_id, matched_on = row.match
            name = {"external id": "external_id"}.get(matched_on, matched_on)
            report.add(_problem(ctx, row, name,
                                f"already in the club: member #{member_id} has this "
                                f"{matched_on} (skipped; import with update_existing "
                                "to update it)", severity="warning"))
    return creates, updates


def _remember_references(report: MemberImportReport, reference: Reference, creates: list[_Row],
                         ids: list[int | None], parsed: list[_Row]) -> None:
    """For a history import: each row's reference (external id, card) → its member id."""
    for row, member_id in zip(creates, ids, strict=True):
        if key := _reference_key(row, reference):
            if key in report.references and report.references[key] in (None, member_id):
                report.shared_references.add(key)  # two new people with one email or phone
            report.references[key] = member_id
        if row.card and reference != "card":
            report.cards[row.card] = (_reference_key(row, reference), member_id)
    for row in parsed:
        if row.ok and row.match and (key := _reference_key(row, reference)):
            if report.references.get(key, row.match[0]) != row.match[0]:
                report.shared_references.add(key)
            report.references[key] = row.match[0]
        if row.ok and row.match and row.card and reference != "card":
            report.cards[row.card] = (_reference_key(row, reference), row.match[0])


def _report_refused(report: MemberImportReport, problems: list[Problem]) -> None:
    """Rows the CSV reader refused (too many cells) count as rows with errors."""
    while problems:
        report.errors += 1
        report.rows += 1
        report.add(problems.pop(0))


def _keep_or_undo(session: Session, savepoint, *, keep: bool, report: MemberImportReport,
                  club_id: int, staff_id: int | None, actor_label: str | None,
                  forget_references: bool) -> None:
    """End the import's savepoint: keep its writes (and audit them) or undo them all."""
    if keep:
        savepoint.commit()
        report.written = True
        if report.created or report.updated:
            _audit(session, club_id=club_id, staff_id=staff_id, actor_label=actor_label,
                   action="imported", entity="member_import", fields=list(report.columns),
                   detail={"rows": report.rows, "created": report.created,
                           "updated": report.updated})
    else:
        savepoint.rollback()
        report.written = False
        if forget_references:
            report.references = {}
            report.cards = {}


def import_members(session: Session, *, club_id: int, csv: CsvFile,
                   mapping: Mapping[str, str] | None = None, mode: Mode = "all_or_nothing",
                   dry_run: bool = False, day_first: bool = True,
                   update_existing: bool = False, staff_id: int | None = None,
                   rejects: TextIO | None = None, reference: Reference | None = None,
                   progress: Callable[[int], None] | None = None,
                   actor_label: str | None = None) -> MemberImportReport:
    """Validate and (unless `dry_run`) import the members in `csv`; flushes, never commits.

    `mapping` is field → the file's column (fields: see `FIELDS`, custom fields as
    `custom.<key>`). `rejects` receives the rows not imported (skip_bad, or a dry run's bad
    rows); `progress` is called with the bytes read so far after each batch.
    """
    if mode not in MODES:
        raise Invalid(f"mode must be one of {', '.join(MODES)}", code="invalid_mode")
    report = MemberImportReport(csv.name, dry_run, mode, update_existing,
                                references={} if reference else None)
    club = clubs_service.get_club(session, club_id)
    custom_defs = custom_fields.definitions(session, club_id=club_id)
    custom = {f"custom.{f.key}": f for f in custom_defs}
    names = {**FIELDS, **custom_field_names(custom_defs)}
    columns, shown = _match_file_columns(csv, names, mapping, report)
    if report.file_errors:
        return report

    ctx = _Context(csv.name, columns, shown, custom, clubs_service.club_settings(club).phone_region,
                   clubs_service.club_today(club), day_first)
    by_id = {f.id: f for f in custom_defs}
    out = _Rejects(rejects, csv.original_headers)
    seen = SeenKeys()
    write = not dry_run
    read_problems: list[Problem] = []
    savepoint = session.begin_nested() if write else None
    try:
        for batch in _batches(csv.rows(read_problems), BATCH):
            _report_refused(report, read_problems)  # rows the reader refused (too many cells)
            report.rows += len(batch)
            parsed = [_parse_row(row, ctx) for row in batch]
            for row in parsed:
                if row.ok:
                    seen.check(row, lambda *a, **k: _problem(ctx, *a, **k))
                if row.ok:
                    seen.remember(row)
            good = [row for row in parsed if row.ok]
            if good:
                _match(session, club_id, good, ctx, seen)
            creates, updates = _sort_rows(parsed, ctx, report, out, update_existing)
            report.created += len(creates)
            report.updated += len(updates)
            if write and mode == "all_or_nothing" and report.errors:
                write = False  # keep validating: the report lists every problem
            ids: list[int | None] = [None] * len(creates)
            if write and creates:
                ids = _insert_new(session, club_id, creates, staff_id, by_id)
                seen.created(creates, ids)
            if write and updates:
                _update_existing(session, club_id, updates, staff_id)
            if reference:
                _remember_references(report, reference, creates, ids, parsed)
            if progress:
                progress(csv.position)
        _report_refused(report, read_problems)  # a refused row after the last batch
    except FileProblem as exc:
        report.add(Problem(csv.name, None, None, str(exc)))
        write = False
    except BaseException:
        if savepoint is not None and savepoint.is_active:
            savepoint.rollback()
        raise
    if savepoint is not None:
        keep = write and not (mode == "all_or_nothing" and not report.ok)
        if keep:
            seen.write_notes(session, club_id=club_id, staff_id=staff_id)
        _keep_or_undo(session, savepoint, keep=keep,
                      report=report, club_id=club_id, staff_id=staff_id,
                      actor_label=actor_label, forget_references=bool(reference))
    if progress:
        progress(csv.position)
    return report


def import_error(report: MemberImportReport) -> DomainError | None:
    """The file-level problem that stopped an import, as an error for an API answer (or None)."""
    errors = report.file_errors
    if not errors:
        return None
    return Invalid("The file cannot be imported: " + "; ".join(p.message for p in errors[:5]),
                   code="import_file_invalid", details=[p.as_dict() for p in errors])


def import_members_upload(session: Session, *, club_id: int, name: str, stream: BinaryIO,
                          size: int | None = None, **options: Any) -> MemberImportReport:
    """`import_members` for a file uploaded over the API or a page: a file that cannot be read
    or imported at all is a 422 (`import_file_invalid`) naming what is wrong."""
    try:
        csv = CsvFile(name, stream, size=size)
        report = import_members(session, club_id=club_id, csv=csv, **options)
    except FileProblem as exc:
        raise Invalid(str(exc), code="import_file_invalid") from None
    if error := import_error(report):
        raise error
    return report
