"""The billing run killed with SIGKILL at random moments and run again: every period due is
charged exactly once, invoice numbers have no gap, every invoice is whole (its lines, its
collection, its email), and the day's run ends finished. On SQLite and PostgreSQL.

The run goes in a child process (`python -c`), two payers per chunk with a pause of 0.2 s in
each (16 chunks: over 3.2 s), killed at a random moment within its first 3 s, five times; then
the run is carried on in this process; the expected charges are computed here independently of
`app.dues` (the contract's periods from its start, up to the day plus the pre-notification days).
"""
import os
import random
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from app.core.db import transaction
from app.dues.models import (
    BillingRun,
    Collection,
    Contract,
    DuesSettings,
    Invoice,
    InvoiceLine,
    Mandate,
    Notice,
    Payer,
)
from app.dues.run import run_billing
from app.members.models import Member
from app.memberships.models import Membership, Plan
from app.memberships.rules import add_months

ROOT = Path(__file__).resolve().parents[2]
DAY = date(2027, 4, 1)
PRENOTICE = 5
CHILD = """
import sys, time
from datetime import date
from app.core.db import make_engine, make_sessionmaker
from app.dues.run import run_billing
engine = make_engine(sys.argv[1])
run_billing(make_sessionmaker(engine), club_id=int(sys.argv[2]),
            day=date.fromisoformat(sys.argv[3]), chunk_payers=2,
            on_chunk=lambda n: time.sleep(0.2))
"""


def _arrange(db, club_id: int) -> list[tuple[int, date, str, bool]]:
    """30 payers with one to three contracts each (monthly and 4-weekly, SEPA and desk), sold
    in January and never billed: the run catches up three or four periods each."""
    contracts = []
    with transaction(db.sessionmaker) as s:
        s.add(DuesSettings(club_id=club_id, prenotice_days=PRENOTICE,
                           invoice_number_format="{seq}"))
        plan = Plan(club_id=club_id, name="Flex", duration_months=1, price=Decimal("49.90"))
        s.add(plan)
        s.flush()
        for n in range(30):
            payer = Payer(club_id=club_id, name=f"Payer {n}", email=f"p{n}@example.test")
            s.add(payer)
            s.flush()
            mandate = Mandate(club_id=club_id, payer_id=payer.id, reference=f"M{n}",
                              account_holder=payer.name, iban="DE89370400440532013000",
                              signed_on=date(2027, 1, 1))
            s.add(mandate)
            s.flush()
            for k in range(1 + n % 3):
                start = date(2027, 1, 1 + (n * 7 + k) % 28)
                period = "4weeks" if (n + k) % 4 == 0 else "month"
                member = Member(club_id=club_id, first_name=f"M{n}-{k}", last_name="Test")
                s.add(member)
                s.flush()
                end = add_months(start, 12) - timedelta(days=1)
                membership = Membership(club_id=club_id, member_id=member.id, plan_id=plan.id,
                                        start_date=start, end_date=end, original_end_date=end,
                                        price=Decimal("49.90"))
                s.add(membership)
                s.flush()
                method = "sepa" if n % 2 else "desk"
                contract = Contract(
                    club_id=club_id, membership_id=membership.id, member_id=member.id,
                    payer_id=payer.id, method=method,
                    mandate_id=mandate.id if method == "sepa" else None, period=period,
                    price=Decimal("49.90"), tax_rate=Decimal("19.00"),
                    joining_fee=Decimal("15.00") if k == 0 else Decimal("0.00"),
                    starts_on=start, minimum_months=12, term_end=end, next_due=start)
                s.add(contract)
                s.flush()
                contracts.append((contract.id, start, period, k == 0))
    return contracts


def _expected_keys(contracts) -> list[str]:
    horizon = DAY + timedelta(days=PRENOTICE)
    keys = []
    for contract_id, start, period, joining in contracts:
        i = 0
        while True:
            first = start + timedelta(days=28 * i) if period == "4weeks" else add_months(start, i)
            if first > horizon:
                break
            keys.append(f"dues:{contract_id}:{first.isoformat()}")
            i += 1
        if joining:
            keys.append(f"join:{contract_id}")
    return sorted(keys)


def test_a_billing_run_killed_at_random_moments_charges_every_period_once(db, world, tmp_path):
    club = world.club()
    contracts = _arrange(db, club.id)
    expected = _expected_keys(contracts)
    seed = int(os.environ.get("FITCLUB_KILL_SEED", "20"))
    rng = random.Random(seed)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kills = finished_in_child = 0
    log = tmp_path / "child.log"
    for _ in range(5):
        with open(log, "w") as err:
            child = subprocess.Popen([sys.executable, "-c", CHILD, db.url, str(club.id),
                                      DAY.isoformat()], cwd=ROOT, env=env,
                                     stdout=subprocess.DEVNULL, stderr=err)
        time.sleep(rng.uniform(0.3, 3.0))  # the run takes over 3.2 s: 16 chunks x 0.2 s
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
        child.wait(30)
        if child.returncode == 0:
            finished_in_child += 1
            break
        assert child.returncode == -signal.SIGKILL, log.read_text()[-2000:]
    assert kills >= 1, f"no kill landed (seed {seed})"
    last = run_billing(db.sessionmaker, club_id=club.id, day=DAY, chunk_payers=2)
    with db.sessionmaker() as s:
        keys = sorted(s.scalars(select(InvoiceLine.charge_key)
                                .where(InvoiceLine.club_id == club.id)))
        assert keys == expected, f"seed {seed}"
        numbers = sorted(int(n) for n in s.scalars(select(Invoice.number)))
        assert numbers == list(range(1, len(numbers) + 1)), f"gap in numbers (seed {seed})"
        empty = s.scalar(select(func.count()).select_from(Invoice).where(
            ~select(InvoiceLine.id).where(InvoiceLine.invoice_id == Invoice.id).exists()))
        assert empty == 0
        sepa = s.scalar(select(func.count()).select_from(Invoice)
                        .where(Invoice.method == "sepa"))
        assert s.scalar(select(func.count()).select_from(Collection)) == sepa > 0
        assert s.scalar(select(func.count()).select_from(Notice)) == len(numbers)
        totals = s.execute(select(Invoice.gross, func.sum(InvoiceLine.gross))
                           .join(InvoiceLine, InvoiceLine.invoice_id == Invoice.id)
                           .group_by(Invoice.id, Invoice.gross)).all()
        assert all(gross == lines for gross, lines in totals)
        run = s.scalars(select(BillingRun)).one()
        assert run.finished_at is not None and run.lines == len(expected)
        assert {c.next_due > DAY + timedelta(days=PRENOTICE)
                for c in s.scalars(select(Contract))} == {True}
    print(f"\nbilling kill: seed {seed}, {kills} SIGKILLs, finished in the child: "
          f"{bool(finished_in_child)}, last run carried on: {not last.done_before}, "
          f"{len(numbers)} invoices, {len(expected)} lines")
