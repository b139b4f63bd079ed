"""Online backup and restore of the embedded SQLite database (sqlite3's backup API).

PostgreSQL is backed up with its own tools; `backup`/`restore` refuse it and say how.
"""
import sqlite3
from pathlib import Path

from sqlalchemy.engine import make_url

from app.core.errors import Invalid

PG_HINT = (
    "PostgreSQL is backed up with its own tools (see docs/reliability.md):\n"
    "  pg_dump --format=custom --file=fitclub.dump \"postgresql://USER@HOST/DB\"\n"
    "  pg_restore --clean --if-exists --no-owner --dbname=\"postgresql://USER@HOST/DB\" fitclub.dump\n"
    "(use the DATABASE_URL without the '+psycopg' driver suffix)"
)


def sqlite_path(database_url: str) -> Path:
    """The database file of a SQLite URL; refuses other backends and in-memory databases."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        raise Invalid(f"backup/restore work on SQLite only.\n{PG_HINT}", code="not_sqlite")
    if not url.database or url.database == ":memory:":
        raise Invalid("an in-memory database cannot be backed up", code="memory_database")
    return Path(url.database)


def _copy(src: sqlite3.Connection, dst: sqlite3.Connection) -> None:
    src.backup(dst, pages=1024)  # in steps, so writers are not blocked for the whole copy


def backup(database_url: str, target: Path | str) -> Path:
    """Copy the live database to `target` (a consistent snapshot, taken while the app runs)."""
    source = sqlite_path(database_url)
    if not source.exists():
        raise Invalid(f"no database at {source}", code="no_database")
    target = Path(target)
    if target.resolve() == source.resolve():
        raise Invalid("the backup must not overwrite the database itself", code="same_file")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(partial)
    try:
        _copy(src, dst)
        check = dst.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise Invalid(f"the backup failed its integrity check: {check}", code="corrupt_backup")
    finally:
        dst.close()
        src.close()
    partial.replace(target)  # a crash mid-backup never leaves a half file under the real name
    return target


def restore(database_url: str, source: Path | str) -> Path:
    """Replace the database's contents with the backup at `source` (stop the app first)."""
    target = sqlite_path(database_url)
    source = Path(source)
    if not source.is_file():
        raise Invalid(f"no backup at {source}", code="no_backup")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        check = src.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise Invalid(f"{source} is not a sound SQLite database: {check}", code="corrupt_backup")
        target.parent.mkdir(parents=True, exist_ok=True)
        dst = sqlite3.connect(target, timeout=30)
        try:
            _copy(src, dst)
        finally:
            dst.close()
    except sqlite3.DatabaseError as exc:
        raise Invalid(f"{source} is not a SQLite database: {exc}", code="corrupt_backup") from exc
    finally:
        src.close()
    return target
