"""The analytics reports as CSV: one writer for the API's `?format=csv` (`app.analytics.router`)
and the owner dashboard's downloads (`/owner/csv/…`, `app.web.owner`), so the same report gives
the same file either way.

Three shapes:

* a table (`rows_csv`): one row per item, the columns of the first row (a pydantic model or a
  dict), plus extra rows such as the "total" row (`renewals_csv`);
* the cohort matrix (`cohorts_csv`): one row per cohort, columns m0, m1, …;
* a nested report in long form (`long_csv`): one row per number, (section, item, measure,
  value).

Cells go through `app.core.csvout` (inert in a spreadsheet).
"""
from fastapi.responses import Response
from pydantic import BaseModel

from app.analytics.schemas import BeforeAfterReport, CohortReport
from app.core.csvout import csv_response

LONG_HEADER = ["section", "item", "measure", "value"]
LABEL_KEYS = ("channel", "kind", "reason", "band", "month", "source")

PROCESS_SECTIONS = ["joiners", "first_visit_14d", "month_without_visits",
                    "staff_interactions_30d", "touchpoints", "touchpoints_by_channel",
                    "call_tasks", "tasks_by_kind", "cancellations"]
KPI_SECTIONS = ["leads", "average_check", "average_check_by_kind", "member_base",
                "visit_frequency"]
LEAD_SECTIONS = ["created", "contacted", "won", "lost", "open", "conversion_rate",
                 "first_contact", "by_source", "lost_by_reason"]
BEFORE_AFTER_COLUMNS = ["key", "date_from", "date_to", "ended", "renewed", "in_grace", "lost",
                        "renewal_rate", "ci_low", "ci_high", "verdict", "adjusted_low",
                        "adjusted_high"]  # the verdict reads adjusted_low/high (issue 24)


def _as_dict(item) -> dict:
    return item.model_dump() if isinstance(item, BaseModel) else dict(item)


def rows_csv(name: str, items: list, extra: list[dict] | None = None,
             columns: list[str] | None = None) -> Response:
    """A table: one row per item (pydantic models or dicts), then `extra`; the columns are
    `columns`, else the first row's keys."""
    rows = [_as_dict(i) for i in items] + list(extra or [])
    if columns is None:
        columns = list(rows[0]) if rows else []
    return csv_response(name, columns, [[row.get(c) for c in columns] for row in rows])


def total_row(totals: BaseModel) -> dict:
    """The "total" row under a renewal table."""
    return {"key": "total", "label": "total", **totals.model_dump()}


def renewals_csv(name: str, report) -> Response:
    """A renewal report (`/renewals`, `/renewals/breakdown`): its rows and the total."""
    return rows_csv(name, report.items, [total_row(report.totals)])


def cohorts_csv(report: CohortReport) -> Response:
    """The cohort matrix: one row per cohort, columns m0, m1, … (shares; empty when not yet)."""
    header = ["cohort", "members"] + [f"m{k}" for k in range(report.months)]
    rows = [[r.cohort, r.members, *r.share, *([None] * (report.months - len(r.share)))]
            for r in report.items]
    return csv_response("retention-cohorts", header, rows)


def before_after_csv(report: BeforeAfterReport) -> Response:
    """Before and after, then the difference with its interval."""
    diff = {"key": "after - before", "renewal_rate": report.difference,
            "ci_low": report.ci_low, "ci_high": report.ci_high, "verdict": report.verdict,
            "adjusted_low": report.adjusted_low, "adjusted_high": report.adjusted_high}
    rows = [item.model_dump() for item in report.items] + [diff]
    return csv_response("renewals-before-after", BEFORE_AFTER_COLUMNS,
                        [[r.get(c) for c in BEFORE_AFTER_COLUMNS] for r in rows])


def flatten(section: str, obj, rows: list[list], item: str = "", prefix: str = "") -> None:
    """A nested report → rows (section, item, measure, value): one row per number."""
    if isinstance(obj, BaseModel):
        obj = obj.model_dump()
    if isinstance(obj, list):
        for element in obj:
            flatten(section, element, rows)
        return
    if not isinstance(obj, dict):
        rows.append([section, item, prefix.rstrip(".") or "value", obj])
        return
    label = next((str(obj[k]) for k in LABEL_KEYS if k in obj), item)
    for key, value in obj.items():
        if key in LABEL_KEYS or key == "label":
            continue
        if isinstance(value, list):
            flatten(f"{section}.{key}", value, rows)
        elif isinstance(value, dict):
            flatten(section, value, rows, label, f"{prefix}{key}.")
        else:
            rows.append([section, label, prefix + key, value])


def long_csv(name: str, report: BaseModel, sections: list[str]) -> Response:
    """The report's `sections` in long form, one row per number."""
    rows: list[list] = []
    for section in sections:
        flatten(section, getattr(report, section), rows)
    return csv_response(name, LONG_HEADER, rows)


def kpis_csv(report: BaseModel) -> Response:
    """The owner's numbers (`/kpis`) in long form."""
    return long_csv("kpis", report, KPI_SECTIONS)
