"""The owner's money figures: `/api/v1/analytics/money/…`, owners and managers only.

Each figure of `app.analytics.money_figures.FIGURES` answers JSON, CSV (`?format=csv`) or its
SVG chart (`?format=svg`, drawn by `app.web.charts` like the dashboard's); the definitions are in
`app.analytics.money` and in docs/billing.md ("Money figures"). `/money/export` is the month's
accounting export.
"""
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from app.analytics import money, money_export
from app.analytics.money_figures import FIGURES, Figure
from app.analytics.router import From, To
from app.clubs.deps import ManagerActor
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


def _endpoint(figure: Figure):
    def endpoint(session: SessionDep, actor: ManagerActor, date_from: From = None,
                 date_to: To = None, fmt: FormatQ = ChartFormat.json):
        report = figure.compute(session, club_id=actor.club_id, date_from=date_from,
                                date_to=date_to)
        if fmt is ChartFormat.csv:
            return figure.csv(report)
        if fmt is ChartFormat.svg:
            return Response(str(charts.from_spec(figure.charts[0], report)),
                            media_type="image/svg+xml")
        return report
    endpoint.__name__ = figure.name
    return endpoint


for _figure in FIGURES:
    router.add_api_route(f"/{_figure.name}", _endpoint(_figure), methods=["GET"],
                         name=_figure.name, response_model=_figure.model, responses=RESPONSES,
                         description=money.__doc__)


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
    return money_export.download(session, club_id=actor.club_id, month=month,
                                 datev_batch=fmt is ExportFormat.datev, consultant=consultant,
                                 client=client)
