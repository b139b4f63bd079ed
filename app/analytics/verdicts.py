"""One definition of a verdict: a family of comparisons judged together, valid at every look.

A report that judges several comparisons at once (each touchpoint definition against its held-out
group, later each campaign) and is looked at every week needs two corrections to its 95 %
per-comparison intervals (`stats.newcombe`), or an owner sees a false "lifts renewals" most weeks:

**Repeated looks.** Each comparison gets an *always-valid* interval: the normal-mixture sequential
probability ratio test of Johari, Koomen, Pekelis & Walsh ("Always valid inference: continuous
monitoring of A/B tests", Operations Research 70(3), 2022), as in Robbins (1970) and Howard et al.
(2021, "Time-uniform, nonparametric, nonasymptotic confidence sequences"). With the difference
d = p1 − p2 of the two renewal rates and its variance V = p̃1(1−p̃1)/n1 + p̃2(1−p̃2)/n2
(p̃ = (x+1)/(n+2), so that a group with 0 % or 100 % still has a variance), the evidence against
"the true difference is δ" is the mixture likelihood ratio

    E(δ) = sqrt(V / (V + τ²)) · exp(τ² (d − δ)² / (2 V (V + τ²)))

with a normal mixing distribution of standard deviation τ = 0.20: its interval is within about 5 %
of its narrowest for every standard error of d between 2 and 10 points (held-out groups of about
30 to 600), where the decisions of a club are made. Under δ it is (asymptotically) a
nonnegative martingale with mean 1, so by Ville's inequality it ever reaches 1/a with probability
at most a, however often it is looked at.
The interval {δ : E(δ) < 1/a} is d ± r(V, a),

    r(V, a) = sqrt(V (V + τ²) / τ² · (2 ln(1/a) + ln((V + τ²) / V))).

**Many comparisons.** The family is every verdict the report can show (m comparisons, judged or
not). The e-values E(0) go through the e-Benjamini–Hochberg procedure (Wang & Ramdas, "False
discovery rate control with e-values", JRSS B 84(3), 2022): with R = max{k : E(0)_(k) ≥ m / (α k)}
the R largest are the discoveries. e-BH controls the false discovery rate at α under any dependence
between the comparisons and at any (stopping) time; with no true effect at all that is the chance
of *any* false verdict in the report, at any week. Every interval is then reported at level
a = α · max(R, 1) / m (Xu, Wang & Ramdas 2022, "e-BY": the false coverage rate of the selected
intervals is at most α), and the verdict reads that interval with `stats.verdict`. Its interval
excludes 0 exactly for the discoveries, so interval and verdict always agree.

**Power.** The smallest true difference found with 80 % probability at the current group sizes
(planning level α / m, one discovery): r(V, α/m) + z₀.₈ · sqrt(V), V from the pooled rate of the two
groups; and how many more decided memberships (same split between the groups) would bring that down
to 5 points, and, at the pace the report period shows, in how many months.

The guarantee is asymptotic (normal approximation with an estimated variance) and is for one report
whose data accumulate (a fixed `from`); below `stats.MIN_GROUP` in either group there is no verdict.
tests/analytics/test_verdicts.py measures the false-verdict rates and the power by simulation.
"""
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from math import log, sqrt

from app.analytics import stats

ALPHA = 0.05  # the chance of any false verdict in a report without true effects, at any look
TAU = 0.20  # standard deviation of the normal mixture (see the module docstring)
Z80 = 0.8416212335729143  # 80th percentile of the standard normal: 80 % power
TARGET = 0.05  # the lift the "needs about N more" line is about: five points
DAYS_PER_MONTH = 365.2425 / 12

METHOD = ("always-valid verdicts at a 5 % false discovery rate over the report's comparisons: "
          "normal-mixture sequential test (mSPRT) for the difference of two proportions, "
          "e-Benjamini-Hochberg, intervals at level alpha*R/m (e-BY); raw 95 % Newcombe hybrid "
          "score interval shown alongside")

METHOD_ONE = ("always-valid 95 % interval (normal-mixture sequential test), a family of one; raw "
              "95 % Newcombe hybrid score interval (Wilson-based) shown alongside")


@dataclass(frozen=True)
class Judged:
    """One comparison of a family: the raw comparison, the corrected interval and verdict, power."""

    raw: stats.Comparison
    adjusted_low: float | None
    adjusted_high: float | None
    verdict: str
    detectable: float | None  # smallest difference found with 80 % power at these sizes
    more_needed: int | None  # more decided memberships to detect 5 points (same split)
    months_needed: float | None  # ... at the pace of the report period


@dataclass(frozen=True)
class Family:
    alpha: float
    size: int  # m: the comparisons judged together
    discoveries: int  # R: verdicts other than "no effect" / "too few"
    level: float  # a = alpha · max(R, 1) / m: the error level of each corrected interval
    items: list[Judged]


def variance(x1: int, n1: int, x2: int, n2: int) -> float:
    """V of the difference of the two rates, each rate smoothed to (x + 1) / (n + 2)."""
    q1, q2 = (x1 + 1) / (n1 + 2), (x2 + 1) / (n2 + 2)
    return q1 * (1 - q1) / n1 + q2 * (1 - q2) / n2


def radius(v: float, a: float, tau: float = TAU) -> float:
    """Half-width of the always-valid interval at error level a."""
    t2 = tau * tau
    return sqrt(v * (v + t2) / t2 * (2 * log(1 / a) + log((v + t2) / v)))


def log_evidence(d: float, v: float, tau: float = TAU) -> float:
    """ln E(0): the mixture likelihood ratio against "no difference"."""
    t2 = tau * tau
    return 0.5 * log(v / (v + t2)) + t2 * d * d / (2 * v * (v + t2))


def e_bh(log_e: Sequence[float], alpha: float, m: int) -> int:
    """R: the number of discoveries of e-BH among m hypotheses (missing e-values count as 0)."""
    ranked = sorted(log_e, reverse=True)
    return max((k for k, le in enumerate(ranked, 1) if le >= log(m / (alpha * k))), default=0)


def detectable(n1: int, n2: int, p: float, a: float) -> float:
    """Smallest true difference the interval at level a excludes 0 for with 80 % probability."""
    v = p * (1 - p) * (1 / n1 + 1 / n2)
    return radius(v, a) + Z80 * sqrt(v)


def needed(n1: int, n2: int, p: float, a: float, target: float = TARGET,
           min_group: int = stats.MIN_GROUP) -> int | None:
    """Total decided memberships (split as now) for `detectable` to reach `target`."""
    share = n2 / (n1 + n2)

    def enough(total: int) -> bool:
        g1, g2 = total * (1 - share), total * share
        return min(g1, g2) >= min_group and detectable(g1, g2, p, a) <= target

    low, high = n1 + n2, max(n1 + n2, 1)
    if enough(low):
        return low
    while not enough(high):
        high *= 2
        if high > 10**9:
            return None
    while high - low > 1:  # enough(high), not enough(low)
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return high


def _bound(value: float | None) -> float | None:
    """An interval end rounded to 4 places on its own side of 0 (never 0.0 or -0.0 for a nonzero
    end), so that the rounded interval excludes 0 exactly when the exact one does."""
    if value is None:
        return None
    rounded = round(value, 4) + 0.0  # + 0.0: no -0.0
    if value > 0 >= rounded:
        return 0.0001
    if value < 0 <= rounded:
        return -0.0001
    return rounded


def _power(x1: int, n1: int, x2: int, n2: int, a: float, months: float | None,
           min_group: int = stats.MIN_GROUP) -> tuple[float | None, int | None, float | None]:
    if not (n1 and n2) or months is None:
        return None, None, None
    p = (x1 + x2 + 1) / (n1 + n2 + 2)
    total = needed(n1, n2, p, a, min_group=min_group)
    more = None if total is None else total - n1 - n2
    pace = (n1 + n2) / months if months else 0
    when = None if more is None or not pace else round(more / pace, 1)
    return round(min(detectable(n1, n2, p, a), 1.0), 4), more, when


def judge(pairs: Sequence[tuple[int, int, int, int]], *, alpha: float = ALPHA,
          months: float | None = None, min_group: int = stats.MIN_GROUP) -> Family:
    """Judge (x1, n1, x2, n2) comparisons as one family: group 1 renewed x1 of n1, group 2 x2 of
    n2. `months`: the length of the period the counts come from; without it, no power figures."""
    m = len(pairs)
    raws = [stats.compare(x1, n1, x2, n2, min_group) for x1, n1, x2, n2 in pairs]
    judged = [min(n1, n2) >= min_group for _, n1, _, n2 in pairs]
    log_e = [log_evidence(x1 / n1 - x2 / n2, variance(x1, n1, x2, n2)) if ok else float("-inf")
             for (x1, n1, x2, n2), ok in zip(pairs, judged, strict=True)]
    discoveries = e_bh(log_e, alpha, m) if m else 0
    level = alpha * max(discoveries, 1) / max(m, 1)
    items = []
    for (x1, n1, x2, n2), raw, ok in zip(pairs, raws, judged, strict=True):
        low = high = None
        if ok:
            d, r = x1 / n1 - x2 / n2, radius(variance(x1, n1, x2, n2), level)
            low, high = max(d - r, -1.0), min(d + r, 1.0)
        items.append(Judged(
            raw=raw, adjusted_low=_bound(low), adjusted_high=_bound(high),
            verdict=stats.verdict(n1, n2, low, high, min_group),
            **dict(zip(("detectable", "more_needed", "months_needed"),
                       _power(x1, n1, x2, n2, alpha / max(m, 1), months, min_group),
                       strict=True))))
    return Family(alpha=alpha, size=m, discoveries=discoveries, level=level, items=items)


def months_between(first: date, last: date) -> float:
    """The length of a period of days (inclusive) in months."""
    return ((last - first).days + 1) / DAYS_PER_MONTH


def judge_one(x1: int, n1: int, x2: int, n2: int, *, months: float | None = None) -> Judged:
    """A family of one (a comparison looked at on its own, e.g. before/after)."""
    return judge([(x1, n1, x2, n2)], months=months).items[0]
