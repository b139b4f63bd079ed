"""`fitclub backup PATH` / `fitclub restore PATH` (SQLite; PostgreSQL uses pg_dump/pg_restore)."""
from pathlib import Path
from typing import Annotated

import typer

from app.core import backup as sqlite_backup
from app.core.config import get_settings


def register(cli: typer.Typer) -> None:
    cli.command("backup")(backup)
    cli.command("restore")(restore)


def backup(path: Annotated[Path, typer.Argument(help="file to write the backup to")]) -> None:
    """Write a consistent copy of the SQLite database to PATH (safe while the app runs)."""
    written = sqlite_backup.backup(get_settings().database_url, path)
    typer.echo(f"backup written to {written}")


def restore(
    path: Annotated[Path, typer.Argument(help="backup file made by `fitclub backup`")],
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
) -> None:
    """Replace the SQLite database with the backup at PATH (stop the app first)."""
    url = get_settings().database_url
    target = sqlite_backup.sqlite_path(url)
    if not yes:
        typer.confirm(f"Replace everything in {target} with {path}?", abort=True)
    sqlite_backup.restore(url, path)
    typer.echo(f"restored {target} from {path}")
