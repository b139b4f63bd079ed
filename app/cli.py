"""The `fitclub` command: migrate, serve, manage users and devices, build the demo club."""
import os
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from sqlalchemy import select

from app import wiring
from app.access import devices
from app.access.protocols import cli as access_protocols_cli
from app.clubs import service as clubs_service
from app.clubs import staff
from app.clubs.models import StaffUser
from app.core import clock, logredact
from app.core import migrate as schema_migrations
from app.core.actors import Role
from app.core.config import get_settings
from app.core.db import unit_of_work
from app.core.errors import DomainError
from app.demo import cli as demo_cli
from app.dues import cli as dues_cli
from app.imports import cli as imports_cli
from app.ops import cli as ops_cli
from app.retention import cli as retention_cli

cli = typer.Typer(help="fitclub — fitness-club management", no_args_is_help=True,
                  add_completion=False)


@cli.command()
def migrate(revision: str = "head") -> None:
    """Bring the database schema up to date (Alembic)."""
    settings = get_settings()
    if settings.is_sqlite:
        path = settings.database_url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    schema_migrations.upgrade(settings.database_url, revision)
    typer.echo(f"database at {revision}")


@cli.command()
def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          scheduler: Annotated[bool | None, typer.Option(help="run the scheduler in-process")] = None
          ) -> None:
    """Serve the API and pages with uvicorn (tokens and keys in URLs are redacted from the
    access log)."""
    if scheduler is not None:
        os.environ["SCHEDULER_ENABLED"] = "true" if scheduler else "false"
    uvicorn.run("app.asgi:app", host=host, port=port, workers=workers, log_level="info",
                proxy_headers=True, log_config=logredact.log_config())


@cli.command("create-club")
def create_club(name: str, timezone: str = "UTC", currency: str = "EUR") -> None:
    """Create a club and print its id."""
    with unit_of_work() as session:
        club = clubs_service.create_club(session, name=name, timezone=timezone, currency=currency)
        typer.echo(f"club {club.id}: {club.name}")


@cli.command("create-user")
def create_user(
    email: str,
    club_id: Annotated[int, typer.Option("--club", help="club id")],
    role: Annotated[str, typer.Option(help="owner, manager, front_desk or trainer")] = "front_desk",
    name: Annotated[str | None, typer.Option()] = None,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True,
                                          confirmation_prompt=True)] = "",
) -> None:
    """Create a staff user (or give an existing one a role in another club)."""
    with unit_of_work() as session:
        club = clubs_service.get_club(session, club_id)
        user = session.scalar(select(StaffUser).where(StaffUser.email == email.lower()))
        if user is None:
            user = clubs_service.create_user(session, email=email, name=name or email,
                                             password=password)
        clubs_service.grant_role(session, by=None, user=user, club=club,  # by: the operator
                                 role=Role(role))
        typer.echo(f"user {user.id} {user.email}: {role} in club {club.id}")


@cli.command("set-password")
def set_password(
    email: str,
    password: Annotated[str, typer.Option(prompt="New password", hide_input=True,
                                          confirmation_prompt=True,
                                          help="asked for, hidden, when not given")] = "",
) -> None:
    """Set a staff user's password (e.g. imported staff, a locked-out owner): the lockout is
    cleared and the user's sessions and tokens are revoked."""
    with unit_of_work() as session:
        user = staff.set_password(session, email=email, password=password)
        typer.echo(f"password set for user {user.id} {user.email}; their sessions were signed out")


@cli.command("add-device")
def add_device(
    name: str,
    club_id: Annotated[int, typer.Option("--club", help="club id")],
    direction: str = "in",
    protocol: str = "native",
    serial: Annotated[str | None, typer.Option(help="device serial number")] = None,
    timezone: Annotated[str | None, typer.Option(help="device clock's timezone")] = None,
) -> None:
    """Register a turnstile/controller and print its key (shown once)."""
    with unit_of_work() as session:
        club = clubs_service.get_club(session, club_id)
        device, key = clubs_service.add_device(session, club=club, name=name,
                                               direction=direction, protocol=protocol,
                                               serial_number=serial, timezone=timezone)
        typer.echo(f"device {device.id} {device.name}\nX-Device-Key: {key}\n"
                   "(store it now: only its hash is kept)")
        if device.protocol == "zkteco":
            typer.echo("ZKTeco: quarantined until approved — point the device at fitclub, then "
                       f"`fitclub devices --club ID` shows where it called from; approve it with "
                       f"`fitclub approve-device {device.id} --allow NETWORK` (docs/turnstiles.md)")


@cli.command("rotate-device-key")
def rotate_device_key(device_id: int) -> None:
    """Give a device a new key (printed once); the old key is refused from now on. Re-activates a
    revoked device (a ZKTeco device must then be approved again)."""
    with unit_of_work() as session:
        club_id = devices.club_of_device(session, device_id=device_id)
        device, key = devices.rotate_key(session, club_id=club_id, device_id=device_id)
        typer.echo(f"device {device.id} {device.name}: {device.status}\nX-Device-Key: {key}\n"
                   "(store it now: only its hash is kept; the old key no longer works)")


@cli.command("revoke-device")
def revoke_device(device_id: int) -> None:
    """Refuse a device from now on (its key, and a ZKTeco device's serial number)."""
    with unit_of_work() as session:
        club_id = devices.club_of_device(session, device_id=device_id)
        device = devices.revoke_device(session, club_id=club_id, device_id=device_id)
        typer.echo(f"device {device.id} {device.name}: revoked")


def _register_domain_commands() -> None:
    """Domains add their own commands: each of these modules has `register(cli)`."""
    for module in (demo_cli, retention_cli, access_protocols_cli, ops_cli, imports_cli,
                   dues_cli):
        module.register(cli)


def main() -> None:
    clock.install_from_environment(get_settings().environment)
    wiring.install()
    _register_domain_commands()
    try:
        cli()
    except DomainError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise SystemExit(2) from exc
