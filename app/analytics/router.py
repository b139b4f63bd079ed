"""Analytics API: `/api/v1/analytics/…`, owners and managers only; JSON, or CSV with ?format=csv.

Every figure's definition is in the endpoint's description below and in docs/analytics.md.
The club is the caller's; "today" is the club's today; a period ends today at the latest.
"""
from datetime import date
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import Field

from app.analytics import csvexport, service
from app.analytics import leads as lead_kpis
from app.analytics.schemas import (
    BeforeAfterReport,
    CancelOfferReport,
    CohortReport,
    KpiReport,
    MonthlyReport,
    ProcessReport,
    RenewalBreakdown,
    RenewalReport,
    SurvivalReport,
    TouchpointReport,
)
from app.clubs.deps import ManagerActor
from app.core.deps import SessionDep
from app.core.types import MAX_ID

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])

Day = Annotated[date, Field(ge=date(2000, 1, 1), le=date(2100, 12, 31))]
From = Annotated[Day | None, Query(alias="from", description="first day (club time); default: "
                                   "the first of the month eleven months before `to`")]
To = Annotated[Day | None, Query(alias="to", description="last day (club time); default and "
                                 "at the latest: today")]
PlanQ = Annotated[int | None, Query(ge=1, le=MAX_ID, description="only this plan (see each "
                                    "report for what it filters)")]


class Format(StrEnum):
    json = "json"
    csv = "csv"


FormatQ = Annotated[Format, Query(alias="format", description="json (default) or csv")]
CSV_RESPONSE = {200: {"content": {"text/csv": {}},
                      "description": "JSON, or CSV with ?format=csv (UTF-8, comma-separated)"}}

RENEWAL_RULES = """
**Ended**: a membership ends on its last day — the end date (already moved out by freezes), or
the day before `cancelled_on` when it was cancelled before its end (a cancellation ends it).
One cancelled on or before its first day never ran and counts nowhere. It belongs to the period
when its last day falls in [from, to].

**Renewed**: the member started another membership (not one cancelled before it began, and
starting later than this one started) between 30 days before and `grace_days` (club setting)
after the last day. An early renewal, a plan switch and a return within grace count; a
parallel membership started the same day does not; a return after grace is a new start, not a
renewal.

**in_grace**: not renewed, and today is not yet past last day + grace — undecided, not lost.
**lost**: not renewed, window closed. **renewal_rate** = renewed / (renewed + lost), so a recent
period's rate is provisional until `in_grace` is 0. `plan_id`: memberships of that plan.
"""


# ----------------------------------------------------------------------------- renewals

@router.get("/renewals", response_model=RenewalReport, responses=CSV_RESPONSE,
            description="Renewal rate of the memberships that ended in the period, in total and "
                        "per month of their last day.\n" + RENEWAL_RULES)
def renewals(session: SessionDep, actor: ManagerActor, date_from: From = None,
             date_to: To = None, plan_id: PlanQ = None, fmt: FormatQ = Format.json):
    report = service.renewal_report(session, club_id=actor.club_id, date_from=date_from,
                                    date_to=date_to, plan_id=plan_id)
    if fmt is Format.csv:
        return csvexport.renewals_csv("renewals", report)
    return report


BREAKDOWN_RULES = """
- `plan`: the plan of the membership that ended;
- `cohort`: the month of the member's first membership start (join cohort);
- `trainer`: the member's home trainer — the trainer named on their PT package whose validity
  overlaps the membership (latest `valid_from`, then latest sold); without one, the trainer of
  their last completed PT session during the membership; else "no PT";
- `attendance`: visits per week over the membership's last 8 weeks (56 club-local days up to
  its last day; its whole length when shorter): under 1, 1–2, 2–3, 3+ (half-open bands);
- `stage`: whether the member entered `at_risk` (stage history) between the membership's start
  and last day;
- `channel`: the channels of the touchpoints delivered (status sent) for the membership — those
  planned with it as the membership in context, win-back messages after the end included;
  a membership with several channels is in several rows ("none": nothing delivered), so rows
  overlap and `totals` is the period's.
- `dues`: how it ended (issue 20): `involuntary` — the member (or its contract's payer) had
  unpaid dues on the last day (a dunning case opened by then and not closed before it, or
  written off); `voluntary` — its recurring contract's cancellation was received; `other`.
"""


@router.get("/renewals/breakdown", response_model=RenewalBreakdown, responses=CSV_RESPONSE,
            description="The renewal figures of `/renewals` per group:\n" + BREAKDOWN_RULES
                        + RENEWAL_RULES)
def renewals_breakdown(session: SessionDep, actor: ManagerActor, by: service.By,
                       date_from: From = None, date_to: To = None, plan_id: PlanQ = None,
                       fmt: FormatQ = Format.json):
    report = service.renewal_breakdown(session, club_id=actor.club_id, by=by,
                                       date_from=date_from, date_to=date_to, plan_id=plan_id)
    if fmt is Format.csv:
        return csvexport.renewals_csv(f"renewals-by-{by.value}", report)
    return report


# ----------------------------------------------------------------------------- touchpoints

@router.get("/touchpoints", response_model=TouchpointReport, responses=CSV_RESPONSE,
            description="""Which touchpoints lift renewals, against the held-out control group.

For each playbook definition, among the memberships that ended in the period (see `/renewals`)
and were decided (not in grace): the renewal rate of those **exposed** (a touchpoint of this
definition planned for the membership was sent) against those **held out** (status `held_out`),
the difference exposed − held out, its raw **95 % confidence interval (Newcombe's hybrid score
interval for a difference of two proportions, from Wilson intervals)** in `ci_low`/`ci_high`,
its **corrected interval** in `adjusted_low`/`adjusted_high`, and a verdict read from the
corrected one:

- "too few members to tell" — either group has fewer than 30 decided memberships;
- "lifts renewals" — the whole corrected interval is above 0;
- "lowers renewals" — the whole corrected interval is below 0;
- "no measurable effect" — the corrected interval contains 0 (not shown yet, which is not
  shown to do nothing: see `detectable`).

The corrected interval stays valid however often the report is looked at (an always-valid
normal-mixture sequential test) and is corrected for all the report's comparisons judged
together (e-Benjamini–Hochberg, `family_size`, `discoveries`, `adjusted_level`): in a club where
no touchpoint makes a difference, a report shows a false verdict at most 5 % of the time, at any
look, with a fixed `from`. Power: `detectable` is the smallest difference the verdict finds with
80 % power at the current sizes; `more_needed` about how many more decided memberships (split as
now) it needs to find 5 points, `months_needed` how long that takes at the period's pace.
`method` names the method; docs/analytics.md ("Verdicts") explains it.

A touchpoint counts for the membership it was planned for (`membership_id`: the membership in
context — win-back messages after an end count for the membership that ended). The holdout is
random (a hash of member and definition), so **assigned** (intention to treat: planned and not
held out, whether it was sent, skipped for consent or the frequency cap, stopped or failed)
against held out is the unbiased comparison; exposed against held out can flatter a message
that reaches only consenting, engaged members. Both are shown; where they disagree, trust
`itt_verdict`. Memberships with both held-out and planned rows of one definition (the holdout
share changed) are counted in `mixed` and left out. `plan_id`: memberships of that plan.""")
def touchpoints(session: SessionDep, actor: ManagerActor, date_from: From = None,
                date_to: To = None, plan_id: PlanQ = None, fmt: FormatQ = Format.json):
    report = service.touchpoint_effectiveness(session, club_id=actor.club_id,
                                              date_from=date_from, date_to=date_to,
                                              plan_id=plan_id)
    if fmt is Format.csv:
        return csvexport.rows_csv("touchpoints", report.items)
    return report


# ----------------------------------------------------------------------------- retention

@router.get("/retention/monthly", response_model=MonthlyReport, responses=CSV_RESPONSE,
            description="""Per calendar month of the period:

- `members_at_start`: members with a membership valid on the month's first day (started, not
  past its last day, not cancelled; a frozen membership counts); `members_at_end` the same on
  the next month's first day, `growth` and `growth_pct` the change (only once that day came);
- `joined`: members whose first membership started in the month;
- `retained` / `churned` / `undecided` (complete months only): of the members at the start,
  those whose **tenure** ran into the next month / ended in the month and the grace window has
  passed / ended in the month, grace still open. A tenure joins memberships with gaps shorter
  than `grace_days`, so a member who renews a few days late is not churned;
- `retention_rate` = retained / (retained + churned), `churn_rate` = churned / (retained +
  churned).

`plan_id`: members holding that plan at the month's start (their tenure counts in any plan);
`joined` counts those whose first membership was of that plan.""")
def retention_monthly(session: SessionDep, actor: ManagerActor, date_from: From = None,
                      date_to: To = None, plan_id: PlanQ = None, fmt: FormatQ = Format.json):
    report = service.monthly(session, club_id=actor.club_id, date_from=date_from,
                             date_to=date_to, plan_id=plan_id)
    if fmt is Format.csv:
        return csvexport.rows_csv("retention-monthly", report.items)
    return report


@router.get("/retention/cohorts", response_model=CohortReport, responses=CSV_RESPONSE,
            description="""Cohort matrix: join month (the month of a member's first membership
start, for join months in the period) × months since joining. Cell k: the share of the cohort
in a tenure (memberships joined across gaps shorter than `grace_days`) on the **last day of the
k-th month after the join month** (k = 0: the join month itself). Only months that have ended
are shown, so later cohorts have fewer cells. `plan_id`: members whose first membership was of
that plan. CSV: one row per cohort, columns m0, m1, … (shares).""")
def retention_cohorts(session: SessionDep, actor: ManagerActor, date_from: From = None,
                      date_to: To = None, plan_id: PlanQ = None, fmt: FormatQ = Format.json):
    report = service.cohorts(session, club_id=actor.club_id, date_from=date_from,
                             date_to=date_to, plan_id=plan_id)
    if fmt is Format.csv:
        return csvexport.cohorts_csv(report)
    return report


@router.get("/retention/survival", response_model=SurvivalReport, responses=CSV_RESPONSE,
            description="""Tenure survival curve (Kaplan-Meier). A tenure spell joins a member's
consecutive memberships whose gaps are shorter than `grace_days`; its length is its first to
its last day. A spell has *ended* (an event) once today is past its last day + grace; a running
spell is censored at today, one that ended with grace still open at its last day. `items`: one
row per tenure length (days) with an event — at risk, events, censored, survival. `marks`:
survival at 30, 90, 180, 365 and 730 days (null when no spell was followed that long);
`median_days`: the first length where survival is at most 50 %. `from` / `to`: spells that
started in that period (default: all); `plan_id`: spells whose first membership was of that
plan.""")
def retention_survival(session: SessionDep, actor: ManagerActor,
                       date_from: Annotated[Day | None, Query(alias="from")] = None,
                       date_to: Annotated[Day | None, Query(alias="to")] = None,
                       plan_id: PlanQ = None, fmt: FormatQ = Format.json):
    report = service.survival(session, club_id=actor.club_id, date_from=date_from,
                              date_to=date_to, plan_id=plan_id)
    if fmt is Format.csv:
        return csvexport.rows_csv("retention-survival", report.items)
    return report


@router.get("/retention/before-after", response_model=BeforeAfterReport, responses=CSV_RESPONSE,
            description="Renewal rate of memberships whose last day is before `date` against "
                        "those on or after it (defaults: six months either side, never after "
                        "today), the difference (after − before) with a 95 % Newcombe interval "
                        "(ci_low, ci_high) and a verdict read from an always-valid 95 % "
                        "interval (adjusted_low, adjusted_high; a family of one). Not a "
                        "controlled comparison: seasons, prices and the members themselves "
                        "change too — the touchpoint holdout is the fair test.\n"
                        + RENEWAL_RULES)
def before_after(session: SessionDep, actor: ManagerActor,
                          on: Annotated[Day, Query(alias="date", description="the day of the "
                                                   "change: 'after' starts here")],
                          date_from: From = None, date_to: To = None, plan_id: PlanQ = None,
                          fmt: FormatQ = Format.json):
    report = service.before_after(session, club_id=actor.club_id, on=on, date_from=date_from,
                                  date_to=date_to, plan_id=plan_id)
    if fmt is Format.csv:
        return csvexport.before_after_csv(report)
    return report


@router.get("/touchpoints/cancel-offers", response_model=CancelOfferReport,
            responses=CSV_RESPONSE,
            description="""Did the member stay? The `contract_cancelled` plays (offers made *after* a
cancellation was recorded), contacted against held out.

The unit is a cancelled recurring contract's membership with a play of that definition whose
trigger day is in the period. The outcome, read today: **stayed** — the cancellation was
withdrawn (the contract runs on), or another membership of the member starts after the cancelled
one's start and at the latest `stay_days` (30) days after the contract's last day; **left** —
neither, and more than 30 days have passed since the last day; **undecided** otherwise (left out
of the rates, counted in `undecided`). A withdrawn cancellation that is given again later is
judged by the contract as it stands. Contacted: a touchpoint of the play was sent; held out:
status `held_out` (the holdout is random per member and play); assigned: planned and not held
out, whatever became of it (the unbiased comparison). Verdicts as `/touchpoints`
(docs/analytics.md, "Verdicts").""")
def cancel_offers(session: SessionDep, actor: ManagerActor, date_from: From = None,
                  date_to: To = None, fmt: FormatQ = Format.json):
    report = service.cancel_offer_effectiveness(session, club_id=actor.club_id,
                                                date_from=date_from, date_to=date_to)
    if fmt is Format.csv:
        return csvexport.rows_csv("cancel-offers", report.items)
    return report


# ----------------------------------------------------------------------------- process, KPIs

@router.get("/process", response_model=ProcessReport, responses=CSV_RESPONSE,
            description="""Process measures of the period.

- **Joiners**: members whose first membership (not void) started in the period (`plan_id`:
  whose first membership was of that plan).
- `first_visit_14d`: joiners with a visit on the join day or the 13 days after (club days), of
  those whose 14 days are over.
- `month_without_visits`: joiners with no visit in at least one of their first three months
  (counted from the join day: join day to one month later − 1 day, and the two after), of those
  whose three months are over.
- `staff_interactions_30d`: interactions logged by staff (not the engine's own entries) on the
  join day or the 29 days after, per joiner whose 30 days are over; and the share with 4 or
  more.
- `touchpoints`: touchpoints whose trigger day is in the period, by status and channel;
  `delivery_rate` = sent / (sent + skipped + failed) (held out = control group; cancelled =
  stopped on purpose; pending = not due yet).
- `call_tasks` (kinds call and renewal_offer) and `tasks_by_kind`: tasks due in the period;
  `done_on_time` = done before the end of the due day (club time); `on_time_rate` = on time /
  (due − cancelled).
- `cancellations`: memberships whose cancellation took effect in the period (`plan_id`: of that
  plan), by reason, and the share with a reason recorded.
CSV: one row per number (section, measure, value).""")
def process(session: SessionDep, actor: ManagerActor, date_from: From = None, date_to: To = None,
            plan_id: PlanQ = None, fmt: FormatQ = Format.json):
    report = service.process_report(session, club_id=actor.club_id, date_from=date_from,
                                    date_to=date_to, plan_id=plan_id)
    if fmt is Format.csv:
        return csvexport.long_csv("process", report, csvexport.PROCESS_SECTIONS)
    return report


@router.get("/kpis", response_model=KpiReport, responses=CSV_RESPONSE,
            description="""The owner's numbers for the period.

- `leads`: people first recorded (member records created) in the period — prospects and
  walk-ins alike, until the CRM keeps a lead pipeline; `converted`: sold a membership (not void)
  within 30 days (30 × 24 h) of being recorded; `open`: not converted and their 30 days are not
  over (left out); `per_100` = 100 × converted / (leads − open).
- `average_check`: the average receipt (sale total, before refunds) of sales made in the period,
  to the cent; by kind: receipts whose lines are all one kind (membership, pt_package, product…)
  or `mixed`.
- `member_base`: members with a membership valid on each month's first day and the growth to
  the next month's (see `/retention/monthly`).
- `visit_frequency`: members with a membership valid on at least one day of the period, by
  visits per week = visits in the period × 7 / their days with a valid membership in the period
  (frozen days included): 0, under 1, 1–2, 2–3, 3–4, 4–5, 5+ (half-open bands).
CSV: one row per number (section, measure, value).""")
def kpis(session: SessionDep, actor: ManagerActor, date_from: From = None, date_to: To = None,
         fmt: FormatQ = Format.json):
    report = service.kpi_report(session, club_id=actor.club_id, date_from=date_from,
                                date_to=date_to)
    if fmt is Format.csv:
        return csvexport.kpis_csv(report)
    return report


# ----------------------------------------------------------------------------- leads (CRM)

@router.get("/leads", response_model=lead_kpis.LeadReport, responses=CSV_RESPONSE,
            description=lead_kpis.__doc__ + "\nCSV: one row per number (section, measure, "
                                            "value).")
def leads(session: SessionDep, actor: ManagerActor, date_from: From = None, date_to: To = None,
          fmt: FormatQ = Format.json):
    report = lead_kpis.lead_report(session, club_id=actor.club_id, date_from=date_from,
                                   date_to=date_to)
    if fmt is Format.csv:
        return csvexport.long_csv("leads", report, csvexport.LEAD_SECTIONS)
    return report
