"""Importing a club's history: the messy set is refused with every problem named, the clean set
imports, analytics and the front desk see it, and a second import changes nothing."""
import csv
from datetime import date
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.access.models import Visit
from app.analytics import renewals
from app.members import service as members_service
from app.members.models import Member
from app.memberships.models import Freeze, Membership, Plan
from app.retention.models import MemberStage
from app.retention.service import run_club
from app.trainers.models import PtPackage
from tests.analytics import reference
from tests.imports.history.conftest import AS_OF, DATA, add_members, counts


def problems_of(report, severity="error"):
    return sorted((p.file, p.row or 0, p.column) for p in report.problems
                  if p.severity == severity)


# --- the messy set ------------------------------------------------------------------------------

MESSY_ERRORS = [
    ("memberships.csv", 4, "start_date"),  # X3 overlaps X2 (15/03/2025 read day first)
    ("memberships.csv", 5, "member"),  # M999: no such member
    ("memberships.csv", 6, "start_date"),  # 30 February
    ("memberships.csv", 7, "membership_id"),  # X1 twice
    ("memberships.csv", 8, "plan"),  # no such plan
    ("memberships.csv", 9, "end_date"),  # ends before it starts
    ("plans.csv", 4, "Tarif-ID"),  # P2 twice (semicolons, German headers, decimal commas)
    ("visits.csv", 4, "member"),  # M999
    ("visits.csv", 5, "occurred_at"),  # "yesterday"
]  # visits.csv row 7 is in the future: skipped with one warning (refused with future_visits)


def test_a_messy_set_is_checked_in_a_dry_run_every_problem_named_and_nothing_written(
        db, session, club, run):
    add_members(db, club.id, ["M001", "M002", "M003"])
    before = counts(session)
    session.rollback()

    report = run(DATA / "messy", dry_run=True)

    assert problems_of(report) == sorted(MESSY_ERRORS)
    assert problems_of(report, "warning") == [("visits.csv", 0, "occurred_at"),  # 1 future
                                              ("visits.csv", 6, "occurred_at")]  # no membership
    overlap = next(p for p in report.problems if p.row == 4 and p.file == "memberships.csv")
    assert "overlaps membership X2" in overlap.message and "row 3" in overlap.message
    files = {f.file: f for f in report.files.values()}
    assert (files["plans.csv"].rows, files["plans.csv"].new, files["plans.csv"].errors) == (3, 2, 1)
    assert (files["memberships.csv"].new, files["memberships.csv"].errors) == (2, 6)
    assert (files["visits.csv"].rows, files["visits.csv"].errors) == (6, 2)
    assert files["visits.csv"].skipped == 1
    assert report.status == "checked" and not report.written
    assert "dry run: nothing was written" in report.summary()
    assert counts(session) == before


def test_all_or_nothing_with_errors_writes_nothing(db, session, club, run):
    add_members(db, club.id, ["M001", "M002", "M003"])
    before = counts(session)
    session.rollback()

    report = run(DATA / "messy")

    assert not report.written and report.status == "failed"
    assert "nothing was written" in report.summary()
    assert counts(session) == before


def test_skip_bad_imports_the_good_rows_and_the_fixed_rejects_import_cleanly(
        db, session, club, run, copy_of, tmp_path):
    add_members(db, club.id, ["M001", "M002", "M003"])
    rejects = tmp_path / "rejects"

    report = run(DATA / "messy", skip_bad=True, rejects_dir=rejects)

    assert report.written and report.status == "imported_with_skips"
    ms = session.scalars(select(Membership).order_by(Membership.start_date)).all()
    assert [(m.external_ref, m.start_date, m.end_date) for m in ms] == [
        ("X1", date(2025, 2, 1), date(2025, 2, 28)), ("X2", date(2025, 3, 1), date(2025, 3, 31))]
    assert ms[1].renews_id == ms[0].id  # started the day after X1 ended
    assert session.query(Visit).count() == 2  # the duplicate instant once; M002's outside one
    with open(rejects / "memberships.rejects.csv", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    assert rows[0][-1] == "problem" and [r[0] for r in rows[1:]] == ["X3", "X4", "X5", "X1",
                                                                     "X7", "X8"]
    session.rollback()

    # fix the rejected memberships and import only them
    fixed = tmp_path / "fixed"
    fixed.mkdir()
    with open(fixed / "memberships.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(rows[0][:-1])
        out.writerow(["X3", "M001", "P1", "01/04/2025", "30/04/2025", "49.90"])
        out.writerow(["X6", "M002", "P1", "2025-05-01", "2025-05-31", "49.90"])
    again = run(fixed)
    assert again.written and again.errors == 0
    assert session.scalar(select(Membership.renews_id).where(Membership.external_ref == "X3")) \
        == ms[1].id


# --- the clean set ------------------------------------------------------------------------------

def csv_renewal_figures(grace: int, as_of: date, lo: date, hi: date) -> dict:
    """Renewal counts computed straight from memberships.csv (dates and cancellations only),
    with the plain-Python definitions of tests/analytics/reference.py."""
    plans = {"P1": 1, "P2": 12, "P3": None}
    rows = []
    with open(DATA / "clean" / "memberships.csv") as f:
        for n, r in enumerate(csv.DictReader(f)):
            start = date.fromisoformat(r["start_date"])
            end = (date.fromisoformat(r["end_date"]) if r["end_date"] else
                   reference.add_months(start, plans[r["plan"]]) - reference.D1
                   if plans[r["plan"]] else start + reference.D1 * 89)
            rows.append(SimpleNamespace(id=n, member_id=r["member"], plan_id=r["plan"],
                                        start_date=start, end_date=end,
                                        cancelled_on=date.fromisoformat(r["cancelled_on"])
                                        if r["cancelled_on"] else None))
    raw = reference.Raw(0, ZoneInfo("Europe/Berlin"), grace, {}, memberships=rows)
    return reference.tally(reference.ended(raw, as_of, lo, hi))


def test_a_clean_set_imports_and_the_club_works_from_day_one(db, session, club, run):
    report = run(DATA / "clean")

    assert report.written and report.status == "imported", report.summary()
    assert report.errors == 0 and report.warnings == 0, report.problems
    created = {f.kind: f.created for f in report.files.values()}
    assert created == {"members": 6, "staff": 2, "plans": 3, "memberships": 10, "freezes": 1,
                       "pt_packages": 1, "visits": 16}

    # the front desk sees the current membership and the visits left
    ids = dict(session.execute(select(Member.external_ref, Member.id)).all())
    detail = members_service.member_detail(session, club_id=club.id, member_id=ids["M004"],
                                           as_of=AS_OF)
    assert detail["membership"]["status"] == "active"
    assert detail["membership"]["plan_name"] == "10-Visit Card"
    assert detail["membership"]["visits_left"] == 4
    assert detail["membership"]["end_date"] == date(2026, 7, 29)  # 90 days from the plan
    anna = members_service.member_detail(session, club_id=club.id, member_id=ids["M001"],
                                         as_of=AS_OF)
    assert (anna["membership"]["status"], anna["membership"]["plan_name"]) == ("active", "Monthly")

    # renewals: named by dates (gap ≤ 31 days), price paid kept, cancellation mapped
    ms = {m.external_ref: m for m in session.scalars(select(Membership))}
    assert ms["A2"].renews_id == ms["A1"].id and ms["A3"].renews_id == ms["A2"].id
    assert ms["B2"].renews_id == ms["B1"].id and ms["B3"].renews_id is None  # 70 days later
    assert ms["A2"].price == 449 and ms["A2"].sale_id is None
    assert (ms["C1"].cancelled_on, ms["C1"].cancel_reason) == (date(2025, 9, 15), "moved_away")
    assert session.scalar(select(Freeze.membership_id)) == ms["A2"].id
    package = session.scalar(select(PtPackage))
    assert (package.sessions_total, package.sessions_left, package.trainer_id is not None) == \
        (10, 3, True)
    visits = session.scalars(select(Visit).order_by(Visit.occurred_at)).all()
    assert all(v.membership_id is not None for v in visits)
    plan = session.scalar(select(Plan).where(Plan.external_ref == "P3"))
    assert plan.visit_limit == 10

    # analytics over the imported history = the same figures computed from the CSV rows
    grace = 30
    for lo, hi in [(date(2025, 1, 1), date(2026, 6, 15)), (date(2025, 1, 1), date(2025, 12, 31)),
                   (date(2026, 1, 1), date(2026, 6, 15))]:
        got = renewals.renewal_report(session, club_id=club.id, as_of=AS_OF, date_from=lo,
                                      date_to=hi).totals
        want = csv_renewal_figures(grace, AS_OF, lo, hi)
        assert (got.ended, got.renewed, got.in_grace, got.lost, got.renewal_rate) == (
            want["ended"], want["renewed"], want["in_grace"], want["lost"],
            want["renewal_rate"]), (lo, hi)
    session.rollback()

    # the retention engine's daily run places every imported member in a stage (members are
    # known to it from when they were recorded, so the run is today's)
    with db.sessionmaker() as s:
        run_club(s, club_id=club.id, force=True)
        s.commit()
    stages = dict(session.execute(select(MemberStage.member_id, MemberStage.stage)).all())
    assert set(stages) == set(ids.values())
    assert stages[ids["M006"]] == "prospect"  # never had a membership
    assert {stages[ids[m]] for m in ("M001", "M002", "M003", "M004", "M005")} <= {"lapsed",
                                                                                 "lost"}


def test_a_second_import_of_the_same_files_changes_nothing(db, session, club, run):
    run(DATA / "clean")
    before = counts(session)
    session.rollback()

    checked = run(DATA / "clean", dry_run=True)
    again = run(DATA / "clean")

    assert all(f.new == 0 for f in checked.files.values() if f.kind != "visits")
    assert again.written and again.errors == 0
    assert {f.kind: f.created for f in again.files.values()} == {
        "members": 0, "staff": 0, "plans": 0, "memberships": 0, "freezes": 0, "pt_packages": 0,
        "visits": 0}
    assert next(f for f in again.files.values() if f.kind == "visits").existing == 16
    assert counts(session) == before
