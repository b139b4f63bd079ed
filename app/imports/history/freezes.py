"""freezes.csv: pauses of a membership, named by the membership's old id.

A freeze must lie within its membership (start to final end date) and not overlap another
freeze of it. Imported freezes do not move the end date again: memberships.csv gives the final
end date, freezes included.
"""
from datetime import date

from sqlalchemy import insert, select

from app.imports.csvfile import CsvFile, Problem, parse_date
from app.imports.history.common import Columns, Context, Row, derived_ref
from app.imports.history.report import FileReport
from app.memberships.models import Freeze

KIND = "freezes"
FIELDS: dict[str, tuple[str, ...]] = {
    "freeze_id": ("id", "external_id", "old_id", "pause_id"),
    "membership": ("membership_id", "membership_ref", "contract", "contract_id", "vertrag",
                   "vertragsnummer"),
    "start_date": ("start", "from", "beginn", "pause_start"),
    "end_date": ("end", "to", "until", "ende", "pause_end"),
    "reason": ("note", "grund", "comment"),
}
REQUIRED = ("membership", "start_date", "end_date")


def _parse(ctx: Context, row: Row) -> dict | None:
    book = ctx.book
    ref = row.text("membership")
    index = book.by_ref.get(ref) if ref else None
    if not ref:
        row.problem("membership", "membership is required")
    elif index is None:
        refused = ctx.state.get("refused_memberships", {}).get(ref)
        row.problem("membership", f"its membership (memberships.csv row {refused}) is not "
                    "imported" if refused else "no membership with this id (in memberships.csv "
                    "or the club)", ref)
    day_first = ctx.options.day_first
    start = row.take("start_date", parse_date, required=True, day_first=day_first)
    end = row.take("end_date", parse_date, required=True, day_first=day_first)
    if start and end and end < start:
        row.problem("end_date", f"ends before it starts ({start.isoformat()})", row.text("end_date"))
    if index is not None and start and end and not row.errors:
        e = book.entries[index]
        if start.toordinal() < e.start or end.toordinal() > e.end:
            row.problem("start_date", "outside its membership "
                        f"({date.fromordinal(e.start)} to {date.fromordinal(e.end)})",
                        row.text("start_date"))
    reason = row.string("reason", 200)
    if row.errors:
        return None
    return {"index": index, "start": start, "end": end, "reason": reason,
            "ref": row.string("freeze_id", 100) or derived_ref(ref, start.isoformat())}


def check(ctx: Context, csv: CsvFile, report: FileReport) -> None:
    cols = Columns(csv, FIELDS, REQUIRED, report,
                   mapping=ctx.options.mapping.get(KIND))
    if report.file_errors:
        return
    ctx.book.load(ctx.session, ctx.club_id)
    table = Freeze.__table__
    existing = set(ctx.session.scalars(select(table.c.external_ref).where(
        table.c.club_id == ctx.club_id, table.c.external_ref.is_not(None))))
    seen: dict[str, int] = {}
    spans: dict[int, list[tuple[int, int, int]]] = {}
    new_rows: set[int] = set()
    read_problems: list[Problem] = []
    for raw in csv.rows(read_problems):
        report.rows += 1
        row = Row(cols, raw)
        values = _parse(ctx, row)
        if values is not None:
            if values["ref"] in seen:
                row.problem("freeze_id", f"the same freeze as row {seen[values['ref']]}",
                            values["ref"])
            else:
                first, last = values["start"].toordinal(), values["end"].toordinal()
                for other_first, other_last, other_row in spans.get(values["index"], ()):
                    if first <= other_last and other_first <= last:
                        row.problem("start_date", f"overlaps the freeze in row {other_row}",
                                    row.text("start_date"))
                        break
        if not row.settle(report):
            continue
        seen[values["ref"]] = row.number
        if values["ref"] in existing:
            report.existing += 1
            continue
        spans.setdefault(values["index"], []).append(
            (values["start"].toordinal(), values["end"].toordinal(), row.number))
        new_rows.add(row.number)
        report.new += 1
    for problem in read_problems:
        report.reject(problem)
    ctx.state["freezes_new"] = new_rows
    ctx.tick("checking", csv)


def write(ctx: Context, csv: CsvFile, report: FileReport) -> None:
    cols = Columns(csv, FIELDS, REQUIRED, FileReport(csv.name, KIND),
                   mapping=ctx.options.mapping.get(KIND))
    new_rows: set[int] = ctx.state.get("freezes_new", set())
    batch = []
    for raw in csv.rows():
        if raw.number not in new_rows:
            continue
        values = _parse(ctx, Row(cols, raw))
        membership_id = ctx.book.entries[values["index"]].id if values else None
        if membership_id is None:  # its membership was not imported after all
            continue
        batch.append({"club_id": ctx.club_id, "membership_id": membership_id,
                      "start_date": values["start"], "end_date": values["end"],
                      "reason": values["reason"], "external_ref": values["ref"],
                      "created_at": ctx.day_start(values["start"])})
    if batch:
        ctx.session.execute(insert(Freeze.__table__), batch)
    report.created += len(batch)
    ctx.tick("importing", csv)
