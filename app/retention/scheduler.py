"""One scheduler for the whole deployment: APScheduler 3 jobs, elected by a lock.

`start_scheduler(settings, sessionmaker)` starts a `BackgroundScheduler` (the web app calls it
when SCHEDULER_ENABLED); `fitclub scheduler` runs the same jobs in a blocking process — the way
to deploy with several web workers (keep SCHEDULER_ENABLED=false in the web processes).

Only one process runs jobs at a time:
- PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) held on a dedicated
  connection outside the pool (a transaction-level lock or a pooled connection would release it
  at once). Every job first checks the connection is alive and the lock held; a standby process
  keeps trying, so it takes over within a minute when the leader dies.
- SQLite: one process only (SQLite has a single writer anyway); an exclusive `flock` on
  `<database>.scheduler.lock` makes a second scheduler on the same file stand by.

Jobs only plan rows (unique per member, definition and cycle) and claim them with
`FOR UPDATE SKIP LOCKED`, so even two schedulers by mistake would not send twice.
Job defaults: coalesce=True, max_instances=1, misfire_grace_time=3600 (the default of one
second silently skips jobs after a pause).

Intervals: the daily check every 10 minutes, dispatch every 60 s; the environment variables
`FITCLUB_SCHEDULER_DAILY_SECONDS` / `FITCLUB_SCHEDULER_DISPATCH_SECONDS` change them (tests run
the jobs several times a second). A simulated clock for the jobs: see `jobs.job_now`.
"""
import logging
import os
import threading
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_SCHEDULER_SHUTDOWN
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from app.core.config import Settings
from app.retention import jobs

log = logging.getLogger("fitclub.scheduler")

ADVISORY_LOCK_KEY = 0x666974636C7562  # "fitclub"
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600}
DAILY_CHECK_MINUTES = 10
DISPATCH_SECONDS = 60
FIRST_DAILY_CHECK_SECONDS = 15
DAILY_SECONDS_ENV = "FITCLUB_SCHEDULER_DAILY_SECONDS"
DISPATCH_SECONDS_ENV = "FITCLUB_SCHEDULER_DISPATCH_SECONDS"


def interval_seconds(name: str, default: float) -> float:
    """A job interval from the environment variable `name` (seconds > 0), else `default`."""
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise RuntimeError(f"{name} must be a number of seconds, not {raw!r}") from None
    if value <= 0:
        raise RuntimeError(f"{name} must be more than 0 seconds")
    return value


class LeaderLock:
    """Am I the one scheduler? Acquire, check (`ensure`) and release."""

    def __init__(self, database_url: str, key: int = ADVISORY_LOCK_KEY):
        self.url = database_url
        self.key = key
        self._mutex = threading.Lock()
        self._held = False
        self._conn = None
        self._engine = None
        self._file = None
        self.postgres = make_url(database_url).get_backend_name() == "postgresql"

    # --- PostgreSQL ---
    def _pg_acquire(self) -> bool:
        if self._engine is None:
            self._engine = create_engine(self.url, poolclass=NullPool)
        if self._conn is None:
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return bool(self._conn.execute(select(func.pg_try_advisory_lock(self.key))).scalar())

    def _pg_alive(self) -> bool:
        try:
            self._conn.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - the connection died: the lock died with it
            log.warning("scheduler lock connection lost")
            self._drop_pg()
            return False

    def _drop_pg(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001, S110 - closing a dead connection may fail too
                pass
        self._conn = None

    # --- SQLite ---
    def _lock_path(self) -> str | None:
        database = make_url(self.url).database
        if not database or database == ":memory:":
            return None
        return os.path.abspath(database) + ".scheduler.lock"

    def _file_acquire(self) -> bool:
        import fcntl

        path = self._lock_path()
        if path is None:
            return True
        handle = open(path, "a+")  # noqa: SIM115 - held open for the process's life
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file = handle
        return True

    # --- both ---
    def acquire(self) -> bool:
        with self._mutex:
            if self._held:
                return True
            try:
                self._held = self._pg_acquire() if self.postgres else self._file_acquire()
            except Exception:  # a database hiccup: stand by, try again next time
                log.exception("could not try the scheduler lock")
                self._drop_pg()
                self._held = False
            if self._held:
                log.info("this process is the scheduler (lock acquired)")
            return self._held

    def ensure(self) -> bool:
        """True when this process holds the lock (trying to take it if nobody does)."""
        with self._mutex:
            if self._held and self.postgres and not self._pg_alive():
                self._held = False
        return self.acquire()

    @property
    def held(self) -> bool:
        return self._held

    def release(self) -> None:
        with self._mutex:
            if self.postgres:
                if self._held and self._conn is not None:
                    try:
                        self._conn.execute(select(func.pg_advisory_unlock(self.key)))
                    except Exception:  # noqa: BLE001, S110 - closing the connection unlocks too
                        pass
                self._drop_pg()
                if self._engine is not None:
                    self._engine.dispose()
                    self._engine = None
            elif self._file is not None:
                self._file.close()  # closing the file releases the flock
                self._file = None
            self._held = False


def build_scheduler(settings: Settings, factory: sessionmaker[Session], *, blocking: bool = False,
                    lock: LeaderLock | None = None):
    jobs.clock_file(settings)  # a simulated clock is refused in production, here at start
    daily = interval_seconds(DAILY_SECONDS_ENV, DAILY_CHECK_MINUTES * 60)
    dispatch = interval_seconds(DISPATCH_SECONDS_ENV, DISPATCH_SECONDS)
    lock = lock or LeaderLock(settings.database_url)
    cls = BlockingScheduler if blocking else BackgroundScheduler
    scheduler = cls(timezone=UTC, job_defaults=dict(JOB_DEFAULTS))
    first = timedelta(seconds=min(FIRST_DAILY_CHECK_SECONDS, daily))
    scheduler.add_job(jobs.daily_job, "interval", seconds=daily,
                      next_run_time=datetime.now(UTC) + first,  # wall-clock: APScheduler's own timebase
                      args=(factory, lock, settings), id="retention_daily",
                      name="retention daily run (05:00 club time)", replace_existing=True)
    scheduler.add_job(jobs.dispatch_job, "interval", seconds=dispatch,
                      args=(factory, lock, settings), id="retention_dispatch",
                      name="touchpoint dispatch", replace_existing=True)

    def _on_shutdown(_event) -> None:
        lock.release()

    scheduler.add_listener(_on_shutdown, EVENT_SCHEDULER_SHUTDOWN)
    scheduler.leader_lock = lock
    return scheduler


def start_scheduler(settings: Settings, factory: sessionmaker[Session], *,
                    blocking: bool = False):
    """Start the jobs (in the background, or blocking for `fitclub scheduler`); returns it."""
    scheduler = build_scheduler(settings, factory, blocking=blocking)
    if not scheduler.leader_lock.acquire():
        log.info("another scheduler holds the lock; this one stands by")
    if blocking:
        try:
            scheduler.start()
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            if scheduler.running:
                scheduler.shutdown(wait=False)
            scheduler.leader_lock.release()
        return scheduler
    scheduler.start()
    return scheduler
