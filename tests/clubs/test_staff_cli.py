"""`fitclub set-password EMAIL`: the operator gives a password (imported staff, a locked-out
owner); the prompt is hidden and asks twice."""
from contextlib import contextmanager

from typer.testing import CliRunner

from app import cli as cli_module
from app.core import db as db_module
from app.core.actors import Role

NEW_PASSWORD = "operator chose this one"


def _runner(monkeypatch, db) -> CliRunner:
    @contextmanager
    def factory():
        yield db.sessionmaker

    monkeypatch.setattr(db_module, "session_factory", factory)
    return CliRunner()


def test_set_password_prompts_twice_clears_the_lockout_and_signs_out(monkeypatch, db, client,
                                                                    world):
    club = world.club()
    owner = world.staff(club, Role.owner)
    for _ in range(5):
        client.post("/api/v1/auth/token", data={"username": owner.email, "password": "wrong"})
    runner = _runner(monkeypatch, db)
    r = runner.invoke(cli_module.cli, ["set-password", owner.email.upper()],
                      input=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")
    assert r.exit_code == 0, r.output
    assert f"password set for user {owner.user_id}" in r.output
    assert NEW_PASSWORD not in r.output  # the prompt does not echo it
    assert client.get("/api/v1/me", headers=owner.headers).status_code == 401
    r = client.post("/api/v1/auth/token", data={"username": owner.email, "password": NEW_PASSWORD})
    assert r.status_code == 200 and r.json()["password_change_required"] is False


def test_set_password_refuses_a_mismatch_a_weak_password_and_an_unknown_email(monkeypatch, db,
                                                                            world):
    owner = world.staff(world.club(), Role.owner)
    runner = _runner(monkeypatch, db)
    r = runner.invoke(cli_module.cli, ["set-password", owner.email],
                      input=f"{NEW_PASSWORD}\nsomething else\n{NEW_PASSWORD}\n{NEW_PASSWORD}\n")
    assert r.exit_code == 0 and "do not match" in r.output.lower(), r.output
    r = runner.invoke(cli_module.cli, ["set-password", owner.email], input="short\nshort\n")
    assert r.exit_code != 0 and "at least 10" in str(r.exception)
    r = runner.invoke(cli_module.cli, ["set-password", "nobody@club.example"],
                      input=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")
    assert r.exit_code != 0 and "No staff user" in str(r.exception)
