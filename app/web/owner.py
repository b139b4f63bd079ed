"""The owner's and managers' pages: the dashboard (renewals, retention, cohorts, touchpoints,
KPIs, trainers, café) with its CSV downloads under the cookie session, and the playbook editor
(touchpoints by stage, enable / disable, held-out share, templates with a live preview).

Figures come from the analytics, trainers and inventory services for one explicit period, so all
panels agree; the CSV of an analytics figure is the file the analytics API gives for that report
(both through `app.analytics.csvexport`).
"""
from collections import defaultdict
from datetime import date
from math import ceil
from typing import Annotated, Any

from fastapi import Form, Query, Request
from sqlalchemy.orm import Session

from app.analytics import csvexport
from app.analytics import service as analytics_service
from app.clubs import service as clubs_service
from app.core.actors import Actor
from app.core.errors import Invalid, NotFound
from app.core.schemas import IdPath
from app.core.types import MAX_ID
from app.inventory import service as inventory_service
from app.members import service as members_service
from app.memberships.rules import add_months
from app.retention import playbook
from app.retention import service as retention_service
from app.trainers import results as trainer_results
from app.web import charts
from app.web.auth import PageSession, back_to
from app.web.kit import STAGE_LABELS, Back, ManagerPage, done, page_router, render

router = page_router()

FromQ = Annotated[date | None, Query(alias="from", ge=date(2000, 1, 1), le=date(2100, 12, 31))]
ToQ = Annotated[date | None, Query(alias="to", ge=date(2000, 1, 1), le=date(2100, 12, 31))]
ByQ = Annotated[str, Query(pattern=r"^(plan|attendance|trainer|cohort|stage|channel|dues)$")]
DefinitionId = IdPath("definition id")


# --- the dashboard ---------------------------------------------------------------------------------

BREAKDOWNS = [("plan", "plan"), ("attendance", "attendance band"), ("trainer", "home trainer"),
              ("cohort", "join cohort"), ("stage", "at-risk history"),
              ("channel", "touchpoint channel"), ("dues", "how it ended (unpaid dues)")]


def _period_query(date_from: date | None, date_to: date | None) -> str:
    parts = []
    if date_from:
        parts.append(f"from={date_from.isoformat()}")
    if date_to:
        parts.append(f"to={date_to.isoformat()}")
    return "&".join(parts)


def resolve_period(session: Session, actor: Actor, date_from: date | None,
                   date_to: date | None) -> tuple[date, date]:
    """The dashboard's period: `to` defaults to (and is capped at) the club's today, `from` to
    the first of the month eleven months earlier — twelve calendar months, as the analytics API
    documents its default. Explicit dates are passed to every service so all figures agree."""
    today = clubs_service.club_today(clubs_service.get_club(session, actor.club_id))
    date_to = min(date_to or today, today)
    date_from = date_from or add_months(date_to.replace(day=1), -11)
    return date_from, date_to


def dashboard_data(session: Session, actor: Actor, date_from: date | None,
                   date_to: date | None, by: str) -> dict:
    """Everything the dashboard shows, from the analytics, trainers and inventory services."""
    a = analytics_service
    club_id = actor.club_id
    date_from, date_to = resolve_period(session, actor, date_from, date_to)
    period = {"date_from": date_from, "date_to": date_to}
    return {
        **period,
        "renewals": a.renewal_report(session, club_id=club_id, **period),
        "breakdown": a.renewal_breakdown(session, club_id=club_id, by=by, **period),
        "monthly": a.monthly(session, club_id=club_id, **period),
        "cohorts": a.cohorts(session, club_id=club_id, **period),
        "touchpoints": a.touchpoint_effectiveness(session, club_id=club_id, **period),
        "cancel_offers": a.cancel_offer_effectiveness(session, club_id=club_id, **period),
        "kpis": a.kpi_report(session, club_id=club_id, **period),
        "trainers": trainer_results.trainer_results(session, actor=actor, **period),
        "stock_value": inventory_service.stock_value(session, club_id=club_id),
        "cafe_sales": inventory_service.sales_report(session, club_id=club_id,
                                                     group_by="category", **period),
        "low_stock": inventory_service.low_stock(session, club_id=club_id)}


WIDE, HALF = 1160, 600  # viewBox widths: about 1:1 with the panels on a 1280px screen
PROVISIONAL = "#8fb3cf"  # a month whose renewals are not all decided yet


def dashboard_charts(data: dict) -> dict:
    """The SVG charts of the dashboard (server-side, with data labels)."""
    out: dict[str, Any] = {}
    r = data["renewals"]
    out["renewals"] = charts.bar_chart(
        chart_id="chart-renewals", title="Renewal rate by month",
        description=("Share of memberships that ended in each month and were renewed "
                     "(renewed ÷ decided); the latest months are provisional while members "
                     "are still in their grace days."),
        labels=[i.label for i in r.items], keys=[i.key for i in r.items],
        values=[i.renewal_rate for i in r.items], value_format=charts.pct, y_max=1.0,
        colours=[PROVISIONAL if i.in_grace else None for i in r.items],
        tooltips=[f"{i.label}: {charts.pct(i.renewal_rate, 1)} — {i.renewed} renewed, "
                  f"{i.lost} lost, {i.in_grace} undecided of {i.ended} ended"
                  + (" (provisional)" if i.in_grace else "") for i in r.items],
        width=WIDE, height=300)
    b = data["breakdown"]
    out["breakdown"] = charts.bar_chart(
        chart_id="chart-breakdown", title=f"Renewal rate by {b.by}",
        description=f"Renewal rate of the memberships that ended in the period, by {b.by}.",
        labels=[i.label for i in b.items], keys=[i.key for i in b.items],
        values=[i.renewal_rate for i in b.items], value_format=charts.pct, y_max=1.0,
        colour=charts.TEAL, width=HALF)
    months = [i for i in data["monthly"].items]
    out["retention"] = charts.line_chart(
        chart_id="chart-retention", title="Monthly retention and churn",
        description=("Of the members at the start of each month: the share still a member "
                     "next month (retention) and the share who left (churn)."),
        labels=[m.month for m in months],
        series=[charts.Series("retention", [m.retention_rate for m in months], charts.TEAL),
                charts.Series("churn", [m.churn_rate for m in months], charts.RED, True)],
        value_format=charts.pct, y_max=1.0, width=HALF)
    out["base"] = charts.bar_chart(
        chart_id="chart-base", title="Member base at the start of each month",
        description="Members with a valid membership on the first day of each month.",
        labels=[m.month for m in months], values=[m.members_at_start for m in months],
        tooltips=[f"{m.month}: {m.members_at_start} members, {m.joined} joined"
                  + (f", growth {m.growth:+d}" if m.growth is not None else "")
                  for m in months], width=HALF)
    c = data["cohorts"]
    out["cohorts"] = charts.heatmap(
        chart_id="chart-cohorts", title="Cohorts: share still a member",
        description=("Each row is the month members joined; each column the months since; "
                     "the cell is the share of that cohort still a member."),
        row_labels=[row.cohort for row in c.items],
        col_labels=[str(k) for k in range(c.months)],
        cells=[row.share for row in c.items],
        row_notes=[str(row.members) for row in c.items], width=WIDE)
    t = data["touchpoints"]
    out["touchpoints"] = charts.interval_chart(
        chart_id="chart-touchpoints", title="Touchpoint effectiveness",
        description=("Renewal rate of members who got each touchpoint minus the rate of the "
                     "held-out control group, with the interval its verdict reads (corrected "
                     "for the many touchpoints and for weekly looks)."),
        rows=[charts.Interval(key=i.key, label=i.name, estimate=i.difference,
                              low=i.adjusted_low, high=i.adjusted_high, verdict=i.verdict)
              for i in t.items],
        width=WIDE, interval_name="corrected interval")
    k = data["kpis"]
    out["frequency"] = charts.bar_chart(
        chart_id="chart-frequency", title="Visits per week",
        description="Members by their average visits per week in the period.",
        labels=[b.band for b in k.visit_frequency.bins],
        values=[b.members for b in k.visit_frequency.bins], colour=charts.TEAL,
        tooltips=[f"{b.band} visits a week: {b.members} members ({charts.pct(b.share)})"
                  for b in k.visit_frequency.bins], width=HALF)
    trainers = data["trainers"]
    out["trainers"] = charts.bar_chart(
        chart_id="chart-trainers", title="Renewal rate of each trainer's PT clients",
        description="Memberships of each trainer's PT clients that ended in the period and "
                    "were renewed.",
        labels=[tr.trainer_name for tr in trainers], keys=[str(tr.trainer_id) for tr in trainers],
        values=[tr.renewal_rate for tr in trainers], value_format=charts.pct, y_max=1.0,
        colour=charts.TEAL, empty_message="No trainers yet", width=HALF)
    return out


def power_text(more: int | None, months: float | None) -> str:
    """The numbers table's "to find a 5-point lift": 'needs about 340 more; at this pace about 5
    months' ('under a month', 'about 1 month', years beyond two years); '' without figures."""
    if more is None:
        return ""
    if more == 0:
        return "enough members"
    text = f"needs about {more:,} more"
    if months is None:
        return text
    if months < 1:
        return f"{text}; at this pace under a month"
    if months > 24:
        return f"{text}; at this pace about {round(months / 12)} years"
    whole = ceil(months)
    return f"{text}; at this pace about {whole} month{'' if whole == 1 else 's'}"


@router.get("/owner")
def dashboard(request: Request, session: PageSession, actor: ManagerPage,
              date_from: FromQ = None, date_to: ToQ = None,
              by: ByQ = "plan"):
    data = dashboard_data(session, actor, date_from, date_to, by)
    period = _period_query(date_from, date_to)
    return render(request, "owner.html", {
        "title": "Dashboard", "d": data, "charts": dashboard_charts(data), "by": by,
        "breakdowns": BREAKDOWNS, "period": period, "power_text": power_text,
        "q": ("?" + period) if period else "", "amp": ("&" + period) if period else ""})


# --- the dashboard's CSV under the cookie session ----------------------------------------------------

CSV_REPORTS = ("renewals", "renewals-breakdown", "retention-monthly", "cohorts", "touchpoints",
               "cancel-offers", "kpis", "trainers", "cafe-stock", "cafe-sales", "low-stock")


@router.get("/owner/csv/{report}.csv")
def dashboard_csv(session: PageSession, actor: ManagerPage, report: str,
                  date_from: FromQ = None, date_to: ToQ = None, by: ByQ = "plan"):
    if report not in CSV_REPORTS:
        raise NotFound("No such report", code="report_not_found")
    a = analytics_service
    club_id = actor.club_id
    date_from, date_to = resolve_period(session, actor, date_from, date_to)
    period = {"date_from": date_from, "date_to": date_to}
    if report == "renewals":
        return csvexport.renewals_csv("renewals",
                                      a.renewal_report(session, club_id=club_id, **period))
    if report == "renewals-breakdown":
        return csvexport.renewals_csv(f"renewals-by-{by}", a.renewal_breakdown(
            session, club_id=club_id, by=by, **period))
    if report == "retention-monthly":
        return csvexport.rows_csv("retention-monthly",
                                  a.monthly(session, club_id=club_id, **period).items)
    if report == "cohorts":
        return csvexport.cohorts_csv(a.cohorts(session, club_id=club_id, **period))
    if report == "touchpoints":
        return csvexport.rows_csv("touchpoints", a.touchpoint_effectiveness(
            session, club_id=club_id, **period).items)
    if report == "cancel-offers":
        return csvexport.rows_csv("cancel-offers", a.cancel_offer_effectiveness(
            session, club_id=club_id, **period).items)
    if report == "kpis":
        return csvexport.kpis_csv(a.kpi_report(session, club_id=club_id, **period))
    if report == "trainers":
        return csvexport.rows_csv("trainers", trainer_results.trainer_results(
            session, actor=actor, **period))
    if report == "cafe-stock":
        return csvexport.rows_csv("cafe-stock", inventory_service.stock_value(
            session, club_id=club_id)["items"])
    if report == "cafe-sales":
        return csvexport.rows_csv("cafe-sales", inventory_service.sales_report(
            session, club_id=club_id, group_by="category", **period)["items"])
    return csvexport.rows_csv("low-stock",
                              inventory_service.low_stock(session, club_id=club_id)["items"])


# --- the playbook editor ---------------------------------------------------------------------------

def trigger_text(d) -> str:
    stage = STAGE_LABELS.get(d.stage, d.stage) if d.stage else "any membership stage"
    days = d.days if d.days is not None else 0
    match d.trigger:
        case "days_after_stage_entry":
            return (f"on entering {stage}" if days == 0
                    else f"{days} day{'s' if days != 1 else ''} after entering {stage}")
        case "days_before_end":
            return f"{days} days before the membership ends ({stage})"
        case "visit_milestone":
            return f"on the member's visit number {d.visits}"
        case "no_visit_days":
            return f"no visit for {days} days in {stage}"
        case "birthday":
            return "on the member's birthday"
        case "visits_below_by_day":
            return f"fewer than {d.visits} visits by day {days} in {stage}"
        case "contract_cancelled":
            return (f"{days} day{'s' if days != 1 else ''} after a contract's cancellation was "
                    "recorded (until it ends)")
    return d.trigger.replace("_", " ")


CHANNEL_LABELS = {"email": "Email", "sms": "SMS", "call_task": "Call task (desk)",
                  "trainer_task": "Trainer task"}


@router.get("/owner/playbook")
def playbook_page(request: Request, session: PageSession, actor: ManagerPage):
    definitions = playbook.list_definitions(session, club_id=actor.club_id)
    order = [s.value for s in playbook.Stage]
    groups: dict[str, list] = defaultdict(list)
    for d in sorted(definitions, key=lambda d: (order.index(d.stage) if d.stage in order
                                                else len(order), -d.priority, d.id)):
        groups[d.stage or ""].append(d)
    settings = clubs_service.club_settings(request.state.club)
    return render(request, "playbook.html", {
        "title": "Playbook", "groups": list(groups.items()), "trigger_text": trigger_text,
        "channels": CHANNEL_LABELS, "club_holdout": settings.holdout_share})


def _preview_members(session: Session, actor: Actor, stage: str | None) -> list[dict]:
    rows, _ = retention_service.members_in_stage(session, club_id=actor.club_id, stage=stage,
                                                 limit=12, offset=0)
    members = []
    for row in rows:
        m = members_service.get_member(session, club_id=actor.club_id, member_id=row.member_id)
        members.append({"id": m.id, "name": f"{m.first_name} {m.last_name}"})
    if not members:
        found = members_service.search_members(session, club_id=actor.club_id, q=None, limit=12)
        members = [{"id": i["id"], "name": i["name"]} for i in found["items"]]
    return members


@router.get("/owner/playbook/{definition_id}")
def playbook_edit(request: Request, session: PageSession, actor: ManagerPage,
                  definition_id: DefinitionId):
    d = playbook.get_definition(session, club_id=actor.club_id, definition_id=definition_id)
    settings = clubs_service.club_settings(request.state.club)
    return render(request, "playbook_edit.html", {
        "title": f"Edit: {d.name}", "d": d, "trigger": trigger_text(d),
        "channel": CHANNEL_LABELS.get(d.channel, d.channel), "club_holdout": settings.holdout_share,
        "members": _preview_members(session, actor, d.stage)})


def _holdout(value: str | None) -> float | None:
    text = (value or "").strip().rstrip("%").strip()
    if not text:
        return None
    try:
        share = float(text.replace(",", ".")) / 100
    except ValueError:
        raise Invalid("The held-out share is a percentage between 0 and 90",
                      code="invalid_holdout") from None
    if not 0 <= share <= 0.9:
        raise Invalid("The held-out share is a percentage between 0 and 90",
                      code="invalid_holdout")
    return round(share, 4)


@router.post("/owner/playbook/{definition_id}")
def playbook_save(request: Request, session: PageSession, actor: ManagerPage,
                  definition_id: DefinitionId,
                  name: Annotated[str, Form(min_length=1, max_length=200)],
                  body_template: Annotated[str, Form(min_length=1, max_length=10_000)],
                  subject_template: Annotated[str, Form(max_length=500)] = "",
                  holdout_pct: Annotated[str | None, Form(max_length=10)] = None,
                  enabled: Annotated[str | None, Form(max_length=5)] = None):
    back_to(request, None, f"/owner/playbook/{definition_id}")
    d = playbook.update_definition(session, club_id=actor.club_id, definition_id=definition_id,
                                   changes={"name": name.strip(),
                                            "subject_template": subject_template,
                                            "body_template": body_template,
                                            "holdout_share": _holdout(holdout_pct),
                                            "enabled": enabled == "on"})
    return done(request, f"/owner/playbook/{d.id}", f"{d.name} saved.", "ok")


@router.post("/owner/playbook/{definition_id}/toggle")
def playbook_toggle(request: Request, session: PageSession, actor: ManagerPage,
                    definition_id: DefinitionId,
                    enabled: Annotated[str, Form(pattern=r"^(on|off)$")], back: Back = None):
    url = back_to(request, back, "/owner/playbook")
    d = playbook.set_enabled(session, club_id=actor.club_id, definition_id=definition_id,
                             enabled=enabled == "on")
    state = "enabled" if d.enabled else "disabled"
    return done(request, url, f"{d.name} {state}.", "ok")


@router.post("/owner/playbook/{definition_id}/preview")
def playbook_preview(request: Request, session: PageSession, actor: ManagerPage,
                     definition_id: DefinitionId,
                     member_id: Annotated[int, Form(ge=1, le=MAX_ID)],
                     body_template: Annotated[str, Form(min_length=1, max_length=10_000)],
                     subject_template: Annotated[str, Form(max_length=500)] = ""):
    """The draft rendered for one member by the retention service's preview, never saved: the
    draft is applied inside a SAVEPOINT that is rolled back."""
    savepoint = session.begin_nested()
    try:
        playbook.update_definition(session, club_id=actor.club_id, definition_id=definition_id,
                                   changes={"subject_template": subject_template,
                                            "body_template": body_template})
        preview = retention_service.preview(session, club_id=actor.club_id,
                                            definition_id=definition_id, member_id=member_id,
                                            settings=request.app.state.settings)
    finally:
        savepoint.rollback()
    return render(request, "_preview.html", {"p": preview,
                                             "channel": CHANNEL_LABELS.get(preview["channel"])})
