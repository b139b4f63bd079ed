"""The one clock: every "now" and "today" in the application comes from here.

`clock.now()` is the current instant (timezone-aware UTC); `clock.today(zone)` is the calendar
day it is in a zone (a club's day: pass `club_zone(club)`). In production the clock is the
system's. Tests and simulations install another one process-wide with `install()` (or the
`use()` context manager): a `SettableClock` starts at a chosen instant, ticks with the
monotonic clock so that ordering and timeouts still work, and can be moved with `set()` or
`advance()`. Nothing else in `app/` reads the wall clock, and SQL takes its instants and days
as parameters from here, never from the database's `now()`/`CURRENT_DATE`, so one test clock
rules both backends.

A process can start on a moved clock with `FITCLUB_CLOCK_START=<instant>` (development and tests
only: the test suite's subprocess servers share the test's clock this way; refused in
production).

Durations (timeouts, rate windows measured in-process, performance timing) are not "now": they
use `time.monotonic()`/`time.perf_counter()` directly.
"""
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Protocol
from zoneinfo import ZoneInfo


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


class SettableClock:
    """A clock that starts at `start` and, with `tick=True`, moves on with real elapsed time.

    `set(instant)` jumps to an instant and `advance(delta)` moves by a duration; both keep
    ticking from there. Thread-safe: the app under test reads it from server threads.
    """

    def __init__(self, start: datetime, *, tick: bool = True) -> None:
        self._lock = threading.Lock()
        self._tick = tick
        self._set(start)

    def _set(self, instant: datetime) -> None:
        if instant.utcoffset() is None:
            raise ValueError(f"a clock instant needs a UTC offset: {instant.isoformat()}")
        self._base = instant.astimezone(UTC)
        self._mark = time.monotonic()

    def now(self) -> datetime:
        with self._lock:
            if not self._tick:
                return self._base
            return self._base + timedelta(seconds=time.monotonic() - self._mark)

    def set(self, instant: datetime) -> None:
        with self._lock:
            self._set(instant)

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._set(self._base + delta + (timedelta(seconds=time.monotonic() - self._mark)
                                            if self._tick else timedelta(0)))

    def __repr__(self) -> str:
        return f"SettableClock({self.now().isoformat()}, tick={self._tick})"


_current: Clock = SystemClock()


def now() -> datetime:
    """The current instant (timezone-aware UTC) from the installed clock."""
    return _current.now()


def today(zone: tzinfo | str, at: datetime | None = None) -> date:
    """The calendar day in `zone` at `at` (default: now)."""
    if isinstance(zone, str):
        zone = ZoneInfo(zone)
    return (at or _current.now()).astimezone(zone).date()


def current() -> Clock:
    return _current


def install(clock: Clock) -> Clock:
    """Make `clock` the process's clock; returns the one it replaces."""
    global _current
    previous, _current = _current, clock
    return previous


@contextmanager
def use(clock: Clock) -> Iterator[Clock]:
    """Install `clock` for the duration of a block."""
    previous = install(clock)
    try:
        yield clock
    finally:
        install(previous)


START_ENV = "FITCLUB_CLOCK_START"


def install_from_environment(environment: str) -> None:
    """Install a ticking clock from `FITCLUB_CLOCK_START`, if set (never in production)."""
    text = os.environ.get(START_ENV)
    if not text:
        return
    if environment == "production":
        raise RuntimeError(f"{START_ENV} is set: a moved clock is refused in production")
    install(SettableClock(parse_instant(text)))


def parse_instant(text: str, zone: tzinfo | str | None = None) -> datetime:
    """An ISO-8601 instant; one without an offset is read in `zone` (default UTC)."""
    at = datetime.fromisoformat(text.strip())
    if at.utcoffset() is None:
        if isinstance(zone, str):
            zone = ZoneInfo(zone)
        at = at.replace(tzinfo=zone or UTC)
    return at.astimezone(UTC)
