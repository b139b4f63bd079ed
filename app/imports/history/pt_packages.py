"""pt_packages.csv: personal-training packages with the sessions left.

The package's product is found by name; a name the club does not sell yet becomes an inactive
product (sessions, price and validity from the first row naming it). The trainer, if given, is a
staff email with a trainer profile in the club or in staff.csv.
"""
from sqlalchemy import insert, select

from app.imports.csvfile import CsvFile, Problem, parse_date, parse_int, parse_money
from app.imports.history.common import Columns, Context, Row, derived_ref, fold, resolve_member
from app.imports.history.memberships import MEMBER_FIELD, MEMBER_OR_CARD, member_fields
from app.imports.history.report import FileReport
from app.imports.history.staff import load_trainers
from app.trainers.models import PtPackage, PtProduct

KIND = "pt_packages"
FIELDS: dict[str, tuple[str, ...]] = {
    "package_id": ("id", "external_id", "old_id"),
    "member": MEMBER_FIELD,
    "product": ("package", "package_name", "name", "produkt", "paket"),
    "trainer": ("trainer_email", "coach"),
    "sessions_total": ("sessions", "total_sessions", "einheiten"),
    "sessions_left": ("remaining_sessions", "sessions_remaining", "resteinheiten", "left"),
    "price": ("price_paid", "paid", "amount", "preis"),
    "valid_from": ("start", "start_date", "from", "gueltig_ab"),
    "valid_until": ("end", "end_date", "until", "expires", "gueltig_bis"),
}
REQUIRED = ("product", "sessions_total", "sessions_left", "valid_from", "valid_until")


def _fields(reference: str) -> dict[str, tuple[str, ...]]:
    return {**FIELDS, **member_fields(reference)}


def _parse(ctx: Context, row: Row) -> dict | None:
    day_first = ctx.options.day_first
    key = resolve_member(ctx, row)
    product = row.string("product", 100, required=True)
    trainer = row.text("trainer").lower()
    if trainer and trainer not in ctx.trainers:
        row.problem("trainer", "no trainer with this email (in staff.csv as trainer, or in the "
                    "club)", trainer)
    total = row.take("sessions_total", parse_int, minimum=1, maximum=1000, required=True)
    left = row.take("sessions_left", parse_int, minimum=0, maximum=1000, required=True)
    if total is not None and left is not None and left > total:
        row.problem("sessions_left", f"more sessions left than in the package ({total})",
                    row.text("sessions_left"))
    price = row.take("price", parse_money)
    if price is not None and price < 0:
        row.problem("price", "a price cannot be negative", row.text("price"))
    start = row.take("valid_from", parse_date, required=True, day_first=day_first)
    until = row.take("valid_until", parse_date, required=True, day_first=day_first)
    if start and until and until < start:
        row.problem("valid_until", f"ends before it starts ({start.isoformat()})",
                    row.text("valid_until"))
    ref = row.string("package_id", 100)
    if row.errors:
        return None
    return {"key": key, "product": product, "trainer": trainer or None, "total": total,
            "left": left, "price": price, "start": start, "until": until,
            "ref": ref or derived_ref((row.text("member") or row.text("card")).strip(),
                                      fold(product), start.isoformat())}


def check(ctx: Context, csv: CsvFile, report: FileReport) -> None:
    cols = Columns(csv, _fields(ctx.options.reference), REQUIRED, report,
                   one_of=MEMBER_OR_CARD, mapping=ctx.options.mapping.get(KIND))
    if report.file_errors:
        return
    load_trainers(ctx)
    table = PtPackage.__table__
    existing = set(ctx.session.scalars(select(table.c.external_ref).where(
        table.c.club_id == ctx.club_id, table.c.external_ref.is_not(None))))
    products = {fold(name): pid for name, pid in ctx.session.execute(
        select(PtProduct.name, PtProduct.id).where(PtProduct.club_id == ctx.club_id)
        .order_by(PtProduct.id.desc()))}
    seen: dict[str, int] = {}
    new_rows: set[int] = set()
    read_problems: list[Problem] = []
    for raw in csv.rows(read_problems):
        report.rows += 1
        row = Row(cols, raw)
        values = _parse(ctx, row)
        if values and values["ref"] in seen:
            row.problem("package_id", f"the same package as row {seen[values['ref']]}",
                        values["ref"])
        if values:
            ctx.state["figures"].paid(values["start"], values["price"])
        if not row.settle(report):
            continue
        seen[values["ref"]] = row.number
        if values["ref"] in existing:
            report.existing += 1
            continue
        new_rows.add(row.number)
        report.new += 1
    for problem in read_problems:
        report.reject(problem)
    ctx.state["pt_new"] = new_rows
    ctx.state["pt_products"] = products
    ctx.tick("checking", csv)


def write(ctx: Context, csv: CsvFile, report: FileReport) -> None:
    cols = Columns(csv, _fields(ctx.options.reference), REQUIRED, FileReport(csv.name, KIND),
                   mapping=ctx.options.mapping.get(KIND))
    new_rows: set[int] = ctx.state.get("pt_new", set())
    products: dict[str, int] = ctx.state.get("pt_products", {})
    batch = []
    for raw in csv.rows():
        if raw.number not in new_rows:
            continue
        values = _parse(ctx, Row(cols, raw))
        member_id = ctx.refs.real(values["key"]) if values else None
        if member_id is None:
            continue
        name = fold(values["product"])
        if name not in products:
            products[name] = ctx.session.execute(insert(PtProduct).values(
                club_id=ctx.club_id, name=values["product"], sessions=values["total"],
                price=values["price"] or 0,
                validity_days=(values["until"] - values["start"]).days + 1,
                active=False).returning(PtProduct.id)).scalar_one()
            ctx.report.notes.append(f"{csv.name}: created the product {values['product']!r} "
                                    "(inactive: the club does not sell it yet)")
        batch.append({"club_id": ctx.club_id, "member_id": member_id,
                      "product_id": products[name],
                      "trainer_id": ctx.trainers.get(values["trainer"]) if values["trainer"]
                      else None,
                      "sessions_total": values["total"], "sessions_left": values["left"],
                      "price": values["price"] or 0, "valid_from": values["start"],
                      "valid_until": values["until"], "external_ref": values["ref"],
                      "created_at": ctx.day_start(values["start"])})
    if batch:
        ctx.session.execute(insert(PtPackage.__table__), batch)
    report.created += len(batch)
    ctx.tick("importing", csv)
