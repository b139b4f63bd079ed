"""`fitclub retention run|simulate|dispatch` and `fitclub scheduler`."""
import logging
from datetime import date
from typing import Annotated

import typer
from tqdm import tqdm

from app.core.config import get_settings
from app.core.db import make_engine, make_sessionmaker
from app.retention import channels, service
from app.retention.dispatch import dispatch_due
from app.retention.scheduler import start_scheduler


def _date(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{name} must be a date like 2026-01-31") from None


def _factory():
    settings = get_settings()
    return make_sessionmaker(make_engine(settings.database_url)), settings


def _clubs(factory, club: int | None) -> list[int]:
    ids = service.club_ids(factory)
    if club is not None:
        if club not in ids:
            raise typer.BadParameter(f"no club {club}")
        return [club]
    return ids


def register(cli: typer.Typer) -> None:
    retention = typer.Typer(help="The retention engine: stages, touchpoints, delivery",
                            no_args_is_help=True)

    @retention.command("run")
    def run(club: Annotated[int | None, typer.Option("--club", help="club id (default: all)")] = None,
            as_of: Annotated[str | None, typer.Option("--as-of", help="day (default: today)")] = None,
            dry_run: Annotated[bool, typer.Option("--dry-run",
                                                  help="print what would change; write nothing")] = False,
            force: Annotated[bool, typer.Option(help="run again if today's run happened")] = False,
            ) -> None:
        """Run the daily stage run and planning (idempotent per club and day)."""
        factory, _settings = _factory()
        day = _date(as_of, "--as-of")
        for club_id in tqdm(_clubs(factory, club), desc="clubs", unit="club"):
            report = service.run_day(factory, club_id=club_id, as_of=day, dry_run=dry_run,
                                     force=force, source="cli")
            label = "dry run (nothing written)" if dry_run else "run"
            if report.skipped:
                typer.echo(f"club {club_id} {report.as_of}: already run today (use --force)")
                continue
            typer.echo(f"club {club_id} {report.as_of} {label} in {report.seconds:.2f}s, "
                       f"{report.members} members")
            typer.echo("  stages: " + ", ".join(f"{k} {v}" for k, v in
                                                report.stage_counts.items()))
            if report.transitions:
                typer.echo("  changes: " + ", ".join(f"{k} {v}" for k, v in
                                                     sorted(report.transitions.items())))
            planned = report.scheduled or {}
            verb = "would schedule" if dry_run else "scheduled"
            typer.echo(f"  {verb}: " + (", ".join(f"{k} {v}" for k, v in sorted(planned.items()))
                                        or "nothing"))
            if report.held_out:
                typer.echo("  held out: " + ", ".join(f"{k} {v}" for k, v in
                                                      sorted(report.held_out.items())))
            if report.cancelled:
                typer.echo("  cancelled: " + ", ".join(f"{k} {v}" for k, v in
                                                       sorted(report.cancelled.items())))

    @retention.command("simulate")
    def simulate(start: Annotated[str, typer.Option("--from", help="first day")],
                 end: Annotated[str, typer.Option("--to", help="last day")],
                 club: Annotated[int | None, typer.Option("--club", help="club id (default: all)")]
                 = None) -> None:
        """Replay the engine day by day over history (recording channel: nothing is sent)."""
        factory, settings = _factory()
        first, last = _date(start, "--from"), _date(end, "--to")
        if last < first:
            raise typer.BadParameter("--to must not be before --from")
        for club_id in _clubs(factory, club):
            with tqdm(total=(last - first).days + 1, desc=f"club {club_id}", unit="day") as bar:
                result = service.simulate(factory, club_id=club_id, start=first, end=last,
                                          settings=settings, progress=lambda _d: bar.update(1))
            typer.echo(result.summary())

    @retention.command("dispatch")
    def dispatch(club: Annotated[int | None, typer.Option("--club", help="club id")] = None) -> None:
        """Deliver touchpoints due now (the scheduler does this every minute)."""
        factory, settings = _factory()
        with channels.from_settings(settings) as ch:
            stats = dispatch_due(factory, channels=ch, settings=settings, club_id=club)
        typer.echo(f"{stats.claimed} due: " + (", ".join(f"{k} {v}" for k, v in
                                                         sorted(stats.outcomes.items()))
                                               or "nothing"))

    cli.add_typer(retention, name="retention")

    @cli.command("scheduler")
    def scheduler() -> None:
        """Run the scheduler (daily stage runs, dispatch) in this process, blocking.

        Run exactly one per deployment; web workers keep SCHEDULER_ENABLED=false. A second one
        stands by (PostgreSQL advisory lock / lock file on SQLite) and takes over if the first
        stops.
        """
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        factory, settings = _factory()
        typer.echo("scheduler running (Ctrl+C to stop)")
        start_scheduler(settings, factory, blocking=True)
