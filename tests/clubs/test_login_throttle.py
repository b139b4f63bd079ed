"""Issue 16, item 7: sign-in failures. Unknown emails and locked accounts answer exactly like a
wrong password; a stranger's guesses do not lock the real user out from elsewhere; failures are
counted per client address in the database (429 over the limit, old windows expire); the account's
counter is one guarded UPDATE in its own transaction, so parallel guesses are all counted."""
import re
import threading
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.clubs import service as clubs_service
from app.clubs.models import LoginFailure, StaffUser
from app.clubs.schemas import Role
from app.core.db import transaction
from app.core.errors import Unauthorized
from tests.builders import PASSWORD

URL = "/api/v1/auth/token"


def attempt(client, email: str, password: str):
    return client.post(URL, data={"username": email, "password": password})


@pytest.fixture
def stranger(app):
    with TestClient(app, client=("198.51.100.7", 40000)) as c:
        yield c


@pytest.fixture
def real_user_client(app):
    with TestClient(app, client=("203.0.113.20", 40001)) as c:
        yield c


def test_unknown_emails_and_locked_accounts_answer_like_a_wrong_password(
        stranger, world, monkeypatch):
    staff = world.staff(world.club(), Role.front_desk)
    checked = []
    real_verify = clubs_service.verify_password
    monkeypatch.setattr(clubs_service, "verify_password",
                        lambda h, p: checked.append(h) or real_verify(h, p))
    wrong = attempt(stranger, staff.email, "not the password")
    unknown = attempt(stranger, "nobody@nowhere.example", "not the password")
    for _ in range(4):
        attempt(stranger, staff.email, "still not it")
    locked = attempt(stranger, staff.email, PASSWORD)  # right password, locked account
    for answer in (wrong, unknown, locked):
        assert answer.status_code == 401
        assert answer.json() == wrong.json()
        assert answer.json()["error"] == "invalid_credentials"
    assert len(checked) == 7  # one argon2 verification per attempt, unknown email included


def test_a_strangers_guesses_do_not_lock_the_real_user_out_from_elsewhere(
        stranger, real_user_client, world, db):
    staff = world.staff(world.club(), Role.front_desk)
    for _ in range(clubs_service.MAX_FAILED_LOGINS * 2):
        assert attempt(stranger, staff.email, "guess guess").status_code == 401
    with transaction(db.sessionmaker) as s:
        assert s.get(StaffUser, staff.user_id).locked_until is not None
    assert attempt(stranger, staff.email, PASSWORD).status_code == 401  # the guesser: locked
    r = attempt(real_user_client, staff.email, PASSWORD)
    assert r.status_code == 200, r.text  # the real user, from their own address


def test_too_many_failures_from_one_address_answer_429_then_expire(
        stranger, real_user_client, world, db, clock):
    staff = world.staff(world.club(), Role.front_desk)
    for n in range(clubs_service.ADDRESS_LIMIT):  # spread over many (unknown) emails
        assert attempt(stranger, f"guess{n}@nowhere.example", "x y z").status_code == 401
    r = attempt(stranger, staff.email, PASSWORD)
    assert r.status_code == 429 and r.json()["error"] == "login_throttled"
    assert "this address" in r.json()["message"]
    assert attempt(real_user_client, staff.email, PASSWORD).status_code == 200
    with transaction(db.sessionmaker) as s:
        rows = s.execute(select(LoginFailure.address, LoginFailure.failures)).all()
    assert [r.failures for r in rows] == [clubs_service.ADDRESS_LIMIT]
    assert "198.51.100.7" not in rows[0].address  # a digest, not the address
    clock.advance(clubs_service.ADDRESS_WINDOW + timedelta(minutes=1))
    assert attempt(stranger, staff.email, PASSWORD).status_code == 200
    assert attempt(real_user_client, "someone@nowhere.example", "x y z").status_code == 401
    with transaction(db.sessionmaker) as s:  # the old window's row is gone
        assert s.scalar(select(func.count()).select_from(LoginFailure)) == 1


def test_parallel_wrong_guesses_are_all_counted(db, world):
    """PostgreSQL, threads: a read-increment-write in Python loses some; one guarded UPDATE in
    its own transaction counts each."""
    if not db.is_postgres:
        pytest.skip("row locks and real parallel transactions: PostgreSQL")
    staff = world.staff(world.club(), Role.front_desk)
    guesses = clubs_service.MAX_FAILED_LOGINS - 1
    barrier = threading.Barrier(guesses)
    errors: list[BaseException] = []

    def guess(n: int) -> None:
        try:
            with db.sessionmaker() as s:
                s.execute(select(StaffUser.failed_logins).where(StaffUser.id == staff.user_id))
                barrier.wait(timeout=30)
                try:
                    clubs_service.login(s, email=staff.email, password=f"wrong {n}",
                                        ttl=timedelta(hours=1), address="192.0.2.1")
                except Unauthorized:
                    pass
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(guesses)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    with transaction(db.sessionmaker) as s:
        user = s.get(StaffUser, staff.user_id)
        assert user.failed_logins == guesses and user.locked_until is None
        assert s.scalar(select(LoginFailure.failures)) == guesses
    with db.sessionmaker() as s, pytest.raises(Unauthorized):  # the fifth in a row locks
        clubs_service.login(s, email=staff.email, password="wrong again",
                            ttl=timedelta(hours=1), address="192.0.2.1")
    with transaction(db.sessionmaker) as s:
        user = s.get(StaffUser, staff.user_id)
        assert user.failed_logins == 0 and user.locked_until is not None


def test_a_failed_sign_in_is_kept_although_the_request_is_rolled_back(stranger, world, db):
    """No router commits for the counter any more: the count lives in its own transaction."""
    staff = world.staff(world.club(), Role.front_desk)
    attempt(stranger, staff.email, "wrong")
    page = stranger.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    stranger.post("/login", data={"email": staff.email, "password": "wrong", "csrf_token": csrf})
    with transaction(db.sessionmaker) as s:
        assert s.get(StaffUser, staff.user_id).failed_logins == 2
