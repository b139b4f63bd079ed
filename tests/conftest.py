"""Test harness: every test that takes `db` runs on SQLite and on PostgreSQL.

The schema is built through the Alembic migrations once per backend and worker; after each
test every table is emptied, so tests may commit for real (concurrency tests need that).

Time: every test starts with the application's clock (`app.core.clock`) at one instant, the
run's start unless `--clock=2027-12-31T23:55:00+01:00` (or FITCLUB_TEST_CLOCK) names another,
and it ticks from there; the `clock` fixture moves it (`clock.set(...)`, `clock.advance(...)`).
Tests take "now" from `clock.now()` and a club's day from `club_today(club)`, never from the
wall clock, so a run at any instant decides the same.
"""
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from app import wiring
from app.core import clock as app_clock
from app.core import migrate
from app.core.config import Settings
from app.core.db import make_engine, make_sessionmaker
from app.registry import metadata

BACKENDS = [b.strip() for b in os.environ.get("FITCLUB_TEST_DATABASES", "sqlite,postgresql")
            .split(",") if b.strip()]
PG_ADMIN_URL = os.environ.get("FITCLUB_TEST_PG_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def pytest_addoption(parser) -> None:
    parser.addoption("--clock", default=os.environ.get("FITCLUB_TEST_CLOCK") or None,
                     help="ISO-8601 instant every test starts at (an offsetless one is UTC); "
                          "default: the run's start")


def pytest_configure(config) -> None:
    text_ = config.getoption("--clock")
    # the one read of the wall clock in the suite: which instant the run's tests start at
    start = app_clock.parse_instant(text_) if text_ else app_clock.SystemClock().now()
    config.stash[START_KEY] = start
    wiring.install()  # as the app factory and the CLI do: every handler and sale-line kind


START_KEY = pytest.StashKey[datetime]()


@pytest.fixture(autouse=True)
def clock(request) -> Iterator[app_clock.SettableClock]:
    """The application's clock for this test: at the run's start instant, ticking."""
    test_clock = app_clock.SettableClock(request.config.stash[START_KEY])
    with app_clock.use(test_clock):
        yield test_clock


def pytest_report_header(config) -> str:
    return f"clock: tests start at {config.stash[START_KEY].isoformat()}"


@dataclass
class Database:
    backend: str
    url: str
    engine: Engine
    sessionmaker: sessionmaker[Session]

    @property
    def is_postgres(self) -> bool:
        return self.backend == "postgresql"


def _pg_admin() -> Engine:
    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


def create_database(backend: str, tmp_dir: Path) -> str:
    """A fresh empty database for this worker; returns its URL."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"fitclub_test_{worker}_{uuid.uuid4().hex[:8]}"
    if backend == "sqlite":
        return f"sqlite:///{tmp_dir / (name + '.db')}"
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return
    admin = _pg_admin()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def database(request, tmp_path_factory) -> Iterator[Database]:
    url = create_database(request.param, tmp_path_factory.mktemp(request.param))
    migrate.upgrade(url)
    engine = make_engine(url)
    yield Database(request.param, url, engine, make_sessionmaker(engine))
    engine.dispose()
    drop_database(url)


def _pg_used(conn, tables: list[str]) -> tuple[list[str], list[str]]:
    """The tables holding rows and the sequences moved since their last reset (one read)."""
    probe = " UNION ALL ".join(f"SELECT 't', '{t}' WHERE EXISTS (SELECT 1 FROM \"{t}\")"
                               for t in tables)
    probe += (" UNION ALL SELECT 's', schemaname || '.' || sequencename FROM pg_sequences"
              " WHERE last_value IS NOT NULL")
    rows = conn.execute(text(probe)).all()
    return [n for k, n in rows if k == "t"], [n for k, n in rows if k == "s"]


def _empty_all_tables(db: Database) -> None:
    """Every table emptied and every id sequence back at 1, as after `TRUNCATE ... RESTART
    IDENTITY`. On PostgreSQL only the tables that hold rows are emptied, by DELETE with the
    foreign-key and analytics triggers off (`session_replication_role = replica`): a TRUNCATE
    of all 80-odd tables makes new files for each table and index and cost more than most
    tests."""
    tables = [t.name for t in reversed(metadata.sorted_tables)]
    with db.engine.begin() as conn:
        if db.is_postgres:
            used, sequences = _pg_used(conn, tables)
            if used:
                conn.execute(text("SET LOCAL session_replication_role = replica"))
                for table in used:
                    conn.execute(text(f'DELETE FROM "{table}"'))
            for sequence in sequences:
                conn.execute(text("SELECT setval(CAST(:s AS regclass), 1, false)"),
                             {"s": sequence})
        else:
            for table in tables:
                # rows naming another row of their table (a credit note its invoice) go first:
                # SQLite checks a RESTRICT row by row
                for fk in metadata.tables[table].foreign_keys:
                    if fk.column.table.name == table:
                        conn.execute(text(
                            f'DELETE FROM "{table}" WHERE "{fk.parent.name}" IS NOT NULL'))
                conn.execute(text(f'DELETE FROM "{table}"'))
            conn.execute(text("DELETE FROM sqlite_sequence")) if conn.execute(
                text("SELECT 1 FROM sqlite_master WHERE name='sqlite_sequence'")).first() else None


@pytest.fixture(scope="session")
def empty_all_tables():
    """`empty_all_tables(database)`: for fixtures that outlive a test (the analytics demo club)."""
    return _empty_all_tables


@pytest.fixture
def db(database: Database) -> Iterator[Database]:
    """The backend under test, emptied after the test."""
    yield database
    _empty_all_tables(database)


@pytest.fixture
def session(db: Database) -> Iterator[Session]:
    """A session for arranging and checking data directly; the test commits when it needs to."""
    s = db.sessionmaker()
    yield s
    s.rollback()
    s.close()


@pytest.fixture
def settings(db: Database, tmp_path_factory) -> Settings:
    return Settings(database_url=db.url, scheduler_enabled=False, _env_file=None,
                    data_dir=tmp_path_factory.getbasetemp() / "data")


@pytest.fixture
def app(settings: Settings):
    from app.main import create_app

    return create_app(settings)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """Argon2 with the smallest parameters, for the whole run: tests arrange staff logins by the
    hundred on a shared 2-core machine. The hashes carry their parameters, so verification is
    unaffected in kind; `real_password_hashing` puts the production parameters back for a test
    about them. Session-wide, so module-scoped fixtures (the analytics demo club) have it too."""
    from argon2 import PasswordHasher

    from app.core import security

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(security, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024,
                                                       parallelism=1))
        yield


@pytest.fixture
def real_password_hashing(monkeypatch) -> None:
    """The production argon2 parameters for this test (see `cheap_password_hashing`)."""
    from argon2 import PasswordHasher

    from app.core import security

    monkeypatch.setattr(security, "_hasher", PasswordHasher())


@pytest.fixture
def world(db: Database):
    """Builders for clubs, staff with tokens, devices, members, plans, memberships... (see
    tests/builders.py)."""
    from tests.builders import World

    return World(db)


@pytest.fixture
def rw(db: Database):
    """The retention world (retention and crm): yearly plans, members with consents, the engine."""
    from tests.builders import Retention

    return Retention(db)


@pytest.fixture
def shop(client, world):
    """The memberships world (memberships and billing): a club, its manager and desk, the API."""
    from tests.builders import Shop

    return Shop.open(client, world)
