"""Every analytics figure computed a second time, in plain Python over the raw rows.

Nothing here shares code with `app.analytics`: the rows are read with simple SELECTs of whole
tables, and each definition of docs/analytics.md is written out again as loops over them.
"""
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from math import log, sqrt
from statistics import NormalDist
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.access.models import Visit
from app.billing.models import Sale, SaleLine
from app.clubs.models import Club
from app.crm.models import Interaction, Task
from app.members.models import Member
from app.memberships.models import Membership, Plan
from app.retention.models import ScheduledTouchpoint, StageChange, TouchpointDefinition
from app.trainers.models import PtPackage, PtSession

D1 = timedelta(days=1)


def add_months(day: date, months: int) -> date:
    import calendar

    m = day.month - 1 + months
    year, month = day.year + m // 12, m % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def ym(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def month_starts(first: date, last: date) -> list[date]:
    out, d = [], first.replace(day=1)
    while d <= last:
        out.append(d)
        d = add_months(d, 1)
    return out


def rate(part, whole, digits=4):
    return round(part / whole, digits) if whole else None


@dataclass
class Raw:
    club_id: int
    zone: ZoneInfo
    grace: int
    labels: dict
    plans: dict = field(default_factory=dict)
    memberships: list = field(default_factory=list)
    members: list = field(default_factory=list)
    visits: list = field(default_factory=list)
    stage_changes: list = field(default_factory=list)
    packages: list = field(default_factory=list)
    sessions: list = field(default_factory=list)
    touchpoints: list = field(default_factory=list)
    definitions: list = field(default_factory=list)
    tasks: list = field(default_factory=list)
    interactions: list = field(default_factory=list)
    sales: list = field(default_factory=list)
    lines: list = field(default_factory=list)

    def local(self, instant: datetime) -> date:
        return instant.astimezone(self.zone).date()

    def day_start(self, day: date) -> datetime:
        return datetime.combine(day, time(0), tzinfo=self.zone).astimezone(UTC)


def load(session, club_id: int) -> Raw:
    club = session.get(Club, club_id)
    settings = club.settings or {}
    from app.clubs.schemas import DEFAULT_CANCELLATION_REASONS

    raw = Raw(club_id, ZoneInfo(club.timezone), max(settings.get("grace_days", 30), 1),
              settings.get("cancellation_reasons", DEFAULT_CANCELLATION_REASONS))

    def rows(model):
        table = model.__table__
        return session.execute(select(table).where(table.c.club_id == club_id)).all()

    raw.plans = {p.id: p.name for p in rows(Plan)}
    raw.memberships = rows(Membership)
    raw.members = rows(Member)
    raw.visits = rows(Visit)
    raw.stage_changes = rows(StageChange)
    raw.packages = rows(PtPackage)
    raw.sessions = rows(PtSession)
    raw.touchpoints = rows(ScheduledTouchpoint)
    raw.definitions = rows(TouchpointDefinition)
    raw.tasks = rows(Task)
    raw.interactions = rows(Interaction)
    raw.sales = rows(Sale)
    raw.lines = rows(SaleLine)
    return raw


# --- memberships --------------------------------------------------------------------------------

def last(m) -> date:
    if m.cancelled_on is not None and m.cancelled_on <= m.end_date:
        return m.cancelled_on - D1
    return m.end_date


def void(m) -> bool:
    return m.cancelled_on is not None and m.cancelled_on <= m.start_date


def valid(raw: Raw) -> list:
    return [m for m in raw.memberships if not void(m)]


def by_member(raw: Raw) -> dict:
    out = defaultdict(list)
    for m in valid(raw):
        out[m.member_id].append(m)
    for ms in out.values():
        ms.sort(key=lambda m: (m.start_date, m.id))
    return out


def outcome(raw: Raw, m, as_of: date, mine: dict) -> str:
    end = last(m)
    for n in mine[m.member_id]:
        if n.id != m.id and n.start_date > m.start_date and \
                end - timedelta(days=30) <= n.start_date <= end + timedelta(days=raw.grace):
            return "renewed"
    if end + timedelta(days=raw.grace) >= as_of:
        return "in_grace"
    return "lost"


def ended(raw: Raw, as_of: date, lo: date, hi: date, plan_id=None) -> list:
    mine = by_member(raw)
    hi = min(hi, as_of)
    return [(m, outcome(raw, m, as_of, mine)) for m in valid(raw)
            if lo <= last(m) <= hi and (plan_id is None or m.plan_id == plan_id)]


def tally(pairs) -> dict:
    c = {"renewed": 0, "in_grace": 0, "lost": 0}
    for _, o in pairs:
        c[o] += 1
    return {"ended": sum(c.values()), **c, "renewal_rate": rate(c["renewed"],
                                                                c["renewed"] + c["lost"])}


def grouped(pairs, key) -> dict:
    groups = defaultdict(list)
    for m, o in pairs:
        for k in key(m):
            groups[k].append((m, o))
    return {k: tally(v) for k, v in groups.items()}


def breakdown(raw: Raw, by: str, as_of: date, lo: date, hi: date, plan_id=None) -> dict:
    pairs = ended(raw, as_of, lo, hi, plan_id)
    mine = by_member(raw)
    if by == "month":
        return grouped(pairs, lambda m: [ym(last(m))])
    if by == "plan":
        return grouped(pairs, lambda m: [str(m.plan_id)])
    if by == "cohort":
        return grouped(pairs, lambda m: [ym(min(n.start_date for n in mine[m.member_id]))])
    if by == "trainer":
        def trainer_of(m):
            packs = [p for p in raw.packages if p.member_id == m.member_id and
                     p.trainer_id is not None and p.valid_from <= last(m) and
                     p.valid_until >= m.start_date]
            if packs:
                return [str(max(packs, key=lambda p: (p.valid_from, p.id)).trainer_id)]
            done = [t for t in raw.sessions if t.member_id == m.member_id and
                    t.status == "completed" and m.start_date <= raw.local(t.starts_at) <= last(m)]
            if done:
                return [str(max(done, key=lambda t: (t.starts_at, t.id)).trainer_id)]
            return ["none"]
        return grouped(pairs, trainer_of)
    if by == "attendance":
        visits = defaultdict(list)
        for v in raw.visits:
            visits[v.member_id].append(raw.local(v.occurred_at))

        def band(m):
            first = max(m.start_date, last(m) - timedelta(days=55))
            days = (last(m) - first).days + 1
            n = sum(1 for d in visits[m.member_id] if first <= d <= last(m))
            per_week = Decimal(n * 7) / Decimal(days)
            return ["0-1" if per_week < 1 else "1-2" if per_week < 2 else
                    "2-3" if per_week < 3 else "3+"]
        return grouped(pairs, band)
    if by == "stage":
        def stage(m):
            hit = any(c.member_id == m.member_id and c.to_stage == "at_risk" and
                      m.start_date <= c.on_date <= last(m) for c in raw.stage_changes)
            return ["at_risk" if hit else "never_at_risk"]
        return grouped(pairs, stage)
    if by == "channel":
        def channels(m):
            found = {t.channel for t in raw.touchpoints
                     if t.membership_id == m.id and t.member_id == m.member_id and
                     t.status == "sent"}
            return sorted(found) or ["none"]
        return grouped(pairs, channels)
    raise ValueError(by)


# --- touchpoints --------------------------------------------------------------------------------

Z = 1.959963984540054


def wilson(x, n):
    """Wilson score interval, from the roots of the quadratic |p - x/n| = z·sqrt(p(1-p)/n)."""
    phat = x / n
    a = 1 + Z * Z / n
    b = -(2 * phat + Z * Z / n)
    c = phat * phat
    disc = sqrt(b * b - 4 * a * c)
    return (-b - disc) / (2 * a), (-b + disc) / (2 * a)


def newcombe(x1, n1, x2, n2):
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1)
    l2, u2 = wilson(x2, n2)
    d = p1 - p2
    return d, d - sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def verdict(n1, n2, lo, hi):
    if n1 < 30 or n2 < 30:
        return "too few members to tell"
    if lo > 0:
        return "lifts renewals"
    if hi < 0:
        return "lowers renewals"
    return "no measurable effect"


# The corrected verdict (docs/analytics.md, "Verdicts"): a normal-mixture likelihood ratio per
# comparison, e-BH over the report's comparisons, the interval {δ : E(δ) < 1/a} found by bisection.
TAU, ALPHA, Z80 = 0.2, 0.05, NormalDist().inv_cdf(0.8)


def _var(x1, n1, x2, n2):
    q1, q2 = (x1 + 1) / (n1 + 2), (x2 + 1) / (n2 + 2)
    return q1 * (1 - q1) / n1 + q2 * (1 - q2) / n2


def _log_e(d, delta, v):
    """ln of the mixture of N(δ + θ, v) likelihoods over θ ~ N(0, τ²), against θ = 0."""
    return -0.5 * log(1 + TAU * TAU / v) + TAU * TAU * (d - delta) ** 2 / (2 * v * (v + TAU * TAU))


def _always_valid(d, v, a):
    def edge(far):  # the δ between d and far where E(δ) reaches 1/a
        inside, outside = d, far
        for _ in range(200):
            mid = (inside + outside) / 2
            inside, outside = (mid, outside) if _log_e(d, mid, v) < log(1 / a) else (inside, mid)
        return (inside + outside) / 2
    return max(edge(d - 3), -1.0), min(edge(d + 3), 1.0)


def _detectable(g1, g2, p, a):
    v = p * (1 - p) * (1 / g1 + 1 / g2)
    low, _ = _always_valid(0.0, v, a)
    return -low + Z80 * sqrt(v) if low > -1 else float("inf")


def _needed(n1, n2, p, a):
    share = n2 / (n1 + n2)

    def ok(total):
        g1, g2 = total * (1 - share), total * share
        return min(g1, g2) >= 30 and _detectable(g1, g2, p, a) <= 0.05

    below, step = n1 + n2 - 1, 1 << 24  # `below` is not ok (or before the start)
    while step:  # the smallest total that is ok, in binary steps from far above
        if not ok(below + step):
            below += step
        step //= 2
    return below + 1


def _power(x1, n1, x2, n2, a, months):
    if not (n1 and n2):
        return {"detectable": None, "more_needed": None, "months_needed": None}
    p = (x1 + x2 + 1) / (n1 + n2 + 2)
    more = _needed(n1, n2, p, a) - n1 - n2
    return {"detectable": round(min(_detectable(n1, n2, p, a), 1.0), 4), "more_needed": more,
            "months_needed": round(more / ((n1 + n2) / months), 1)}


def _bound(x):
    """Rounded to 4 places, kept on its side of 0: ±0.0001 rather than 0 (or -0.0)."""
    r = round(x, 4) + 0.0
    return (0.0001 if x > 0 else -0.0001) if r == 0 and x != 0 else r


def family(pairs, months=None) -> list[dict]:
    """Each (x1, n1, x2, n2) judged with all the others; the raw interval, the corrected one."""
    m = len(pairs)
    e = sorted((_log_e(x1 / n1 - x2 / n2, 0.0, _var(x1, n1, x2, n2))
                for x1, n1, x2, n2 in pairs if n1 >= 30 and n2 >= 30), reverse=True)
    found = [k for k in range(1, len(e) + 1) if sum(v >= log(m / (ALPHA * k)) for v in e) >= k]
    a = ALPHA * max(found + [1]) / m
    out = []
    for x1, n1, x2, n2 in pairs:
        raw = comparison(x1, n1, x2, n2, judge=False)
        if n1 >= 30 and n2 >= 30:
            lo, hi = _always_valid(x1 / n1 - x2 / n2, _var(x1, n1, x2, n2), a)
            raw.update(verdict=verdict(n1, n2, lo, hi), adjusted_low=_bound(lo),
                       adjusted_high=_bound(hi))
        else:
            raw.update(verdict="too few members to tell", adjusted_low=None, adjusted_high=None)
        if months is not None:
            raw.update(_power(x1, n1, x2, n2, ALPHA / m, months))
        out.append(raw)
    return out


def comparison(x1, n1, x2, n2, judge=True) -> dict:
    """The raw 95 % interval; with `judge`, the verdict of a family of one."""
    if judge:
        return family([(x1, n1, x2, n2)])[0]
    if not (n1 and n2):
        return {"difference": None, "ci_low": None, "ci_high": None,
                "verdict": "too few members to tell"}
    d, lo, hi = newcombe(x1, n1, x2, n2)
    return {"difference": round(d, 4), "ci_low": round(lo, 4), "ci_high": round(hi, 4),
            "verdict": verdict(n1, n2, lo, hi)}


def touchpoints(raw: Raw, as_of: date, lo: date, hi: date, plan_id=None) -> dict:
    pairs = ended(raw, as_of, lo, hi, plan_id)
    out, tallies = {}, []
    for d in raw.definitions:
        v = defaultdict(int)
        for m, o in pairs:
            rows = [t for t in raw.touchpoints if t.definition_id == d.id and
                    t.membership_id == m.id and t.member_id == m.member_id]
            if not rows:
                continue
            sent = any(t.status == "sent" for t in rows)
            held = any(t.status == "held_out" for t in rows)
            assigned = any(t.status != "held_out" for t in rows)
            if held and assigned:
                v["mixed"] += 1
                continue
            if o == "in_grace":
                v["in_grace"] += 1
                continue
            won = o == "renewed"
            if held:
                v["held"] += 1
                v["held_won"] += won
            else:
                v["assigned"] += 1
                v["assigned_won"] += won
                if sent:
                    v["exposed"] += 1
                    v["exposed_won"] += won
        tallies.append((d, v))
    months = ((hi - lo).days + 1) / (365.2425 / 12)
    judged = family([p for _, v in tallies for p in (
        (v["exposed_won"], v["exposed"], v["held_won"], v["held"]),
        (v["assigned_won"], v["assigned"], v["held_won"], v["held"]))], months)
    for (d, v), pp, itt in zip(tallies, judged[::2], judged[1::2], strict=True):
        out[d.key] = {
            "exposed": v["exposed"], "exposed_renewed": v["exposed_won"],
            "exposed_rate": rate(v["exposed_won"], v["exposed"]),
            "held_out": v["held"], "held_out_renewed": v["held_won"],
            "held_out_rate": rate(v["held_won"], v["held"]), **pp,
            "assigned": v["assigned"], "assigned_renewed": v["assigned_won"],
            "assigned_rate": rate(v["assigned_won"], v["assigned"]),
            "itt_difference": itt["difference"], "itt_ci_low": itt["ci_low"],
            "itt_ci_high": itt["ci_high"], "itt_verdict": itt["verdict"],
            "in_grace": v["in_grace"], "mixed": v["mixed"],
            **{f"itt_{k}": itt[k] for k in ("adjusted_low", "adjusted_high", "detectable",
                                             "more_needed", "months_needed")}}
    return out


# --- retention over time ------------------------------------------------------------------------

def spells(raw: Raw) -> dict:
    """{member: [(first day, last day, plan of the first membership)]}: memberships joined when
    the next starts no later than grace days after the latest last day so far."""
    out = {}
    for member, ms in by_member(raw).items():
        runs = []
        for m in ms:
            if runs and m.start_date <= runs[-1][1] + timedelta(days=raw.grace):
                s, e, p = runs[-1]
                runs[-1] = (s, max(e, last(m)), p)
            else:
                runs.append((m.start_date, last(m), m.plan_id))
        out[member] = runs
    return out


def covered(ms, day: date, plan_id=None) -> bool:
    return any(m.start_date <= day <= last(m) and (plan_id is None or m.plan_id == plan_id)
               for m in ms)


def monthly(raw: Raw, as_of: date, lo: date, hi: date, plan_id=None) -> list[dict]:
    mine = by_member(raw)
    runs = spells(raw)
    firsts = {member: ms[0] for member, ms in mine.items()}
    rows = []
    for first in month_starts(lo, min(hi, as_of)):
        nxt = add_months(first, 1)
        base = [member for member, ms in mine.items() if covered(ms, first, plan_id)]
        complete = nxt <= as_of
        end = sum(1 for ms in mine.values() if covered(ms, nxt, plan_id)) if complete else None
        retained = churned = undecided = 0
        for member in base:
            _, e, _ = next(r for r in runs[member] if r[0] <= first <= r[1])
            if e >= nxt:
                retained += 1
            elif e + timedelta(days=raw.grace) < as_of:
                churned += 1
            else:
                undecided += 1
        joined = sum(1 for f in firsts.values() if ym(f.start_date) == ym(first) and
                     (plan_id is None or f.plan_id == plan_id))
        rows.append({
            "month": ym(first), "first_day": first, "members_at_start": len(base),
            "members_at_end": end, "growth": None if end is None else end - len(base),
            "growth_pct": round(100 * (end - len(base)) / len(base), 2)
            if end is not None and base else None,
            "joined": joined,
            "retained": retained if complete else None,
            "churned": churned if complete else None,
            "undecided": undecided if complete else None,
            "retention_rate": rate(retained, retained + churned) if complete else None,
            "churn_rate": rate(churned, retained + churned) if complete else None})
    return rows


def cohorts(raw: Raw, as_of: date, lo: date, hi: date, plan_id=None) -> list[dict]:
    mine = by_member(raw)
    runs = spells(raw)
    groups = defaultdict(list)
    for member, ms in mine.items():
        if plan_id is not None and ms[0].plan_id != plan_id:
            continue
        groups[ms[0].start_date.replace(day=1)].append(member)
    out = []
    for cohort in sorted(groups):
        if not lo.replace(day=1) <= cohort <= hi:
            continue
        still = []
        k = 0
        while add_months(cohort, k + 1) - D1 <= as_of:
            day = add_months(cohort, k + 1) - D1
            still.append(sum(1 for member in groups[cohort]
                             if any(s <= day <= e for s, e, _ in runs[member])))
            k += 1
        size = len(groups[cohort])
        out.append({"cohort": ym(cohort), "members": size, "still": still,
                    "share": [rate(x, size) for x in still]})
    return out


def survival(raw: Raw, as_of: date, lo=None, hi=None, plan_id=None) -> dict:
    durations = []
    for runs in spells(raw).values():
        for s, e, plan in runs:
            if s > as_of or (lo and s < lo) or (hi and s > hi):
                continue
            if plan_id is not None and plan != plan_id:
                continue
            if e + timedelta(days=raw.grace) < as_of:
                durations.append(((e - s).days + 1, True))
            else:
                durations.append(((min(e, as_of) - s).days + 1, False))
    points, surv = [], 1.0
    for day in sorted({d for d, _ in durations}):
        at_risk = sum(1 for d, _ in durations if d >= day)
        events = sum(1 for d, ev in durations if d == day and ev)
        censored = sum(1 for d, ev in durations if d == day and not ev)
        if events:
            surv = surv * (1 - events / at_risk)
            points.append({"day": day, "at_risk": at_risk, "events": events,
                           "censored": censored, "survival": round(surv, 6)})
    longest = max((d for d, _ in durations), default=None)

    def at(day):
        if longest is None or day > longest:
            return None
        return next((p["survival"] for p in reversed(points) if p["day"] <= day), 1.0)

    return {"spells": len(durations), "events": sum(1 for _, ev in durations if ev),
            "censored": sum(1 for _, ev in durations if not ev), "longest_days": longest,
            "median_days": next((p["day"] for p in points if p["survival"] <= 0.5), None),
            "marks": [{"day": d, "survival": at(d)} for d in (30, 90, 180, 365, 730)],
            "items": points}


# --- process ------------------------------------------------------------------------------------

def joiners(raw: Raw, lo: date, hi: date, plan_id=None) -> list:
    out = []
    for ms in by_member(raw).values():
        first = ms[0]
        if lo <= first.start_date <= hi and (plan_id is None or first.plan_id == plan_id):
            out.append(first)
    return out


def process(raw: Raw, as_of: date, lo: date, hi: date, plan_id=None) -> dict:
    hi = min(hi, as_of)
    visits = defaultdict(list)
    for v in raw.visits:
        visits[v.member_id].append(raw.local(v.occurred_at))
    js = joiners(raw, lo, hi, plan_id)
    obs14 = [j for j in js if j.start_date + timedelta(days=13) < as_of]
    first14 = [j for j in obs14 if any(j.start_date <= d <= j.start_date + timedelta(days=13)
                                       for d in visits[j.member_id])]
    obs3 = [j for j in js if add_months(j.start_date, 3) <= as_of]

    def gap(j):
        bounds = [add_months(j.start_date, k) for k in range(4)]
        return any(not any(bounds[k] <= d < bounds[k + 1] for d in visits[j.member_id])
                   for k in range(3))

    gaps = [j for j in obs3 if gap(j)]
    obs30 = [j for j in js if j.start_date + timedelta(days=29) < as_of]
    staff = {j.member_id: sum(1 for i in raw.interactions
                              if i.member_id == j.member_id and i.staff_id is not None and
                              j.start_date <= raw.local(i.occurred_at)
                              <= j.start_date + timedelta(days=29)) for j in obs30}
    statuses = defaultdict(lambda: defaultdict(int))
    for t in raw.touchpoints:
        if lo <= t.trigger_on <= hi:
            statuses[t.channel][t.status] += 1
            statuses["all"][t.status] += 1

    def status_row(channel):
        c = statuses[channel]
        known = {k: c.get(k, 0) for k in ("sent", "held_out", "skipped", "cancelled", "failed")}
        planned = sum(c.values())
        return {"channel": channel, "planned": planned, **known,
                "pending": planned - sum(known.values()),
                "delivery_rate": rate(known["sent"],
                                      known["sent"] + known["skipped"] + known["failed"])}

    kinds = defaultdict(lambda: defaultdict(int))
    for t in raw.tasks:
        if lo <= t.due_date <= hi:
            k = kinds[t.kind]
            k["due"] += 1
            k["done"] += t.status == "done"
            k["cancelled"] += t.status == "cancelled"
            k["open"] += t.status == "open"
            k["on_time"] += (t.status == "done" and t.completed_at is not None and
                             raw.local(t.completed_at) <= t.due_date)

    def task_row(kind, k):
        return {"kind": kind, "due": k["due"], "done": k["done"], "done_on_time": k["on_time"],
                "cancelled": k["cancelled"], "open": k["open"],
                "on_time_rate": rate(k["on_time"], k["due"] - k["cancelled"])}

    calls = defaultdict(int)
    for kind in ("call", "renewal_offer"):
        for f, n in kinds.get(kind, {}).items():
            calls[f] += n
    reasons = defaultdict(int)
    for m in raw.memberships:
        if m.cancelled_on is not None and lo <= m.cancelled_on <= hi and \
                (plan_id is None or m.plan_id == plan_id):
            reason = (m.cancel_reason or "").strip() or "not_recorded"
            reasons[reason] += 1
    total = sum(reasons.values())
    recorded = total - reasons.get("not_recorded", 0)
    return {
        "joiners": len(js),
        "first_visit_14d": {"count": len(first14), "of": len(obs14),
                            "share": rate(len(first14), len(obs14))},
        "month_without_visits": {"count": len(gaps), "of": len(obs3),
                                 "share": rate(len(gaps), len(obs3))},
        "staff_interactions_30d": {
            "members": len(obs30), "interactions": sum(staff.values()),
            "per_member": rate(sum(staff.values()), len(obs30), 2),
            "four_or_more": {"count": sum(1 for n in staff.values() if n >= 4),
                             "of": len(obs30),
                             "share": rate(sum(1 for n in staff.values() if n >= 4),
                                           len(obs30))}},
        "touchpoints": status_row("all"),
        "touchpoints_by_channel": [status_row(c) for c in sorted(statuses) if c != "all"],
        "call_tasks": task_row("calls", calls),
        "tasks_by_kind": [task_row(k, kinds[k]) for k in sorted(kinds)],
        "cancellations": {
            "total": total,
            "with_reason": {"count": recorded, "of": total, "share": rate(recorded, total)},
            "by_reason": [{"reason": r, "label": "not recorded" if r == "not_recorded"
                           else raw.labels.get(r, r), "count": n, "share": rate(n, total)}
                          for r, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))]}}


# --- KPIs ---------------------------------------------------------------------------------------

def kpis(raw: Raw, as_of: date, lo: date, hi: date) -> dict:
    hi = min(hi, as_of)
    sold = defaultdict(list)
    for m in valid(raw):
        sold[m.member_id].append(m.created_at)
    end_of_today = raw.day_start(as_of + D1)
    leads = [p for p in raw.members if lo <= raw.local(p.created_at) <= hi]
    converted = [p for p in leads
                 if any(t <= p.created_at + timedelta(days=30) for t in sold[p.id])]
    won = {p.id for p in converted}
    still_open = [p for p in leads if p.id not in won and
                  p.created_at + timedelta(days=30) > end_of_today]
    decided = len(leads) - len(still_open)

    kinds = defaultdict(set)
    for line in raw.lines:
        kinds[line.sale_id].add(line.kind)
    checks = defaultdict(list)
    for sale in raw.sales:
        if lo <= raw.local(sale.created_at) <= hi:
            k = kinds[sale.id]
            kind = "none" if not k else next(iter(k)) if len(k) == 1 else "mixed"
            checks[kind].append(Decimal(sale.total))
            checks["all"].append(Decimal(sale.total))

    def check(kind):
        values = checks.get(kind, [])
        total = sum(values, Decimal(0)).quantize(Decimal("0.01"))
        avg = ((sum(values, Decimal(0)) / len(values)).quantize(Decimal("0.01"),
                                                                    rounding=ROUND_HALF_UP)
               if values else None)
        return {"kind": kind, "sales": len(values), "total": total, "average": avg}

    days_held = defaultdict(set)
    for m in valid(raw):
        d = max(m.start_date, lo)
        while d <= min(last(m), hi):
            days_held[m.member_id].add(d)
            d += D1
    visits = defaultdict(int)
    for v in raw.visits:
        if lo <= raw.local(v.occurred_at) <= hi:
            visits[v.member_id] += 1
    bins = defaultdict(int)
    for member, days in days_held.items():
        n, held = visits.get(member, 0), len(days)
        if n == 0:
            band = "0"
        else:
            per7 = n * 7
            band = next((f"{k}-{k + 1}" for k in range(5) if per7 < (k + 1) * held), "5+")
        bins[band] += 1
    members = len(days_held)
    return {
        "leads": {"leads": len(leads), "converted": len(converted), "open": len(still_open),
                  "per_100": round(100 * len(converted) / decided, 2) if decided else None},
        "average_check": check("all"),
        "average_check_by_kind": [check(k) for k in sorted(checks) if k != "all"],
        "visit_frequency": {
            "members": members,
            "visits": sum(visits[m] for m in days_held),
            "member_days": sum(len(d) for d in days_held.values()),
            "bins": [{"band": b, "members": bins[b], "share": rate(bins[b], members)}
                     for b in ("0", "0-1", "1-2", "2-3", "3-4", "4-5", "5+")]}}
