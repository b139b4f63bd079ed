"""The owner's money figures over the recurring dues (docs/billing.md, "Money figures").

Every figure is per calendar month of the period [from, to] (`common.scope`: `to` is today at the
latest, three years at most), computed in whole cents by set-based SQL (a month grid joined to
the club's rows), so the sums are exact on both backends.

- **MRR** on each month's *day* — its last day, or `to` for the month `to` falls in: the sum over
  the contracts running that day (`starts_on` ≤ day, `ends_on` null or ≥ day, the membership not
  void and not cancelled on or before the day) of the price in force that day (`next_price` once
  `next_price_from` ≤ day, else `price`) normalised to a month — month × 1, 4weeks × 13 / 12,
  year ÷ 12 — rounded half-up to the cent per contract.
- **Movement** per member between the previous month's last day and the month's day: new (no
  MRR then and no contract that started on or before then), reactivated (no MRR then, but such a
  contract), expansion / contraction (more / less than then, both above 0), churned (MRR then,
  none now); start + new + reactivated + expansion − contraction − churned = end, exactly.
- **ARPM**: MRR ÷ the members with a running contract on the day (price 0 included), half-up.
- **Revenue** by month and kind: invoice lines by their invoice's issue day and line kind (a
  credit note's lines count −|gross|), and desk sales not charged to account by sale line kind
  (membership, pt, cafe for products, else the kind), by the club-local day they were made.
- **Receivables** on each month's day: each invoice issued by then, gross − its dues payments
  up to then (returns negative, credit-note settlements included), when above 0, by days past
  due: not_due (due later), 0-30, 31-60, 61-90, 90+.
- **Collections**: by due month, attempted (submitted, pending, paid, returned or failed), failed
  (returned or failed), `failed_rate` = failed ÷ attempted. **Recovery** by month of an invoice's
  first failure (`failed_on`, else the collection's due day): recovered when its payments up to
  30 days after that day add up to its gross; pending while those 30 days are not over (today ≤
  failure + 30) and not recovered; `recovery_rate` = recovered ÷ (failed − pending).
- **Churn split**: contracts whose last day (`ends_on`, or the day before the membership's
  `cancelled_on` when earlier or the only one) falls in the month: involuntary when a dunning
  case of the member or of the contract's payer was open that day (opened on or before it, not
  closed before it) or was opened on or before it and written off; voluntary when the
  cancellation was received (`cancel_received_on`) and not involuntary; other otherwise.
"""
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import Date, and_, case, exists, func, literal, or_, select, union_all
from sqlalchemy.orm import Session

from app.analytics import stats
from app.analytics.common import Scope, month_label, not_void, scope
from app.billing.models import Sale, SaleLine
from app.core import sql
from app.core.schemas import Out
from app.core.types import UTCDateTime
from app.dues.models import Collection, Contract, DuesPayment, DunningCase, Invoice, InvoiceLine
from app.memberships.models import Membership

CENT = Decimal("0.01")
ATTEMPTED = ("submitted", "pending", "paid", "returned", "failed")
FAILED = ("returned", "failed")
RECOVERY_DAYS = 30
BUCKETS = ("not_due", "0-30", "31-60", "61-90", "90+")
DESK_KINDS = {"membership": "membership", "pt_package": "pt", "product": "cafe"}


# --- response shapes ---------------------------------------------------------------------------

class MrrMonth(Out):
    month: str
    day: date
    mrr: Decimal
    members: int
    arpm: Decimal | None
    starting: Decimal
    new: Decimal
    reactivated: Decimal
    expansion: Decimal
    contraction: Decimal
    churned: Decimal


class RevenueRow(Out):
    month: str
    source: str
    kind: str
    amount: Decimal


class RevenueMonth(Out):
    month: str
    invoiced: Decimal
    desk: Decimal
    total: Decimal


class AgeRow(Out):
    month: str
    day: date
    band: str
    invoices: int
    amount: Decimal


class CollectionMonth(Out):
    month: str
    attempted: int
    failed: int
    failed_rate: float | None
    failed_invoices: int
    recovered: int
    pending: int
    recovery_rate: float | None


class ChurnMonth(Out):
    month: str
    ended: int
    involuntary: int
    voluntary: int
    other: int


class MoneyPeriod(Out):
    as_of: date
    date_from: date
    date_to: date


class MrrReport(MoneyPeriod):
    items: list[MrrMonth]


class RevenueReport(MoneyPeriod):
    items: list[RevenueRow]
    months: list[RevenueMonth]


class ReceivablesReport(MoneyPeriod):
    items: list[AgeRow]


class CollectionsReport(MoneyPeriod):
    items: list[CollectionMonth]


class ChurnReport(MoneyPeriod):
    items: list[ChurnMonth]


# --- the month grid ----------------------------------------------------------------------------

def money(value) -> Decimal:
    """Whole cents (int) → Decimal euros."""
    return (Decimal(int(value or 0)) / 100).quantize(CENT)


def _half_up(cents: int, n: int) -> Decimal | None:
    if not n:
        return None
    return (Decimal(int(cents)) / 100 / n).quantize(CENT, rounding=ROUND_HALF_UP)


def months(s: Scope) -> list[tuple[int, date, date]]:
    """(month index, the month's day — its last, or `to` —, the previous month's last day)."""
    out = []
    for m in range(sql.index_of(s.date_from), sql.index_of(s.date_to) + 1):
        last = sql.month_of(m + 1) - timedelta(days=1)
        out.append((m, min(last, s.date_to), sql.month_of(m) - timedelta(days=1)))
    return out


def _grid(s: Scope):
    rows = [select(literal(m).label("m"), literal(day, Date()).label("day"),
                   literal(prev, Date()).label("prev")) for m, day, prev in months(s)]
    return (union_all(*rows) if len(rows) > 1 else rows[0]).subquery("grid")


def _instant_grid(s: Scope):
    """(m, lo, hi): the instants the month's club-local days begin and end, within [from, to]."""
    rows = []
    for m, day, _ in months(s):
        first = max(sql.month_of(m), s.date_from)
        rows.append(select(literal(m).label("m"),
                           literal(sql.local_day_start(s.zone, first), UTCDateTime()).label("lo"),
                           literal(sql.local_day_start(s.zone, day + timedelta(days=1)),
                                   UTCDateTime()).label("hi")))
    return (union_all(*rows) if len(rows) > 1 else rows[0]).subquery("instants")


def _month_key(value) -> int:
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    return sql.index_of(value)


# --- MRR and its movement ----------------------------------------------------------------------

def price_on(c, day):
    """The contract's price per period in force on `day`."""
    changed = and_(c.c.next_price.is_not(None), c.c.next_price_from.is_not(None),
                   c.c.next_price_from <= day)
    return case((changed, c.c.next_price), else_=c.c.price)


def monthly_cents(c, day):
    """The price in force on `day` normalised to a month, in cents, half-up (integer sums)."""
    x = sql.cents(price_on(c, day))
    return case((c.c.period == "4weeks", (x * 13 + 6) // 12),
                (c.c.period == "year", (x + 6) // 12), else_=x)


def running(c, m, day):
    """The contract runs on `day` (its membership not cancelled by then)."""
    return and_(c.c.starts_on <= day, or_(c.c.ends_on.is_(None), c.c.ends_on >= day),
                or_(m.c.cancelled_on.is_(None), m.c.cancelled_on > day))


def _per_member(s: Scope):
    g, c, m = _grid(s), Contract.__table__, Membership.__table__
    now, then = running(c, m, g.c.day), running(c, m, g.c.prev)
    return (select(g.c.m, c.c.member_id,
                   func.sum(case((now, monthly_cents(c, g.c.day)), else_=0)).label("cur"),
                   func.sum(case((then, monthly_cents(c, g.c.prev)), else_=0)).label("prev"),
                   func.max(case((now, 1), else_=0)).label("running"),
                   func.max(case((c.c.starts_on <= g.c.prev, 1), else_=0)).label("before"))
            .select_from(g)
            .join(c, and_(c.c.club_id == s.club_id, c.c.starts_on <= g.c.day))
            .join(m, m.c.id == c.c.membership_id)
            .where(not_void(m))
            .group_by(g.c.m, c.c.member_id).subquery("per_member"))


def mrr(session: Session, s: Scope) -> list[MrrMonth]:
    p = _per_member(s)
    cur, prev = p.c.cur, p.c.prev

    def total(condition, value):
        return func.coalesce(func.sum(case((condition, value), else_=0)), 0)

    rows = session.execute(select(
        p.c.m, func.sum(cur), func.sum(prev), func.sum(p.c.running),
        total(and_(prev == 0, cur > 0, p.c.before == 0), cur),
        total(and_(prev == 0, cur > 0, p.c.before == 1), cur),
        total(and_(prev > 0, cur > prev), cur - prev),
        total(and_(prev > 0, cur > 0, cur < prev), prev - cur),
        total(and_(prev > 0, cur == 0), prev)).group_by(p.c.m))
    found = {int(r[0]): [int(v or 0) for v in r[1:]] for r in rows}
    out = []
    for m, day, _ in months(s):
        end, start, members, new, back, up, down, lost = found.get(m, [0] * 8)
        out.append(MrrMonth(month=month_label(m), day=day, mrr=money(end), members=members,
                            arpm=_half_up(end, members), starting=money(start), new=money(new),
                            reactivated=money(back), expansion=money(up),
                            contraction=money(down), churned=money(lost)))
    return out


# --- revenue -----------------------------------------------------------------------------------

def _invoiced(session: Session, s: Scope) -> list[tuple[int, str, str, int]]:
    i, line = Invoice.__table__, InvoiceLine.__table__
    gross = sql.cents(line.c.gross)
    signed = case((i.c.kind == "credit_note", -func.abs(gross)), else_=gross)
    month = sql.month_start(i.c.issued_on).label("month")
    rows = session.execute(
        select(month, line.c.kind, func.sum(signed))
        .select_from(i.join(line, line.c.invoice_id == i.c.id))
        .where(i.c.club_id == s.club_id, i.c.issued_on >= s.date_from,
               i.c.issued_on <= s.date_to)
        .group_by(month, line.c.kind))
    return [(_month_key(k), "invoices", kind, int(v or 0)) for k, kind, v in rows]


def _desk(session: Session, s: Scope) -> list[tuple[int, str, str, int]]:
    g, sale, line = _instant_grid(s), Sale.__table__, SaleLine.__table__
    rows = session.execute(
        select(g.c.m, line.c.kind, func.sum(sql.cents(line.c.amount)))
        .select_from(g)
        .join(sale, and_(sale.c.club_id == s.club_id, sale.c.created_at >= g.c.lo,
                         sale.c.created_at < g.c.hi, sale.c.to_account.is_(False)))
        .join(line, line.c.sale_id == sale.c.id)
        .group_by(g.c.m, line.c.kind))
    out: dict[tuple[int, str], int] = {}
    for m, kind, v in rows:
        key = (int(m), DESK_KINDS.get(kind, kind))
        out[key] = out.get(key, 0) + int(v or 0)
    return [(m, "desk", kind, v) for (m, kind), v in out.items()]


def revenue(session: Session, s: Scope) -> tuple[list[RevenueRow], list[RevenueMonth]]:
    rows = sorted(_invoiced(session, s) + _desk(session, s))
    items = [RevenueRow(month=month_label(m), source=src, kind=kind, amount=money(v))
             for m, src, kind, v in rows]
    totals = []
    for m, _, _ in months(s):
        inv = sum(v for k, src, _, v in rows if k == m and src == "invoices")
        desk = sum(v for k, src, _, v in rows if k == m and src == "desk")
        totals.append(RevenueMonth(month=month_label(m), invoiced=money(inv), desk=money(desk),
                                   total=money(inv + desk)))
    return items, totals


# --- receivables by age ------------------------------------------------------------------------

def _settled_from(s: Scope):
    """(invoice_id, settled_from): the day from which an invoice's payments stay at or above its
    gross — the first payment day after the last day its running total was short (returns make
    it short again). No row: no payment; settled_from null: short at its last payment."""
    i, p = Invoice.__table__, DuesPayment.__table__
    daily = (select(p.c.invoice_id, p.c.occurred_on.label("day"),
                    func.sum(sql.cents(p.c.amount)).label("amount"))
             .where(p.c.club_id == s.club_id, p.c.occurred_on <= s.date_to)
             .group_by(p.c.invoice_id, p.c.occurred_on).subquery("daily"))
    running = func.sum(daily.c.amount).over(partition_by=daily.c.invoice_id,
                                            order_by=daily.c.day)
    run = (select(daily.c.invoice_id, daily.c.day, running.label("paid"))
           .subquery("running"))
    short = (select(run.c.invoice_id,
                    func.max(case((run.c.paid < sql.cents(i.c.gross), run.c.day))).label("last"))
             .select_from(run.join(i, i.c.id == run.c.invoice_id))
             .group_by(run.c.invoice_id).subquery("short"))
    after = or_(short.c.last.is_(None), run.c.day > short.c.last)
    return (select(run.c.invoice_id, func.min(case((after, run.c.day))).label("settled_from"))
            .select_from(run.join(short, short.c.invoice_id == run.c.invoice_id))
            .group_by(run.c.invoice_id).subquery("settled"))


def receivables(session: Session, s: Scope) -> list[AgeRow]:
    """Set-based: only the (month, invoice) pairs where the invoice is open on the month's day
    (issued by then, not settled from then on) are joined to its payments."""
    g, i, p, st = _grid(s), Invoice.__table__, DuesPayment.__table__, _settled_from(s)
    pairs = (select(g.c.m, g.c.day, i.c.id, i.c.gross, i.c.due_on)
             .select_from(g)
             .join(i, and_(i.c.club_id == s.club_id, i.c.kind == "invoice",
                           i.c.issued_on <= g.c.day))
             .outerjoin(st, st.c.invoice_id == i.c.id)
             .where(or_(st.c.settled_from.is_(None), st.c.settled_from > g.c.day))
             .subquery("pairs"))
    paid = func.coalesce(func.sum(sql.cents(p.c.amount)), 0)
    per_invoice = (
        select(pairs.c.m, sql.days_between(pairs.c.day, pairs.c.due_on).label("late"),
               (sql.cents(pairs.c.gross) - paid).label("open"))
        .select_from(pairs.outerjoin(p, and_(p.c.invoice_id == pairs.c.id,
                                             p.c.occurred_on <= pairs.c.day)))
        .group_by(pairs.c.m, pairs.c.day, pairs.c.id, pairs.c.gross, pairs.c.due_on)
        .subquery("open_invoices"))
    late = per_invoice.c.late
    band = case((late < 0, "not_due"), (late <= 30, "0-30"), (late <= 60, "31-60"),
                (late <= 90, "61-90"), else_="90+").label("band")
    found = {(int(m), b): (int(n), int(v or 0)) for m, b, n, v in session.execute(
        select(per_invoice.c.m, band, func.count(), func.sum(per_invoice.c.open))
        .where(per_invoice.c.open > 0).group_by(per_invoice.c.m, band))}
    return [AgeRow(month=month_label(m), day=day, band=b, invoices=found.get((m, b), (0, 0))[0],
                   amount=money(found.get((m, b), (0, 0))[1]))
            for m, day, _ in months(s) for b in BUCKETS]


# --- failed payments and recovery --------------------------------------------------------------

def _attempts(session: Session, s: Scope) -> dict[int, tuple[int, int]]:
    c = Collection.__table__
    month = sql.month_start(c.c.due_on).label("month")
    rows = session.execute(
        select(month, func.sum(case((c.c.status.in_(ATTEMPTED), 1), else_=0)),
               func.sum(case((c.c.status.in_(FAILED), 1), else_=0)))
        .where(c.c.club_id == s.club_id, c.c.due_on >= s.date_from, c.c.due_on <= s.date_to)
        .group_by(month))
    return {_month_key(k): (int(a or 0), int(f or 0)) for k, a, f in rows}


def _recoveries(session: Session, s: Scope) -> dict[int, tuple[int, int, int]]:
    c, i, p = Collection.__table__, Invoice.__table__, DuesPayment.__table__
    failures = (select(c.c.invoice_id,
                       func.min(func.coalesce(c.c.failed_on, c.c.due_on)).label("failed_on"))
                .where(c.c.club_id == s.club_id, c.c.status.in_(FAILED))
                .group_by(c.c.invoice_id).subquery("failures"))
    deadline = sql.add_days(failures.c.failed_on, RECOVERY_DAYS)
    paid = (select(func.coalesce(func.sum(sql.cents(p.c.amount)), 0))
            .where(p.c.invoice_id == failures.c.invoice_id, p.c.occurred_on <= deadline)
            .scalar_subquery())
    recovered = paid >= sql.cents(i.c.gross)
    month = sql.month_start(failures.c.failed_on).label("month")
    rows = session.execute(
        select(month, func.count(), func.sum(case((recovered, 1), else_=0)),
               func.sum(case((and_(~recovered, deadline >= s.as_of), 1), else_=0)))
        .select_from(failures.join(i, i.c.id == failures.c.invoice_id))
        .where(failures.c.failed_on >= s.date_from, failures.c.failed_on <= s.date_to)
        .group_by(month))
    return {_month_key(k): (int(n), int(r or 0), int(o or 0)) for k, n, r, o in rows}


def collections(session: Session, s: Scope) -> list[CollectionMonth]:
    tries, back = _attempts(session, s), _recoveries(session, s)
    out = []
    for m, _, _ in months(s):
        attempted, failed = tries.get(m, (0, 0))
        n, recovered, pending = back.get(m, (0, 0, 0))
        out.append(CollectionMonth(
            month=month_label(m), attempted=attempted, failed=failed,
            failed_rate=stats.rate(failed, attempted), failed_invoices=n, recovered=recovered,
            pending=pending, recovery_rate=stats.rate(recovered, n - pending)))
    return out


# --- involuntary and voluntary churn -----------------------------------------------------------

def contract_end(c, m):
    """A contract's last day: `ends_on`, or the day before its membership's `cancelled_on` when
    that is earlier (or the only one); null while neither is set."""
    cut = sql.add_days(m.c.cancelled_on, -1)
    return case((m.c.cancelled_on.is_(None), c.c.ends_on),
                (c.c.ends_on.is_(None), cut),
                (c.c.ends_on <= cut, c.c.ends_on), else_=cut)


def unpaid_on(club_id, member_id, payer_ids, day):
    """The member (or one of `payer_ids`, a select) had unpaid dues on `day`: a dunning case
    opened by then and not closed before it, or written off."""
    d = DunningCase.__table__
    return exists().where(
        d.c.club_id == club_id, or_(d.c.member_id == member_id, d.c.payer_id.in_(payer_ids)),
        d.c.opened_on <= day,
        or_(d.c.closed_on.is_(None), d.c.closed_on >= day, d.c.outcome == "written_off"))


def ending_kind(club_id, membership_id, member_id, day):
    """How a membership that ended on `day` ended: `involuntary` (unpaid dues that day, of the
    member or of its contract's payer), `voluntary` (its contract's cancellation was received),
    else `other` — the split of the renewal breakdown `by=dues` and of `churn`."""
    c = Contract.__table__
    payers = (select(c.c.payer_id).where(c.c.membership_id == membership_id)
              .correlate_except(c))  # two levels down: auto-correlation stops at one
    received = exists().where(c.c.membership_id == membership_id,
                              c.c.cancel_received_on.is_not(None))
    return case((unpaid_on(club_id, member_id, payers, day), "involuntary"),
                (received, "voluntary"), else_="other")


def churn(session: Session, s: Scope) -> list[ChurnMonth]:
    c, m = Contract.__table__, Membership.__table__
    ended = (select(c.c.membership_id, c.c.member_id, contract_end(c, m).label("last"))
             .select_from(c.join(m, m.c.id == c.c.membership_id))
             .where(c.c.club_id == s.club_id, not_void(m)).subquery("ended"))
    kind = ending_kind(s.club_id, ended.c.membership_id, ended.c.member_id,
                       ended.c.last).label("kind")
    month = sql.month_start(ended.c.last).label("month")
    found: dict[tuple[int, str], int] = {}
    for k, kind_, n in session.execute(
            select(month, kind, func.count())
            .where(ended.c.last >= s.date_from, ended.c.last <= s.date_to)
            .group_by(month, kind)):
        found[(_month_key(k), kind_)] = int(n)
    out = []
    for m_, _, _ in months(s):
        inv, vol, oth = (found.get((m_, k), 0) for k in ("involuntary", "voluntary", "other"))
        out.append(ChurnMonth(month=month_label(m_), ended=inv + vol + oth, involuntary=inv,
                              voluntary=vol, other=oth))
    return out


# --- the reports -------------------------------------------------------------------------------

def _scope(session: Session, club_id: int, as_of, date_from, date_to) -> Scope:
    return scope(session, club_id=club_id, as_of=as_of, date_from=date_from, date_to=date_to)


def _period(s: Scope) -> dict:
    return {"as_of": s.as_of, "date_from": s.date_from, "date_to": s.date_to}


def mrr_report(session: Session, *, club_id: int, as_of: date | None = None,
               date_from: date | None = None, date_to: date | None = None) -> MrrReport:
    """MRR, its movement and the average revenue per member, per month."""
    s = _scope(session, club_id, as_of, date_from, date_to)
    return MrrReport(**_period(s), items=mrr(session, s))


def revenue_report(session: Session, *, club_id: int, as_of: date | None = None,
                   date_from: date | None = None, date_to: date | None = None) -> RevenueReport:
    """Revenue by month, source and kind, and the month totals."""
    s = _scope(session, club_id, as_of, date_from, date_to)
    items, totals = revenue(session, s)
    return RevenueReport(**_period(s), items=items, months=totals)


def receivables_report(session: Session, *, club_id: int, as_of: date | None = None,
                       date_from: date | None = None,
                       date_to: date | None = None) -> ReceivablesReport:
    """Open invoice amounts by days past due on each month's day."""
    s = _scope(session, club_id, as_of, date_from, date_to)
    return ReceivablesReport(**_period(s), items=receivables(session, s))


def collections_report(session: Session, *, club_id: int, as_of: date | None = None,
                       date_from: date | None = None,
                       date_to: date | None = None) -> CollectionsReport:
    """Failed-payment rate by due month and recovery rate by failure month."""
    s = _scope(session, club_id, as_of, date_from, date_to)
    return CollectionsReport(**_period(s), items=collections(session, s))


def churn_report(session: Session, *, club_id: int, as_of: date | None = None,
                 date_from: date | None = None, date_to: date | None = None) -> ChurnReport:
    """Contracts ended per month: involuntary (unpaid dues), voluntary, other."""
    s = _scope(session, club_id, as_of, date_from, date_to)
    return ChurnReport(**_period(s), items=churn(session, s))
