"""The owner's money figures: `/api/v1/analytics/money/…`, owners and managers only.

Each figure answers JSON, CSV (`?format=csv`) or an SVG chart (`?format=svg`, drawn by
`app.web.charts` like the dashboard's); the definitions are in `app.analytics.money` and in
docs/billing.md ("Money figures"). `/money/export` is the month's accounting export.
"""
from datetime import date, timedelta
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from app.analytics import money, money_export
from app.analytics.router import From, To
from app.clubs.deps import ManagerActor
from app.core import sql
from app.core.csvout import csv_response
from app.core.deps import SessionDep
from app.web import charts

router = APIRouter(prefix="/api/v1/analytics/money", tags=["analytics"])


class ChartFormat(StrEnum):
    json = "json"
    csv = "csv"
    svg = "svg"


FormatQ = Annotated[ChartFormat, Query(alias="format", description="json (default), csv or "
                                                                  "svg (a chart)")]
RESPONSES = {200: {"content": {"text/csv": {}, "image/svg+xml": {}},
                   "description": "JSON, CSV with ?format=csv, an SVG chart with ?format=svg"}}


def _svg(markup) -> Response:
    return Response(str(markup), media_type="image/svg+xml")


def _rows_csv(name: str, items: list) -> Response:
    rows = [i.model_dump() for i in items]
    columns = list(rows[0]) if rows else []
    return csv_response(name, columns, [[r[c] for c in columns] for r in rows])


def _eur(value: float | None) -> str:
    return "–" if value is None else f"{value:,.2f}"


@router.get("/mrr", response_model=money.MrrReport, responses=RESPONSES,
            description=money.__doc__)
def mrr(session: SessionDep, actor: ManagerActor, date_from: From = None, date_to: To = None,
        fmt: FormatQ = ChartFormat.json):
    report = money.mrr_report(session, club_id=actor.club_id, date_from=date_from,
                              date_to=date_to)
    if fmt is ChartFormat.csv:
        return _rows_csv("money-mrr", report.items)
    if fmt is ChartFormat.svg:
        months = [i.month for i in report.items]
        return _svg(charts.line_chart(
            chart_id="chart-mrr", title="Recurring revenue (MRR) and revenue per member",
            description="MRR on each month's last day and MRR per member with a contract",
            labels=months, value_format=_eur,
            series=[charts.Series("MRR", [float(i.mrr) for i in report.items]),
                    charts.Series("per member", [None if i.arpm is None else float(i.arpm)
                                                 for i in report.items], charts.TEAL, True)]))
    return report


@router.get("/revenue", response_model=money.RevenueReport, responses=RESPONSES,
            description=money.__doc__)
def revenue(session: SessionDep, actor: ManagerActor, date_from: From = None,
            date_to: To = None, fmt: FormatQ = ChartFormat.json):
    report = money.revenue_report(session, club_id=actor.club_id, date_from=date_from,
                                  date_to=date_to)
    if fmt is ChartFormat.csv:
        return _rows_csv("money-revenue", report.items)
    if fmt is ChartFormat.svg:
        return _svg(charts.bar_chart(
            chart_id="chart-revenue", title="Revenue by month",
            description="Invoiced (net of credit notes) plus desk sales, per month",
            labels=[m.month for m in report.months],
            values=[float(m.total) for m in report.months], value_format=_eur))
    return report


@router.get("/receivables", response_model=money.ReceivablesReport, responses=RESPONSES,
            description=money.__doc__)
def receivables(session: SessionDep, actor: ManagerActor, date_from: From = None,
                date_to: To = None, fmt: FormatQ = ChartFormat.json):
    report = money.receivables_report(session, club_id=actor.club_id, date_from=date_from,
                                      date_to=date_to)
    if fmt is ChartFormat.csv:
        return _rows_csv("money-receivables", report.items)
    if fmt is ChartFormat.svg:
        last = report.items[-1].month
        rows = [r for r in report.items if r.month == last]
        return _svg(charts.bar_chart(
            chart_id="chart-receivables", title=f"Receivables by age on {rows[0].day}",
            description="Open invoice amounts by days past due", labels=[r.band for r in rows],
            values=[float(r.amount) for r in rows], value_format=_eur, colour=charts.AMBER))
    return report


@router.get("/collections", response_model=money.CollectionsReport, responses=RESPONSES,
            description=money.__doc__)
def collections(session: SessionDep, actor: ManagerActor, date_from: From = None,
                date_to: To = None, fmt: FormatQ = ChartFormat.json):
    report = money.collections_report(session, club_id=actor.club_id, date_from=date_from,
                                      date_to=date_to)
    if fmt is ChartFormat.csv:
        return _rows_csv("money-collections", report.items)
    if fmt is ChartFormat.svg:
        return _svg(charts.line_chart(
            chart_id="chart-collections", title="Failed payments and recovery",
            description="Failed share of the collections due each month; share of the failed "
                        "invoices paid within 30 days",
            labels=[i.month for i in report.items], value_format=charts.pct, y_max=1.0,
            series=[charts.Series("failed", [i.failed_rate for i in report.items], charts.RED),
                    charts.Series("recovered", [i.recovery_rate for i in report.items],
                                  charts.GREEN, True)]))
    return report


@router.get("/churn", response_model=money.ChurnReport, responses=RESPONSES,
            description=money.__doc__)
def churn(session: SessionDep, actor: ManagerActor, date_from: From = None, date_to: To = None,
          fmt: FormatQ = ChartFormat.json):
    report = money.churn_report(session, club_id=actor.club_id, date_from=date_from,
                                date_to=date_to)
    if fmt is ChartFormat.csv:
        return _rows_csv("money-churn", report.items)
    if fmt is ChartFormat.svg:
        return _svg(charts.line_chart(
            chart_id="chart-churn", title="Contracts ended: involuntary and voluntary",
            description="Contracts ended after unpaid dues against cancellations received",
            labels=[i.month for i in report.items],
            series=[charts.Series("involuntary", [i.involuntary for i in report.items],
                                  charts.RED),
                    charts.Series("voluntary", [i.voluntary for i in report.items],
                                  charts.BLUE, True)]))
    return report


class ExportFormat(StrEnum):
    csv = "csv"
    datev = "datev"


Month = Annotated[str, Query(pattern=r"^20\d\d-(0[1-9]|1[0-2])$",
                             description="YYYY-MM (2000-01 to 2099-12)")]


@router.get("/export", responses={200: {"content": {"text/csv": {}}}},
            description=money_export.__doc__)
def export(session: SessionDep, actor: ManagerActor, month: Month,
           fmt: Annotated[ExportFormat, Query(alias="format")] = ExportFormat.csv,
           consultant: Annotated[int, Query(ge=1001, le=9999999, description="DATEV "
                                            "Beraternummer")] = 1001,
           client: Annotated[int, Query(ge=1, le=99999, description="DATEV "
                                        "Mandantennummer")] = 1):
    first = date(int(month[:4]), int(month[5:]), 1)
    last = sql.month_of(sql.index_of(first) + 1) - timedelta(days=1)
    records = money_export.rows(session, club_id=actor.club_id, first=first, last=last)
    if fmt is ExportFormat.csv:
        return csv_response(f"accounting-{month}", money_export.COLUMNS,
                            [r.values() for r in records])
    body = money_export.datev(records, first=first, last=last, consultant=consultant,
                              client=client)
    return Response(body, media_type="text/csv; charset=windows-1252", headers={
        "Content-Disposition": f'attachment; filename="EXTF_Buchungsstapel_{month}.csv"'})

