"""memberships.csv: memberships past and current, with the price paid and remaining visits.

Checks beyond each cell: the plan exists (plans.csv or the club), the end is not before the
start, no two memberships of one member overlap (the later one is refused — fitclub never lets a
member hold two at once), and a named renewal link points at a membership of the same member.
A membership starting at most `renewal_gap_days` after the member's previous one ended *renews*
it unless the file says what it renews (`renews`).

`end_date` is the final end date, freezes included (the old system already moved it out);
`original_end_date` defaults to it. Status is derived from the dates in fitclub; the file's
status only matters for "cancelled" (which needs `cancelled_on`).
"""
from datetime import date
from decimal import Decimal

from sqlalchemy import bindparam, case, func, insert, select, update

from app.access.models import Visit
from app.imports.csvfile import CsvFile, Problem, parse_date, parse_int, parse_money
from app.imports.history import plans
from app.imports.history.common import (
    Columns,
    Context,
    Entry,
    Row,
    derived_ref,
    fold,
    last_ordinal,
    resolve_member,
)
from app.imports.history.report import FileReport
from app.memberships.models import Membership
from app.memberships.rules import end_date_for

KIND = "memberships"
BATCH = 5000
MEMBER_FIELD: tuple[str, ...] = (
    "member_ref", "member_reference", "member_id", "member_number", "member_no", "customer",
    "customer_id", "customer_number", "customer_external_id", "client", "client_id",
    "client_number", "client_external_id", "mitglied", "mitgliedsnummer", "kunde",
    "kundennummer")
REFERENCE_COLUMNS = {
    "external_id": ("external_id", "old_id", "legacy_id"),
    "card": ("card", "card_code", "card_number", "karte", "kartennummer"),
    "email": ("email", "e_mail", "mail"),
    "phone": ("phone", "mobile", "telefon", "handy"),
}
CARD_FIELD: tuple[str, ...] = ("card_code", "card_number", "card_no", "karte", "kartennummer",
                              "chip", "badge", "rfid", "transponder")
MEMBER_OR_CARD = (("member", "card"),)


def member_fields(reference: str) -> dict[str, tuple[str, ...]]:
    """The member column (which also answers to the chosen reference's own name: card, email…)
    and, unless cards are the reference, a card column that may name the member instead."""
    return {"member": (*MEMBER_FIELD, *REFERENCE_COLUMNS[reference]),
            "card": () if reference == "card" else CARD_FIELD}


FIELDS: dict[str, tuple[str, ...]] = {
    "membership_id": ("id", "external_id", "old_id", "contract", "contract_id",
                      "contract_number",
                      "vertrag", "vertragsnummer", "vertrags_id"),
    "member": MEMBER_FIELD,
    "plan": ("plan_id", "plan_name", "tariff", "tarif", "product", "produkt"),
    "start_date": ("start", "from", "valid_from", "begin", "beginn", "vertragsbeginn"),
    "end_date": ("end", "to", "until", "valid_until", "ende", "vertragsende"),
    "price": ("price_paid", "paid", "amount", "preis", "betrag"),
    "status": ("state", "zustand"),
    "cancelled_on": ("canceled_on", "cancelled", "cancellation_date", "cancelled_at",
                     "gekuendigt_am", "kuendigungsdatum", "kundigungsdatum"),
    "cancel_reason": ("cancellation_reason", "reason", "kuendigungsgrund", "grund"),
    "renews": ("renews_id", "renewal_of", "previous", "previous_membership",
               "previous_membership_id", "verlaengerung_von"),
    "visit_limit": ("visits", "max_visits", "besuche"),
    "visits_used": ("used_visits", "visits_taken", "genutzte_besuche"),
    "visits_left": ("remaining_visits", "visits_remaining", "restbesuche"),
    "original_end_date": ("original_end",),
}
REQUIRED = ("plan", "start_date")
CANCELLED = {"cancelled", "canceled", "cancel", "terminated", "gekundigt", "gekuendigt",
             "storniert", "kundigung", "kuendigung"}
NOT_CANCELLED = {"active", "aktiv", "current", "running", "laufend", "valid", "frozen", "paused",
                 "pausiert", "ruhend", "pending", "future", "expired", "abgelaufen", "ended",
                 "beendet", "inactive", "inaktiv", "finished", "renewed"}
COUNT_LATER = -1  # visits_used while the import's visits are still to be counted


def fields_for(reference: str) -> dict[str, tuple[str, ...]]:
    """The file's fields for this reference (see `member_fields`)."""
    return {**FIELDS, **member_fields(reference)}


def _word(text: str) -> str:
    return "".join(ch for ch in fold(text) if ch.isalpha())


def _status(text: str) -> bool:
    word = _word(text)
    if word in CANCELLED:
        return True
    if word in NOT_CANCELLED:
        return False
    raise ValueError("not a status; write active, expired, frozen or cancelled (the dates decide "
                     "all but cancelled)")


def _reason(ctx: Context, text: str) -> tuple[str, str | None]:
    """A reason as written → (the club's reason key, a note when it is not one of them)."""
    wanted = fold(text.replace("_", " "))
    for key, label in ctx.settings.cancellation_reasons.items():
        if wanted in (fold(key.replace("_", " ")), fold(label)):
            return key, None
    return "other", text


def _parse(ctx: Context, row: Row) -> dict | None:
    """The row → the membership's columns (without member and ids), or None with errors."""
    day_first = ctx.options.day_first
    key = resolve_member(ctx, row)
    plan_text = row.text("plan")
    plan = None
    if not plan_text:
        row.problem("plan", "plan is required")
    else:
        plan = ctx.plans.get("id:" + plan_text) or ctx.plans.get("name:" + fold(plan_text))
        if plan is None:
            row.problem("plan", "no plan with this id or name; add it to plans.csv or create it "
                        "in the club first", plan_text)
    start = row.take("start_date", parse_date, required=True, day_first=day_first)
    end = row.take("end_date", parse_date, day_first=day_first)
    if end is None and start and plan and not row.text("end_date"):
        try:
            end = end_date_for(start, duration_days=plan.duration_days,
                               duration_months=plan.duration_months)
        except ValueError:
            row.problem("end_date", "end date is required (the plan has no duration)")
    if start and end and end < start:
        row.problem("end_date", f"ends before it starts ({start.isoformat()})", row.text("end_date"))
    price = row.take("price", parse_money)
    if price is not None and price < 0:
        row.problem("price", "a price cannot be negative", row.text("price"))
    cancelled = row.take("status", _status)
    cancelled_on = row.take("cancelled_on", parse_date, day_first=day_first)
    if cancelled and cancelled_on is None and not row.text("cancelled_on"):
        row.problem("cancelled_on", "a cancelled membership needs the day it was cancelled "
                    "(cancelled_on)")
    if cancelled_on and end and cancelled_on > end:
        row.problem("cancelled_on", "cancelled after it ended; leave cancelled_on empty for a "
                    "membership that ran to its end", row.text("cancelled_on"))
    reason = note = None
    if cancelled_on is not None:
        reason, note = _reason(ctx, row.text("cancel_reason")) if row.text("cancel_reason") \
            else ("other", None)
    limit = row.take("visit_limit", parse_int, minimum=1, maximum=100_000)
    if limit is None and plan is not None and not row.text("visit_limit"):
        limit = plan.visit_limit
    used = row.take("visits_used", parse_int, minimum=0, maximum=100_000)
    left = row.take("visits_left", parse_int, minimum=0, maximum=100_000)
    if limit is None and (used is not None or left is not None):
        row.problem("visit_limit", "visits used or left are given but there is no visit limit "
                    "(here or on the plan)")
    elif limit is not None:
        if left is not None:
            if left > limit:
                row.problem("visits_left", f"more visits left than the limit ({limit})",
                            row.text("visits_left"))
            used = limit - left if used is None else used
        if used is not None and used > limit:
            row.problem("visits_used", f"more visits used than the limit ({limit})",
                        row.text("visits_used"))
    original_end = row.take("original_end_date", parse_date, day_first=day_first)
    ref = row.string("membership_id", 100)
    renews = row.string("renews", 100)
    if row.errors:
        return None
    member_raw = (row.text("member") or row.text("card")).strip()
    return {"key": key, "member_raw": member_raw, "plan": plan, "start": start,
            "end": end, "price": plan.price if price is None else price,
            "cancelled_on": cancelled_on, "reason": reason, "note": note, "limit": limit,
            "used": used, "original_end": original_end or end,
            "ref": ref or derived_ref(member_raw, fold(plan_text), start.isoformat()),
            "renews": renews}


def _drop(ctx: Context, index: int) -> None:
    """Take a refused row's membership out of the book (its freezes and visits see none)."""
    e = ctx.book.entries[index]
    ctx.book.by_member[e.member].remove(index)
    if e.ref is not None and ctx.book.by_ref.get(e.ref) == index:
        del ctx.book.by_ref[e.ref]
        ctx.state.setdefault("refused_memberships", {})[e.ref] = e.row
    e.last = None


def _describe(e: Entry) -> str:
    days = f"{date.fromordinal(e.start)} to {date.fromordinal(e.end)}"
    if e.row:
        return f"membership {e.ref} ({days}, row {e.row})"
    return f"membership #{e.id} already in the club ({days})"


def check(ctx: Context, csv: CsvFile, report: FileReport) -> None:
    cols = Columns(csv, fields_for(ctx.options.reference), REQUIRED, report,
                   one_of=MEMBER_OR_CARD, mapping=ctx.options.mapping.get(KIND))
    if report.file_errors:
        return
    ctx.book.load(ctx.session, ctx.club_id)
    plans.load_existing(ctx)
    read_problems: list[Problem] = []
    for n, raw in enumerate(csv.rows(read_problems), 1):
        report.rows += 1
        row = Row(cols, raw)
        values = _parse(ctx, row)
        known = None
        if values is not None:
            ctx.state["figures"].membership(values["start"], values["end"],
                                            values["cancelled_on"], values["price"])
            known = ctx.book.by_ref.get(values["ref"])
            if known is not None and ctx.book.entries[known].row:
                row.problem("membership_id", "the same membership id as row "
                            f"{ctx.book.entries[known].row}", values["ref"])
        if not row.settle(report):
            continue
        if known is not None:
            report.existing += 1
            continue
        entry = Entry(values["key"], values["start"].toordinal(), values["end"].toordinal(),
                      last_ordinal(values["start"], values["end"], values["cancelled_on"]),
                      values["ref"], row.number)
        entry.renews = values["renews"]
        ctx.book.add(entry)
        report.new += 1
        if n % 2000 == 0:
            ctx.tick("checking", csv)
    for problem in read_problems:
        report.reject(problem)
    _check_members(ctx, cols, report)
    ctx.tick("checking", csv)


def _check_members(ctx: Context, cols: Columns, report: FileReport) -> None:
    """Overlaps and renewal links, per member that the file gives memberships."""
    book, gap = ctx.book, ctx.options.renewal_gap_days
    members = {e.member for e in book.entries if e.row}
    for member in members:
        indexes = book.by_member[member]
        fixed = [book.entries[i] for i in indexes if not book.entries[i].row
                 and book.entries[i].last is not None]
        new = sorted((i for i in indexes if book.entries[i].row), key=lambda i: (
            book.entries[i].start, book.entries[i].row))
        accepted: list[Entry] = []
        for i in new:
            e = book.entries[i]
            if e.last is None:  # void: cancelled before it began
                continue
            clash = next((o for o in (*fixed, *accepted)
                          if o.start <= e.last and e.start <= o.last), None)
            if clash is not None:
                report.reject(Problem(report.file, e.row, cols.name("start_date"),
                                      f"overlaps {_describe(clash)} of the same member",
                                      date.fromordinal(e.start).isoformat()))
                _drop(ctx, i)
                report.new -= 1
            else:
                accepted.append(e)
        for i in list(book.by_member[member]):
            e = book.entries[i]
            if not e.row:
                continue
            if isinstance(e.renews, str):
                target = book.by_ref.get(e.renews)
                problem = None
                if target is None:
                    problem = "no membership with this id (here or in the club)"
                elif book.entries[target].member != member:
                    problem = "that membership belongs to another member"
                elif book.entries[target].start >= e.start:
                    problem = "a membership can only renew one that started before it"
                if problem:
                    report.reject(Problem(report.file, e.row, cols.name("renews"), problem,
                                          e.renews))
                    _drop(ctx, i)
                    report.new -= 1
                    continue
                e.renews = target
            elif e.last is not None:
                before = [j for j in book.by_member[member] if j != i
                          and book.entries[j].last is not None
                          and book.entries[j].last < e.start]
                if before:
                    j = max(before, key=lambda j: book.entries[j].last)
                    if 1 <= e.start - book.entries[j].last <= gap:
                        e.renews = j


def write(ctx: Context, csv: CsvFile, report: FileReport) -> None:
    cols = Columns(csv, fields_for(ctx.options.reference), REQUIRED, FileReport(csv.name, KIND),
                   mapping=ctx.options.mapping.get(KIND))
    table = Membership.__table__
    batch: list[dict] = []
    connection = ctx.session.connection()
    pg = connection.dialect.name == "postgresql"
    dbapi = connection.connection.dbapi_connection if pg else None

    def flush() -> None:
        if not batch:
            return
        # PostgreSQL: COPY; SQLite: executemany. Then the ids by old id (one INSERT …
        # RETURNING would make the driver rewrite a query of 80,000 parameters)
        if pg:
            columns = list(batch[0])
            with dbapi.cursor() as cursor, cursor.copy(
                    f"COPY memberships ({', '.join(columns)}) FROM STDIN") as copy:
                for row in batch:
                    copy.write_row([row[c] for c in columns])
        else:
            ctx.session.execute(insert(table), batch)
        refs = [row["external_ref"] for row in batch]
        for ref, membership_id in ctx.session.execute(
                select(table.c.external_ref, table.c.id).where(
                    table.c.club_id == ctx.club_id, table.c.external_ref.in_(refs))):
            ctx.book.entries[ctx.book.by_ref[ref]].id = membership_id
        report.created += len(batch)
        batch.clear()
        ctx.tick("importing", csv)

    for raw in csv.rows():
        if raw.number in report.rejected:
            continue
        values = _parse(ctx, Row(cols, raw))
        index = ctx.book.by_ref.get(values["ref"]) if values else None
        if index is None or ctx.book.entries[index].row != raw.number:
            continue  # already in the club from an earlier run
        member_id = ctx.refs.real(values["key"])
        if member_id is None:  # its member was not imported after all
            continue
        used = values["used"]
        if used is None:
            used = COUNT_LATER if values["limit"] is not None else 0
        batch.append({
            "club_id": ctx.club_id, "member_id": member_id,
            "plan_id": values["plan"].id, "start_date": values["start"],
            "end_date": values["end"], "original_end_date": values["original_end"],
            "price": Decimal(values["price"]), "visit_limit": values["limit"],
            "visits_used": used, "cancelled_on": values["cancelled_on"],
            "cancel_reason": values["reason"], "cancel_note": values["note"],
            "external_ref": values["ref"], "created_at": ctx.day_start(values["start"]),
            "updated_at": ctx.now})
        if len(batch) >= BATCH:
            flush()
    flush()
    links = [{"b_id": e.id, "b_renews": ctx.book.entries[e.renews].id}
             for e in ctx.book.entries if e.row and e.id and isinstance(e.renews, int)]
    stmt = update(table).where(table.c.id == bindparam("b_id")).values(
        renews_id=bindparam("b_renews"))
    for start in range(0, len(links), BATCH):
        ctx.session.execute(stmt, links[start:start + BATCH])


def count_visits(ctx: Context) -> None:
    """visits_used of the imported memberships that did not give it: their imported visits."""
    table = Membership.__table__
    counted = (select(Visit.membership_id, func.count().label("n"))
               .where(Visit.club_id == ctx.club_id, Visit.membership_id.is_not(None))
               .group_by(Visit.membership_id).subquery("counted"))
    capped = case((counted.c.n > table.c.visit_limit, table.c.visit_limit), else_=counted.c.n)
    ctx.session.execute(update(table).values(visits_used=capped).where(
        table.c.id == counted.c.membership_id, table.c.club_id == ctx.club_id,
        table.c.visits_used == COUNT_LATER))
    ctx.session.execute(update(table).values(visits_used=0).where(
        table.c.club_id == ctx.club_id, table.c.visits_used == COUNT_LATER))
