"""The placeholder SECRET_KEY never signs anything (issue 16: a link for member 3 forged with
`dev-secret-change-me` unsubscribed them): without a configured key the instance generates one
into DATA_DIR/secret_key (0600) on first start and keeps it across restarts."""
import os
import stat
import threading

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select

from app.core.config import DEV_SECRET, Settings, load_or_create_secret
from app.main import create_app
from app.members.models import Member
from app.retention.unsubscribe import make_token


def _settings(db, data_dir, **kw) -> Settings:
    return Settings(database_url=db.url, _env_file=None, data_dir=data_dir, **kw)


def test_without_a_key_one_is_generated_private_and_kept_across_restarts(tmp_path):
    data = tmp_path / "var"
    first = Settings(_env_file=None, data_dir=data).secret_key
    assert first != DEV_SECRET and len(first) >= 60
    path = data / "secret_key"
    assert path.read_text().strip() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    # a restart (new settings, new app) reads the same key
    assert Settings(_env_file=None, data_dir=data).secret_key == first
    # the placeholder, configured explicitly, counts as no key
    assert Settings(_env_file=None, data_dir=data, secret_key=DEV_SECRET).secret_key == first
    # another instance (another data directory) gets its own
    assert Settings(_env_file=None, data_dir=tmp_path / "other").secret_key != first
    # a configured key is used as it is, and nothing is written for it
    assert Settings(_env_file=None, data_dir=tmp_path / "cfg", secret_key="k" * 40
                    ).secret_key == "k" * 40
    assert not (tmp_path / "cfg").exists()


def test_a_key_file_readable_by_others_is_made_private(tmp_path):
    path = tmp_path / "secret_key"
    path.write_text("s" * 48 + "\n")
    os.chmod(path, 0o644)
    assert Settings(_env_file=None, data_dir=tmp_path).secret_key == "s" * 48
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_unusable_key_file_is_refused(tmp_path):
    (tmp_path / "secret_key").write_text("short\n")
    with pytest.raises(ValidationError, match="no usable key"):
        Settings(_env_file=None, data_dir=tmp_path)


@pytest.mark.parametrize("key", ["", DEV_SECRET])
def test_production_without_a_real_key_refuses_to_start(tmp_path, key):
    with pytest.raises(ValidationError, match="SECRET_KEY must be set"):
        Settings(_env_file=None, data_dir=tmp_path, environment="production", secret_key=key)
    assert not (tmp_path / "secret_key").exists()


@pytest.mark.parametrize("environment", ["production", "Production", " prod "])
def test_a_guessable_key_is_refused_in_production_however_it_is_spelled(tmp_path, environment):
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings(_env_file=None, data_dir=tmp_path, environment=environment, secret_key="x")
    with pytest.raises(ValidationError, match="SECRET_KEY must be set"):
        Settings(_env_file=None, data_dir=tmp_path, environment=environment, secret_key="")
    ok = Settings(_env_file=None, data_dir=tmp_path, environment=environment,
                  secret_key="k" * 40)
    assert ok.environment == "production" and ok.secret_key == "k" * 40


def test_processes_starting_at_once_agree_on_one_key(tmp_path):
    path = tmp_path / "var" / "secret_key"
    keys, start = [], threading.Barrier(8)

    def worker():
        start.wait()
        keys.append(load_or_create_secret(path))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(keys) == 8 and len(set(keys)) == 1
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"]  # no temporary files left


def test_a_link_forged_with_the_placeholder_is_refused_and_real_links_survive_a_restart(
        db, world, tmp_path):
    club = world.club()
    with db.sessionmaker() as s:
        member = Member(club_id=club.id, first_name="Zoë", last_name="Werner",
                        email="zoe@example.com", email_consent=True)
        s.add(member)
        s.commit()
        member_id = member.id
    forged = make_token(DEV_SECRET, club_id=club.id, member_id=member_id)
    with TestClient(create_app(_settings(db, tmp_path))) as c:
        key = c.app.state.settings.secret_key
        assert key != DEV_SECRET
        assert c.get(f"/api/v1/retention/unsubscribe?token={forged}").status_code == 400
        assert c.post(f"/api/v1/retention/unsubscribe?token={forged}").status_code == 400
    with db.sessionmaker() as s:
        assert s.scalar(select(Member.email_consent).where(Member.id == member_id)) is True
    # the instance restarts: a link it signed before still works
    real = make_token(key, club_id=club.id, member_id=member_id)
    with TestClient(create_app(_settings(db, tmp_path))) as c:
        assert c.app.state.settings.secret_key == key
        assert c.post(f"/api/v1/retention/unsubscribe?token={real}").status_code == 200
    with db.sessionmaker() as s:
        assert s.scalar(select(Member.email_consent).where(Member.id == member_id)) is False
