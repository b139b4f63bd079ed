"""The portable SQL of `app.core.sql` gives the same answers on SQLite and PostgreSQL as the
Python rules it mirrors; on SQLite its functions are there on every connection `make_engine`
opens, with no per-query set-up."""
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    literal,
    select,
)

from app.core.sql import (
    add_days,
    add_months,
    add_seconds,
    bulk_insert,
    bulk_insert_new,
    day_start,
    days_between,
    greatest,
    least,
    local_at,
    local_date,
    local_day_start,
    month_day,
    month_start,
    unprepared,
)
from app.core.types import UTCDateTime
from app.memberships.rules import add_months as rule_add_months

BERLIN = ZoneInfo("Europe/Berlin")
DAYS = [date(2027, 1, 31), date(2027, 3, 28), date(2027, 10, 31), date(2028, 2, 29),
        date(2028, 12, 31), date(2030, 5, 15)]


def _day(value: date):
    return literal(value, Date())


def test_date_arithmetic_agrees_with_python(db):
    with db.engine.connect() as conn:
        for d in DAYS:
            for n in (-13, -1, 0, 1, 11, 25):
                got = conn.execute(select(add_months(_day(d), literal(n, Integer())),
                                          add_days(_day(d), literal(n, Integer())),
                                          days_between(_day(d), _day(DAYS[0])),
                                          month_start(_day(d)), month_day(_day(d)))).one()
                assert date.fromisoformat(str(got[0])[:10]) == rule_add_months(d, n), (d, n)
                assert date.fromisoformat(str(got[1])[:10]) == d + timedelta(days=n), (d, n)
                assert got[2] == (d - DAYS[0]).days
                assert date.fromisoformat(str(got[3])[:10]) == d.replace(day=1)
                assert got[4] == d.strftime("%m-%d")


def test_a_club_day_starts_at_the_same_instant_in_sql_and_in_python(db):
    with db.engine.connect() as conn:
        for d in DAYS:
            start, later = conn.execute(select(
                day_start(_day(d), literal(BERLIN.key, String())),
                add_seconds(literal(local_day_start(BERLIN, d), UTCDateTime()),
                            literal(90, Integer())))).one()
            assert start == local_day_start(BERLIN, d) == local_at(BERLIN, d, time(0))
            assert later == local_day_start(BERLIN, d) + timedelta(seconds=90)
            assert local_date(BERLIN, start) == d
            assert conn.execute(select(greatest(_day(d), _day(DAYS[2])),
                                       least(_day(d), _day(DAYS[2])))).one() \
                == (max(d, DAYS[2]), min(d, DAYS[2]))


def test_the_spring_forward_night_is_23_hours_long():
    spring = date(2027, 3, 28)
    assert local_day_start(BERLIN, spring) == datetime(2027, 3, 27, 23, tzinfo=UTC)
    assert (local_day_start(BERLIN, spring + timedelta(days=1))
            - local_day_start(BERLIN, spring)) == timedelta(hours=23)


def test_bulk_insert_writes_the_same_rows_on_both_backends(session):
    probe = Table("bulk_insert_probe", MetaData(), Column("id", BigInteger, primary_key=True),
                  Column("n", Integer), Column("label", String(20)), Column("day", Date),
                  Column("at", UTCDateTime()), prefixes=["TEMPORARY"])
    probe.create(session.connection())
    at = datetime(2027, 3, 28, 1, 30, tzinfo=UTC)
    rows = [{"id": i, "n": i * 7 if i % 3 else None, "label": f"row {i}" if i % 4 else None,
             "day": DAYS[i % len(DAYS)], "at": at + timedelta(hours=i)} for i in range(1, 2001)]
    bulk_insert(session, probe, rows)
    bulk_insert(session, probe, [])
    got = [dict(r._mapping) for r in session.execute(select(probe).order_by(probe.c.id))]
    assert got == rows


def test_bulk_insert_new_skips_rows_whose_key_exists(session):
    probe = Table("bulk_insert_new_probe", MetaData(),
                  Column("id", Integer, primary_key=True, autoincrement=True),
                  Column("member", Integer), Column("cycle", String(20)), Column("day", Date),
                  UniqueConstraint("member", "cycle"), prefixes=["TEMPORARY"])
    probe.create(session.connection())
    key = [probe.c.member, probe.c.cycle]
    first = [{"member": i, "cycle": "a", "day": DAYS[0]} for i in range(1, 6)]
    bulk_insert_new(session, probe, first, key)
    again = [{"member": i, "cycle": c, "day": DAYS[1]} for i in range(3, 9) for c in ("a", "b")]
    bulk_insert_new(session, probe, again, key)
    bulk_insert_new(session, probe, [], key)
    got = {(r.member, r.cycle): r.day for r in session.execute(select(probe))}
    expected = {(i, "a"): DAYS[0] for i in range(1, 6)}
    for i in range(3, 9):
        expected.setdefault((i, "a"), DAYS[1])
        expected[(i, "b")] = DAYS[1]
    assert got == expected


def test_unprepared_turns_the_drivers_prepared_statements_off_and_back_on(db, session):
    raw = session.connection().connection.driver_connection
    before = raw.prepare_threshold if db.is_postgres else None
    for _ in range(2):
        with unprepared(session):
            assert session.execute(select(literal(1, Integer()))).scalar() == 1
            if db.is_postgres:
                assert raw.prepare_threshold is None
    if db.is_postgres:
        assert before is not None and raw.prepare_threshold == before
