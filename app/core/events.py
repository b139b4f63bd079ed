"""Domain events: what happened, told to whoever must react, in the caller's transaction.

A domain that must react to another's change does not get called by it: the changing domain
publishes a named event, and `app/wiring.py` says (in one readable list) who handles it. So the
members service need not know that turnstiles keep an allow-list, and access need not know that
retention moves an at-risk member back on a visit.

Two kinds of handler, both run synchronously in the publisher's session and transaction:

- **required** (`subscribe(Event, handler)`): part of the change. If it raises, the error goes to
  the publisher and the whole transaction rolls back (a membership sold from a lead marks the
  lead won, or neither happens).
- **best effort** (`subscribe(Event, handler, best_effort=True)`): a follow-up that must not undo
  the change (a visit stands even if the retention listener fails; a card change stands even if
  the allow-list queue cannot be written; the nightly sync repairs it). They run together in one
  savepoint; if one fails, that savepoint is rolled back, the failure is logged, and the others
  run again one savepoint each.

Handlers are plain functions `handler(session, event)`. They run in registration order.

A handler may also come **folded** (`subscribe(..., folded=Folded(ctes, params))`): the same work
written as PostgreSQL data-modifying CTEs, which a publisher on the hot path may fold into its
own statement instead of calling the handler (`folded(Event)` lists them; the publisher then
passes them as `done` to `publish`). The turnstile's granted entry is one statement that way:
the visit, the at-risk recovery and the class attendance. Folded SQL commits or fails with
the publisher's statement, so it must not be able to fail on data (guarded UPDATEs and INSERTs
that violate nothing); if the statement fails anyway (a lock timeout, say), the publisher runs
it again without the folds and then calls the handlers as best-effort follow-ups.
"""
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


# --- the events ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class MemberChanged:
    """A member's data that decides entry changed (status, a membership, a freeze, an erasure)."""

    club_id: int
    member_id: int


@dataclass(frozen=True, slots=True)
class CardChanged:
    """A card was issued, blocked, replaced or moved to another member."""

    club_id: int
    member_id: int
    card_id: int


@dataclass(frozen=True, slots=True)
class MembershipSold:
    """A membership was sold (a sale line fulfilled); it may start in the future."""

    club_id: int
    member_id: int
    membership_id: int
    sale_id: int
    sold_by: int | None = None  # the staff user who sold it


@dataclass(frozen=True, slots=True)
class VisitGranted:
    """A member was let in (turnstile or desk); `occurred_at` is the instant of entry."""

    club_id: int
    member_id: int
    occurred_at: datetime
    day: date | None = None  # the club-local day of the entry, when the publisher knows it


@dataclass(frozen=True, slots=True)
class MembersMerged:
    """A duplicate member's rows were moved to the kept member and the duplicate deleted."""

    club_id: int
    kept_member_id: int
    merged_member_id: int


@dataclass(frozen=True, slots=True)
class MemberErased:
    """A member's personal data was erased on request (the row stays, anonymised)."""

    club_id: int
    member_id: int


@dataclass(frozen=True, slots=True)
class StaffJoined:
    """A person accepted an invitation and now works in the club with `role`."""

    club_id: int
    user_id: int
    role: str


@dataclass(frozen=True, slots=True)
class ClassPlaceGiven:
    """A cancellation gave a class's freed place to the first on its waiting list: their
    booking (`booking_id`) is booked now."""

    club_id: int
    member_id: int
    booking_id: int


Event = (MemberChanged | CardChanged | MembershipSold | VisitGranted | MembersMerged
         | MemberErased | StaffJoined | ClassPlaceGiven)
Handler = Callable[[Session, object], None]


# --- subscribing and publishing -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Handlers:
    required: tuple[Handler, ...] = ()
    best_effort: tuple[Handler, ...] = ()


@dataclass(frozen=True, slots=True)
class Folded:
    """A handler's work as SQL a publisher can fold into its own statement (PostgreSQL).

    `ctes(gate)` returns data-modifying CTEs (with RETURNING), each limited by the boolean
    SQL expression `gate` (true when the publisher's change was made); `params(event)` returns
    their bound values. Bound parameter names must be unique to the handler."""

    ctes: Callable[[Any], Sequence[Any]]
    params: Callable[[Any], dict]


_handlers: dict[type, _Handlers] = {}
_folded: dict[type, tuple[tuple[Handler, Folded], ...]] = {}
_wired = False  # set by `app.wiring.install()`: publishing before it would skip required work


def subscribe(event_type: type, handler: Handler, *, best_effort: bool = False,
              folded: Folded | None = None) -> None:
    """Add `handler` for `event_type` (once: subscribing the same handler again is a no-op);
    `folded` is its work as SQL a publisher may fold into its own statement."""
    current = _handlers.get(event_type, _Handlers())
    if handler in current.required or handler in current.best_effort:
        return
    if folded is not None:
        _folded[event_type] = (*_folded.get(event_type, ()), (handler, folded))
    if best_effort:
        current = _Handlers(current.required, (*current.best_effort, handler))
    else:
        current = _Handlers((*current.required, handler), current.best_effort)
    _handlers[event_type] = current


def folded(event_type: type) -> tuple[tuple[Handler, Folded], ...]:
    """The handlers of `event_type` that come with folded SQL, and that SQL."""
    return _folded.get(event_type, ())


def required(event_type: type) -> tuple[Handler, ...]:
    """The required handlers of `event_type`."""
    return _handlers.get(event_type, _Handlers()).required


def handlers(event_type: type) -> tuple[Handler, ...]:
    """Every handler of `event_type`, required first (for tests and docs)."""
    current = _handlers.get(event_type, _Handlers())
    return current.required + current.best_effort


@contextmanager
def replaced(event_type: type, *, required: Sequence[Handler] = (),
             best_effort: Sequence[Handler] = ()) -> Iterator[None]:
    """Within the block, `event_type` has exactly these handlers (tests of the publishing side:
    a failing or recording handler); the wired ones come back afterwards."""
    before, before_folded = _handlers.get(event_type), _folded.pop(event_type, None)
    _handlers[event_type] = _Handlers(tuple(required), tuple(best_effort))
    try:
        yield
    finally:
        if before is None:
            _handlers.pop(event_type, None)
        else:
            _handlers[event_type] = before
        _folded.pop(event_type, None)
        if before_folded is not None:
            _folded[event_type] = before_folded


def mark_wired() -> None:
    """Called at the end of `app.wiring.install()`: from now on events may be published."""
    global _wired
    _wired = True


def publish(session: Session, event: object, *, done: Sequence[Handler] = ()) -> None:
    """Run `event`'s handlers in the caller's session: the required ones (errors propagate),
    then the best-effort ones in a savepoint (errors are logged, the caller's work stands).
    `done`: handlers whose folded SQL the publisher already ran in its own statement.

    A process that publishes before `app.wiring.install()` gets an error, not a silently skipped
    handler (a lead not won, an erasure that leaves the name on a turnstile)."""
    if not _wired:
        raise RuntimeError(f"{type(event).__name__} published before app.wiring.install(): "
                           "call it first (the app factory and the fitclub command do)")
    current = _handlers.get(type(event))
    if current is None or not (current.required or current.best_effort):
        return
    if done:
        current = _Handlers(tuple(h for h in current.required if h not in done),
                            tuple(h for h in current.best_effort if h not in done))
        if not current.required and not current.best_effort:
            return
    if autocommitting(session):
        _run_autocommitting(session, event, current)
        return
    for handler in current.required:
        handler(session, event)
    if current.best_effort:
        _run_best_effort(session, event, current.best_effort)


def _run_best_effort(session: Session, event: object, best_effort: tuple[Handler, ...]) -> None:
    running = None
    try:
        with session.begin_nested():
            for running, handler in enumerate(best_effort):
                handler(session, event)
            running = None
        return
    except Exception:  # a follow-up's bug must not undo the change that was published
        failed = best_effort[running] if running is not None else "savepoint"
        log.exception("%r: handler %r failed; the change stands", event, failed)
    for i, handler in enumerate(best_effort):
        if i == running:
            continue
        try:
            with session.begin_nested():
                handler(session, event)
        except Exception:
            log.exception("%r: handler %r failed; the change stands", event, handler)


def autocommitting(session: Session) -> bool:
    """True when the session's PostgreSQL connection commits each statement on its own (the
    turnstile's check-in, `app.clubs.deps.device_unit_of_work(autocommit=True)`)."""
    conn = session.connection()
    return conn.dialect.name == "postgresql" and conn.connection.dbapi_connection.autocommit


def _run_autocommitting(session: Session, event: object, current: _Handlers) -> None:
    """Without a transaction there is nothing a required handler could be part of, so it is an
    error to publish such an event there; each best-effort handler's statements stand or fail
    on their own (a failure is logged, the published change has already committed)."""
    if current.required:
        raise RuntimeError(f"{type(event).__name__} has required handlers; it cannot be "
                           "published on an autocommit connection")
    for handler in current.best_effort:
        try:
            handler(session, event)
            session.flush()  # ORM work it left pending fails here, not at the caller's commit
        except Exception:
            log.exception("%r: handler %r failed; the change stands", event, handler)
            session.rollback()  # drops what it left pending; written statements stand
