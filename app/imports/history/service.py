"""The history import's conductor: find the files, check them all, then write them all.

Order: members → staff → plans → memberships → freezes → PT packages → visits (each may refer
to the ones before). Every file is checked before anything is written; the check keeps only
what later files and the write need (member references, plans, the memberships as ordinals, row
numbers of bad rows, a spool of good visits). Then, unless this is a dry run or (all or nothing)
a row has an error, each file is read again and written in set-based batches.

The caller owns the transaction: the CLI's unit of work or the job's session commits; any error
rolls everything back. On PostgreSQL an advisory lock keeps two imports of one club apart.
"""
import json
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.core.errors import Invalid
from app.core.sql import is_postgres
from app.imports.csvfile import CsvFile, FileProblem, Problem, normalise_header
from app.imports.history import freezes, memberships, plans, pt_packages, staff, visits
from app.imports.history.common import Context, Options, Progress, write_rejects
from app.imports.history.figures import Figures, club_figures, comparison
from app.imports.history.report import FileReport, HistoryReport
from app.imports.history.sources import SourceLayout, kind_in_layout, source_layout, with_layout
from app.imports.members import import_members

KINDS = ("members", "staff", "plans", "memberships", "freezes", "pt_packages", "visits")
MODULES = {"staff": staff, "plans": plans, "memberships": memberships, "freezes": freezes,
           "pt_packages": pt_packages, "visits": visits}
FILE_NAMES = {
    "members": ("members", "mitglieder", "customers", "kunden"),
    "staff": ("staff", "trainers", "employees", "mitarbeiter"),
    "plans": ("plans", "tariffs", "tarife"),
    "memberships": ("memberships", "contracts", "vertraege", "mitgliedschaften"),
    "freezes": ("freezes", "pauses", "ruhezeiten"),
    "pt_packages": ("pt_packages", "pt", "pt_package", "packages"),
    "visits": ("visits", "checkins", "check_ins", "besuche"),
}
_KIND_OF = {name: kind for kind, names in FILE_NAMES.items() for name in names}
FUTURE_VISITS = ("skip", "refuse")
LOCK_BASE = 0x48495354 << 32  # "HIST": pg_advisory_xact_lock key space of history imports


def kind_of(filename: str, layout: SourceLayout | None = None) -> str | None:
    """'Memberships.csv' → 'memberships' (and a source's report names, e.g. 'Visits in
    club.csv' → 'visits' with `--from perfectgym`); None for a name no kind answers to."""
    path = Path(filename)
    if path.suffix.lower() not in (".csv", ".txt"):
        return None
    return _KIND_OF.get(normalise_header(path.stem)) or kind_in_layout(layout, path.stem)


def parse_mapping(text: str | None) -> dict[str, dict[str, str]]:
    """The API's mapping JSON {"visits": {"member": "Kunde"}, …} → per file kind (422 if not)."""
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except ValueError:
        raw = None
    if not isinstance(raw, dict) or not all(
            isinstance(fields, dict) and all(isinstance(k, str) and isinstance(v, str)
                                             for k, v in fields.items())
            for fields in raw.values()):
        raise Invalid('mapping must be a JSON object {"file": {"field": "column"}}, e.g. '
                      '{"visits": {"member": "Kunde"}}', code="invalid_mapping")
    mapping: dict[str, dict[str, str]] = {}
    for name, fields in raw.items():
        kind = name if name in KINDS else kind_of(name if "." in name else f"{name}.csv")
        if kind is None:
            raise Invalid(f"the mapping names {name!r}, which is not a history file; map the "
                          "columns of " + ", ".join(KINDS), code="invalid_mapping")
        mapping.setdefault(kind, {}).update(fields)
    return mapping


def parse_mapping_pairs(pairs: list[str]) -> dict[str, dict[str, str]]:
    """The command line's ["visits:member=Kunde", …] → per file kind; ValueError if not."""
    mapping: dict[str, dict[str, str]] = {}
    for pair in pairs:
        name, colon, rest = pair.partition(":")
        target, equals, column = rest.partition("=")
        kind = name.strip() if name.strip() in KINDS else kind_of(
            name.strip() if "." in name else f"{name.strip()}.csv")
        if not colon or not equals or not target.strip() or not column.strip() or kind is None:
            raise ValueError(f"{pair!r}: write FILE:FIELD=COLUMN, e.g. visits:member=Kunde "
                             f"(files: {', '.join(KINDS)})")
        mapping.setdefault(kind, {})[target.strip()] = column.strip()
    return mapping


def find_files(directory: Path, layout: SourceLayout | None = None
               ) -> tuple[dict[str, Path], list[str]]:
    """The directory's history files by kind, and the names of files that are not one."""
    found: dict[str, Path] = {}
    ignored: list[str] = []
    for path in sorted(directory.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        kind = kind_of(path.name, layout)
        if kind is None or kind in found:
            ignored.append(path.name)
        else:
            found[kind] = path
    return found, ignored


def import_history(session: Session, *, club_id: int, files: dict[str, Path],
                   options: Options | None = None, progress: Progress | None = None,
                   staff_id: int | None = None,
                   ignored: list[str] | None = None) -> HistoryReport:
    """Check (and unless a dry run, import) a club's history files; flushes, never commits."""
    options = options or Options()
    unknown = set(files) - set(KINDS)
    if bad := set(options.mapping) - set(KINDS):
        raise Invalid(f"the mapping names {', '.join(sorted(bad))}: map the columns of "
                      + ", ".join(KINDS), code="invalid_mapping")
    if options.future_visits not in FUTURE_VISITS:
        raise Invalid("future_visits must be skip or refuse", code="invalid_future_visits")
    if unknown or not files:
        raise Invalid("No history files: name them " + ", ".join(f"{k}.csv" for k in KINDS),
                      code="no_history_files")
    layout = source_layout(options.source)
    if layout is not None:
        options = replace(options, mapping=with_layout(layout, files, options.mapping))
    started = time.perf_counter()
    report = HistoryReport(options.dry_run, options.mode, options.reference)
    ctx = Context.create(session, club_id=club_id, options=options, report=report,
                         progress=progress)
    ctx.state["staff_id"] = staff_id  # who grants staff.csv's roles (None: the operator)
    ctx.state["figures"] = Figures(ctx.today)  # the files' own totals, for the check report
    try:
        return _run(ctx, files, ignored or [], started)
    finally:
        spool = ctx.state.pop("visits_spool", None)
        if spool is not None:
            spool.close()


def _run(ctx: Context, files: dict[str, Path], ignored: list[str],
         started: float) -> HistoryReport:
    session, options, report, club_id = ctx.session, ctx.options, ctx.report, ctx.club_id
    for name in ignored:
        report.notes.append(f"{name}: not imported — name a file "
                            + ", ".join(f"{k}.csv" for k in KINDS))
    ordered = [(kind, files[kind]) for kind in KINDS if kind in files]
    if not options.dry_run and is_postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                        {"key": LOCK_BASE | (club_id & 0xFFFFFFFF)})
    ctx.refs.load(session, club_id)

    # 1. check every file
    with ExitStack() as rejects:
        for kind, path in ordered:
            fr = report.file(path.name, kind)
            began = time.perf_counter()
            try:
                with CsvFile.open(path) as csv:
                    if kind == "members":
                        _members(ctx, csv, fr, check=True,
                                 rejects=_rejects_stream(rejects, options, path))
                    else:
                        MODULES[kind].check(ctx, csv, fr)
            except FileProblem as exc:
                fr.add(Problem(path.name, None, None, str(exc)))
            fr.check_seconds = time.perf_counter() - began
            fr.seconds += fr.check_seconds
        if options.rejects_dir and (options.skip_bad or options.dry_run):
            for kind, path in ordered:
                fr = report.files[path.name]
                if kind != "members" and fr.rejected:
                    fr.rejects = str(_rejects_path(options, path))
                    with CsvFile.open(path) as csv:
                        write_rejects(Path(fr.rejects), csv, fr.rejected)

    # 2. write, when allowed
    if options.dry_run or report.file_errors or (report.errors and not options.skip_bad):
        _check_report(ctx)
        report.seconds = time.perf_counter() - started
        return report
    for kind, path in ordered:
        fr = report.files[path.name]
        began = time.perf_counter()
        with CsvFile.open(path) as csv:
            if kind == "members":
                _members(ctx, csv, fr, check=False)
            else:
                MODULES[kind].write(ctx, csv, fr)
        fr.seconds += time.perf_counter() - began
        if kind == "visits" and "memberships" in files:
            memberships.count_visits(ctx)
    session.flush()
    report.written = True
    _check_report(ctx)
    for kind in ("memberships", "visits"):
        fr = next((f for f in report.files.values() if f.kind == kind), None)
        if fr and fr.seconds:
            report.rates[kind] = fr.rows / fr.seconds
    report.seconds = time.perf_counter() - started
    return report


def _check_report(ctx: Context) -> None:
    """The files' totals beside the club's (after the import; before it, when nothing was
    written) — what the owner compares with the old system."""
    files = ctx.state["figures"]
    club = club_figures(ctx.session, club_id=ctx.club_id, today=ctx.today, zone=ctx.zone)
    ctx.report.figures = {"files": files.as_dict(), "club": club.as_dict(),
                          "club_after_import": ctx.report.written}
    ctx.report.comparison = comparison(files, club)


def _rejects_path(options: Options, path: Path) -> Path:
    options.rejects_dir.mkdir(parents=True, exist_ok=True)
    return options.rejects_dir / f"{path.stem}.rejects.csv"


def _rejects_stream(stack: ExitStack, options: Options, path: Path):
    if not options.rejects_dir or not (options.skip_bad or options.dry_run):
        return None
    return stack.enter_context(_rejects_path(options, path).open("w", encoding="utf-8-sig",
                                                                  newline=""))


def _members(ctx: Context, csv: CsvFile, fr: FileReport, *, check: bool, rejects=None) -> None:
    """members.csv through the member import (issue 7): checked with the rest, written first."""
    options = ctx.options
    tick: Callable[[int], None] | None = None
    if ctx.progress:
        def tick(position: int) -> None:
            ctx.progress("checking" if check else "importing", csv.name, position, csv.size)
    result = import_members(ctx.session, club_id=ctx.club_id, csv=csv, mode=options.mode,
                            mapping=options.mapping.get("members"),
                            dry_run=check, day_first=options.day_first,
                            reference=options.reference, rejects=rejects, progress=tick,
                            actor_label="history import")
    if check:
        fr.rows, fr.errors = result.rows, result.errors
        ctx.state["figures"].members = result.rows - result.errors
        fr.new, fr.existing = result.created, result.duplicates
        fr.columns = dict(result.columns)
        for problem in result.problems:
            fr.add(problem)
        fr.problems_total = max(fr.problems_total, result.problems_total)
        if rejects is not None and result.errors:
            fr.rejects = rejects.name
        for ref, member_id in (result.references or {}).items():
            if member_id is None and (ctx.refs.keys.get(ref) or 0) > 0:
                result.shared_references.add(ref)  # a new person with a member's email/phone
        for ref in result.shared_references:
            ctx.refs.mark_shared(ref)
        for ref, member_id in (result.references or {}).items():
            if member_id is None and ref not in result.shared_references:
                ctx.refs.add_pending(ref)
        for card, (ref, member_id) in result.cards.items():
            if member_id is None:
                ctx.refs.add_pending(ref, card)
            else:
                ctx.refs.add_card(card, member_id)
    else:
        fr.created = result.created
        ctx.refs.settle(result.references or {},
                        {card: member_id for card, (_ref, member_id) in result.cards.items()})
