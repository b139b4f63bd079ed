"""The owner's money figures, each defined once: its report (`app.analytics.money`), its CSV
columns and its charts.

The API (`app.analytics.money_router`: JSON, `?format=csv`, `?format=svg`) and the owner's money
page (`app.web.money`: the charts and the CSV downloads) both read `FIGURES`, so a figure gives
the same numbers, file and chart either way; the page only sets the charts' widths. CSVs go
through `app.analytics.csvexport` like the other analytics reports; a chart is described here
and drawn by `app.web.charts.from_spec` (the interfaces draw; the analytics layer does not).
"""
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from app.analytics import csvexport, money


def _items(report) -> list:
    return report.items


def _month(row) -> str:
    return row.month


@dataclass(frozen=True)
class Line:
    """One series of a chart (a bar chart has one): its value in a row, a colour by name
    (blue, teal, red, green, amber), dashed or not."""

    name: str
    value: Callable[[Any], Any]
    colour: str = "blue"
    dashed: bool = False


@dataclass(frozen=True)
class Chart:
    """A chart of a figure, drawn by `app.web.charts.from_spec` for the API's `?format=svg`
    and the money page (which sets its width)."""

    key: str  # the money page's name for it
    chart_id: str
    kind: str  # line or bar
    title: str
    description: str
    lines: tuple[Line, ...]
    values: str = "plain"  # how values read: plain, money or share (0 to 1)
    rows: Callable[[Any], list] = _items  # what it draws of the report
    label: Callable[[Any], str] = _month  # a row's label on the x axis
    title_of: Callable[[list], str] | None = None  # the title from the rows drawn


@dataclass(frozen=True)
class Figure:
    name: str  # `/api/v1/analytics/money/<name>`, `/owner/money/csv/<name>.csv`
    report: Callable[..., BaseModel]  # (session, club_id=, date_from=, date_to=) → the report
    model: type[BaseModel]  # the report (the JSON answer)
    row: type[BaseModel]  # one of its `items`: a CSV row
    charts: tuple[Chart, ...]  # the first is the API's `?format=svg`

    @property
    def columns(self) -> list[str]:
        return list(self.row.model_fields)

    def compute(self, session: Session, *, club_id: int, date_from: date | None,
                date_to: date | None) -> BaseModel:
        return self.report(session, club_id=club_id, date_from=date_from, date_to=date_to)

    def csv(self, report) -> Response:
        """`money-<name>.csv`: one row per item (a header only when there are none)."""
        return csvexport.rows_csv(f"money-{self.name}", report.items, columns=self.columns)


def _latest_bands(report: money.ReceivablesReport) -> list:
    """The receivables bands on the period's last day."""
    last = report.items[-1].month if report.items else None
    return [r for r in report.items if r.month == last]


# --- the table ---------------------------------------------------------------------------------

FIGURES: tuple[Figure, ...] = (
    Figure("mrr", money.mrr_report, money.MrrReport, money.MrrMonth, (
        Chart("mrr", "chart-mrr", "line", "Recurring revenue (MRR) and revenue per member",
              "MRR on each month's last day and MRR per member with a contract",
              (Line("MRR", lambda i: i.mrr), Line("per member", lambda i: i.arpm, "teal", True)),
              values="money"),
        Chart("movement", "chart-mrr-movement", "line", "MRR movement",
              "New and reactivated MRR, expansion, contraction and churned MRR per month",
              (Line("new", lambda i: i.new + i.reactivated, "green"),
               Line("expansion", lambda i: i.expansion, "teal", True),
               Line("contraction", lambda i: i.contraction, "amber", True),
               Line("churned", lambda i: i.churned, "red", True)), values="money"))),
    Figure("revenue", money.revenue_report, money.RevenueReport, money.RevenueRow, (
        Chart("revenue", "chart-revenue", "bar", "Revenue by month",
              "Invoiced (net of credit notes) plus desk sales, per month",
              (Line("total", lambda m: m.total),), values="money", rows=lambda r: r.months),)),
    Figure("receivables", money.receivables_report, money.ReceivablesReport, money.AgeRow, (
        Chart("receivables", "chart-receivables", "bar", "Receivables by age",
              "Open invoice amounts by days past due", (Line("open", lambda a: a.amount, "amber"),),
              values="money", rows=_latest_bands, label=lambda a: a.band,
              title_of=lambda rows: f"Receivables by age on {rows[0].day}"),)),
    Figure("collections", money.collections_report, money.CollectionsReport,
           money.CollectionMonth, (
               Chart("collections", "chart-collections", "line", "Failed payments and recovery",
                     "Failed share of the collections due each month; share of the failed "
                     "invoices paid within 30 days",
                     (Line("failed", lambda i: i.failed_rate, "red"),
                      Line("recovered", lambda i: i.recovery_rate, "green", True)),
                     values="share"),)),
    Figure("churn", money.churn_report, money.ChurnReport, money.ChurnMonth, (
        Chart("churn", "chart-churn", "line", "Contracts ended: involuntary and voluntary",
              "Contracts ended after unpaid dues against cancellations received",
              (Line("involuntary", lambda i: i.involuntary, "red"),
               Line("voluntary", lambda i: i.voluntary, "blue", True))),)),
)
BY_NAME = {f.name: f for f in FIGURES}
