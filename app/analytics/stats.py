"""The statistics behind the verdicts: two-proportion confidence intervals and Kaplan-Meier.

Everything here works on counts that SQL has already aggregated, never on member rows.

Confidence interval for a difference of two proportions: **Newcombe's hybrid score interval**
(Newcombe 1998, "method 10"), built from the two Wilson score intervals. Unlike the Wald
interval it stays inside [-1, 1], behaves at rates near 0 % or 100 % and with small groups, and
it is what statistics packages call the "Newcombe" or "score" interval for a risk difference.

    Wilson (p = x/n, z = 1.959964):  centre = (p + z²/2n) / (1 + z²/n)
                                    half   = z / (1 + z²/n) · sqrt(p(1-p)/n + z²/4n²)
    d = p1 - p2;  lower = d - sqrt((p1 - l1)² + (u2 - p2)²);  upper = d + sqrt((u1 - p1)² + (p2 - l2)²)

This is the *raw* interval of one comparison looked at once. The verdicts the reports show read
the corrected interval of `app.analytics.verdicts` (many comparisons, repeated looks), which
calls `compare` for the raw figures and `verdict` on its own interval.
"""
from dataclasses import dataclass
from math import sqrt

Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal
MIN_GROUP = 30  # fewer decided memberships than this in either group: "too few members to tell"

LIFTS = "lifts renewals"
LOWERS = "lowers renewals"
NO_EFFECT = "no measurable effect"
TOO_FEW = "too few members to tell"


def rate(part: int, whole: int, digits: int = 4) -> float | None:
    return round(part / whole, digits) if whole else None


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion."""
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@dataclass(frozen=True)
class Comparison:
    """Group 1 against group 2: their rates, the difference and its 95 % interval, a verdict."""

    n1: int
    x1: int
    n2: int
    x2: int
    rate1: float | None
    rate2: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    verdict: str


def newcombe(x1: int, n1: int, x2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """(p1 - p2, lower, upper): Newcombe's hybrid score interval for the difference."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    d = p1 - p2
    return d, d - sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def verdict(n1: int, n2: int, low: float | None, high: float | None,
            min_group: int = MIN_GROUP) -> str:
    if n1 < min_group or n2 < min_group or low is None or high is None:
        return TOO_FEW
    if low > 0:
        return LIFTS
    if high < 0:
        return LOWERS
    return NO_EFFECT


def compare(x1: int, n1: int, x2: int, n2: int, min_group: int = MIN_GROUP) -> Comparison:
    """Renewed x of n in group 1 (exposed) against group 2 (held out)."""
    if n1 and n2:
        d, low, high = newcombe(x1, n1, x2, n2)
    else:
        d = low = high = None
    return Comparison(n1=n1, x1=x1, n2=n2, x2=x2, rate1=rate(x1, n1), rate2=rate(x2, n2),
                      difference=None if d is None else round(d, 4),
                      ci_low=None if low is None else round(low, 4),
                      ci_high=None if high is None else round(high, 4),
                      verdict=verdict(n1, n2, low, high, min_group))


@dataclass(frozen=True)
class SurvivalPoint:
    day: int
    at_risk: int
    events: int
    censored: int
    survival: float


def kaplan_meier(groups: dict[int, tuple[int, int]]) -> list[SurvivalPoint]:
    """The product-limit estimate from {duration: (events, censored)}.

    At a duration with both, the censored spells count as at risk (censoring after the events).
    One point per duration with at least one event, in order; survival rounded to 6 places.
    """
    at_risk = sum(e + c for e, c in groups.values())
    survival = 1.0
    points = []
    for day in sorted(groups):
        events, censored = groups[day]
        if events:
            survival *= 1 - events / at_risk
            points.append(SurvivalPoint(day, at_risk, events, censored, round(survival, 6)))
        at_risk -= events + censored
    return points


def survival_at(points: list[SurvivalPoint], day: int, longest: int) -> float | None:
    """S(day), or None when no spell was followed that long."""
    if day > longest:
        return None
    value = 1.0
    for point in points:
        if point.day > day:
            break
        value = point.survival
    return value


def median_survival(points: list[SurvivalPoint]) -> int | None:
    return next((p.day for p in points if p.survival <= 0.5), None)
