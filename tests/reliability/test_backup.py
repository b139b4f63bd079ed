"""`fitclub backup` / `fitclub restore`: SQLite online backup; PostgreSQL refused with a hint."""
from datetime import date

import pytest
import typer
from sqlalchemy import inspect, text
from typer.testing import CliRunner

from app.core import backup
from app.core.config import get_settings
from app.core.db import make_engine
from app.core.errors import Invalid
from app.demo.generator import DemoOptions, build_demo
from app.ops import cli as ops_cli


def _cli() -> typer.Typer:
    app = typer.Typer()
    ops_cli.register(app)
    return app


@pytest.fixture
def configured(db, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db.url)
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()


def _snapshot(engine) -> tuple[dict, list]:
    with engine.connect() as conn:
        counts = {t: conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one()
                  for t in inspect(engine).get_table_names()}
        rows = conn.execute(text("SELECT id, first_name, last_name, email FROM members "
                                 "ORDER BY id LIMIT 5")).all()
    return counts, [tuple(r) for r in rows]


def test_backup_and_restore_round_trip(configured, tmp_path):
    db = configured
    if db.is_postgres:
        pytest.skip("SQLite backup; PostgreSQL uses pg_dump (see the next test)")
    build_demo(db.sessionmaker, DemoOptions(members=30, months=2, seed=3, as_of=date(2026, 6, 1)))
    before = _snapshot(db.engine)
    path = tmp_path / "backups" / "fitclub.sqlite"
    result = CliRunner().invoke(_cli(), ["backup", str(path)])
    assert result.exit_code == 0, result.output
    assert path.exists() and not path.with_name(path.name + ".partial").exists()

    with db.engine.begin() as conn:  # damage after the backup
        conn.execute(text("DELETE FROM visits"))
        conn.execute(text("UPDATE members SET first_name = 'X'"))
    assert _snapshot(db.engine) != before

    db.engine.dispose()
    result = CliRunner().invoke(_cli(), ["restore", str(path), "--yes"])
    assert result.exit_code == 0, result.output
    db.engine.dispose()
    assert _snapshot(db.engine) == before
    assert sum(before[0].values()) > 100


def test_backup_opens_as_a_database_on_its_own(configured, tmp_path):
    if configured.is_postgres:
        pytest.skip("SQLite only")
    build_demo(configured.sessionmaker, DemoOptions(members=10, months=1, seed=1,
                                                    as_of=date(2026, 6, 1)))
    path = backup.backup(configured.url, tmp_path / "copy.db")
    copy = make_engine(f"sqlite:///{path}")
    assert _snapshot(copy) == _snapshot(configured.engine)
    copy.dispose()


def test_restore_refuses_a_file_that_is_not_a_database(configured, tmp_path):
    if configured.is_postgres:
        pytest.skip("SQLite only")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    with pytest.raises(Invalid):
        backup.restore(configured.url, junk)


def test_postgres_is_refused_with_the_pg_dump_commands(configured, tmp_path):
    if not configured.is_postgres:
        pytest.skip("PostgreSQL only")
    with pytest.raises(Invalid) as err:
        backup.backup(configured.url, tmp_path / "x")
    assert "pg_dump" in err.value.message and "pg_restore" in err.value.message
    result = CliRunner().invoke(_cli(), ["backup", str(tmp_path / "x")])
    assert result.exit_code != 0 and isinstance(result.exception, Invalid)
