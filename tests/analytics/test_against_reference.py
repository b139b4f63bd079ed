"""Every report on the demo club (fixed seed and today) against the same figure computed in
plain Python over the raw rows (tests/analytics/reference.py), on SQLite and PostgreSQL."""
from collections import Counter
from datetime import date

import pytest

from app.analytics import service
from tests.analytics import reference as ref

PERIODS = [
    {},  # the default: twelve calendar months up to today
    {"date_from": date(2025, 10, 1), "date_to": date(2026, 3, 31)},
    {"date_from": date(2026, 2, 17), "date_to": date(2026, 9, 30)},  # `to` after today
]


def _period(demo, kw) -> tuple[date, date]:
    hi = min(kw.get("date_to", demo.as_of), demo.as_of)
    lo = kw.get("date_from", ref.add_months(hi.replace(day=1), -11))
    return lo, hi


def _plans(demo) -> list[int]:
    return sorted(demo.raw.plans)


@pytest.fixture
def s(demo):
    with demo.db.sessionmaker() as session:
        yield session


def test_the_data_exercises_every_path(demo):
    """Guard against a dataset too tame to test anything."""
    raw, as_of = demo.raw, demo.as_of
    lo, hi = _period(demo, {})
    outcomes = Counter(o for _, o in ref.ended(raw, as_of, lo, hi))
    assert min(outcomes[k] for k in ("renewed", "in_grace", "lost")) >= 5, outcomes
    assert any(ref.void(m) for m in raw.memberships)
    assert any(m.cancelled_on and m.cancelled_on > m.end_date for m in raw.memberships)
    assert any(m.end_date != m.original_end_date for m in raw.memberships)  # frozen
    bands = ref.breakdown(raw, "attendance", as_of, lo, hi)
    assert len(bands) >= 3, bands
    assert len(ref.breakdown(raw, "trainer", as_of, lo, hi)) >= 3
    assert len(ref.breakdown(raw, "channel", as_of, lo, hi)) >= 4
    assert {r["verdict"] for r in ref.touchpoints(raw, as_of, lo, hi).values()} >= {
        "too few members to tell"}
    assert sum(r["mixed"] for r in ref.touchpoints(raw, as_of, lo, hi).values()) > 0
    survival = ref.survival(raw, as_of)
    assert survival["events"] > 20 and survival["censored"] > 20


@pytest.mark.parametrize("kw", PERIODS)
def test_renewal_rate(demo, s, kw):
    lo, hi = _period(demo, kw)
    report = service.renewal_report(s, club_id=demo.club_id, as_of=demo.as_of, **kw)
    pairs = ref.ended(demo.raw, demo.as_of, lo, hi)
    assert (report.date_from, report.date_to) == (lo, hi)
    assert report.totals.model_dump() == ref.tally(pairs)
    expected = ref.breakdown(demo.raw, "month", demo.as_of, lo, hi)
    assert {r.key: r.model_dump(exclude={"key", "label"}) for r in report.items} == expected
    listed = service.outcomes(s, club_id=demo.club_id, as_of=demo.as_of, **kw)
    assert sorted((o.membership_id, o.outcome) for o in listed) == sorted(
        (m.id, o) for m, o in pairs)


def test_renewal_rate_by_plan_filter(demo, s):
    for plan in _plans(demo):
        report = service.renewal_report(s, club_id=demo.club_id, as_of=demo.as_of,
                                        plan_id=plan)
        lo, hi = _period(demo, {})
        assert report.totals.model_dump() == ref.tally(
            ref.ended(demo.raw, demo.as_of, lo, hi, plan)), plan


@pytest.mark.parametrize("by", ["month", "plan", "cohort", "trainer", "attendance", "stage",
                                "channel"])
@pytest.mark.parametrize("kw", PERIODS[:2])
def test_breakdowns(demo, s, by, kw):
    lo, hi = _period(demo, kw)
    report = service.renewal_breakdown(s, club_id=demo.club_id, as_of=demo.as_of, by=by, **kw)
    expected = ref.breakdown(demo.raw, by, demo.as_of, lo, hi)
    assert {r.key: r.model_dump(exclude={"key", "label"}) for r in report.items} == expected
    assert report.totals.model_dump() == ref.tally(ref.ended(demo.raw, demo.as_of, lo, hi))


def test_breakdown_with_a_plan(demo, s):
    plan = _plans(demo)[0]
    lo, hi = _period(demo, {})
    for by in ("cohort", "attendance", "channel"):
        report = service.renewal_breakdown(s, club_id=demo.club_id, as_of=demo.as_of, by=by,
                                           plan_id=plan)
        expected = ref.breakdown(demo.raw, by, demo.as_of, lo, hi, plan)
        assert {r.key: r.model_dump(exclude={"key", "label"}) for r in report.items} == expected


@pytest.mark.parametrize("kw", PERIODS[:2] + [{"plan_id": "first"}])
def test_touchpoints(demo, s, kw):
    kw = dict(kw)
    if kw.get("plan_id") == "first":
        kw["plan_id"] = _plans(demo)[0]
    lo, hi = _period(demo, kw)
    report = service.touchpoint_effectiveness(s, club_id=demo.club_id, as_of=demo.as_of, **kw)
    expected = ref.touchpoints(demo.raw, demo.as_of, lo, hi, kw.get("plan_id"))
    got = {r.key: r.model_dump(exclude={"definition_id", "key", "name", "stage", "channel",
                                        "enabled"}) for r in report.items}
    assert got == expected


@pytest.mark.parametrize("kw", PERIODS + [{"plan_id": "first"}, {"plan_id": "last"}])
def test_monthly_retention(demo, s, kw):
    kw = dict(kw)
    if kw.get("plan_id") in ("first", "last"):
        kw["plan_id"] = _plans(demo)[0 if kw["plan_id"] == "first" else -1]
    lo, hi = _period(demo, kw)
    report = service.monthly(s, club_id=demo.club_id, as_of=demo.as_of, **kw)
    expected = ref.monthly(demo.raw, demo.as_of, lo, hi, kw.get("plan_id"))
    assert [r.model_dump() for r in report.items] == expected


@pytest.mark.parametrize("kw", PERIODS[:2] + [{"plan_id": "first"}])
def test_cohorts(demo, s, kw):
    kw = dict(kw)
    if kw.get("plan_id") == "first":
        kw["plan_id"] = _plans(demo)[0]
    lo, hi = _period(demo, kw)
    report = service.cohorts(s, club_id=demo.club_id, as_of=demo.as_of, **kw)
    expected = ref.cohorts(demo.raw, demo.as_of, lo, hi, kw.get("plan_id"))
    assert [r.model_dump() for r in report.items] == expected
    assert report.months == max((len(r["still"]) for r in expected), default=0)


@pytest.mark.parametrize("kw", [{}, {"date_from": date(2025, 9, 1)},
                                {"date_from": date(2025, 8, 1), "date_to": date(2026, 1, 31)},
                                {"plan_id": "first"}])
def test_survival(demo, s, kw):
    kw = dict(kw)
    if kw.get("plan_id") == "first":
        kw["plan_id"] = _plans(demo)[0]
    report = service.survival(s, club_id=demo.club_id, as_of=demo.as_of, **kw)
    expected = ref.survival(demo.raw, demo.as_of, kw.get("date_from"), kw.get("date_to"),
                            kw.get("plan_id"))
    got = report.model_dump(include={"spells", "events", "censored", "longest_days",
                                     "median_days", "marks", "items"})
    assert got == expected


def test_before_after(demo, s):
    on = date(2026, 1, 1)
    report = service.before_after(s, club_id=demo.club_id, as_of=demo.as_of, on=on)
    before = ref.tally(ref.ended(demo.raw, demo.as_of, date(2025, 7, 1), date(2025, 12, 31)))
    after = ref.tally(ref.ended(demo.raw, demo.as_of, on, demo.as_of))
    assert [r.model_dump(exclude={"key", "date_from", "date_to"}) for r in report.items] == [
        before, after]
    expected = ref.comparison(after["renewed"], after["renewed"] + after["lost"],
                              before["renewed"], before["renewed"] + before["lost"])
    assert {k: getattr(report, k) for k in expected} == expected


@pytest.mark.parametrize("kw", PERIODS + [{"plan_id": "first"}])
def test_process(demo, s, kw):
    kw = dict(kw)
    if kw.get("plan_id") == "first":
        kw["plan_id"] = _plans(demo)[0]
    lo, hi = _period(demo, kw)
    report = service.process_report(s, club_id=demo.club_id, as_of=demo.as_of, **kw)
    expected = ref.process(demo.raw, demo.as_of, lo, hi, kw.get("plan_id"))
    got = report.model_dump(exclude={"as_of", "date_from", "date_to", "grace_days", "plan_id"})
    assert got == expected


@pytest.mark.parametrize("kw", PERIODS)
def test_kpis(demo, s, kw):
    lo, hi = _period(demo, kw)
    report = service.kpi_report(s, club_id=demo.club_id, as_of=demo.as_of, **kw)
    expected = ref.kpis(demo.raw, demo.as_of, lo, hi)
    got = report.model_dump(include={"leads", "average_check", "average_check_by_kind",
                                     "visit_frequency"})
    assert got == expected
    months = ref.monthly(demo.raw, demo.as_of, lo, hi)
    assert [m.model_dump() for m in report.member_base] == [
        {"month": m["month"], "members_at_start": m["members_at_start"],
         "growth_pct": m["growth_pct"]} for m in months]
