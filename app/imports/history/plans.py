"""plans.csv: what the club sold. A plan is found again by its old id, else by its name."""
from sqlalchemy import insert, select

from app.imports.csvfile import CsvFile, parse_bool, parse_int, parse_money
from app.imports.history.common import Columns, Context, PlanRef, Row, fold
from app.imports.history.report import FileReport
from app.memberships.models import Plan

KIND = "plans"
FIELDS: dict[str, tuple[str, ...]] = {
    "plan_id": ("id", "external_id", "old_id", "tarif_id", "tariff_id"),
    "name": ("plan", "plan_name", "title", "tarif", "tariff", "bezeichnung"),
    "duration_months": ("months", "laufzeit_monate", "monate"),
    "duration_days": ("days", "laufzeit_tage", "tage"),
    "price": ("amount", "fee", "preis", "beitrag"),
    "visit_limit": ("visits", "max_visits", "besuche"),
    "category": ("type", "kategorie"),
    "freeze_days": ("freeze", "pause_days"),
    "active": ("aktiv", "on_sale"),
}
REQUIRED = ("name", "price")


def load_existing(ctx: Context) -> None:
    """The club's plans under their old ids and names (once per import)."""
    if ctx.state.get("plans_loaded"):
        return
    ctx.state["plans_loaded"] = True
    for p in ctx.session.execute(select(Plan.__table__).where(Plan.club_id == ctx.club_id)
                                 .order_by(Plan.id)):
        ref = PlanRef(p.id, p.name, p.price, p.visit_limit, p.duration_days, p.duration_months)
        if p.external_ref:
            ctx.plans["id:" + p.external_ref] = ref
        ctx.plans.setdefault("name:" + fold(p.name), ref)


def _parse(ctx: Context, row: Row) -> dict:
    values = {
        "external_ref": row.string("plan_id", 100),
        "name": row.string("name", 100, required=True),
        "duration_months": row.take("duration_months", parse_int, minimum=1, maximum=120),
        "duration_days": row.take("duration_days", parse_int, minimum=1, maximum=3650),
        "price": row.take("price", parse_money, required=True),
        "visit_limit": row.take("visit_limit", parse_int, minimum=1, maximum=100_000),
        "category": row.string("category", 50),
        "freeze_days": row.take("freeze_days", parse_int, minimum=0, maximum=3650) or 0,
        "active": row.take("active", parse_bool),
    }
    if values["price"] is not None and values["price"] < 0:
        row.problem("price", "a price cannot be negative", row.text("price"))
    if not values["duration_months"] and not values["duration_days"] and not row.errors:
        row.problem("duration_months", "a plan needs a duration: duration_months or "
                    "duration_days")
    if values["active"] is None:
        values["active"] = True
    return values


def _key(values: dict) -> str:
    return ("id:" + values["external_ref"]) if values["external_ref"] else \
        "name:" + fold(values["name"])


def check(ctx: Context, csv: CsvFile, report: FileReport) -> None:
    cols = Columns(csv, FIELDS, REQUIRED, report,
                   mapping=ctx.options.mapping.get(KIND))
    if report.file_errors:
        return
    load_existing(ctx)
    seen: dict[str, int] = {}
    read_problems: list = []
    for raw in csv.rows(read_problems):
        report.rows += 1
        row = Row(cols, raw)
        values = _parse(ctx, row)
        if not row.errors:
            for key in filter(None, [values["external_ref"] and "id:" + values["external_ref"],
                                     "name:" + fold(values["name"])]):
                if key in seen:
                    what = "plan id" if key.startswith("id:") else "plan name"
                    column = "plan_id" if key.startswith("id:") else "name"
                    row.problem(column, f"the same {what} as row {seen[key]}", key[3:] if
                                key.startswith("id:") else values["name"])
        if not row.settle(report):
            continue
        key = _key(values)
        seen[key] = row.number
        seen.setdefault("name:" + fold(values["name"]), row.number)
        existing = ctx.plans.get(key)
        if existing is not None:
            report.existing += 1
            ctx.plans.setdefault("name:" + fold(values["name"]), existing)
            continue
        report.new += 1
        ref = PlanRef(None, values["name"], values["price"], values["visit_limit"],
                      values["duration_days"], values["duration_months"])
        ctx.plans[key] = ref
        ctx.plans.setdefault("name:" + fold(values["name"]), ref)
    for problem in read_problems:
        report.reject(problem)
    ctx.tick("checking", csv)


def write(ctx: Context, csv: CsvFile, report: FileReport) -> None:
    cols = Columns(csv, FIELDS, REQUIRED, FileReport(csv.name, KIND),
                   mapping=ctx.options.mapping.get(KIND))
    for raw in csv.rows():
        if raw.number in report.rejected:
            continue
        row = Row(cols, raw)
        values = _parse(ctx, row)
        ref = ctx.plans.get(_key(values))
        if ref is None or ref.id is not None:
            continue
        ref.id = ctx.session.execute(insert(Plan).values(
            club_id=ctx.club_id, auto_renew=False, **values).returning(Plan.id)).scalar_one()
        report.created += 1
    ctx.tick("importing", csv)
