"""`fitclub retention run|simulate|dispatch`."""
from datetime import timedelta

import typer
from typer.testing import CliRunner

from app.retention import cli as retention_cli
from tests.retention.conftest import D


def _app(monkeypatch, db, settings) -> typer.Typer:
    monkeypatch.setattr(retention_cli, "_factory", lambda: (db.sessionmaker, settings))
    app = typer.Typer()
    retention_cli.register(app)
    return app


def test_run_dry_run_prints_and_writes_nothing_then_runs(monkeypatch, db, settings, rw):
    club = rw.club(holdout_share=0)
    member = rw.member(club)
    rw.membership(club, member, rw.plan(club), D)
    app = _app(monkeypatch, db, settings)
    runner = CliRunner()
    r = runner.invoke(app, ["retention", "run", "--club", str(club.id), "--as-of", D.isoformat(),
                            "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "dry run (nothing written)" in r.output and "onboarding 1" in r.output
    assert "would schedule: welcome 1" in r.output
    assert rw.stage(member) is None
    r = runner.invoke(app, ["retention", "run", "--club", str(club.id), "--as-of", D.isoformat()])
    assert r.exit_code == 0 and "scheduled: welcome 1" in r.output
    r = runner.invoke(app, ["retention", "run", "--club", str(club.id), "--as-of", D.isoformat()])
    assert "already run" in r.output
    r = runner.invoke(app, ["retention", "run", "--as-of", "yesterday"])
    assert r.exit_code != 0


def test_simulate_replays_days(monkeypatch, db, settings, rw):
    club = rw.club(holdout_share=0)
    member = rw.member(club)
    rw.membership(club, member, rw.plan(club), D)
    app = _app(monkeypatch, db, settings)
    end = D + timedelta(days=3)
    r = CliRunner().invoke(app, ["retention", "simulate", "--from", D.isoformat(),
                                 "--to", end.isoformat(), "--club", str(club.id)])
    assert r.exit_code == 0, r.output
    assert f"club {club.id}: 4 days" in r.output and "messages sent" in r.output
    assert {key for _, key in rw.touchpoints(member)} >= {"welcome", "intro_session"}
