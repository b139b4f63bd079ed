"""`fitclub demo`: build the demo club (used by `make run` with --if-empty)."""
import resource
from datetime import date, timedelta
from typing import Annotated

import typer

from app.core.db import session_factory
from app.demo import generator
from app.demo.data import DEMO_DOMAIN, DEMO_PASSWORD
from app.demo.generator import DemoOptions
from app.retention import service as retention_service


def register(cli: typer.Typer) -> None:
    cli.command("demo")(demo)


def demo(
    members: Annotated[int, typer.Option(
        min=1, help="people in the club, prospects included")] = 600,
    months: Annotated[int, typer.Option(min=1, max=120, help="months of history")] = 18,
    seed: Annotated[int, typer.Option(help="random seed: the same seed builds the same club")] = 7,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="the day the history runs up to, YYYY-MM-DD (default: today)")] = None,
    if_empty: Annotated[bool, typer.Option(
        "--if-empty", help="do nothing when the database already has a club")] = False,
    visits: Annotated[bool, typer.Option(help="generate visits and access events")] = True,
    dues: Annotated[bool, typer.Option(
        help="recurring contracts over the last months, billed day by day")] = True,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress lines")] = False,
    engine_days: Annotated[int, typer.Option(
        "--engine-days", help="replay the retention engine over the last N days of history "
        "(stages, touchpoints, tasks); 0 to skip")] = 120,
) -> None:
    """Build the demo club "Riverside Fitness" with staff, plans and a member history."""
    day = None
    if as_of:
        try:
            day = date.fromisoformat(as_of)
        except ValueError:
            raise typer.BadParameter("use YYYY-MM-DD", param_hint="--as-of") from None
    with session_factory() as factory:
        _run(factory, members=members, months=months, seed=seed, day=day, if_empty=if_empty,
             visits=visits, quiet=quiet, engine_days=engine_days, dues=dues)


def _run(factory, *, members: int, months: int, seed: int, day: date | None, if_empty: bool,
         visits: bool, quiet: bool, engine_days: int = 0, dues: bool = True) -> None:
    with factory() as session:
        clubs = generator.club_count(session)
        demo_staff = generator.demo_owner_exists(session)
    if clubs and if_empty:
        hint = (f"demo staff sign in as owner@{DEMO_DOMAIN} (manager@, desk1@, …) with password "
                f"'{DEMO_PASSWORD}'" if demo_staff else
                "sign in with the staff accounts created for it")
        typer.echo(f"The database already has {clubs} club(s): demo not built. {hint}.\n"
                   "Device keys are shown only once: `fitclub add-device NAME --club ID` "
                   "makes a new one.")
        return
    if demo_staff:
        typer.echo(f"error: demo staff (owner@{DEMO_DOMAIN}) already exist in this database; "
                   "use an empty database, or --if-empty to keep the existing club.", err=True)
        raise typer.Exit(2)

    typer.echo(f"Building the demo club: {members} people, {months} months, seed {seed} …")
    options = DemoOptions(members=members, months=months, seed=seed, as_of=day, visits=visits,
                          dues=dues, progress=None if quiet or members < 5000 else typer.echo)
    result = generator.build_demo(factory, options)
    counts, stats = result.counts, result.stats
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    typer.echo(
        f"Built in {result.seconds:.1f} s (peak memory {rss_mb:.0f} MB), history up to "
        f"{result.as_of}:\n"
        f"  {stats['members']} members and {stats['prospects']} prospects; "
        f"{counts['memberships']} memberships ({stats['active_today']} active today, "
        f"{stats['frozen_today']} frozen, {stats['pending']} starting later)\n"
        f"  {stats['renewals']} renewals, {stats['lapses']} lapses, {stats['returns']} returns, "
        f"{stats['freezes']} freezes, {stats['cancellations']} cancellations\n"
        f"  {counts['sales']} sales, {counts['payments']} payments, "
        f"{counts['visits']} visits")
    if "contracts" in stats:
        typer.echo(
            f"  {stats['contracts']} recurring contracts ({stats['contracts_running']} running, "
            f"{stats['mandates']} SEPA mandates, {stats['cards_on_file']} cards on file): "
            f"{stats['invoices']} invoices, {stats['sepa_files']} SEPA files, "
            f"{stats['returned_debits']} returned debits, {stats['declined_cards']} declined "
            f"cards, {stats['dunning_cases']} dunning cases ({stats['dunning_open']} open)")
    if engine_days > 0:
        start = result.as_of - timedelta(days=engine_days - 1)
        typer.echo(f"Replaying the retention engine from {start} to {result.as_of} …")
        sim = retention_service.simulate(factory, club_id=result.club_id, start=start,
                                         end=result.as_of)
        typer.echo(f"  {sim.summary()}")
    typer.echo(result.credentials_block())
