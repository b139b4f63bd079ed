"""`fitclub import history DIR`: check, then import, a directory of history files."""
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from sqlalchemy import select

from app.clubs.models import Club
from app.core.db import unit_of_work
from app.core.errors import DomainError
from app.imports.history.common import Options
from app.imports.history.references import REFERENCES
from app.imports.history.report import HistoryReport
from app.imports.history.service import find_files, import_history, parse_mapping_pairs
from app.imports.history.sources import SOURCES, source_layout

SHOW_PROBLEMS = 20


def _club(club_id: int | None) -> int:
    if club_id is not None:
        return club_id
    with unit_of_work() as session:
        ids = list(session.scalars(select(Club.id).limit(2)))
    if len(ids) != 1:
        raise typer.BadParameter("name the club: --club ID", param_hint="--club")
    return ids[0]


def history(
    directory: Annotated[Path, typer.Argument(
        exists=True, file_okay=False, dir_okay=True, readable=True,
        help="a directory with members.csv, staff.csv, plans.csv, memberships.csv, "
             "freezes.csv, pt_packages.csv and/or visits.csv")],
    club_id: Annotated[int | None, typer.Option(
        "--club", help="club id (may be left out when there is one club)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="check every file, write nothing")]
    = False,
    skip_bad: Annotated[bool, typer.Option(
        "--skip-bad", help="import the good rows; write the bad ones to the rejects directory "
                           "(default: all or nothing)")] = False,
    reference: Annotated[str, typer.Option(
        help="how rows name their member: external_id (the old system's id), card, email or "
             "phone")] = "external_id",
    day_first: Annotated[bool, typer.Option("--day-first/--month-first",
                                            help="how to read 03/04/2024")] = True,
    rejects_dir: Annotated[Path | None, typer.Option(
        "--rejects-dir", help="where the rows not imported go (default with --skip-bad: "
                              "DIR/rejects)")] = None,
    renewal_gap: Annotated[int, typer.Option(
        help="a membership starting at most this many days after the previous one ended "
             "renews it")] = 31,
    mapping: Annotated[list[str] | None, typer.Option(
        "--mapping", help="FILE:FIELD=COLUMN, repeatable, e.g. --mapping visits:member=Kunde "
                          "--mapping memberships:plan=Tarifcode")] = None,
    refuse_future: Annotated[bool, typer.Option(
        "--refuse-future", help="refuse visits after now, each as an error (default: skip "
                                "them with one warning — an export taken today)")] = False,
    source: Annotated[str | None, typer.Option(
        "--from", help="the system the files were exported from, to read its reports' names "
                       f"and columns with no mapping: {', '.join(sorted(SOURCES))}")] = None,
) -> None:
    """Import a club's history from its previous system. Exit code 1 when rows have errors and
    nothing was written (or a dry run finds errors), 2 when the import cannot start."""
    if reference not in REFERENCES:
        raise typer.BadParameter(f"one of {', '.join(REFERENCES)}", param_hint="--reference")
    try:
        columns = parse_mapping_pairs(mapping or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--mapping") from None
    try:
        layout = source_layout(source)
    except DomainError as exc:
        raise typer.BadParameter(exc.message, param_hint="--from") from None
    files, ignored = find_files(directory, layout)
    if not files:
        typer.echo(f"error: no history files in {directory} (members.csv, plans.csv, "
                   "memberships.csv, visits.csv, …)", err=True)
        raise typer.Exit(2)
    if rejects_dir is None and skip_bad:
        rejects_dir = directory / "rejects"
    options = Options(reference=reference, dry_run=dry_run, skip_bad=skip_bad,
                      day_first=day_first, rejects_dir=rejects_dir,
                      renewal_gap_days=renewal_gap, mapping=columns,
                      future_visits="refuse" if refuse_future else "skip",
                      source=layout.name if layout else None)
    club = _club(club_id)
    try:
        with unit_of_work() as session, Progress(
                TextColumn("[bold]{task.description:<32}"), BarColumn(), DownloadColumn(),
                TimeElapsedColumn(), TimeRemainingColumn()) as bar:
            tasks: dict[tuple[str, str], int] = {}

            def progress(phase: str, name: str, done: int, total: int | None) -> None:
                key = (phase, name)
                if key not in tasks:
                    tasks[key] = bar.add_task(f"{phase} {name}", total=total)
                bar.update(tasks[key], completed=done)

            report = import_history(session, club_id=club, files=files, options=options,
                                    progress=progress, ignored=ignored)
    except DomainError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    _show(report)
    failed = bool(report.file_errors) or (report.errors and (dry_run or not report.written))
    raise typer.Exit(1 if failed else 0)


def _show(report: HistoryReport) -> None:
    """The summary, the first problems, the rejects, the check report and the speed."""
    typer.echo(report.summary())
    problems = report.problems
    for problem in problems[:SHOW_PROBLEMS]:
        typer.echo(f"  {problem.severity}: {problem}")
    total = sum(f.problems_total for f in report.files.values())
    if total > SHOW_PROBLEMS:
        typer.echo(f"  … and {total - SHOW_PROBLEMS} more")
    for note in report.notes:
        typer.echo(f"  note: {note}")
    for f in report.files.values():
        if f.rejects:
            typer.echo(f"rows not imported from {f.file}: {f.rejects} (fix them there and "
                       "import that file)")
    if report.comparison:
        club = "club after import" if report.written else "club now"
        typer.echo(f"check against the old system: {'':<24} {'files':>12} {club:>18}")
        for what, in_files, in_club in report.comparison:
            mark = "" if in_files == in_club else "  ≠"
            typer.echo(f"  {what:<50} {in_files:>12} {in_club:>18}{mark}")
    if report.rates:
        typer.echo("rows per second: " + ", ".join(f"{k} {v:,.0f}"
                                                   for k, v in report.rates.items()))
