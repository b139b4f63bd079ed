"""Stage placement on hand-built members, as RETENTION.md defines the stages."""
from datetime import timedelta

from sqlalchemy import select

from app.core.db import transaction
from app.core.events import VisitGranted
from app.retention.models import StageChange
from app.retention.stages import on_visit
from tests.retention.conftest import D, ago, local


def test_prospect_onboarding_establishing_active(rw):
    club = rw.club()
    annual = rw.plan(club)
    prospect = rw.member(club)
    new = rw.member(club)
    rw.membership(club, new, annual, ago(10))
    settling = rw.member(club)
    rw.membership(club, settling, annual, ago(40))
    rw.regular_visits(club, settling, ago(40), ago(1))
    regular = rw.member(club)
    rw.membership(club, regular, annual, ago(100))
    rw.regular_visits(club, regular, ago(100), ago(1))
    veteran = rw.member(club)  # years of renewals: active since the current membership began
    first = rw.membership(club, veteran, annual, ago(500), end=ago(151))
    rw.membership(club, veteran, annual, ago(150), renews_id=first)
    rw.regular_visits(club, veteran, ago(200), ago(1))

    report = rw.run(club)

    assert rw.stage(prospect).stage == "prospect"
    s = rw.stage(new)
    assert (s.stage, s.since, s.cycle) == ("onboarding", ago(10), f"t{ago(10).isoformat()}")
    s = rw.stage(settling)
    assert (s.stage, s.since) == ("establishing", ago(10))
    s = rw.stage(regular)
    assert (s.stage, s.since) == ("active", ago(10))
    s = rw.stage(veteran)
    assert (s.stage, s.since) == ("active", ago(150))
    assert report.stage_counts["active"] == 2 and report.stage_counts["prospect"] == 1


def test_at_risk_after_fourteen_days_without_a_visit(rw):
    club = rw.club()
    annual = rw.plan(club)
    gone = rw.member(club)
    rw.membership(club, gone, annual, ago(150))
    rw.regular_visits(club, gone, ago(150), ago(14))  # last visit: a Monday, 14 days ago
    still = rw.member(club)
    rw.membership(club, still, annual, ago(150))
    rw.regular_visits(club, still, ago(150), ago(14))
    rw.visits(club, still, [ago(13)])

    rw.run(club)

    s = rw.stage(gone)
    assert s.stage == "at_risk" and "no visit for 14 days" in s.reason
    assert s.since == D and s.cycle == f"r{D.isoformat()}" and s.recover_visits == 1
    assert s.base_stage == "active"
    assert rw.stage(still).stage == "active"


def test_at_risk_when_visits_drop_below_half_of_the_usual(rw):
    club = rw.club()
    annual = rw.plan(club)
    dropping = rw.member(club)
    rw.membership(club, dropping, annual, ago(200))
    rw.regular_visits(club, dropping, ago(200), ago(28))  # 3 a week: ~24 in the 8 weeks before
    rw.visits(club, dropping, [ago(20), ago(5)])  # 2 in the last 28 days, one recent
    steady = rw.member(club)
    rw.membership(club, steady, annual, ago(200))
    rw.regular_visits(club, steady, ago(200), ago(1), weekdays=(0, 3))

    rw.run(club)

    s = rw.stage(dropping)
    assert s.stage == "at_risk"
    assert "2 visits in the last 28 days" in s.reason and "no visit for" not in s.reason
    assert s.recover_visits == 4  # 6 visits are half the usual 12 per 28 days
    assert rw.stage(steady).stage == "active"


def test_frozen_member(rw):
    club = rw.club()
    annual = rw.plan(club)
    member = rw.member(club)
    m = rw.membership(club, member, annual, ago(150))
    rw.freeze(club, m, ago(20), D + timedelta(days=10))
    freeze_id = rw.freeze(club, m, ago(60), ago(50))
    rw.run(club)
    s = rw.stage(member)
    assert s.stage == "frozen" and s.since == ago(20) and s.cycle.startswith("f")
    assert s.cycle != f"f{freeze_id}"


def test_renewal_due_only_for_plans_that_do_not_renew_automatically(rw):
    club = rw.club()
    manual, automatic = rw.plan(club), rw.plan(club, auto_renew=True)
    a = rw.member(club)
    ma = rw.membership(club, a, manual, ago(200), end=D + timedelta(days=20))
    b = rw.member(club)
    rw.membership(club, b, automatic, ago(200), end=D + timedelta(days=20))
    c = rw.member(club)  # already bought the next one
    mc = rw.membership(club, c, manual, ago(200), end=D + timedelta(days=20))
    rw.membership(club, c, manual, D + timedelta(days=21), sold_at=local(ago(3)), renews_id=mc)
    for member in (a, b, c):
        rw.regular_visits(club, member, ago(200), ago(1))

    rw.run(club)

    s = rw.stage(a)
    assert (s.stage, s.cycle, s.membership_id) == ("renewal_due", f"m{ma}", ma)
    assert s.since == D + timedelta(days=20 - 30)
    assert rw.stage(b).stage == "active"
    assert rw.stage(c).stage == "active"


def test_lapsed_within_grace_then_lost(rw):
    club = rw.club()
    annual = rw.plan(club)
    lapsed = rw.member(club)
    rw.membership(club, lapsed, annual, ago(375), end=ago(10))
    lost = rw.member(club)
    m = rw.membership(club, lost, annual, ago(400), end=ago(40))
    cancelled = rw.member(club)
    rw.membership(club, cancelled, annual, ago(100), cancelled_on=ago(3))
    rw.run(club)
    s = rw.stage(lapsed)
    assert (s.stage, s.since) == ("lapsed", ago(9))
    s = rw.stage(lost)
    assert (s.stage, s.since, s.cycle) == ("lost", ago(40) + timedelta(days=31), f"m{m}")
    assert rw.stage(cancelled).stage == "lapsed"


def test_a_returning_lost_member_starts_onboarding_again(rw):
    club = rw.club()
    annual = rw.plan(club)
    member = rw.member(club)
    rw.membership(club, member, annual, ago(500), end=ago(100))
    rw.membership(club, member, annual, ago(5))
    renewed_late = rw.member(club)  # came back within the grace: not a new start
    rw.membership(club, renewed_late, annual, ago(400), end=ago(20))
    rw.membership(club, renewed_late, annual, ago(5))
    rw.regular_visits(club, renewed_late, ago(400), ago(1))

    rw.run(club, ago(50))
    assert rw.stage(member).stage == "lost"
    rw.run(club)

    s = rw.stage(member)
    assert (s.stage, s.since, s.cycle) == ("onboarding", ago(5), f"t{ago(5).isoformat()}")
    assert "came back" in s.reason
    assert rw.stage(renewed_late).stage == "active"


def test_stage_changes_are_recorded_with_from_to_and_why(rw, session):
    club = rw.club()
    annual = rw.plan(club)
    member = rw.member(club)
    rw.membership(club, member, annual, ago(35))
    rw.regular_visits(club, member, ago(35), ago(1))
    rw.run(club, ago(10))
    rw.run(club)
    rw.run(club)  # nothing changes: no new history
    rows = session.execute(select(StageChange.from_stage, StageChange.to_stage,
                                  StageChange.on_date, StageChange.reason)
                           .where(StageChange.member_id == member)
                           .order_by(StageChange.id)).all()
    assert [(r.from_stage, r.to_stage, r.on_date) for r in rows] == [
        (None, "onboarding", ago(35)), ("onboarding", "establishing", ago(5))]
    assert "day 36" in rows[1].reason


def test_a_visit_brings_an_at_risk_member_back_at_once(rw, db):
    club = rw.club()
    annual = rw.plan(club)
    member = rw.member(club)
    rw.membership(club, member, annual, ago(150))
    rw.regular_visits(club, member, ago(150), ago(28), weekdays=(0, 3))
    rw.visits(club, member, [ago(n) for n in range(15, 28)])  # busy, then 14 days away
    rw.run(club)
    assert rw.stage(member).stage == "at_risk" and rw.stage(member).recover_visits == 1

    with transaction(db.sessionmaker) as s:
        on_visit(s, VisitGranted(club.id, member, local(D, 18)))
    st = rw.stage(member)
    assert (st.stage, st.since, st.cycle) == ("active", D, f"a{D.isoformat()}")
    assert st.risk_cleared_on == D
    with transaction(db.sessionmaker) as s:
        last = s.scalar(select(StageChange).where(StageChange.member_id == member)
                        .order_by(StageChange.id.desc()).limit(1))
        assert (last.from_stage, last.to_stage, last.source) == ("at_risk", "active", "visit")
        on_visit(s, VisitGranted(club.id, member, local(D, 19)))  # a no-op
    assert rw.stage(member).stage == "active"


def test_the_visit_handler_is_wired():
    from app.core import events

    assert on_visit in events.handlers(VisitGranted)


def test_dry_run_writes_nothing(rw, db):
    from app.retention import service

    club = rw.club()
    annual = rw.plan(club)
    member = rw.member(club)
    rw.membership(club, member, annual, ago(0))
    report = service.run_day(db.sessionmaker, club_id=club.id, as_of=D, now=local(D, 5),
                             dry_run=True)
    assert report.stage_counts["onboarding"] == 1 and report.scheduled.get("welcome") == 1
    assert rw.stage(member) is None and rw.touchpoints(member) == []


def test_the_daily_run_happens_once_per_club_and_day(rw, db):
    from app.retention import service

    club = rw.club()
    first = service.run_day(db.sessionmaker, club_id=club.id, as_of=D, now=local(D, 5))
    again = service.run_day(db.sessionmaker, club_id=club.id, as_of=D, now=local(D, 6))
    assert not first.skipped and again.skipped
    reports = service.run_due_clubs(db.sessionmaker, now=local(D + timedelta(days=1), 4))
    assert reports == []  # before 05:00 club time
    reports = service.run_due_clubs(db.sessionmaker, now=local(D + timedelta(days=1), 6))
    assert [r.as_of for r in reports] == [D + timedelta(days=1)]
    assert service.run_due_clubs(db.sessionmaker, now=local(D + timedelta(days=1), 7)) == []


def test_a_member_whose_attendance_dropped_needs_visits_back_above_half(rw, db):
    club = rw.club()
    annual = rw.plan(club)
    member = rw.member(club)
    rw.membership(club, member, annual, ago(200))
    rw.regular_visits(club, member, ago(200), ago(28))
    rw.visits(club, member, [ago(20), ago(5)])
    rw.run(club)
    assert rw.stage(member).recover_visits == 4
    for hour in (10, 11, 12):
        with transaction(db.sessionmaker) as s:
            on_visit(s, VisitGranted(club.id, member, local(D, hour)))
    assert (rw.stage(member).stage, rw.stage(member).recover_visits) == ("at_risk", 1)
    with transaction(db.sessionmaker) as s:
        on_visit(s, VisitGranted(club.id, member, local(D, 13)))
    assert rw.stage(member).stage == "active"


def test_a_real_check_in_runs_the_listener(rw, db):
    """Through the access domain's check-in (its listener list), not by calling on_visit."""
    from app.access import service as access_service
    from app.clubs.service import club_today
    from app.core import clock

    club = rw.club()
    today = club_today(club)
    member = rw.member(club)
    rw.membership(club, member, rw.plan(club), today - timedelta(days=150))
    rw.regular_visits(club, member, today - timedelta(days=150), today - timedelta(days=28),
                      weekdays=(0, 3))
    rw.visits(club, member, [today - timedelta(days=n) for n in range(15, 28)])
    rw.run(club, today, now=clock.now())
    assert rw.stage(member).stage == "at_risk"
    with transaction(db.sessionmaker) as s:
        decision = access_service.check_in(s, club_id=club.id, occurred_at=clock.now(),
                                           member_id=member, source="desk",
                                           dedup_key="retention-listener-test")
        assert decision.allow, decision
    assert rw.stage(member).stage == "active"


def test_refresh_member_recomputes_one_member_at_once(rw, db):
    from app.retention import service

    club = rw.club()
    plan = rw.plan(club)
    member, other = rw.member(club), rw.member(club)
    rw.run(club)
    assert rw.stage(member).stage == "prospect"
    rw.membership(club, member, plan, D, sold_at=local(D, 5))
    rw.membership(club, other, plan, D, sold_at=local(D, 5))
    with transaction(db.sessionmaker) as s:
        stage = service.refresh_member(s, club_id=club.id, member_id=member, now=local(D, 10))
    assert stage == "onboarding"
    assert rw.stage(other).stage == "prospect"  # only the one asked for
