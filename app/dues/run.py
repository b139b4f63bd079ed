"""The daily billing run: roll terms, charge the periods due, plan collections, queue emails.

`run_billing(factory, club_id=, day=)` runs once per club and day, recorded by a `BillingRun`
row (unique per club and day): a finished run is not redone; an unfinished one (killed midway)
is carried on by the next call. The work is done in chunks, each its own transaction that first
locks the run row (so two runs at once take turns chunk by chunk) and then re-reads what is
still due: a kill loses at most the chunk in flight, which rolls back whole (invoice numbers
included, so they stay gap-free), and the charge keys make a re-run charge nothing twice.

1. **Terms roll**: a running, uncancelled contract whose last day to give notice for the current
   term has passed (`terms.renews_by`) renews — by `renewal_months` (renewal `term`) or one
   month (`monthly`) — and its membership's end date follows.
2. **Charges**: every contract whose next period starts on or before day + the club's
   pre-notification days (and within the contract and membership) is charged, period by period
   (catching up missed ones): one invoice per payer, due date (the period start) and collection
   method; the joining fee on the first; periods starting inside a freeze are skipped when the
   club's freezes move billing; the payer's members' sales charged to account join the payer's
   first invoice of the run and are settled on the sale with the method `account`.
3. **Collections**: a planned collection per new SEPA or card invoice (desk invoices get none).
4. **Emails**: the invoice email per invoice; for SEPA it is the pre-notification too.
"""
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.billing.models import Payment, Sale, SaleLine
from app.core import clock
from app.core.db import transaction
from app.dues import bulk, invoicing, notices, terms
from app.dues.invoicing import Draft, Issued, LineIn
from app.dues.models import BillingRun, Collection, Contract, Mandate, Payer
from app.memberships.models import Freeze, Membership, Plan

CHUNK_PAYERS = 1000
ROLL_CHUNK = 5000
SALE_KINDS = {"membership": "membership", "pt_package": "pt", "product": "cafe"}
"""A sale charged to account goes on the invoice as the kind of its lines (mixed: cafe)."""

ChunkHook = Callable[[int], None]


@dataclass
class RunResult:
    club_id: int
    day: date
    invoices: int = 0
    lines: int = 0
    renewed: int = 0
    collections: int = 0
    notices: int = 0
    chunks: int = 0
    done_before: bool = False
    """The run of this club and day had finished before: nothing was done."""
    seconds: float = 0.0


@dataclass
class _Context:
    club_id: int
    day: date
    run_id: int
    horizon: date
    freeze_moves_billing: bool
    sale_tax_rate: Decimal
    creditor_id: str | None
    seller: str
    result: RunResult = field(repr=False, default=None)


def run_billing(factory: sessionmaker[Session], *, club_id: int, day: date,
                chunk_payers: int = CHUNK_PAYERS, on_chunk: ChunkHook | None = None) -> RunResult:
    """The club's billing run for `day`, once: see the module docstring.

    `on_chunk(n)` is called inside the n-th chunk's transaction just before it commits (tests
    inject a failure there, as a kill would).
    """
    started = time.perf_counter()
    result = RunResult(club_id=club_id, day=day)
    ctx = _claim(factory, club_id=club_id, day=day, result=result)
    if ctx is None:
        result.done_before = True
        return result
    chunk = 0
    while True:  # roll terms in chunks until none is left to roll
        with transaction(factory) as s:
            if not _lock_run(s, ctx):
                return _done(result, started)
            rolled = _roll_terms(s, ctx)
            chunk += 1
            if on_chunk:
                on_chunk(chunk)
        result.renewed += rolled
        if rolled < ROLL_CHUNK:
            break
    with factory() as s:
        payers = _due_payers(s, ctx)
    for i in range(0, len(payers), chunk_payers):
        part = payers[i:i + chunk_payers]
        with transaction(factory) as s:
            if not _lock_run(s, ctx):
                return _done(result, started)
            _charge(s, ctx, lo=part[0], hi=part[-1])
            chunk += 1
            if on_chunk:
                on_chunk(chunk)
    with transaction(factory) as s:
        if _lock_run(s, ctx):
            s.execute(update(BillingRun).where(BillingRun.id == ctx.run_id)
                      .values(finished_at=clock.now()))
    result.chunks = chunk
    return _done(result, started)


def _done(result: RunResult, started: float) -> RunResult:
    result.seconds = time.perf_counter() - started
    return result


def _claim(factory: sessionmaker[Session], *, club_id: int, day: date,
           result: RunResult) -> _Context | None:
    """The run row of the club and day (written if new); None when that run had finished."""
    with transaction(factory) as s:
        of_day = select(BillingRun).where(BillingRun.club_id == club_id, BillingRun.day == day)
        run = s.scalars(of_day).first()
        if run is None:
            try:
                with s.begin_nested():
                    run = BillingRun(club_id=club_id, day=day, started_at=clock.now(),
                                     invoices=0, lines=0)
                    s.add(run)
                    s.flush()
            except IntegrityError:  # a concurrent run of the same day wrote it first
                run = s.scalars(of_day).one()
        if run.finished_at is not None:
            return None
        settings = terms.settings_for(s, club_id)
        seller = invoicing.seller_snapshot(s, club_id)["name"]
        return _Context(club_id=club_id, day=day, run_id=run.id,
                        horizon=day + timedelta(days=settings.prenotice_days or 0),
                        freeze_moves_billing=bool(settings.freeze_moves_billing),
                        sale_tax_rate=Decimal(settings.default_tax_rate or 0),
                        creditor_id=settings.creditor_id, seller=seller, result=result)


def _lock_run(session: Session, ctx: _Context) -> bool:
    """Lock the run row for this chunk (two runs at once take turns); False once finished."""
    finished = session.execute(select(BillingRun.finished_at).where(BillingRun.id == ctx.run_id)
                               .with_for_update()).one()[0]
    return finished is None


def _running(club_id: int):
    """Contracts that run on: not cancelled, and their membership not cancelled."""
    return (Contract.club_id == club_id, Contract.cancel_received_on.is_(None),
            Contract.ends_on.is_(None), Membership.cancelled_on.is_(None))


def _rolling(session: Session, club_id: int, day: date) -> list:
    """Per notice period of the running contracts: its term ends before notice given on `day`
    would run out (the notice day for the term has passed)."""
    pairs = session.execute(
        select(Contract.notice_value, Contract.notice_unit).distinct()
        .join(Membership, Membership.id == Contract.membership_id)
        .where(*_running(club_id))).all()
    return [and_(Contract.notice_value == value, Contract.notice_unit == unit,
                 Contract.term_end < terms.after_notice(day, value, unit))
            for value, unit in pairs]


def _roll_terms(session: Session, ctx: _Context) -> int:
    """Renew up to ROLL_CHUNK contracts whose notice day for the term has passed; how many."""
    conditions = _rolling(session, ctx.club_id, ctx.day)
    if not conditions:
        return 0
    rows = session.execute(
        select(Contract.id, Contract.membership_id, Contract.starts_on, Contract.term_end,
               Contract.renewal, Contract.renewal_months, Contract.notice_value,
               Contract.notice_unit)
        .join(Membership, Membership.id == Contract.membership_id)
        .where(*_running(ctx.club_id), or_(*conditions))
        .order_by(Contract.id).limit(ROLL_CHUNK)).all()
    changes, now = [], clock.now()
    for row in rows:
        step = (row.renewal_months or 1) if row.renewal == "term" else 1
        end = row.term_end
        while terms.renews_by(ctx.day, end, row.notice_value, row.notice_unit):
            end = terms.next_term_end(row.starts_on, end, step)
        changes.append({"cid": row.id, "mid": row.membership_id, "end": end, "at": now})
    bulk.update_rows(session, Contract, changes, key="cid",
                     columns={"term_end": "end", "updated_at": "at"})
    bulk.update_rows(session, Membership, changes, key="mid",
                     columns={"end_date": "end", "updated_at": "at"})
    return len(changes)


def _due(club_id: int, horizon: date):
    return (*_running_or_ending(club_id), Contract.next_due <= horizon,
            Contract.next_due <= Membership.end_date,
            or_(Contract.ends_on.is_(None), Contract.next_due <= Contract.ends_on))


def _running_or_ending(club_id: int):
    """Contracts still billed: a cancelled contract is billed up to its end date."""
    return (Contract.club_id == club_id, Membership.cancelled_on.is_(None))


def _due_payers(session: Session, ctx: _Context) -> list[int]:
    return list(session.scalars(
        select(Contract.payer_id).distinct()
        .join(Membership, Membership.id == Contract.membership_id)
        .where(*_due(ctx.club_id, ctx.horizon)).order_by(Contract.payer_id)))


def has_work(session: Session, *, club_id: int, day: date) -> bool:
    """Whether the run of `day` would roll a term or charge a period; a run without work
    changes nothing but its record (the demo's history runs only the days with work)."""
    settings = terms.settings_for(session, club_id)
    horizon = day + timedelta(days=settings.prenotice_days or 0)
    contract = select(Contract.id).join(Membership, Membership.id == Contract.membership_id)
    rolling = _rolling(session, club_id, day)
    if rolling and session.scalar(contract.where(*_running(club_id), or_(*rolling)).limit(1)):
        return True
    return session.scalar(contract.where(*_due(club_id, horizon)).limit(1)) is not None


def _freezes(session: Session, membership_ids: set[int]) -> dict[int, list[tuple[date, date]]]:
    found: dict[int, list[tuple[date, date]]] = defaultdict(list)
    if membership_ids:
        for mid, start, end in session.execute(
                select(Freeze.membership_id, Freeze.start_date, Freeze.end_date)
                .where(bulk.among(session, Freeze.membership_id, membership_ids))):
            found[mid].append((start, end))
    return found


def _period_lines(ctx: _Context, row, frozen: list[tuple[date, date]]
                  ) -> tuple[list[tuple[date, LineIn]], date]:
    """The lines for each due period of a contract (with its due date), and the next due day."""
    last = min(row.end_date, row.ends_on) if row.ends_on else row.end_date
    index = terms.period_index(row.starts_on, row.period, row.next_due)
    start = row.next_due
    if terms.period_start(row.starts_on, row.period, index) > start:
        index -= 1
    lines = []
    while start <= ctx.horizon and start <= last:
        end = terms.period_end(row.starts_on, row.period, index)
        skip = ctx.freeze_moves_billing and any(a <= start <= b for a, b in frozen)
        if not skip:
            price = (row.next_price if row.next_price is not None and row.next_price_from
                     and start >= row.next_price_from else row.price)
            lines.append((start, LineIn(
                charge_key=f"dues:{row.id}:{start.isoformat()}", kind="dues",
                description=f"{row.plan_name}: {start:%d.%m.%Y} – {end:%d.%m.%Y}",
                gross=price, tax_rate=row.tax_rate, contract_id=row.id,
                member_id=row.member_id, period_start=start, period_end=end)))
        index += 1
        start = terms.period_start(row.starts_on, row.period, index)
    return lines, start


def _charge(session: Session, ctx: _Context, *, lo: int, hi: int) -> None:
    """Charge the due contracts of payers lo..hi: invoices, collections, emails, next_due."""
    rows = session.execute(
        select(Contract.id, Contract.payer_id, Contract.member_id, Contract.membership_id,
               Contract.method, Contract.mandate_id, Contract.card_id, Contract.period,
               Contract.price, Contract.tax_rate, Contract.joining_fee, Contract.starts_on,
               Contract.next_due, Contract.next_price, Contract.next_price_from,
               Contract.ends_on, Membership.end_date, Plan.name.label("plan_name"))
        .join(Membership, Membership.id == Contract.membership_id)
        .join(Plan, Plan.id == Membership.plan_id)
        .where(*_due(ctx.club_id, ctx.horizon), Contract.payer_id >= lo, Contract.payer_id <= hi)
        .order_by(Contract.payer_id, Contract.id)).all()
    if not rows:
        return
    frozen = _freezes(session, {row.membership_id for row in rows})
    groups: dict[tuple, list[LineIn]] = defaultdict(list)
    moves, now = [], clock.now()
    for row in rows:
        lines, next_due = _period_lines(ctx, row, frozen.get(row.membership_id, []))
        moves.append({"cid": row.id, "due": next_due, "at": now})
        for n, (due_on, line) in enumerate(lines):
            key = (row.payer_id, due_on, row.method, row.mandate_id, row.card_id)
            groups[key].append(line)
            if n == 0 and row.joining_fee:
                groups[key].append(LineIn(
                    charge_key=f"join:{row.id}", kind="joining_fee",
                    description=f"Joining fee ({row.plan_name})", gross=row.joining_fee,
                    tax_rate=row.tax_rate, contract_id=row.id, member_id=row.member_id))
    _add_sales(session, ctx, rows, groups)
    drafts = [Draft(payer_id=k[0], due_on=k[1], method=k[2], lines=lines,
                    tag=(k[3], k[4])) for k, lines in sorted(groups.items(), key=_order)]
    issued = invoicing.issue_invoices(session, club_id=ctx.club_id, drafts=drafts,
                                      issued_on=ctx.day)
    bulk.update_rows(session, Contract, moves, key="cid",
                     columns={"next_due": "due", "updated_at": "at"})
    _settle_sales(session, ctx, issued)
    _collections_and_notices(session, ctx, issued)
    lines = sum(len(i.line_keys) for i in issued)
    session.execute(update(BillingRun).where(BillingRun.id == ctx.run_id).values(
        invoices=BillingRun.invoices + len(issued), lines=BillingRun.lines + lines))
    ctx.result.invoices += len(issued)
    ctx.result.lines += lines


def _order(item):
    (payer_id, due_on, method, mandate_id, card_id), _lines = item
    return payer_id, due_on, method, mandate_id or 0, card_id or 0


def _add_sales(session: Session, ctx: _Context, rows, groups) -> None:
    """Sales charged to account of the members these payers pay for join the payer's first
    invoice of the run: the open part of each, as one line `sale:<id>`."""
    payer_of: dict[int, int] = {}
    for row in rows:
        payer_of.setdefault(row.member_id, row.payer_id)
    paid = (select(func.coalesce(func.sum(Payment.amount), 0))
            .where(Payment.sale_id == Sale.id, Payment.kind == "payment").scalar_subquery())
    sales = session.execute(
        select(Sale.id, Sale.member_id, Sale.total, Sale.created_at, (Sale.total - paid)
               .label("open"))
        .where(Sale.club_id == ctx.club_id, Sale.to_account.is_(True),
               bulk.among(session, Sale.member_id, payer_of), Sale.total - paid > 0)
        .order_by(Sale.id)).all()
    if not sales:
        return
    kinds: dict[int, set[str]] = defaultdict(set)
    for sale_id, kind in session.execute(select(SaleLine.sale_id, SaleLine.kind)
                                         .where(bulk.among(session, SaleLine.sale_id,
                                                                     [s.id for s in sales]))):
        kinds[sale_id].add(SALE_KINDS.get(kind, "cafe"))
    first: dict[int, tuple] = {}
    for key in sorted(groups, key=lambda k: _order((k, None))):
        first.setdefault(key[0], key)
    for sale in sales:
        key = first.get(payer_of[sale.member_id])
        if key is None:  # every period of the payer was frozen: the next invoice takes it
            continue
        kind = next(iter(kinds[sale.id])) if len(kinds[sale.id]) == 1 else "cafe"
        groups[key].append(LineIn(
            charge_key=f"sale:{sale.id}", kind=kind, gross=terms.cents(sale.open),
            description=f"Charged to account on {sale.created_at:%d.%m.%Y} (sale {sale.id})",
            tax_rate=ctx.sale_tax_rate, member_id=sale.member_id, sale_id=sale.id))


def _settle_sales(session: Session, ctx: _Context, issued: list[Issued]) -> None:
    """The sales now invoiced owe nothing at the desk: settled with the method `account`."""
    now = clock.now()
    rows = [{"club_id": ctx.club_id, "sale_id": line.sale_id, "method": "account",
             "kind": "payment", "amount": line.gross, "created_at": now}
            for i in issued for line in i.draft.lines if line.sale_id is not None]
    if rows:
        bulk.insert_rows(session, Payment, rows)


def _masked(iban: str | None) -> str:
    if not iban:
        return ""
    iban = iban.replace(" ", "")
    return f"{iban[:4]} **** **** {iban[-4:]}"


def _collections_and_notices(session: Session, ctx: _Context, issued: list[Issued]) -> None:
    """A planned collection per new SEPA or card invoice; the invoice email per invoice."""
    mandate_ids = {i.draft.tag[0] for i in issued if i.draft.method == "sepa" and i.draft.tag[0]}
    mandates = {m.id: m for m in session.execute(
        select(Mandate.id, Mandate.reference, Mandate.iban)
        .where(bulk.among(session, Mandate.id, mandate_ids)))} if mandate_ids else {}
    payers = {p.id: p for p in session.execute(
        select(Payer.id, Payer.name, Payer.email)
        .where(bulk.among(session, Payer.id, {i.draft.payer_id for i in issued})))} if issued else {}
    collections, mails = [], []
    for i in issued:
        method, (mandate_id, card_id) = i.draft.method, i.draft.tag
        if method in ("sepa", "card") and i.gross > 0:
            collections.append({
                "club_id": ctx.club_id, "invoice_id": i.invoice_id,
                "payer_id": i.draft.payer_id, "attempt": 1, "method": method,
                "amount": i.gross, "due_on": i.draft.due_on, "status": "planned",
                "mandate_id": mandate_id if method == "sepa" else None,
                "card_id": card_id if method == "card" else None,
                "end_to_end_id": f"FC{ctx.club_id}-{i.invoice_id}-1",
                "prenotified_on": ctx.day if method == "sepa" else None})
        payer = payers[i.draft.payer_id]
        subject, body = invoice_email(ctx, i, payer.name, mandates.get(mandate_id)
                                      if method == "sepa" else None)
        mails.append({"kind": "invoice", "key": f"invoice:{i.invoice_id}", "to": payer.email,
                      "subject": subject, "body": body, "payer_id": payer.id,
                      "member_id": i.draft.lines[0].member_id})
    if collections:
        bulk.insert_rows(session, Collection, collections)
    notices.queue_fresh(session, club_id=ctx.club_id, rows=mails)
    ctx.result.collections += len(collections)
    ctx.result.notices += len(mails)


def invoice_email(ctx: _Context, issued: Issued, payer_name: str, mandate) -> tuple[str, str]:
    """The invoice email's subject and text; for SEPA also the pre-notification."""
    d = issued.draft
    lines = "\n".join(f"  {line.description}: {terms.cents(line.gross)}" for line in d.lines)
    body = (f"Dear {payer_name},\n\nyour invoice {issued.number} from {ctx.seller}, issued "
            f"{ctx.day:%d.%m.%Y}, due {d.due_on:%d.%m.%Y}:\n{lines}\n"
            f"Total: {issued.gross}\n")
    if d.method == "sepa":
        body += (f"\nPre-notification of a SEPA direct debit: we will debit {issued.gross} "
                 f"from your account {_masked(mandate.iban if mandate else None)} on or shortly "
                 f"after {d.due_on:%d.%m.%Y}.\nMandate reference: "
                 f"{mandate.reference if mandate else ''}\nCreditor identifier: "
                 f"{ctx.creditor_id or ''}\n")
    elif d.method == "card":
        body += f"\nThe amount will be charged to your saved card on {d.due_on:%d.%m.%Y}.\n"
    else:
        body += "\nPlease pay at the front desk by the due date.\n"
    return f"Invoice {issued.number} from {ctx.seller}", body
