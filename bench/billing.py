"""The daily billing run (app.dues.run) against the "scan floor", on PostgreSQL.

    python -m bench.billing [--contracts 100000] [--url URL] [--keep]

1. creates a fresh PostgreSQL database (admin URL: FITCLUB_BENCH_PG_URL) and builds, in a child
   process (so this process's peak memory is the run's alone), one club with `--contracts`
   recurring monthly contracts: a payer, a member and a membership each, 70 % paid by SEPA
   (a mandate each), 20 % by card, 10 % at the desk; every contract's next period starts on one
   of the 30 days after the first run's horizon, so each day's run has a typical day's share
   (1/30) due;
2. times **the typical day**: the run of the day (terms roll, ~3,300 contracts charged:
   invoices, lines, collections, emails), then **the catch-up day** 30 days later — a scheduler
   down for a month: every contract is due (100,000 invoices in one run);
3. times the **scan floor** before each run: one aggregate over the contracts due
   (`SELECT count(*), sum(price) ... WHERE next_due <= horizon`), best of three; and the
   **write floor**: the run's writes (invoice, line, collection, email per contract due, next
   due day) as one set-based SQL statement each, rolled back, best of three;
4. prints the run seconds, floor seconds, the ratio (goal <= 3x), the run's absolute time
   (goal < 60 s) and the peak RSS of this process (goal < 300 MB).

5. the pain.008 collection file for 50,000 debits (`bench.sepa_file`: built and validated
   against the XSD by `app.dues.sepa_file.build_file`; goal < 10 s).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from datetime import date, timedelta

from bench import sepa_file
from bench.common import fresh_database, machine, peak_rss_mb, table, verdict

RATIO_GOAL = 3.0
SECONDS_GOAL = 60.0
MEMORY_GOAL_MB = 300.0
DAY = date(2027, 3, 1)
PRENOTICE = 5
BATCH = 10_000


def _build(url: str, contracts: int) -> None:
    subprocess.run([sys.executable, "-m", "bench.billing", "--build-only", "--url", url,
                    "--contracts", str(contracts)], check=True)


def _insert_ids(conn, table_, rows) -> list[int]:
    from sqlalchemy import insert

    return list(conn.execute(insert(table_).returning(table_.c.id, sort_by_parameter_order=True),
                             rows).scalars())


def build(url: str, contracts: int) -> None:
    """The club and its contracts (Core inserts in batches; ids returned in order)."""
    from decimal import Decimal

    from app.clubs import service as clubs_service
    from app.core import clock
    from app.core.db import make_engine, make_sessionmaker, transaction
    from app.dues.models import Contract, DuesSettings, Mandate, Payer, StoredCard
    from app.members.models import Member
    from app.memberships.models import Membership, Plan
    from app.memberships.rules import add_months

    started = time.perf_counter()
    engine = make_engine(url)
    with transaction(make_sessionmaker(engine)) as s:
        club = clubs_service.create_club(s, name="Bench Billing", timezone="Europe/Berlin")
        s.add(DuesSettings(club_id=club.id, legal_name="Bench Billing GmbH",
                           vat_registered=True, creditor_id="DE98ZZZ09999999999",
                           prenotice_days=PRENOTICE))
        plan = Plan(club_id=club.id, name="Flex", duration_months=1, price=Decimal("49.90"),
                    billing="recurring", billing_period="month")
        s.add(plan)
        s.flush()
        club_id, plan_id = club.id, plan.id
    now, price = clock.now(), Decimal("49.90")
    for first in range(0, contracts, BATCH):
        n = range(first, min(first + BATCH, contracts))
        with engine.begin() as conn:
            members = _insert_ids(conn, Member.__table__, [
                {"club_id": club_id, "first_name": f"M{i}", "last_name": "Bench",
                 "email": f"m{i}@example.test", "created_at": now, "updated_at": now}
                for i in n])
            payers = _insert_ids(conn, Payer.__table__, [
                {"club_id": club_id, "member_id": m, "name": f"M{i} Bench",
                 "email": f"m{i}@example.test", "created_at": now, "updated_at": now}
                for i, m in zip(n, members, strict=True)])
            nxt = [DAY + timedelta(days=PRENOTICE + i % 30) for i in n]
            starts = [add_months(d, -3) for d in nxt]
            ends = [add_months(s_, 12) - timedelta(days=1) for s_ in starts]
            memberships = _insert_ids(conn, Membership.__table__, [
                {"club_id": club_id, "member_id": m, "plan_id": plan_id, "start_date": st,
                 "end_date": e, "original_end_date": e, "price": price, "visits_used": 0,
                 "created_at": now, "updated_at": now}
                for m, st, e in zip(members, starts, ends, strict=True)])
            methods = ["sepa" if i % 10 < 7 else "card" if i % 10 < 9 else "desk" for i in n]
            sepa = [(i, p) for i, p, m in zip(n, payers, methods, strict=True) if m == "sepa"]
            mandate_ids = dict(zip([i for i, _ in sepa], _insert_ids(conn, Mandate.__table__, [
                {"club_id": club_id, "payer_id": p, "reference": f"BENCH-{i}",
                 "account_holder": "Bench", "iban": "DE89370400440532013000",
                 "signed_on": date(2026, 1, 1), "created_at": now, "updated_at": now}
                for i, p in sepa]), strict=True))
            card = [(i, p) for i, p, m in zip(n, payers, methods, strict=True) if m == "card"]
            card_ids = dict(zip([i for i, _ in card], _insert_ids(conn, StoredCard.__table__, [
                {"club_id": club_id, "payer_id": p, "provider": "stripe",
                 "setup_ref": f"cs_{i}", "method_ref": f"pm_{i}", "created_at": now,
                 "updated_at": now} for i, p in card]), strict=True))
            _insert_ids(conn, Contract.__table__, [
                {"club_id": club_id, "membership_id": ms, "member_id": m, "payer_id": p,
                 "payer_relation": "self", "method": meth, "mandate_id": mandate_ids.get(i),
                 "card_id": card_ids.get(i), "period": "month", "price": price,
                 "tax_rate": Decimal("19.00"), "joining_fee": Decimal("0.00"),
                 "starts_on": st, "minimum_months": 12, "notice_value": 1,
                 "notice_unit": "months", "renewal": "monthly", "renewal_months": 1,
                 "term_end": e, "next_due": d, "created_at": now, "updated_at": now}
                for i, m, p, ms, meth, st, e, d in zip(n, members, payers, memberships, methods,
                                                       starts, ends, nxt, strict=True)])
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        from sqlalchemy import text

        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    print(f"built {contracts:,} contracts in {time.perf_counter() - started:.0f}s")


def _floor(factory, club_id: int, horizon: date) -> tuple[float, int]:
    """One aggregate over the contracts due: the least the run could read."""
    from sqlalchemy import func, select

    from app.core.db import transaction
    from app.dues.models import Contract

    stmt = select(func.count(), func.sum(Contract.price)).where(
        Contract.club_id == club_id, Contract.next_due <= horizon)
    best, due = float("inf"), 0
    for _ in range(3):
        with transaction(factory) as s:
            started = time.perf_counter()
            due = s.execute(stmt).one()[0]
            best = min(best, time.perf_counter() - started)
    return best, due


WRITE_FLOOR = """
CREATE TEMP TABLE floor_due ON COMMIT DROP AS
SELECT c.id, c.payer_id, c.member_id, c.method, c.mandate_id, c.card_id, c.price, c.tax_rate,
       c.next_due, p.name AS plan_name, y.name AS payer_name, y.email,
       nextval(pg_get_serial_sequence('dues_invoices', 'id')) AS invoice_id
FROM dues_contracts c JOIN memberships m ON m.id = c.membership_id
JOIN plans p ON p.id = m.plan_id JOIN dues_payers y ON y.id = c.payer_id
WHERE c.club_id = :club AND c.next_due <= :horizon AND m.cancelled_on IS NULL
  AND c.next_due <= m.end_date;
INSERT INTO dues_invoices (id, club_id, payer_id, number, kind, issued_on, due_on, method,
    currency, net, tax, gross, payer_snapshot, seller_snapshot, created_at)
SELECT invoice_id, :club, payer_id, 'FLOOR-' || invoice_id, 'invoice', :day, next_due, method,
    'EUR', price - round(price * tax_rate / (100 + tax_rate), 2),
    round(price * tax_rate / (100 + tax_rate), 2), price,
    json_build_object('name', payer_name, 'email', email), '{}'::json, now()
FROM floor_due;
INSERT INTO dues_invoice_lines (club_id, invoice_id, charge_key, kind, contract_id, member_id,
    description, period_start, period_end, quantity, unit_price, tax_rate, net, tax, gross)
SELECT :club, invoice_id, 'floor:' || id || ':' || next_due, 'dues', id, member_id,
    plan_name || ': ' || to_char(next_due, 'DD.MM.YYYY') || ' – '
        || to_char(next_due + interval '1 month' - interval '1 day', 'DD.MM.YYYY'),
    next_due, (next_due + interval '1 month' - interval '1 day')::date, 1, price, tax_rate,
    price - round(price * tax_rate / (100 + tax_rate), 2),
    round(price * tax_rate / (100 + tax_rate), 2), price
FROM floor_due;
INSERT INTO dues_collections (club_id, invoice_id, payer_id, attempt, method, amount, due_on,
    status, mandate_id, card_id, end_to_end_id, prenotified_on, created_at, updated_at)
SELECT :club, invoice_id, payer_id, 1, method, price, next_due, 'planned', mandate_id, card_id,
    'FL' || invoice_id, :day, now(), now()
FROM floor_due WHERE method IN ('sepa', 'card');
INSERT INTO dues_notices (club_id, payer_id, member_id, kind, key, "to", subject, body,
    created_at, attempts)
SELECT :club, payer_id, member_id, 'invoice', 'floor:' || invoice_id, email,
    'Invoice FLOOR-' || invoice_id, 'Dear ' || payer_name || ', your invoice FLOOR-'
        || invoice_id || ' due ' || to_char(next_due, 'DD.MM.YYYY') || ': ' || price,
    now(), 0
FROM floor_due;
UPDATE dues_contracts c SET next_due = (f.next_due + interval '1 month')::date, updated_at = now()
FROM floor_due f WHERE c.id = f.id
"""


def _write_floor(factory, club_id: int, day: date, horizon: date) -> float:
    """The same writes as the run (an invoice, line, collection and email per contract due, and
    its next due day), each as one set-based statement in SQL, rolled back: the least a run that
    writes them costs on this database. Best of three."""
    from sqlalchemy import text

    best = float("inf")
    for _ in range(3):
        with factory() as s:
            started = time.perf_counter()
            for statement in WRITE_FLOOR.split(";"):
                s.execute(text(statement), {"club": club_id, "day": day, "horizon": horizon})
            best = min(best, time.perf_counter() - started)
            s.rollback()
    return best


def collection_file_hook(factory, club_id: int, collection_date: date
                         ) -> tuple[str, float | None]:
    """The pain.008 file of 50,000 debits, built and validated (`bench.sepa_file`)."""
    seconds, cpu, size = sepa_file.run(50_000)
    label = (f"pain.008 file of 50,000 debits, {size / 1e6:.1f} MB, {cpu:.2f} s CPU "
             f"{verdict(seconds < 10)}")
    return label, seconds


def _bench(url: str) -> int:
    from sqlalchemy import func, select

    from app.core.db import make_engine, make_sessionmaker
    from app.dues.models import Collection, Contract
    from app.dues.run import run_billing

    factory = make_sessionmaker(make_engine(url, pool_size=2, max_overflow=2))
    with factory() as s:
        club_id, contracts = s.execute(select(Contract.club_id, func.count())
                                       .group_by(Contract.club_id)).one()
    print(machine())
    print(f"club {club_id}: {contracts:,} recurring contracts")
    rows, ok = [], True
    for label, day in (("typical day", DAY),
                       ("catch-up day (all due)", DAY + timedelta(days=31))):
        horizon = day + timedelta(days=PRENOTICE)
        floor_s, due = _floor(factory, club_id, horizon)
        write_s = _write_floor(factory, club_id, day, horizon)
        result = run_billing(factory, club_id=club_id, day=day)
        ratio, write_ratio = result.seconds / floor_s, result.seconds / write_s
        ok_run = ratio <= RATIO_GOAL and result.seconds < SECONDS_GOAL
        ok &= ok_run
        rows.append([label, f"{due:,}", result.seconds, floor_s * 1000, f"{ratio:,.0f}x",
                     write_s, f"{write_ratio:.1f}x",
                     (f"{result.invoices:,} invoices, {result.collections:,} collections, "
                      f"{result.renewed:,} renewed"), verdict(ok_run)])
    print(table(["run", "due", "run s", "scan floor ms", "ratio", "write floor s", "ratio",
                 "written", "goal"], rows))
    print("the goal's ratio is to the scan floor (a read); the write floor is the same rows "
          "written by set-based SQL (rolled back)")
    with factory() as s:
        debits = s.scalar(select(func.count()).select_from(Collection)
                          .where(Collection.method == "sepa"))
    label, seconds = collection_file_hook(factory, club_id, DAY + timedelta(days=31))
    took = "" if seconds is None else f": {seconds:.2f}s (goal < 10 s)"
    print(f"{label} ({debits:,} planned SEPA debits){took}")
    rss = peak_rss_mb()
    print(f"run time goal: < {SECONDS_GOAL:.0f} s; ratio goal <= {RATIO_GOAL:.0f}x the floor")
    print(f"peak RSS {rss:.0f} MB (goal < {MEMORY_GOAL_MB:.0f} MB) {verdict(rss < MEMORY_GOAL_MB)}")
    return 0 if ok and rss < MEMORY_GOAL_MB else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contracts", type=int, default=100_000)
    parser.add_argument("--url", help="use this database (built by --build-only) instead")
    parser.add_argument("--keep", action="store_true", help="keep the new database")
    parser.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.build_only:
        build(args.url, args.contracts)
        return 0
    if args.url:
        return _bench(args.url)
    with fresh_database("postgresql", "billing", keep=args.keep) as url:
        _build(url, args.contracts)
        return _bench(url)


if __name__ == "__main__":
    raise SystemExit(main())
