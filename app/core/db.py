"""Engine, session and the declarative base every model derives from."""
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import ClassVar, TypeVar

from sqlalchemy import MetaData, create_engine, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from app.core import clock
from app.core.config import get_settings
from app.core.sql import register_sqlite_functions
from app.core.types import BigId, UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict] = {datetime: UTCDateTime()}


class IdMixin:
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=clock.now, onupdate=clock.now)


def _setup_sqlite(engine: Engine) -> None:
    """pysqlite recipe: WAL, foreign keys, and BEGIN IMMEDIATE so read-then-write never deadlocks;
    and the `fitclub_*` SQL functions of `app.core.sql` (time zones, months), once per connection."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()
        register_sqlite_functions(dbapi_connection)

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int = 20, echo: bool = False) -> Engine:
    # hide_parameters: SQL logging (echo, or sqlalchemy.engine at INFO) and database errors never
    # carry bound values — they are members' emails, phones, names and token digests.
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=echo, hide_parameters=True,
                               connect_args={"timeout": 30, "check_same_thread": False})
        _setup_sqlite(engine)
        return engine
    engine = create_engine(
        url, echo=echo, hide_parameters=True, pool_size=pool_size, max_overflow=max_overflow,
        pool_recycle=3600,
    )
    _ping_idle_connections(engine)
    return engine


IDLE_PING_AFTER = 30.0  # seconds a pooled connection may sit unused before it is pinged


def _ping_idle_connections(engine: Engine) -> None:
    """`pool_pre_ping` for connections that sat idle, not for every checkout.

    A ping is a round trip, and the turnstile's check-in is only two statements, so busy
    connections are lent without one. A connection idle for `IDLE_PING_AFTER` seconds (where a
    database restart, a failover or an idle timeout would have left it dead) is pinged first
    and replaced if dead. One the database drops while in use fails its statement: a 503 with
    Retry-After at the edge (a device event with its own id is retried once,
    `app.clubs.deps.device_work`), and the pool then replaces every connection older than it."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, _proxy):
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < IDLE_PING_AFTER:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError("an idle pooled connection was dead") from exc


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def session_factory() -> Iterator[sessionmaker[Session]]:
    """A session factory on the configured database, its engine disposed afterwards (commands
    and jobs outside the web app)."""
    engine = make_engine(get_settings().database_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """One transaction on the configured database (`session_factory`, then `transaction`)."""
    with session_factory() as factory, transaction(factory) as session:
        yield session


Row = TypeVar("Row")


def club_row(session: Session, model: type[Row], *, club_id: int, row_id: int,
             missing: Exception, for_update: bool = False) -> Row:
    """The row `row_id` of `model` in this club, else `missing` (another club's row is missing
    too). `for_update` takes FOR NO KEY UPDATE on PostgreSQL: it serialises writers of the row
    without conflicting with the KEY SHARE locks that inserting rows which reference it take."""
    stmt = select(model).where(model.id == row_id, model.club_id == club_id)
    if for_update:
        stmt = stmt.with_for_update(key_share=True).execution_options(populate_existing=True)
    row = session.scalar(stmt)
    if row is None:
        raise missing
    return row
