"""The retention engine's entry points: the daily run, simulation, previews and read models.

- `run_club(session, club_id=…, as_of=…, now=…)` — one club, one day: stages, visit milestones,
  stop conditions and expiry, planning. Idempotent per club and day (`retention_runs`).
- `run_day(factory, …)` — the same in its own transaction, or rolled back for a dry run.
- `run_due_clubs(factory, now=…)` — what the scheduler calls: every club whose local time is
  past `DAILY_RUN_AT` and whose run for its local today has not happened.
- `simulate(factory, club_id=…, start=…, end=…)` — replay days: run + dispatch with a recording
  channel at simulated times (the demo calls this).
"""
import time as _clock
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import event, func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from app.clubs import service as clubs_service
from app.clubs.models import Club
from app.core import clock
from app.core.config import Settings, get_settings
from app.core.db import transaction
from app.core.errors import Invalid, NotFound
from app.core.events import MembersMerged
from app.core.sql import dialect_insert, is_postgres, local_at, unprepared
from app.crm.models import Task
from app.members import service as members_service
from app.memberships.models import Membership, Plan
from app.retention import facts, playbook, scheduling, stages, templates, unsubscribe
from app.retention.channels import Channels, recording
from app.retention.dispatch import DispatchStats, dispatch_due
from app.retention.models import (
    MemberStage,
    RetentionRun,
    ScheduledTouchpoint,
    StageChange,
    TouchpointDefinition,
)

DAILY_RUN_AT = time(5, 0)
ANALYZED = ("member_stages", "retention_member_facts", "scheduled_touchpoints")  # what the
# daily statements read


@dataclass
class RunReport:
    club_id: int
    as_of: date
    dry_run: bool = False
    skipped: bool = False  # today's run had already happened
    members: int = 0
    stage_counts: dict[str, int] = field(default_factory=dict)
    transitions: dict[str, int] = field(default_factory=dict)  # "active->at_risk": n
    scheduled: dict[str, int] = field(default_factory=dict)  # definition key: n
    held_out: dict[str, int] = field(default_factory=dict)
    cancelled: dict[str, int] = field(default_factory=dict)  # reason: n
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase
    facts_rebuilt: bool = False  # all of the club's membership facts were (re)built

    def as_dict(self) -> dict:
        return {"club_id": self.club_id, "as_of": self.as_of.isoformat(),
                "dry_run": self.dry_run, "skipped": self.skipped,
                "stage_counts": self.stage_counts, "transitions": self.transitions,
                "scheduled": self.scheduled, "held_out": self.held_out,
                "cancelled": self.cancelled, "seconds": round(self.seconds, 3),
                "phases": {k: round(v, 3) for k, v in self.phases.items()}}


def _claim_run(session: Session, *, club_id: int, as_of: date, now: datetime, source: str,
               force: bool) -> bool:
    """Record that today's run is happening; False when it already happened (and not forced)."""
    table = RetentionRun.__table__
    inserted = session.execute(
        dialect_insert(session, table)
        .values(club_id=club_id, run_date=as_of, source=source, started_at=now, stats={})
        .on_conflict_do_nothing(index_elements=[table.c.club_id, table.c.run_date])
        .returning(table.c.id)).first()
    if inserted is None and not force:
        return False
    if inserted is None:
        session.execute(update(RetentionRun).where(RetentionRun.club_id == club_id,
                                                   RetentionRun.run_date == as_of)
                        .values(started_at=now, source=source, finished_at=None))
    return True


def run_club(session: Session, *, club_id: int, as_of: date | None = None,
             now: datetime | None = None, source: str = "manual", force: bool = False,
             dry_run: bool = False) -> RunReport:
    """One club, one day: stages, milestones, stop conditions and expiry, then planning.

    The session's transaction holds it all; with `dry_run` the caller rolls it back. Its
    statements are planned for their actual dates and id lists (`core.sql.unprepared`).
    """
    with unprepared(session):
        return _run_club(session, club_id=club_id, as_of=as_of, now=now, source=source,
                         force=force, dry_run=dry_run)


def _run_club(session: Session, *, club_id: int, as_of: date | None, now: datetime | None,
              source: str, force: bool, dry_run: bool) -> RunReport:
    started = _clock.perf_counter()
    club = clubs_service.get_club(session, club_id)
    s = clubs_service.club_settings(club)
    zone = clubs_service.club_zone(club)
    now = now or clock.now()
    as_of = as_of or clubs_service.club_today(club, now)
    report = RunReport(club_id=club_id, as_of=as_of, dry_run=dry_run)
    if not _claim_run(session, club_id=club_id, as_of=as_of, now=now, source=source,
                      force=force or dry_run):
        report.skipped = True
        return report
    if is_postgres(session):
        # a batch job: sorts and hash aggregates in memory; JIT compiles for longer than the
        # statements run
        session.execute(text("SET LOCAL work_mem = '64MB'"))
        session.execute(text("SET LOCAL jit = off"))
    playbook.ensure_default_playbook(session, club_id=club_id)
    definitions = list(session.scalars(select(TouchpointDefinition)
                                       .where(TouchpointDefinition.club_id == club_id)))
    mark = _clock.perf_counter()

    def phase(name: str) -> None:
        nonlocal mark
        report.phases[name] = _clock.perf_counter() - mark
        mark = _clock.perf_counter()

    report.facts_rebuilt = facts.refresh(session, club_id=club_id, as_of=as_of, settings=s,
                                         zone=zone)
    phase("facts")
    run = stages.compute_and_apply(
        session, club_id=club_id, as_of=as_of, now=now, settings=s, zone=zone,
        source="simulate" if source == "simulate" else "daily_run",
        visits_before=scheduling.visits_cutoff(session, club_id=club_id, zone=zone,
                                               as_of=as_of, now=now),
        many_new=report.facts_rebuilt)
    report.transitions = dict(Counter(f"{a or 'new'}->{b}" for _m, a, b in run.changes))
    phase("stages")
    counted = scheduling.count_new_visits(session, club_id=club_id, zone=zone, as_of=as_of,
                                          now=now)
    phase("visit_counts")
    cancelled = scheduling.cancel_obsolete(session, club_id=club_id, now=now, today=as_of,
                                           definitions=definitions)
    phase("stop_conditions")
    report.cancelled = {k: v for k, v in cancelled.items() if v}
    planned = scheduling.plan(session, club_id=club_id, settings=s, zone=zone, as_of=as_of,
                              now=now, definitions=definitions, counted=counted)
    report.scheduled, report.held_out = dict(planned.scheduled), dict(planned.held_out)
    phase("planning")
    report.stage_counts = stages.stage_counts(session, club_id=club_id)
    phase("counts")
    if report.facts_rebuilt and is_postgres(session):
        # a club's first run writes a row per member into tables that may have been empty:
        # fresh statistics, so the next runs are not planned for empty tables (autovacuum may
        # be late, or off)
        session.execute(text(f"ANALYZE {', '.join(ANALYZED)}"))
        phase("analyze")
    report.members = sum(report.stage_counts.values())
    report.seconds = _clock.perf_counter() - started
    session.execute(update(RetentionRun).where(RetentionRun.club_id == club_id,
                                               RetentionRun.run_date == as_of)
                    .values(finished_at=clock.now() if source != "simulate" else now,
                            stats=report.as_dict()))
    session.flush()
    return report


def run_day(factory: sessionmaker[Session], *, club_id: int, as_of: date | None = None,
            now: datetime | None = None, source: str = "manual", force: bool = False,
            dry_run: bool = False) -> RunReport:
    """`run_club` in its own transaction; a dry run is rolled back, so it writes nothing."""
    if not dry_run:
        with transaction(factory) as session:
            return run_club(session, club_id=club_id, as_of=as_of, now=now, source=source,
                            force=force)
    session = factory()
    try:
        return run_club(session, club_id=club_id, as_of=as_of, now=now, source=source,
                        dry_run=True)
    finally:
        session.rollback()
        session.close()


def club_ids(factory: sessionmaker[Session]) -> list[int]:
    with transaction(factory) as session:
        return list(session.scalars(select(Club.id).order_by(Club.id)))


def run_due_clubs(factory: sessionmaker[Session], *, now: datetime | None = None,
                  run_at: time = DAILY_RUN_AT) -> list[RunReport]:
    """The scheduler's hourly check: run each club whose local day's run is due and not done."""
    now = now or clock.now()
    reports = []
    with transaction(factory) as session:
        clubs = list(session.execute(select(Club.id, Club.timezone).order_by(Club.id)).all())
        done = set(session.execute(
            select(RetentionRun.club_id, RetentionRun.run_date)
            .where(RetentionRun.run_date >= now.date() - timedelta(days=1))).all())
    for club_id, tz in clubs:
        local = now.astimezone(ZoneInfo(tz))
        if local.time() < run_at or (club_id, local.date()) in done:
            continue
        report = run_day(factory, club_id=club_id, as_of=local.date(), now=now,
                         source="scheduler")
        if not report.skipped:
            reports.append(report)
    return reports


# --- simulation ----------------------------------------------------------------------------------

DISPATCH_TIMES = (time(9, 0), time(15, 0))
SIMULATED_TASKS_CLOSE_AFTER = 2  # days: open tasks are closed ("not worked") in simulations


@dataclass
class SimulationResult:
    club_id: int
    start: date
    end: date
    days: int = 0
    transitions: Counter = field(default_factory=Counter)
    scheduled: Counter = field(default_factory=Counter)
    held_out: Counter = field(default_factory=Counter)
    dispatch: DispatchStats = field(default_factory=DispatchStats)
    seconds: float = 0.0
    channels: Channels | None = None

    def summary(self) -> str:
        sent = self.dispatch.outcomes.get("sent", 0)
        tasks = self.dispatch.outcomes.get("task", 0)
        skipped = sum(v for k, v in self.dispatch.outcomes.items() if k.startswith("skip:"))
        return (f"club {self.club_id}: {self.days} days {self.start}..{self.end} in "
                f"{self.seconds:.1f}s — {sum(self.scheduled.values())} touchpoints planned, "
                f"{sum(self.held_out.values())} held out, {sent} messages sent, {tasks} tasks, "
                f"{skipped} skipped")


def _replay_factory(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """Sessions for a replay: on PostgreSQL without waiting for the WAL flush at each commit.

    A simulation commits a few times per simulated day; `synchronous_commit = off` makes that
    cheap and risks nothing but the last commits of a replay interrupted by a crash.
    """
    if factory.kw.get("bind") is None or factory.kw["bind"].dialect.name != "postgresql":
        return factory
    replay = sessionmaker(**factory.kw)

    @event.listens_for(replay, "after_begin")
    def _relaxed(_session, _transaction, connection) -> None:
        connection.exec_driver_sql("SET LOCAL synchronous_commit = off")

    return replay


def simulate(factory: sessionmaker[Session], *, club_id: int, start: date, end: date,
             channels: Channels | None = None, settings: Settings | None = None,
             progress: Callable[[date], None] | None = None,
             dispatch_times: tuple[time, ...] = DISPATCH_TIMES,
             close_tasks: bool = True) -> SimulationResult:
    """Replay the engine day by day over history with a simulated clock.

    Each day: the daily run at 05:00 club time, then dispatch at `dispatch_times` with
    `channels` (default: recording channels — nothing leaves the machine). Days already run
    (a `retention_runs` row) only dispatch. With `close_tasks`, engine tasks still open two days
    after their due date are closed (weekly) as "not worked (simulated history)", so the desk's
    list starts with the last days' tasks only. Returns counts; the recording channels are in `result.channels`.
    """
    started = _clock.perf_counter()
    if end < start:
        raise ValueError("end must not be before start")
    channels = channels or recording()
    settings = settings or get_settings()
    factory = _replay_factory(factory)
    with transaction(factory) as session:
        club = clubs_service.get_club(session, club_id)
        zone = clubs_service.club_zone(club)
    result = SimulationResult(club_id=club_id, start=start, end=end, channels=channels)
    day = start
    while day <= end:
        report = run_day(factory, club_id=club_id, as_of=day,
                         now=local_at(zone, day, DAILY_RUN_AT), source="simulate")
        result.transitions.update(report.transitions)
        result.scheduled.update(report.scheduled)
        result.held_out.update(report.held_out)
        for at in dispatch_times:
            result.dispatch.merge(dispatch_due(factory, channels=channels, settings=settings,
                                               now=local_at(zone, day, at), club_id=club_id))
        if close_tasks and (day.weekday() == 6 or day == end):
            with transaction(factory) as session:
                session.execute(update(Task).where(
                    Task.club_id == club_id, Task.status == "open",
                    Task.touchpoint_id.is_not(None),
                    Task.due_date <= day - timedelta(days=SIMULATED_TASKS_CLOSE_AFTER))
                    .values(status="cancelled", outcome="not worked (simulated history)",
                            updated_at=local_at(zone, day, time(20, 0))))
        result.days += 1
        if progress:
            progress(day)
        day += timedelta(days=1)
    result.seconds = _clock.perf_counter() - started
    return result


# --- read models and previews ------------------------------------------------------------------

def member_retention(session: Session, *, club_id: int, member_id: int) -> dict:
    """A member's stage, stage history and touchpoints (404 for another club's member)."""
    members_service.get_member(session, club_id=club_id, member_id=member_id)
    stage = session.scalar(select(MemberStage).where(MemberStage.member_id == member_id))
    history = list(session.scalars(select(StageChange).where(StageChange.member_id == member_id)
                                   .order_by(StageChange.at.desc(), StageChange.id.desc())
                                   .limit(100)))
    touchpoints = list(session.execute(
        select(ScheduledTouchpoint, TouchpointDefinition.key, TouchpointDefinition.name)
        .join(TouchpointDefinition, TouchpointDefinition.id == ScheduledTouchpoint.definition_id)
        .where(ScheduledTouchpoint.member_id == member_id)
        .order_by(ScheduledTouchpoint.due_at.desc(), ScheduledTouchpoint.id.desc())
        .limit(200)).all())
    return {"stage": stage, "history": history, "touchpoints": touchpoints}


def list_touchpoints(session: Session, *, club_id: int, status: str | None = None,
                     member_id: int | None = None, definition_id: int | None = None,
                     limit: int = 50, offset: int = 0) -> tuple[list, int]:
    where = [ScheduledTouchpoint.club_id == club_id]
    if status:
        where.append(ScheduledTouchpoint.status == status)
    if member_id:
        where.append(ScheduledTouchpoint.member_id == member_id)
    if definition_id:
        where.append(ScheduledTouchpoint.definition_id == definition_id)
    total = session.scalar(select(func.count()).select_from(ScheduledTouchpoint).where(*where))
    rows = session.execute(
        select(ScheduledTouchpoint, TouchpointDefinition.key, TouchpointDefinition.name)
        .join(TouchpointDefinition, TouchpointDefinition.id == ScheduledTouchpoint.definition_id)
        .where(*where).order_by(ScheduledTouchpoint.due_at.desc(), ScheduledTouchpoint.id.desc())
        .limit(limit).offset(offset)).all()
    return rows, total or 0


def members_in_stage(session: Session, *, club_id: int, stage: str | None, limit: int,
                     offset: int) -> tuple[list[MemberStage], int]:
    where = [MemberStage.club_id == club_id]
    if stage:
        where.append(MemberStage.stage == stage)
    total = session.scalar(select(func.count()).select_from(MemberStage).where(*where))
    rows = list(session.scalars(select(MemberStage).where(*where)
                                .order_by(MemberStage.since.desc(), MemberStage.member_id)
                                .limit(limit).offset(offset)))
    return rows, total or 0


def preview(session: Session, *, club_id: int, definition_id: int, member_id: int,
            settings: Settings, now: datetime | None = None) -> dict:
    """Render a definition's subject and body for one member (422 with Jinja's message)."""
    definition = playbook.get_definition(session, club_id=club_id, definition_id=definition_id)
    member = members_service.get_member(session, club_id=club_id, member_id=member_id)
    club = clubs_service.get_club(session, club_id)
    now = now or clock.now()
    today = clubs_service.club_today(club, now)
    stage = session.scalar(select(MemberStage).where(MemberStage.member_id == member_id))
    membership_row = None
    if stage is not None and stage.membership_id:
        membership_row = session.execute(select(Membership, Plan.name)
                                         .join(Plan, Plan.id == Membership.plan_id)
                                         .where(Membership.id == stage.membership_id)).first()
    if membership_row is None:
        membership_row = session.execute(
            select(Membership, Plan.name).join(Plan, Plan.id == Membership.plan_id)
            .where(Membership.member_id == member_id, Membership.club_id == club_id)
            .order_by(Membership.end_date.desc()).limit(1)).first()
    membership, plan_name = membership_row if membership_row else (None, None)
    url = unsubscribe.url(settings.public_base_url, settings.secret_key, club_id=club_id,
                          member_id=member_id)
    ctx = templates.context(member=member, club=club, membership=membership, plan_name=plan_name,
                            stage=stage, today=today, unsubscribe_url=url,
                            public_base_url=settings.public_base_url)
    try:
        subject = templates.render(definition.subject_template or "", ctx)
        body = templates.render(definition.body_template, ctx)
    except templates.RenderError as exc:
        raise Invalid(f"The template does not render for this member: {exc}",
                      code="invalid_template", details={"error": str(exc)}) from exc
    return {"definition_id": definition.id, "member_id": member_id,
            "channel": definition.channel, "subject": subject, "body": body}


def refresh_member(session: Session, *, club_id: int, member_id: int,
                   now: datetime | None = None) -> str | None:
    """Recompute one member's stage now (after a sale, freeze or cancellation); returns it.

    The same statement as the daily run, restricted to the member. Touchpoints are planned by
    the next daily run.
    """
    club = session.get(Club, club_id)
    if club is None:
        raise NotFound("Club not found")
    now = now or clock.now()
    stages.compute_and_apply(session, club_id=club_id,
                             as_of=clubs_service.club_today(club, now), now=now,
                             settings=clubs_service.club_settings(club),
                             zone=clubs_service.club_zone(club), source="event",
                             member_ids=[member_id])
    return session.scalar(select(MemberStage.stage).where(MemberStage.member_id == member_id))


def on_members_merged(session: Session, event: MembersMerged) -> None:
    """`MembersMerged` handler: the kept member's stage from the merged history."""
    refresh_member(session, club_id=event.club_id, member_id=event.kept_member_id)
