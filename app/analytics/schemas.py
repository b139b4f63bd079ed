"""Response shapes of the analytics endpoints. Rates are shares in [0, 1] rounded to 4 places."""
from datetime import date
from decimal import Decimal

from pydantic import Field

from app.core.schemas import Out


class Period(Out):
    as_of: date = Field(description="the club's today: the day the figures are taken on")
    date_from: date
    date_to: date = Field(description="last day of the period (never after as_of)")
    grace_days: int = Field(description="the renewal window after an end (club setting, ≥ 1)")
    plan_id: int | None = None


# --- renewals ---------------------------------------------------------------------------------------

class RenewalCounts(Out):
    ended: int = Field(description="memberships whose last day falls in the period")
    renewed: int = Field(description="of those, the member started another membership between "
                                     "30 days before and grace_days after that last day")
    in_grace: int = Field(description="not renewed yet, but the grace window is still open "
                                      "(undecided: not counted as lost)")
    lost: int = Field(description="not renewed and the grace window has passed")
    renewal_rate: float | None = Field(description="renewed / (renewed + lost): decided only")


class RenewalRow(RenewalCounts):
    key: str
    label: str


class RenewalReport(Period):
    totals: RenewalCounts
    items: list[RenewalRow] = Field(description="one row per month of the last day")


class RenewalBreakdown(Period):
    by: str
    note: str | None = None
    totals: RenewalCounts
    items: list[RenewalRow]


class MembershipOutcome(Out):
    membership_id: int
    member_id: int
    plan_id: int
    start_date: date
    last_day: date
    outcome: str


class BeforeAfterRow(RenewalCounts):
    key: str
    date_from: date
    date_to: date


class BeforeAfterReport(Out):
    as_of: date
    date: date
    grace_days: int
    plan_id: int | None
    items: list[BeforeAfterRow] = Field(description="'before' then 'after'")
    difference: float | None = Field(description="after rate minus before rate")
    ci_low: float | None
    ci_high: float | None
    verdict: str = Field(description="read from the always-valid interval (adjusted_low, "
                                     "adjusted_high): a family of one")
    method: str
    adjusted_low: float | None = Field(
        None, description="always-valid 95 % interval of the difference (valid however often "
                          "the report is looked at); ci_low/ci_high stay the raw 95 % interval")
    adjusted_high: float | None = None


# --- touchpoints ------------------------------------------------------------------------------------

class TouchpointRow(Out):
    definition_id: int
    key: str
    name: str
    stage: str | None
    channel: str
    enabled: bool
    exposed: int = Field(description="decided memberships whose member got it (status sent)")
    exposed_renewed: int
    exposed_rate: float | None
    held_out: int = Field(description="decided memberships whose member was held out")
    held_out_renewed: int
    held_out_rate: float | None
    difference: float | None = Field(description="exposed_rate − held_out_rate")
    ci_low: float | None = Field(description="95 % interval of the difference (Newcombe)")
    ci_high: float | None
    verdict: str = Field(description="read from the adjusted interval, not the raw one")
    assigned: int = Field(description="intention to treat: every membership planned for it and "
                                      "not held out, sent or not (skipped, cancelled, failed)")
    assigned_renewed: int
    assigned_rate: float | None
    itt_difference: float | None
    itt_ci_low: float | None
    itt_ci_high: float | None
    itt_verdict: str = Field(description="read from itt_adjusted_low/itt_adjusted_high")
    in_grace: int = Field(description="memberships it was planned for that are still undecided")
    mixed: int = Field(description="memberships with both held-out and planned rows (left out)")
    adjusted_low: float | None = Field(
        None, description="the interval the verdict reads: always-valid (any number of looks) "
                          "and corrected for the report's family of comparisons (level "
                          "adjusted_level); ci_low/ci_high stay the raw 95 % interval")
    adjusted_high: float | None = None
    detectable: float | None = Field(
        None, description="smallest true difference the verdict would find with 80 % power at "
                          "the current group sizes (capped at 1)")
    more_needed: int | None = Field(
        None, description="about how many more decided memberships (split as now) are needed "
                          "to find a 5-point difference")
    months_needed: float | None = Field(
        None, description="about how many months that takes at the pace of the report period")
    itt_adjusted_low: float | None = None
    itt_adjusted_high: float | None = None
    itt_detectable: float | None = None
    itt_more_needed: int | None = None
    itt_months_needed: float | None = None


class TouchpointReport(Period):
    method: str
    min_group: int
    items: list[TouchpointRow]
    alpha: float | None = Field(
        None, description="the chance of any false verdict in a report without true effects, "
                          "at any look (and the false discovery rate otherwise)")
    family_size: int | None = Field(
        None, description="m: the comparisons judged together (two per definition)")
    discoveries: int | None = Field(
        None, description="R: the verdicts other than 'no measurable effect'/'too few' (e-BH)")
    adjusted_level: float | None = Field(
        None, description="error level of each adjusted interval: alpha · max(R, 1) / m")


# --- retention over time ----------------------------------------------------------------------------

class MonthRow(Out):
    month: str
    first_day: date
    members_at_start: int = Field(description="members with a membership valid on the first day")
    members_at_end: int | None = Field(description="… on the first day of the next month")
    growth: int | None
    growth_pct: float | None = Field(description="growth / members_at_start × 100, 2 places")
    joined: int = Field(description="members whose first membership started this month")
    retained: int | None = Field(description="members at start whose tenure ran into next month")
    churned: int | None = Field(description="… whose tenure ended this month (decided)")
    undecided: int | None = Field(description="… whose tenure ended this month, grace still open")
    retention_rate: float | None = Field(description="retained / (retained + churned)")
    churn_rate: float | None = Field(description="churned / (retained + churned)")


class MonthlyReport(Period):
    items: list[MonthRow]


class CohortRow(Out):
    cohort: str = Field(description="month of the members' first membership start")
    members: int
    still: list[int] = Field(description="k = 0, 1, …: members in a tenure on the last day of "
                                         "the k-th month after the join month")
    share: list[float | None]


class CohortReport(Period):
    months: int = Field(description="columns: months since joining 0 … months − 1")
    items: list[CohortRow]


class SurvivalRow(Out):
    day: int = Field(description="tenure in days")
    at_risk: int
    events: int
    censored: int
    survival: float


class SurvivalMark(Out):
    day: int
    survival: float | None


class SurvivalReport(Out):
    as_of: date
    date_from: date | None
    date_to: date | None
    grace_days: int
    plan_id: int | None
    spells: int
    events: int
    censored: int
    longest_days: int | None
    median_days: int | None
    marks: list[SurvivalMark]
    items: list[SurvivalRow]


# --- process ---------------------------------------------------------------------------------------

class Share(Out):
    count: int
    of: int
    share: float | None


class InteractionsFirst30(Out):
    members: int = Field(description="joiners whose first 30 days are over")
    interactions: int
    per_member: float | None
    four_or_more: Share


class TouchpointStatusRow(Out):
    channel: str
    planned: int
    sent: int
    held_out: int
    skipped: int
    cancelled: int
    failed: int
    pending: int
    delivery_rate: float | None = Field(description="sent / (sent + skipped + failed)")


class TaskRow(Out):
    kind: str
    due: int
    done: int
    done_on_time: int
    cancelled: int
    open: int
    on_time_rate: float | None = Field(description="done_on_time / (due − cancelled)")


class ReasonRow(Out):
    reason: str
    label: str
    count: int
    share: float | None


class Cancellations(Out):
    total: int
    with_reason: Share
    by_reason: list[ReasonRow]


class ProcessReport(Period):
    joiners: int
    first_visit_14d: Share
    month_without_visits: Share
    staff_interactions_30d: InteractionsFirst30
    touchpoints: TouchpointStatusRow
    touchpoints_by_channel: list[TouchpointStatusRow]
    call_tasks: TaskRow
    tasks_by_kind: list[TaskRow]
    cancellations: Cancellations


# --- KPIs -------------------------------------------------------------------------------------------

class Leads(Out):
    leads: int = Field(description="people first recorded in the period")
    converted: int = Field(description="of those, sold a membership within 30 days")
    open: int = Field(description="not converted yet, and their 30 days are not over")
    per_100: float | None = Field(description="converted per 100 decided leads, 2 places")


class CheckRow(Out):
    kind: str
    sales: int
    total: Decimal
    average: Decimal | None


class FrequencyBin(Out):
    band: str
    members: int
    share: float | None


class VisitFrequency(Out):
    members: int
    visits: int
    member_days: int
    bins: list[FrequencyBin]


class BaseMonth(Out):
    month: str
    members_at_start: int
    growth_pct: float | None


class KpiReport(Period):
    leads: Leads
    average_check: CheckRow
    average_check_by_kind: list[CheckRow]
    member_base: list[BaseMonth]
    visit_frequency: VisitFrequency


# --- cancel offers ----------------------------------------------------------------------------------

class CancelOfferRow(Out):
    definition_id: int
    key: str
    name: str
    channel: str
    enabled: bool
    contacted: int = Field(description="decided cancellations whose member got it (status sent)")
    contacted_stayed: int
    contacted_rate: float | None = Field(description="contacted_stayed / contacted")
    held_out: int = Field(description="decided cancellations whose member was held out")
    held_out_stayed: int
    held_out_rate: float | None
    difference: float | None = Field(description="contacted_rate − held_out_rate")
    ci_low: float | None = Field(description="95 % interval of the difference (Newcombe)")
    ci_high: float | None
    verdict: str = Field(description="read from the corrected interval, as /touchpoints")
    assigned: int = Field(description="intention to treat: planned and not held out, sent or not")
    assigned_stayed: int
    assigned_rate: float | None
    itt_verdict: str
    undecided: int = Field(description="cancellations it was planned for whose outcome is open")
    mixed: int = Field(description="cancellations with both held-out and planned rows (left out)")


class CancelOfferReport(Period):
    method: str
    min_group: int
    stay_days: int = Field(description="a new membership starting within this many days after "
                                       "the cancelled contract's last day counts as staying")
    items: list[CancelOfferRow]
