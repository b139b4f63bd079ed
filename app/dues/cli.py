"""`fitclub dues run [--club ID] [--day YYYY-MM-DD]`: the billing run now."""
from datetime import date
from typing import Annotated

import typer

from app.core.config import get_settings
from app.core.db import make_engine, make_sessionmaker
from app.dues import jobs


def _factory():
    return make_sessionmaker(make_engine(get_settings().database_url))


def register(cli: typer.Typer) -> None:
    dues = typer.Typer(help="Recurring dues: the billing run", no_args_is_help=True)

    @dues.command("run")
    def run(club: Annotated[int | None, typer.Option("--club", help="club id (default: all)")]
            = None,
            day: Annotated[str | None, typer.Option("--day", help="day (default: the club's "
                                                    "today)")] = None) -> None:
        """Run the daily billing (once per club and day; a killed run is carried on)."""
        try:
            as_day = date.fromisoformat(day) if day else None
        except ValueError:
            raise typer.BadParameter("--day must be a date like 2027-01-31") from None
        results = jobs.daily(_factory(), day=as_day, club_id=club)
        if club is not None and not results:
            raise typer.BadParameter(f"no club {club} (or its run failed: see the log)")
        for r in results:
            state = "done before" if r.done_before else f"{r.seconds:.2f}s"
            typer.echo(f"club {r.club_id} {r.day}: {r.invoices} invoices, {r.lines} lines, "
                       f"{r.renewed} renewed, {r.collections} collections ({state})")

    cli.add_typer(dues, name="dues")
