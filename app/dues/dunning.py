"""Failed payments (dunning): a case per unpaid invoice, taken through the club's sequence.

`advance_dunning(club_id, day)` is safe to run any number of times a day (and by two runners at
once): every step is claimed by one guarded UPDATE of the case's counter (`retries = n WHERE
retries = n - 1`) and written once under the step's unique key (case, action, number).

1. **Open**: a case per invoice (not a credit note) with an open amount whose latest collection
   failed (card) or was returned (SEPA) — opened on that failure day — or, for an invoice paid at
   the desk (no collection), that is still open `reminder_days` after its due day (opened on the
   due day). The member is the invoice lines' member (else the payer's own member record).
2. **Close**: a case whose invoice is paid closes as `recovered` (planned retries are cancelled).
   **Reopen**: a SEPA debit counts as paid when its file is submitted, so a retry that is then
   returned finds its case closed as `recovered`; the case opens again (a `reopened` step) from
   the return day and goes on where it stopped (retries and reminders already sent count; an
   entry block already reached applies again). A case written off stays closed.
3. **Steps**, counted from the day the case opened (F), each once:
   - retry n (1..`max_retries`): `card_retry_days` / `sepa_retry_days` after the latest failure,
     only when the latest collection failed: a new `Collection` (attempt + 1, `planned`, due that
     day, same method, mandate and card) — the next SEPA file or the card charger takes it;
   - reminder n (1..3): F + n × `reminder_days`, an email "owes 49.00 since 3 March";
   - the fee (once, when `dunning_fee` > 0): F + `dunning_fee_after_days`, a desk invoice with
     the line `dunning_fee:<case>` (a fee is never charged on a fee's own case);
   - block (when `block_entry_after_days` is set): from F + that many days check-in is refused
     with `payment_overdue` until the case closes.
"""
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import cache

from sqlalchemy import Date, and_, bindparam, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from app.clubs import service as clubs_service
from app.core import clock
from app.core.actors import MANAGERS, Actor
from app.core.errors import Conflict, Forbidden, NotFound
from app.dues import invoicing, notices, terms
from app.dues.models import (
    Collection,
    DuesPayment,
    DuesSettings,
    DunningCase,
    DunningStep,
    Invoice,
    InvoiceLine,
    Payer,
)

MAX_REMINDERS = 3
FAILED = ("failed", "returned")
FEE_KEY = "dunning_fee:"
ORDINALS = {1: "1st", 2: "2nd", 3: "3rd"}


@dataclass
class DunningSummary:
    opened: int = 0
    closed: int = 0
    retries: int = 0
    reminders: int = 0
    fees: int = 0
    blocked: int = 0
    reopened: int = 0
    case_ids: list[int] = field(default_factory=list)


def _paid(invoice_id):
    return (select(func.coalesce(func.sum(DuesPayment.amount), 0))
            .where(DuesPayment.invoice_id == invoice_id).scalar_subquery())


def open_amount_expression(invoice=Invoice):
    """gross − payments of an invoice, as SQL (returns add back: they are negative)."""
    return invoice.gross - _paid(invoice.id)


# The run's statements with ORM aliases are built once, their values bound when they run:
# building them costs far more than running them.

@cache
def _latest_collection_query():
    c2 = aliased(Collection)
    return (select(Collection.status, Collection.failed_on, Collection.attempt)
            .where(Collection.invoice_id == bindparam("invoice_id"),
                   ~exists(select(c2.id).where(c2.invoice_id == Collection.invoice_id,
                                               c2.attempt > Collection.attempt))))


def _latest_collection(session: Session, invoice_id: int):
    """The invoice's latest collection (status, failed_on, attempt), or None."""
    return session.execute(_latest_collection_query(), {"invoice_id": invoice_id}).first()


@cache
def _needing_a_case():
    """The invoices that need a case and have none (with the case's opening day, the amount
    owed and the member); bound: `_case_params`."""
    club_id, day = bindparam("club_id"), bindparam("day", type_=Date)
    c2 = aliased(Collection)
    latest = aliased(Collection)
    newest = ~exists(select(c2.id).where(c2.invoice_id == latest.invoice_id,
                                         c2.attempt > latest.attempt))
    member = (select(func.min(InvoiceLine.member_id))
              .where(InvoiceLine.invoice_id == Invoice.id).scalar_subquery())
    has_case = exists(select(DunningCase.id).where(DunningCase.invoice_id == Invoice.id))
    owed = open_amount_expression()
    base = [Invoice.club_id == club_id, Invoice.kind == "invoice", ~has_case, owed > 0]
    failed = (select(Invoice.id, Invoice.payer_id, member.label("member_id"),
                     func.coalesce(latest.failed_on, day).label("opened_on"), owed.label("owed"),
                     Payer.member_id.label("payer_member"))
              .join(latest, latest.invoice_id == Invoice.id)
              .join(Payer, Payer.id == Invoice.payer_id)
              .where(*base, newest, latest.status.in_(FAILED),
                     or_(latest.failed_on.is_(None), latest.failed_on <= day)))
    any_collection = exists(select(Collection.id).where(Collection.invoice_id == Invoice.id))
    at_desk = (select(Invoice.id, Invoice.payer_id, member.label("member_id"),
                      Invoice.due_on.label("opened_on"), owed.label("owed"),
                      Payer.member_id.label("payer_member"))
               .join(Payer, Payer.id == Invoice.payer_id)
               .where(*base, Invoice.method == "desk", ~any_collection,
                      Invoice.due_on <= bindparam("desk_due", type_=Date)))
    return failed.union_all(at_desk)


@cache
def _reopenable():
    """Cases closed as recovered whose invoice is open again because its latest collection
    came back after the case closed (id, the amount owed); bound: club_id, day."""
    club_id, day = bindparam("club_id"), bindparam("day", type_=Date)
    c2 = aliased(Collection)
    latest = aliased(Collection)
    newest = ~exists(select(c2.id).where(c2.invoice_id == latest.invoice_id,
                                         c2.attempt > latest.attempt))
    owed = open_amount_expression()
    return (select(DunningCase.id, owed.label("owed"))
            .join(Invoice, Invoice.id == DunningCase.invoice_id)
            .join(latest, latest.invoice_id == Invoice.id)
            .where(DunningCase.club_id == club_id, DunningCase.outcome == "recovered",
                   owed > 0, newest, latest.status.in_(FAILED),
                   latest.failed_on >= DunningCase.closed_on, latest.failed_on <= day))


def _reopen_returned(session: Session, club_id: int, day: date) -> int:
    """Open again the recovered cases whose money came back (see the module docstring)."""
    reopened = 0
    for case_id, owed in session.execute(_reopenable(), {"club_id": club_id, "day": day}).all():
        done = session.execute(update(DunningCase)
                               .where(DunningCase.id == case_id,
                                      DunningCase.outcome == "recovered")
                               .values(closed_on=None, outcome=None, next_step_on=day,
                                       amount=terms.cents(owed), updated_at=clock.now())
                               .execution_options(synchronize_session=False))
        if done.rowcount != 1:  # a concurrent run reopened it
            continue
        case = session.get(DunningCase, case_id, populate_existing=True)
        number = 1 + (session.scalar(select(func.count()).select_from(DunningStep).where(
            DunningStep.case_id == case_id, DunningStep.action == "reopened")) or 0)
        _step(session, case, "reopened", number, day, f"{terms.cents(owed)} open again")
        reopened += 1
    return reopened


def _case_params(club_id: int, day: date, settings: DuesSettings) -> dict:
    """A desk invoice needs a case once it is open `reminder_days` after its due day."""
    return {"club_id": club_id, "day": day,
            "desk_due": day - timedelta(days=settings.reminder_days)}


def _open_new_cases(session: Session, club_id: int, day: date,
                    settings: DuesSettings) -> int:
    """Set-based: the invoices that need a case and have none get one."""
    rows = session.execute(_needing_a_case(), _case_params(club_id, day, settings)).all()
    opened = 0
    for r in rows:
        case = DunningCase(club_id=club_id, invoice_id=r.id, payer_id=r.payer_id,
                           member_id=r.member_id or r.payer_member, opened_on=r.opened_on,
                           amount=terms.cents(r.owed), next_step_on=r.opened_on)
        try:
            with session.begin_nested():
                session.add(case)
                session.flush()
        except IntegrityError:  # a concurrent run opened it first
            continue
        _step(session, case, "failed", 1, r.opened_on,
              f"{terms.cents(r.owed)} open on invoice")
        opened += 1
    return opened


def _step(session: Session, case: DunningCase, action: str, number: int, on: date,
          detail: str | None = None) -> bool:
    try:
        with session.begin_nested():
            session.add(DunningStep(club_id=case.club_id, case_id=case.id, action=action,
                                    number=number, done_on=on, detail=(detail or "")[:200] or None))
            session.flush()
    except IntegrityError:
        return False
    return True


def _claim(session: Session, case: DunningCase, column: str, before, after) -> bool:
    """One guarded UPDATE: this runner takes the step only if nobody took it first."""
    col = getattr(DunningCase, column)
    guard = col.is_(None) if before is None else col == before
    done = session.execute(update(DunningCase).where(DunningCase.id == case.id, guard)
                           .values({column: after}).execution_options(synchronize_session=False))
    if done.rowcount != 1:
        return False
    session.refresh(case)
    return True


def close_paid_cases(session: Session, *, club_id: int, day: date,
                     invoice_id: int | None = None) -> int:
    """Close the club's open cases whose invoice is paid (outcome `recovered`)."""
    where = [DunningCase.club_id == club_id, DunningCase.closed_on.is_(None),
             open_amount_expression() <= 0]
    if invoice_id is not None:
        where.append(DunningCase.invoice_id == invoice_id)
    cases = session.scalars(select(DunningCase).join(Invoice, Invoice.id == DunningCase.invoice_id)
                            .where(*where)).all()
    closed = 0
    for case in cases:
        if _close(session, case, day, "recovered"):
            closed += 1
    return closed


def _close(session: Session, case: DunningCase, day: date, outcome: str) -> bool:
    done = session.execute(update(DunningCase)
                           .where(DunningCase.id == case.id, DunningCase.closed_on.is_(None))
                           .values(closed_on=day, outcome=outcome, next_step_on=None,
                                   updated_at=clock.now())
                           .execution_options(synchronize_session=False))
    if done.rowcount != 1:
        return False
    session.refresh(case)
    session.execute(update(Collection)
                    .where(Collection.invoice_id == case.invoice_id, Collection.status == "planned",
                           Collection.attempt > 1)
                    .values(status="cancelled", updated_at=clock.now())
                    .execution_options(synchronize_session=False))
    _step(session, case, outcome, 1, day)
    return True


def advance_dunning(session: Session, *, club_id: int, day: date) -> DunningSummary:
    """Open, close and move on the club's dunning cases for `day` (safe to re-run)."""
    settings = terms.settings_for(session, club_id)
    summary = DunningSummary()
    summary.reopened = _reopen_returned(session, club_id, day)
    summary.opened = _open_new_cases(session, club_id, day, settings)
    summary.closed = close_paid_cases(session, club_id=club_id, day=day)
    due = session.scalars(select(DunningCase).where(
        DunningCase.club_id == club_id, DunningCase.closed_on.is_(None),
        or_(DunningCase.next_step_on.is_(None), DunningCase.next_step_on <= day))
        .order_by(DunningCase.id)).all()
    for case in due:
        invoice = session.get(Invoice, case.invoice_id)
        _advance(session, case, invoice, settings, day, summary)
        summary.case_ids.append(case.id)
    session.flush()
    return summary


@cache
def _work_query():
    club_id, day = bindparam("club_id"), bindparam("day", type_=Date)
    open_case = (DunningCase.club_id == club_id, DunningCase.closed_on.is_(None))
    due = exists(select(DunningCase.id).where(
        *open_case, or_(DunningCase.next_step_on.is_(None), DunningCase.next_step_on <= day)))
    paid = exists(select(DunningCase.id).join(Invoice, Invoice.id == DunningCase.invoice_id)
                  .where(*open_case, open_amount_expression() <= 0))
    return select(or_(due, paid, _needing_a_case().exists(), _reopenable().exists()))


def has_work(session: Session, *, club_id: int, day: date) -> bool:
    """Whether `advance_dunning` would do anything on `day`: a case to open, a paid one to
    close, an open one whose next step is due (or that has none left: its amount is kept
    current). The demo's history runs only the days with work."""
    settings = terms.settings_for(session, club_id)
    return bool(session.scalar(_work_query(), _case_params(club_id, day, settings)))


def _retry_days(settings: DuesSettings, method: str) -> int:
    return settings.card_retry_days if method == "card" else settings.sepa_retry_days


def _is_fee_invoice(session: Session, invoice_id: int) -> bool:
    return session.scalar(select(InvoiceLine.id).where(
        InvoiceLine.invoice_id == invoice_id,
        InvoiceLine.charge_key.like(FEE_KEY + "%")).limit(1)) is not None


def _advance(session: Session, case: DunningCase, invoice: Invoice, settings: DuesSettings,
             day: date, summary: DunningSummary) -> None:
    """Every step of one case that is due `day`, then the day of its next step."""
    upcoming: list[date] = []
    owed = invoicing.open_amount(session, invoice)
    latest = _latest_collection(session, invoice.id)
    # retry: only while the latest try failed (not while one is still under way)
    if latest is not None and case.retries < settings.max_retries and latest.status in FAILED:
        on = (latest.failed_on or case.opened_on) + timedelta(
            days=_retry_days(settings, invoice.method))
        if on <= day and _claim(session, case, "retries", case.retries, case.retries + 1):
            _retry(session, case, invoice, owed, day)
            summary.retries += 1
        elif on > day:
            upcoming.append(on)
    # reminders: F + n × reminder_days, at most one a day (a reopened case, a missed run)
    if case.reminders < MAX_REMINDERS:
        n = case.reminders + 1
        every = max(settings.reminder_days, 1)
        on = case.opened_on + timedelta(days=n * every)
        if on > day:
            upcoming.append(on)
        elif _claim(session, case, "reminders", case.reminders, n):
            _remind(session, case, owed, n, day)
            summary.reminders += 1
            if n < MAX_REMINDERS:
                upcoming.append(max(case.opened_on + timedelta(days=(n + 1) * every),
                                    day + timedelta(days=1)))
    # the fee, once
    if settings.dunning_fee and settings.dunning_fee > 0 and not case.fee_charged:
        on = case.opened_on + timedelta(days=settings.dunning_fee_after_days)
        if on > day:
            upcoming.append(on)
        elif _is_fee_invoice(session, invoice.id):
            _claim(session, case, "fee_charged", False, True)
        elif _claim(session, case, "fee_charged", False, True):
            _fee(session, case, settings, day)
            summary.fees += 1
    # entry refused from F + block_entry_after_days
    if settings.block_entry_after_days is not None and case.blocks_entry_from is None:
        on = case.opened_on + timedelta(days=settings.block_entry_after_days)
        if on > day:
            upcoming.append(on)
        elif _claim(session, case, "blocks_entry_from", None, on):
            _step(session, case, "block", 1, day, f"check-in refused from {on.isoformat()}")
            summary.blocked += 1
    session.execute(update(DunningCase).where(DunningCase.id == case.id)
                    .values(next_step_on=min(upcoming) if upcoming else None,
                            amount=owed, updated_at=clock.now())
                    .execution_options(synchronize_session=False))


def _retry(session: Session, case: DunningCase, invoice: Invoice, owed: Decimal,
           day: date) -> None:
    last = session.scalars(select(Collection).where(Collection.invoice_id == invoice.id)
                           .order_by(Collection.attempt.desc()).limit(1)).first()
    attempt = (last.attempt if last else 0) + 1
    collection = Collection(
        club_id=case.club_id, invoice_id=invoice.id, payer_id=invoice.payer_id, attempt=attempt,
        method=last.method if last else invoice.method, amount=owed, due_on=day,
        status="planned", mandate_id=last.mandate_id if last else None,
        card_id=last.card_id if last else None)
    try:
        with session.begin_nested():
            session.add(collection)
            session.flush()
    except IntegrityError:  # a concurrent runner planned this attempt
        return
    _step(session, case, "retry", case.retries, day,
          f"attempt {attempt} planned for {day.isoformat()}")


def nice_day(d: date, ref: date | None = None) -> str:
    text = f"{d.day} {d:%B}"
    return text if ref is None or d.year == ref.year else f"{text} {d.year}"


def _remind(session: Session, case: DunningCase, owed: Decimal, n: int, day: date) -> None:
    payer = session.get(Payer, case.payer_id)
    invoice = session.get(Invoice, case.invoice_id)
    since = nice_day(case.opened_on, day)
    notices.queue(
        session, club_id=case.club_id, kind="reminder", key=f"reminder:{case.id}:{n}",
        to=payer.email if payer else None, payer_id=case.payer_id, member_id=case.member_id,
        subject=f"Payment reminder: {owed} open since {since}",
        body=(f"Hello {payer.name if payer else ''},\n\nyour payment for invoice "
              f"{invoice.number} did not go through: you owe {owed} {invoice.currency} since "
              f"{since}. Please pay at the front desk or update your payment details.\n"))
    _step(session, case, "reminder", n, day, f"owes {owed} since {since}")


def _fee(session: Session, case: DunningCase, settings: DuesSettings, day: date) -> None:
    invoice = session.get(Invoice, case.invoice_id)
    fee = invoicing.issue_invoice(
        session, club_id=case.club_id, payer_id=case.payer_id, issued_on=day, due_on=day,
        method="desk", lines=[invoicing.LineIn(
            charge_key=f"{FEE_KEY}{case.id}", kind="fee", member_id=case.member_id,
            description=f"Dunning fee for invoice {invoice.number}",
            gross=terms.cents(settings.dunning_fee))])
    _step(session, case, "fee", 1, day,
          f"fee {terms.cents(settings.dunning_fee)} on invoice {fee.number}" if fee else "fee")


def write_off(session: Session, *, actor: Actor, case_id: int) -> DunningCase:
    """Give up on an open case (managers and owners): it closes as `written_off`."""
    if actor.role not in MANAGERS:
        raise Forbidden("Only a manager or owner can write off a debt", code="forbidden_role")
    case = session.get(DunningCase, case_id)
    if case is None or case.club_id != actor.club_id:
        raise NotFound("Dunning case not found", code="dunning_case_not_found")
    if case.closed_on is not None:
        raise Conflict(f"This case was closed on {case.closed_on.isoformat()} ({case.outcome})",
                       code="dunning_case_closed")
    day = clubs_service.club_today_by_id(session, actor.club_id)
    _close(session, case, day, "written_off")
    session.flush()
    return case


def list_open_cases(session: Session, *, club_id: int, limit: int = 50,
                    offset: int = 0) -> tuple[list[DunningCase], int]:
    """The club's open cases, oldest first, and how many there are."""
    where = and_(DunningCase.club_id == club_id, DunningCase.closed_on.is_(None))
    total = session.scalar(select(func.count()).select_from(DunningCase).where(where))
    rows = session.scalars(select(DunningCase).where(where)
                           .order_by(DunningCase.opened_on, DunningCase.id)
                           .limit(limit).offset(offset)).all()
    return list(rows), total or 0


def payment_problem(session: Session, *, club_id: int, member_id: int,
                    today: date) -> dict | None:
    """What the desk sees about a member's unpaid dues (one query): None when nothing is open."""
    row = session.execute(
        select(func.count(DunningCase.id).label("cases"),
               func.coalesce(func.sum(open_amount_expression()), 0).label("owed"),
               func.min(DunningCase.opened_on).label("since"),
               func.max(DunningCase.reminders).label("reminders"),
               func.min(DunningCase.blocks_entry_from).label("blocks_from"))
        .join(Invoice, Invoice.id == DunningCase.invoice_id)
        .where(DunningCase.club_id == club_id, DunningCase.member_id == member_id,
               DunningCase.closed_on.is_(None))).one()
    if not row.cases:
        return None
    owed, reminders = terms.cents(row.owed), int(row.reminders or 0)
    text = f"owes {owed} since {nice_day(row.since, today)}"
    if reminders:
        text += f", {ORDINALS.get(reminders, f'{reminders}th')} reminder sent"
    blocked = row.blocks_from is not None and row.blocks_from <= today
    if blocked:
        text += ", entry refused"
    return {"owed": str(owed), "since": row.since.isoformat(), "reminders": reminders,
            "blocked": blocked, "text": text}
