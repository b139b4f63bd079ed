"""One clock: the application takes "now" and "today" from `app.core.clock`, and only from it."""
import ast
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from app.clubs import service as clubs_service
from app.core import clock as app_clock
from app.core.actors import Role
from app.core.clock import SettableClock, parse_instant

ROOT = Path(__file__).resolve().parents[2]
BERLIN_LEAP_NIGHT = datetime(2028, 2, 29, 23, 30, tzinfo=UTC)  # 00:30 on 1 March in Berlin


def test_a_settable_clock_starts_where_it_is_told_ticks_and_moves():
    start = datetime(2027, 12, 31, 22, 55, tzinfo=UTC)
    c = SettableClock(start)
    first = c.now()
    assert start <= first < start + timedelta(seconds=5) and c.now() >= first
    c.advance(timedelta(days=1))
    assert start + timedelta(days=1) <= c.now() < start + timedelta(days=1, seconds=5)
    c.set(datetime(2030, 1, 1, 12, tzinfo=UTC))
    assert c.now().date() == date(2030, 1, 1)
    frozen = SettableClock(start, tick=False)
    assert frozen.now() == frozen.now() == start


def test_an_instant_needs_an_offset_or_is_read_as_utc():
    assert parse_instant("2027-03-27T23:40:00+01:00") == datetime(2027, 3, 27, 22, 40, tzinfo=UTC)
    assert parse_instant("2027-03-27T23:40:00") == datetime(2027, 3, 27, 23, 40, tzinfo=UTC)
    assert parse_instant("2027-03-27 23:40", "Europe/Berlin").hour == 22
    try:
        SettableClock(datetime(2027, 1, 1))
    except ValueError as exc:
        assert "offset" in str(exc)
    else:
        raise AssertionError("a naive start instant was accepted")


def test_a_clubs_day_is_the_day_in_its_own_zone(world, clock):
    berlin, utc_club = world.club(timezone="Europe/Berlin"), world.club(timezone="UTC")
    clock.set(BERLIN_LEAP_NIGHT)
    assert clubs_service.club_today(berlin) == date(2028, 3, 1)
    assert clubs_service.club_today(utc_club) == date(2028, 2, 29)
    assert app_clock.today("America/Los_Angeles") == date(2028, 2, 29)
    with world.db.sessionmaker() as session:
        assert clubs_service.club_today_by_id(session, berlin.id) == date(2028, 3, 1)
        assert clubs_service.club_today_by_id(session, utc_club.id) == date(2028, 2, 29)


def test_the_api_takes_its_today_from_the_same_clock_as_the_test(client, world, clock):
    """A sale at 00:30 on 1 March in Berlin starts on 1 March though the UTC date is 29 February
    (the server thread reads the clock the test set)."""
    clock.set(BERLIN_LEAP_NIGHT)
    club = world.club(timezone="Europe/Berlin")
    manager, desk = world.staff(club, Role.manager), world.staff(club, Role.front_desk)
    plan = client.post("/api/v1/plans", headers=manager.headers, json={
        "name": "Monthly", "duration_months": 1, "price": "50.00"})
    member = client.post("/api/v1/members", headers=desk.headers, json={
        "first_name": "Lea", "last_name": "Sprung"})
    assert plan.status_code == member.status_code == 201, (plan.text, member.text)
    plan, member = plan.json(), member.json()
    sold = client.post(f"/api/v1/members/{member['id']}/memberships", headers=desk.headers,
                       json={"plan_id": plan["id"],
                             "payments": [{"method": "cash", "amount": "50.00"}]})
    assert sold.status_code == 201, sold.text
    assert sold.json()["start_date"] == "2028-03-01"
    assert sold.json()["end_date"] == "2028-03-31"


WALL_CLOCK_READS = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"),
                    ("date", "today"), ("time", "time"), ("time", "localtime"),
                    ("time", "gmtime")}
MARK = "# wall-clock:"  # a read that must stay on the machine's clock says why, on its line


def _wall_clock_reads(path: Path) -> list[str]:
    source = path.read_text()
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and (node.func.value.id, node.func.attr) in WALL_CLOCK_READS
                and MARK not in lines[node.lineno - 1]):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    return found


def test_nothing_but_the_clock_reads_the_wall_clock():
    """`datetime.now()`, `date.today()`, `time.time()` appear only in app/core/clock.py (and
    where a line says `# wall-clock:` why it must, e.g. APScheduler's own timebase)."""
    allowed = {ROOT / "app" / "core" / "clock.py"}
    found = [hit for folder in ("app", "tests")
             for path in sorted((ROOT / folder).rglob("*.py")) if path not in allowed
             for hit in _wall_clock_reads(path)]
    assert found == []


SQL_CLOCKS = ("now()", "current_date", "current_timestamp", "localtimestamp", "'now'")


def _sql_clock_reads(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    docstrings = {id(node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id == "func" and node.attr.lower() in
                {"now", "current_date", "current_timestamp", "localtimestamp"}):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: func.{node.attr}")
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and id(node) not in docstrings
              and any(word in node.value.lower() for word in SQL_CLOCKS)):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value[:60]!r}")
    return found


def test_sql_takes_its_instants_from_the_application():
    """The database's own now()/CURRENT_DATE would follow the server's clock, not the test's."""
    found = [hit for folder in ("app", "migrations")
             for path in sorted((ROOT / folder).rglob("*.py")) for hit in _sql_clock_reads(path)]
    assert found == []


def test_a_process_starts_on_a_moved_clock_only_outside_production(monkeypatch):
    monkeypatch.setenv(app_clock.START_ENV, "2027-12-31T23:55:00+01:00")
    with app_clock.use(app_clock.SystemClock()):
        app_clock.install_from_environment("development")
        assert app_clock.now() - datetime(2027, 12, 31, 22, 55, tzinfo=UTC) < timedelta(seconds=5)
        try:
            app_clock.install_from_environment("production")
        except RuntimeError as exc:
            assert "production" in str(exc)
        else:
            raise AssertionError("a moved clock was accepted in production")
