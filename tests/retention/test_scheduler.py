"""One scheduler at a time; APScheduler job defaults; the jobs themselves."""
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.core import clock
from app.core.db import transaction
from app.retention import jobs
from app.retention.models import RetentionRun
from app.retention.scheduler import LeaderLock, start_scheduler


def test_a_second_scheduler_does_not_take_the_lock(db):
    first, second = LeaderLock(db.url), LeaderLock(db.url)
    try:
        assert first.acquire() and first.ensure()
        assert not second.acquire() and not second.ensure()
        first.release()
        assert second.ensure()
        assert not first.acquire()
    finally:
        first.release()
        second.release()


def test_start_scheduler_elects_one_and_uses_safe_job_defaults(db, settings):
    scheduler = start_scheduler(settings, db.sessionmaker)
    standby = None
    try:
        assert scheduler.running and scheduler.leader_lock.held
        found = {job.id: job for job in scheduler.get_jobs()}
        assert set(found) == {"retention_daily", "retention_dispatch"}
        for job in found.values():
            assert job.coalesce is True and job.max_instances == 1
            assert job.misfire_grace_time == 3600
        standby = start_scheduler(settings, db.sessionmaker)
        assert standby.running and not standby.leader_lock.held
    finally:
        scheduler.shutdown(wait=False)
        if standby is not None:
            standby.shutdown(wait=False)
    probe = LeaderLock(db.url)
    try:
        assert probe.acquire()  # shutting down released the lock
    finally:
        probe.release()


class _Held:
    def __init__(self, held: bool):
        self.held = held

    def ensure(self) -> bool:
        return self.held


def _zone_past_five_am() -> str:
    now = clock.now()
    for name in ("UTC", "Asia/Tokyo", "America/Los_Angeles", "Asia/Kolkata", "Pacific/Auckland",
                 "America/Sao_Paulo", "Europe/Berlin"):
        if now.astimezone(ZoneInfo(name)).hour >= 6:
            return name
    return "UTC"


def test_the_daily_job_runs_each_club_once_and_only_on_the_elected_scheduler(db, world, settings):
    club = world.club(timezone=_zone_past_five_am())
    jobs.daily_job(db.sessionmaker, _Held(False), settings)
    with transaction(db.sessionmaker) as s:
        assert s.scalars(select(RetentionRun)).all() == []
    jobs.daily_job(db.sessionmaker, _Held(True), settings)
    jobs.daily_job(db.sessionmaker, _Held(True), settings)
    with transaction(db.sessionmaker) as s:
        runs = s.scalars(select(RetentionRun)).all()
        assert [(r.club_id, r.source) for r in runs] == [(club.id, "scheduler")]
        assert runs[0].finished_at is not None and runs[0].stats["stage_counts"] is not None
    jobs.dispatch_job(db.sessionmaker, _Held(True), settings)  # nothing due: a no-op
