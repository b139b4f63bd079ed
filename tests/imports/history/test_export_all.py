"""`fitclub export all DIR` writes the history import's layout: export → import into a new club →
the same figures (members, active memberships, visits and revenue per month)."""
from datetime import timedelta

from sqlalchemy import func, select
from typer.testing import CliRunner

from app.clubs import service as clubs_service
from app.clubs.models import Club
from app.imports.history.figures import club_figures
from app.memberships.models import Freeze, Membership
from app.trainers.models import PtPackage
from tests.imports.history.conftest import DATA


def figures(session, club_id):
    club = session.get(Club, club_id)
    return club_figures(session, club_id=club_id, today=clubs_service.club_today(club),
                        zone=clubs_service.club_zone(club)).as_dict()


def test_export_all_then_import_into_a_new_club_gives_the_same_figures(
        cli, db, session, world, club, run, tmp_path):
    first = run(DATA / "clean")  # the old system's history …
    assert first.written and first.errors == 0
    native = world.member(club, "Nina", "Native")  # … and what was done in fitclub since
    today = clubs_service.club_today(club)
    plan = world.plan(club, "Native plan", months=1, price=30)
    membership = world.membership(club, native, plan, today - timedelta(days=3), months=1)
    world.visits(club, native, [today - timedelta(days=2), today - timedelta(days=1)],
                 membership=membership)
    session.rollback()
    before = figures(session, club.id)
    session.rollback()

    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["export", "all", str(out), "--club", str(club.id)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{k}.csv" for k in ("members", "staff", "plans", "memberships", "freezes",
                             "pt_packages", "visits"))

    new = world.club("New Club")
    report = run(out, club_id=new.id)
    assert report.errors == 0 and report.written, [p for p in report.problems
                                                   if p.severity == "error"]
    after = figures(session, new.id)
    assert after == before
    assert before["members"] == 7 and before["active_memberships"] >= 1
    assert sum(before["visits_per_month"].values()) == 18
    for model in (Membership, Freeze, PtPackage):
        assert session.scalar(select(func.count()).select_from(model).where(
            model.club_id == new.id)) == session.scalar(
            select(func.count()).select_from(model).where(model.club_id == club.id))
    session.rollback()

    again = run(out, club_id=new.id)  # and importing it again creates nothing twice
    # (staff.csv: the old club's staff have accounts, so each run invites them again)
    assert {f.file: f.created for f in again.files.values() if f.created} == {"staff.csv": 2}


def test_export_all_of_a_missing_club_is_a_clear_error(cli, tmp_path):
    result = CliRunner().invoke(cli, ["export", "all", str(tmp_path / "x"), "--club", "999999"])
    assert result.exit_code == 2 and "error:" in result.output
