"""The owner's money figures, each defined once: its report (`app.analytics.money`), its CSV
columns and its charts.

The API (`app.analytics.money_router`: JSON, `?format=csv`, `?format=svg`) and the owner's money
page (`app.web.money`: the charts and the CSV downloads) both read `FIGURES`, so a figure gives
the same numbers, file and chart either way; the page only sets the charts' widths. CSVs go
through `app.analytics.csvexport` like the other analytics reports, charts through
`app.web.charts` like the dashboard's.
"""
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from fastapi.responses import Response
from markupsafe import Markup
from pydantic import BaseModel
from sqlalchemy.orm import Session

from app.analytics import csvexport, money
from app.web import charts


@dataclass(frozen=True)
class Chart:
    """One SVG chart of a figure: `draw(report, **size)` (`width`, `height` as `app.web.charts`
    takes them; the charts' own defaults without)."""

    key: str  # the money page's name for it
    draw: Callable[..., Markup]


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

    def svg(self, report) -> Response:
        return Response(str(self.charts[0].draw(report)), media_type="image/svg+xml")


def amount(value: float | None) -> str:
    return "–" if value is None else f"{value:,.2f}"


# --- the charts --------------------------------------------------------------------------------

def _by_month(report, chart_id: str, title: str, description: str,
              series: list[charts.Series], **options) -> Markup:
    """A line chart over the report's months."""
    return charts.line_chart(chart_id=chart_id, title=title, description=description,
                             labels=[i.month for i in report.items], series=series, **options)


def _mrr(report: money.MrrReport, **size) -> Markup:
    items = report.items
    return _by_month(
        report, "chart-mrr", "Recurring revenue (MRR) and revenue per member",
        "MRR on each month's last day and MRR per member with a contract",
        [charts.Series("MRR", [float(i.mrr) for i in items]),
         charts.Series("per member", [None if i.arpm is None else float(i.arpm) for i in items],
                       charts.TEAL, True)], value_format=amount, **size)


def _movement(report: money.MrrReport, **size) -> Markup:
    items = report.items
    return _by_month(
        report, "chart-mrr-movement", "MRR movement",
        "New and reactivated MRR, expansion, contraction and churned MRR per month",
        [charts.Series("new", [float(i.new + i.reactivated) for i in items], charts.GREEN),
         charts.Series("expansion", [float(i.expansion) for i in items], charts.TEAL, True),
         charts.Series("contraction", [float(i.contraction) for i in items], charts.AMBER,
                       True),
         charts.Series("churned", [float(i.churned) for i in items], charts.RED, True)],
        value_format=amount, **size)


def _revenue(report: money.RevenueReport, **size) -> Markup:
    return charts.bar_chart(
        chart_id="chart-revenue", title="Revenue by month",
        description="Invoiced (net of credit notes) plus desk sales, per month",
        labels=[m.month for m in report.months], values=[float(m.total) for m in report.months],
        value_format=amount, **size)


def _receivables(report: money.ReceivablesReport, **size) -> Markup:
    """The bands on the period's last day."""
    last = report.items[-1].month if report.items else None
    rows = [r for r in report.items if r.month == last]
    return charts.bar_chart(
        chart_id="chart-receivables",
        title=f"Receivables by age on {rows[0].day}" if rows else "Receivables by age",
        description="Open invoice amounts by days past due", labels=[r.band for r in rows],
        values=[float(r.amount) for r in rows], value_format=amount, colour=charts.AMBER,
        **size)


def _collections(report: money.CollectionsReport, **size) -> Markup:
    items = report.items
    return _by_month(
        report, "chart-collections", "Failed payments and recovery",
        "Failed share of the collections due each month; share of the failed invoices paid "
        "within 30 days",
        [charts.Series("failed", [i.failed_rate for i in items], charts.RED),
         charts.Series("recovered", [i.recovery_rate for i in items], charts.GREEN, True)],
        value_format=charts.pct, y_max=1.0, **size)


def _churn(report: money.ChurnReport, **size) -> Markup:
    items = report.items
    return _by_month(
        report, "chart-churn", "Contracts ended: involuntary and voluntary",
        "Contracts ended after unpaid dues against cancellations received",
        [charts.Series("involuntary", [i.involuntary for i in items], charts.RED),
         charts.Series("voluntary", [i.voluntary for i in items], charts.BLUE, True)], **size)


# --- the table ---------------------------------------------------------------------------------

FIGURES: tuple[Figure, ...] = (
    Figure("mrr", money.mrr_report, money.MrrReport, money.MrrMonth,
           (Chart("mrr", _mrr), Chart("movement", _movement))),
    Figure("revenue", money.revenue_report, money.RevenueReport, money.RevenueRow,
           (Chart("revenue", _revenue),)),
    Figure("receivables", money.receivables_report, money.ReceivablesReport, money.AgeRow,
           (Chart("receivables", _receivables),)),
    Figure("collections", money.collections_report, money.CollectionsReport,
           money.CollectionMonth, (Chart("collections", _collections),)),
    Figure("churn", money.churn_report, money.ChurnReport, money.ChurnMonth,
           (Chart("churn", _churn),)),
)
BY_NAME = {f.name: f for f in FIGURES}
