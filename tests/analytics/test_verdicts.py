"""The corrected verdict (app/analytics/verdicts.py) measured by simulation, and shown by the API.

A simulated club has 23 touchpoint definitions of realistic sizes (SIZES: decided memberships in a
year), 10 % of each held out, 90 % of the others delivered; each definition has its own renewal
rate. The report judges both comparisons of every definition (exposed and intention to treat
against held out), as `touchpoint_effectiveness` does. Every club is seeded, so the figures are
the same on every run; docs/analytics.md ("Verdicts") quotes them.
"""
import random
from dataclasses import dataclass
from datetime import timedelta
from math import log
from statistics import NormalDist

import pytest

from app.analytics import stats, verdicts
from app.clubs import service as clubs_service
from app.core.db import transaction

SIZES = (40, 60, 80, 100, 120, 150, 180, 220, 260, 300, 350, 400, 450, 500, 600, 700, 800,
         900, 1000, 1200, 1500, 1800, 2000)
HOLDOUT, DELIVERED, WEEKS = 0.10, 0.90, 52
FOUND = (stats.LIFTS, stats.LOWERS)


@dataclass
class Looks:
    """What one simulated club's report said: at the last week, and at any of the weekly looks."""

    false_at_end: bool = False  # a verdict on a definition without a true effect
    false_ever: bool = False
    raw_false_at_end: bool = False  # the same from the raw 95 % intervals
    raw_false_ever: bool = False
    found_at_end: bool = False  # the planted effect: "lifts renewals" (exposed vs held out)
    found_ever: bool = False
    false_share_at_end: float = 0.0  # false verdicts / all verdicts (0 without verdicts)


def _bernoulli(rng: random.Random, n: int, p: float, bits: int = 12) -> int:
    """n independent draws of "u < p" (u uniform, p rounded to 2^-bits) as the bits of an int:
    u's binary digits are compared with p's, all n lanes at once."""
    q, below, tied = round(p * (1 << bits)), 0, (1 << n) - 1
    for b in range(bits - 1, -1, -1):
        u = rng.getrandbits(n)
        if q >> b & 1:
            below |= tied & ~u
            tied &= u
        else:
            tied &= ~u
    return below


def _club(seed: int, weeks: int, planted: int | None = None, effect: float = 0.0,
          size: int | None = None, holdout: float = HOLDOUT) -> Looks:
    """One club's year: memberships decided week by week, the report judged at each of `weeks`
    evenly spaced looks (1: only at the end). The planted definition (index) gets `size`
    memberships, `holdout` of them held out, and renews `effect` more often when delivered.
    Each definition's members are the bits of a few integers (member i decided in week
    i · weeks // n), so a year of a club costs milliseconds."""
    rng = random.Random(seed)
    groups = []  # per definition: n and the masks exposed, held, assigned and their renewed
    for j, n in enumerate(SIZES):
        p, lift, share = 0.45 + 0.35 * rng.random(), 0.0, HOLDOUT
        if j == planted:
            n, lift, share = size or n, effect, holdout
        everyone = (1 << n) - 1
        held = _bernoulli(rng, n, share)
        assigned = everyone & ~held
        sent = assigned & _bernoulli(rng, n, DELIVERED)
        base = _bernoulli(rng, n, p)
        won = (sent & _bernoulli(rng, n, p + lift) | everyone & ~sent & base) if lift else base
        groups.append((n, (sent, sent & won, held, held & won, assigned, assigned & won)))
    out = Looks()
    for week in range(weeks):
        counts = []
        for n, masks in groups:
            upto = (1 << (n * (week + 1) // weeks)) - 1
            ex, exw, h, hw, a, aw = ((mask & upto).bit_count() for mask in masks)
            counts += [(exw, ex, hw, h), (aw, a, hw, h)]
        family = verdicts.judge(counts)
        false = any(i.verdict in FOUND for k, i in enumerate(family.items) if k // 2 != planted)
        found = planted is not None and family.items[2 * planted].verdict == stats.LIFTS
        raw_false = any(i.raw.verdict in FOUND for k, i in enumerate(family.items)
                        if k // 2 != planted)
        out.false_ever |= false
        out.raw_false_ever |= raw_false
        out.found_ever |= found
        if week == weeks - 1:
            out.false_at_end, out.found_at_end = false, found
            said = [k // 2 for k, i in enumerate(family.items) if i.verdict in FOUND]
            out.false_share_at_end = sum(j != planted for j in said) / max(len(said), 1)
            out.raw_false_at_end = raw_false
    return out


def _share(flags) -> float:
    flags = list(flags)
    return sum(flags) / len(flags)


def _predicted_power(size: int, holdout: float, effect: float) -> float:
    """The documented power (docs/analytics.md): the chance that d lands beyond the corrected
    interval's radius at level α/m, averaged over the renewal rates the simulation draws."""
    n1, n2 = size * (1 - holdout) * DELIVERED, size * holdout
    chances = []
    for k in range(8):
        p = 0.45 + 0.35 * (k + 0.5) / 8
        v = (p + effect) * (1 - p - effect) / n1 + p * (1 - p) / n2
        r = verdicts.radius(v, verdicts.ALPHA / (2 * len(SIZES)))
        chances.append(1 - NormalDist().cdf((r - effect) / v ** 0.5))
    return sum(chances) / len(chances)


def test_no_effect_one_look():
    """1,000 clubs without any true effect, the report read once: the raw 95 % intervals claim
    an effect in half of the reports; the corrected verdicts in at most α = 5 % (measured: 1 %)."""
    looks = [_club(seed, weeks=1) for seed in range(1000)]
    assert _share(x.raw_false_at_end for x in looks) > 0.4  # the problem of #24 (measured 0.55)
    assert _share(x.false_at_end for x in looks) <= 0.01


def test_no_effect_weekly_looks():
    """200 clubs without any true effect, the same accumulating report read every week for a
    year: a false verdict at any of the 52 looks in at most α = 5 % of them (measured: 2 %; from
    the raw 95 % intervals: 95.5 %)."""
    looks = [_club(10_000 + seed, weeks=WEEKS) for seed in range(200)]
    assert _share(x.false_ever for x in looks) <= verdicts.ALPHA
    assert _share(x.raw_false_ever for x in looks) > 0.8  # raw intervals, weekly (measured 0.955)


def _planted(looks: list[Looks], predicted: float, tolerance: float) -> None:
    found_at_end = _share(x.found_at_end for x in looks)
    assert abs(found_at_end - predicted) < tolerance, (found_at_end, predicted)
    assert _share(x.found_ever for x in looks) >= found_at_end
    # with a true effect the guarantee is on the false discovery rate (at any look); the share
    # of reports with a false verdict besides the true one is measured, and small too
    assert sum(x.false_share_at_end for x in looks) / len(looks) <= verdicts.ALPHA
    assert _share(x.false_ever for x in looks) <= 2 * verdicts.ALPHA


def test_planted_lift_at_the_default_holdout():
    """+10 points when delivered, for the largest definition (2,000 decided memberships a year,
    10 % held out), judged every week: found about as rarely as documented (predicted 9 %,
    measured 15 % at the last look, 17 % at some look)."""
    looks = [_club(20_000 + seed, weeks=WEEKS, planted=len(SIZES) - 1, effect=0.10)
             for seed in range(100)]
    predicted = _predicted_power(SIZES[-1], HOLDOUT, 0.10)
    assert 0.05 < predicted < 0.15
    _planted(looks, predicted, 0.08)


def test_planted_lift_with_half_held_out():
    """+10 points for a definition with 2,400 decided memberships a year, half held out (what a
    club should do for a touchpoint it wants to learn about): found at about the documented
    80 % power at the end of the year (predicted 82 %, measured 81 %; 86 % at some look)."""
    looks = [_club(30_000 + seed, weeks=WEEKS, planted=0, effect=0.10, size=2400, holdout=0.5)
             for seed in range(100)]
    predicted = _predicted_power(2400, 0.5, 0.10)
    assert 0.75 < predicted < 0.85
    _planted(looks, predicted, 0.1)


def test_the_corrected_interval_and_the_evidence_agree():
    """A verdict is found exactly when e-BH discovers it; the interval is valid at level a."""
    pairs = [(63, 100, 40, 100), (55, 100, 45, 100), (50, 100, 50, 100), (80, 100, 30, 100)]
    family = verdicts.judge(pairs)
    # the first is found only through the step-up: Bonferroni (level α/m) would not find it
    assert log(4 / 0.05) > verdicts.log_evidence(0.23, verdicts.variance(*pairs[0])) >= log(
        4 / (0.05 * 2))
    assert (family.size, family.discoveries) == (4, 2)
    assert family.level == pytest.approx(0.05 * 2 / 4)
    assert [i.verdict for i in family.items] == [stats.LIFTS, stats.NO_EFFECT, stats.NO_EFFECT,
                                                stats.LIFTS]
    for (x1, n1, x2, n2), item in zip(pairs, family.items, strict=True):
        d, v = x1 / n1 - x2 / n2, verdicts.variance(x1, n1, x2, n2)
        assert item.adjusted_high - d == pytest.approx(verdicts.radius(v, family.level), abs=1e-4)
        assert (item.adjusted_low > 0) == (verdicts.log_evidence(d, v) >= log(1 / family.level))
    # the raw interval is the same as before: Newcombe's
    assert family.items[0].raw == stats.compare(*pairs[0])


def test_power_figures():
    """The smallest detectable difference falls as groups grow; 'more needed' reaches 5 points."""
    [item] = verdicts.judge([(60, 100, 50, 100)], months=12).items
    assert 0.2 < item.detectable < 0.3
    total = 200 + item.more_needed
    p = (60 + 50 + 1) / (200 + 2)
    assert verdicts.detectable(total / 2, total / 2, p, 0.05) <= 0.05
    assert verdicts.detectable((total - 2) / 2, (total - 2) / 2, p, 0.05) > 0.05
    assert item.months_needed == round(item.more_needed / (200 / 12), 1)
    assert verdicts.judge([(0, 0, 5, 40)], months=12).items[0].detectable is None
    assert verdicts.judge([(60, 100, 50, 100)]).items[0].more_needed is None  # no period


def test_the_report_shows_the_corrected_verdict_and_power(client, world, hand, db):
    """Through the API: the raw interval, the corrected one, the verdict from it, the power."""
    club = hand.club()
    with transaction(db.sessionmaker) as s:
        today = clubs_service.club_today(s.get(type(club), club.id))
    plan = hand.plan(club)
    offer = hand.definition(club, "renewal_offer")
    hand.definition(club, "birthday", stage=None)  # planned for nobody: still in the family
    hand.offer_results(club, plan, offer, today - timedelta(days=120))
    owner = world.staff(club, "owner")
    report = client.get("/api/v1/analytics/touchpoints", headers=owner.headers).json()
    assert "always-valid" in report["method"] and "Newcombe" in report["method"]
    assert (report["alpha"], report["family_size"], report["discoveries"]) == (0.05, 4, 2)
    row = {r["key"]: r for r in report["items"]}["renewal_offer"]
    assert (row["exposed"], row["held_out"], row["difference"]) == (40, 40, 0.5)
    assert row["adjusted_low"] < row["ci_low"] and row["adjusted_high"] > row["ci_high"]
    assert row["adjusted_low"] > 0 and row["verdict"] == "lifts renewals"
    assert 0 < row["detectable"] < 1 and row["more_needed"] > 0 and row["months_needed"] > 0
    assert row["itt_adjusted_low"] == row["adjusted_low"]  # all assigned were delivered
    birthday = {r["key"]: r for r in report["items"]}["birthday"]
    assert (birthday["verdict"], birthday["adjusted_low"], birthday["detectable"]) == (
        "too few members to tell", None, None)


@pytest.mark.parametrize("pair, expected", [
    ((23, 30, 48, 100), stats.LIFTS),  # exact low 0.0000105: rounds to 0 at 4 places
    ((23, 31, 28, 65), stats.NO_EFFECT),  # exact low -0.0000186: rounds to -0.0
])
def test_the_rounded_corrected_interval_agrees_with_the_verdict(pair, expected):
    """The reported (rounded) interval excludes 0 exactly when the verdict says so, and never
    shows -0.0: an end just beside 0 is reported as ±0.0001, on its own side."""
    item = verdicts.judge_one(*pair)
    assert item.verdict == expected
    assert (item.adjusted_low > 0 or item.adjusted_high < 0) == (item.verdict in FOUND)
    assert str(item.adjusted_low) in ("0.0001", "-0.0001")


def test_more_needed_counts_with_the_family_s_min_group():
    """`judge(min_group=…)` judges and plans with the same smallest group: 'more needed' brings
    both groups up to it (with 200 in each group a 5-point lift is far off either way, so the
    check is on a split where the small group decides: 1 held out in 20)."""
    pair = (540, 1000, 27, 50)
    default = verdicts.judge([pair], months=12).items[0].more_needed
    strict = verdicts.judge([pair], months=12, min_group=2000).items[0].more_needed
    assert strict >= 2000 * 21 - 1050 > default
