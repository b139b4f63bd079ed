"""`fitclub import …`: bring data from a club's previous system (see docs/import.md).

`import_app` is the `import` command group; `fitclub import members FILE` lives here, other
imports add their commands to the same group.
"""
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from app.core.db import unit_of_work
from app.core.errors import DomainError
from app.imports import storage
from app.imports.csvfile import CsvFile, FileProblem
from app.imports.export_all import export_all
from app.imports.history.cli import history as _history  # `fitclub import history DIR`
from app.imports.members import audit_export
from app.imports.members import import_members as run

import_app = typer.Typer(help="Import members and history from CSV files (see docs/import.md)",
                         no_args_is_help=True)

SHOW_PROBLEMS = 20


export_app = typer.Typer(help="Export everything the club holds as CSV (see docs/import.md)",
                         no_args_is_help=True)


def register(cli: typer.Typer) -> None:
    cli.add_typer(import_app, name="import")
    cli.add_typer(export_app, name="export")


@export_app.command("all")
def export_everything(
    directory: Annotated[Path, typer.Argument(file_okay=False, help=(
        "where to write members.csv, staff.csv, plans.csv, memberships.csv, freezes.csv, "
        "pt_packages.csv and visits.csv (created if missing)"))],
    club_id: Annotated[int, typer.Option("--club", help="club id")],
) -> None:
    """Write the club's members, staff, plans, memberships, freezes, PT packages and visits in
    the layout `fitclub import history DIR` reads. Exit code 2 when the club does not exist."""
    try:
        with unit_of_work() as session:
            counts = export_all(session, club_id=club_id, directory=directory)
            audit_export(session, club_id=club_id, staff_id=None, what="everything")
    except DomainError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    for name, rows in counts.items():
        typer.echo(f"{directory / (name + '.csv')}: {rows} rows")


def parse_mapping(pairs: list[str] | None) -> dict[str, str]:
    """["first_name=Vorname", …] → {"first_name": "Vorname"}."""
    mapping: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, column = pair.partition("=")
        if not sep or not name.strip() or not column.strip():
            raise typer.BadParameter(f"{pair!r}: write FIELD=COLUMN, e.g. first_name=Vorname",
                                     param_hint="--mapping")
        mapping[name.strip()] = column.strip()
    return mapping


@import_app.command("members")
def import_members(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                         help="the CSV file (any encoding, , ; or tab)")],
    club_id: Annotated[int, typer.Option("--club", help="club id")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="check every row, write nothing")]
    = False,
    skip_bad: Annotated[bool, typer.Option(
        "--skip-bad", help="import the good rows and write the bad ones to the rejects file "
                           "(default: all or nothing)")] = False,
    update_existing: Annotated[bool, typer.Option(
        "--update-existing", help="update members the file matches (default: skip them)")]
    = False,
    mapping: Annotated[list[str] | None, typer.Option(
        "--mapping", help="FIELD=COLUMN, repeatable, e.g. --mapping first_name=Vorname")] = None,
    rejects: Annotated[Path | None, typer.Option(
        help="where to write the rows not imported (default with --skip-bad: "
             "FILE.rejects.csv)")] = None,
    day_first: Annotated[bool, typer.Option("--day-first/--month-first",
                                            help="how to read 03/04/2024")] = True,
) -> None:
    """Import members from a CSV file; exit code 1 when rows have errors and nothing was written
    (or a dry run finds errors)."""
    fields = parse_mapping(mapping)
    default_rejects = rejects is None and skip_bad and not dry_run
    if default_rejects:
        rejects = file.with_name(file.stem + ".rejects.csv")
    out = rejects.open("w", encoding="utf-8-sig", newline="") if rejects else None
    try:
        with CsvFile.open(file) as csv, unit_of_work() as session, Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                TimeRemainingColumn()) as bar:
            task = bar.add_task(f"{'checking' if dry_run else 'importing'} {file.name}",
                                total=csv.size)
            report = run(session, club_id=club_id, csv=csv, mapping=fields,
                         mode="skip_bad" if skip_bad else "all_or_nothing", dry_run=dry_run,
                         day_first=day_first, update_existing=update_existing,
                         rejects=out, actor_label="cli",
                         progress=lambda position: bar.update(task, completed=position))
    except (FileProblem, DomainError) as exc:
        typer.echo(f"error: {getattr(exc, 'message', exc)}", err=True)
        raise typer.Exit(2) from None
    finally:
        if out:
            out.close()
    typer.echo(report.summary())
    for problem in report.problems[:SHOW_PROBLEMS]:
        typer.echo(f"  {problem.severity}: {problem}")
    if report.problems_total > SHOW_PROBLEMS:
        typer.echo(f"  … and {report.problems_total - SHOW_PROBLEMS} more")
    if rejects:
        if report.errors:
            typer.echo(f"rows not imported: {rejects} (fix them there and import that file)")
        elif default_rejects:
            rejects.unlink(missing_ok=True)
    failed = bool(report.file_errors) or (report.errors and (dry_run or not report.written))
    raise typer.Exit(1 if failed else 0)


@import_app.command("purge")
def purge() -> None:
    """Delete the kept import files (uploads, rejects) whose time is up; they are also deleted
    whenever a new one is stored. Run it from cron to keep to the day's limit without uploads."""
    deleted = 0
    while True:
        with unit_of_work() as session:
            batch = storage.purge_expired(session)
        deleted += batch
        if batch < storage.PURGE_BATCH:
            break
    typer.echo(f"{deleted} expired import file{'' if deleted == 1 else 's'} deleted")


import_app.command("history")(_history)
