"""Hand-built memberships whose outcome is known: early and late renewals, grace edges,
freezes, cancellations, void and overlapping memberships; and a small club whose retention
figures and survival curve are worked out by hand in the comments."""
from datetime import date
from functools import partial

from app.analytics import service
from tests.analytics.conftest import AS_OF, days, local

JAN, FEB, MAR = date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)


def _outcomes(db, club_id, **kw) -> dict[int, str]:
    with db.sessionmaker() as s:
        return {o.membership_id: o.outcome for o in service.outcomes(
            s, club_id=club_id, as_of=AS_OF, date_from=date(2025, 12, 1), date_to=AS_OF, **kw)}


def test_what_counts_as_a_renewal(db, hand):
    club = hand.club()  # grace_days 30
    plan = hand.plan(club)
    m = hand.membership
    member = partial(hand.member, club)
    case = {}

    a = member()  # renewed early: the next one starts before the end
    case["early"] = m(club, a, plan, JAN, date(2026, 1, 31))
    case["early_next"] = m(club, a, plan, date(2026, 1, 20), date(2026, 2, 19))
    b = member()  # a gap inside grace
    case["gap"] = m(club, b, plan, JAN, date(2026, 1, 31))
    m(club, b, plan, date(2026, 2, 25), date(2026, 3, 24))
    c = member()  # starts exactly grace days after the end: still a renewal
    case["grace_edge"] = m(club, c, plan, JAN, date(2026, 1, 31))
    m(club, c, plan, date(2026, 3, 2), date(2026, 4, 1))
    d = member()  # one day later: a return, not a renewal
    case["return"] = m(club, d, plan, JAN, date(2026, 1, 31))
    case["return_next"] = m(club, d, plan, date(2026, 3, 3), date(2026, 4, 2))
    e = member()  # the next starts exactly 30 days before the end: renewed
    case["30_before"] = m(club, e, plan, JAN, date(2026, 3, 31))
    m(club, e, plan, date(2026, 3, 1), date(2026, 5, 31))
    f = member()  # 31 days before the end: an overlap, not a renewal
    case["31_before"] = m(club, f, plan, JAN, date(2026, 3, 31))
    m(club, f, plan, date(2026, 2, 28), date(2026, 3, 27))
    g = member()  # frozen 10 days: ends 10 Feb; the renewal from 11 Feb continues it
    case["frozen"] = m(club, g, plan, JAN, date(2026, 1, 31),
                       frozen=(date(2026, 1, 10), date(2026, 1, 19)))
    m(club, g, plan, date(2026, 2, 11), date(2026, 3, 10))
    h = member()  # cancelled from 15 Mar: it ended 14 Mar, nothing after
    case["cancelled"] = m(club, h, plan, JAN, date(2026, 6, 30), cancelled_on=date(2026, 3, 15),
                          cancel_reason="price")
    i = member()  # cancelled, then a new plan five days later: renewed
    case["switched"] = m(club, i, plan, JAN, date(2026, 6, 30), cancelled_on=date(2026, 3, 15),
                         cancel_reason="other")
    m(club, i, plan, date(2026, 3, 20), date(2026, 4, 19))
    j = member()  # the only later one never ran (cancelled on its first day): lost
    case["void_next"] = m(club, j, plan, date(2026, 3, 1), date(2026, 3, 31))
    case["void"] = m(club, j, plan, date(2026, 4, 1), date(2026, 4, 30),
                     cancelled_on=date(2026, 4, 1))
    k = member()  # two started the same day: neither renews the other
    case["parallel_a"] = m(club, k, plan, JAN, date(2026, 1, 31))
    case["parallel_b"] = m(club, k, plan, JAN, date(2026, 2, 28))
    n = member()  # grace still open, on the edge, and just closed
    case["in_grace"] = m(club, n, plan, date(2026, 5, 6), AS_OF - days(10))
    o = member()
    case["grace_today"] = m(club, o, plan, date(2026, 4, 17), AS_OF - days(30))
    p = member()
    case["grace_closed"] = m(club, p, plan, date(2026, 4, 16), AS_OF - days(31))
    q = member()  # renewal sold ahead, starting after today
    case["sold_ahead"] = m(club, q, plan, date(2026, 5, 15), AS_OF - days(1))
    m(club, q, plan, AS_OF + days(5), AS_OF + days(35))
    r = member()  # ends tomorrow: not ended yet
    case["not_ended"] = m(club, r, plan, date(2026, 5, 17), AS_OF + days(1))
    t = member()  # a cancellation recorded after the end changes nothing
    case["cancel_after_end"] = m(club, t, plan, JAN, date(2026, 1, 31),
                                 cancelled_on=date(2026, 2, 5), cancel_reason="other")
    u = member()  # overlapping: the 1st is renewed by the 3rd (the 2nd starts too early)
    case["overlap_1"] = m(club, u, plan, JAN, date(2026, 3, 31))
    case["overlap_2"] = m(club, u, plan, date(2026, 1, 15), date(2026, 2, 14))
    case["overlap_3"] = m(club, u, plan, date(2026, 3, 20), date(2026, 4, 19))

    got = _outcomes(db, club.id)
    expected = {
        "early": "renewed", "early_next": "lost", "gap": "renewed", "grace_edge": "renewed",
        "return": "lost", "30_before": "renewed", "31_before": "lost", "frozen": "renewed",
        "cancelled": "lost", "switched": "renewed", "void_next": "lost",
        "parallel_a": "lost", "parallel_b": "lost", "in_grace": "in_grace",
        "grace_today": "in_grace", "grace_closed": "lost", "sold_ahead": "renewed",
        "cancel_after_end": "lost", "overlap_1": "renewed", "overlap_2": "lost",
        "overlap_3": "lost"}
    assert {name: got.get(case[name]) for name in expected} == expected
    assert case["void"] not in got and case["not_ended"] not in got
    assert case["return_next"] in got  # a return is a membership like any other

    with db.sessionmaker() as s:
        listed = {o.membership_id: o for o in service.outcomes(
            s, club_id=club.id, as_of=AS_OF, date_from=date(2025, 12, 1), date_to=AS_OF)}
        assert listed[case["frozen"]].last_day == date(2026, 2, 10)  # moved out by the freeze
        assert listed[case["cancelled"]].last_day == date(2026, 3, 14)
        assert listed[case["cancel_after_end"]].last_day == date(2026, 1, 31)
        report = service.renewal_report(s, club_id=club.id, as_of=AS_OF,
                                        date_from=date(2025, 12, 1))
    totals = report.totals
    renewed = sum(1 for v in got.values() if v == "renewed")
    lost = sum(1 for v in got.values() if v == "lost")
    undecided = sum(1 for v in got.values() if v == "in_grace")
    assert undecided == 3  # the two above, and e's second membership (ends 31 May)
    assert (totals.ended, totals.renewed, totals.in_grace, totals.lost) == (
        len(got), renewed, undecided, lost)
    assert totals.renewal_rate == round(renewed / (renewed + lost), 4)
    feb = next(r for r in report.items if r.key == "2026-02")
    assert feb.ended == sum(1 for o in listed.values() if o.last_day.month == 2
                            and o.last_day.year == 2026)


def test_grace_is_the_club_setting(db, hand):
    club = hand.club(grace_days=10)
    plan = hand.plan(club)
    a, b = hand.member(club), hand.member(club)
    late = hand.membership(club, a, plan, JAN, date(2026, 1, 31))
    hand.membership(club, a, plan, date(2026, 2, 10), date(2026, 3, 9))  # 10 days after
    later = hand.membership(club, b, plan, JAN, date(2026, 1, 31))
    hand.membership(club, b, plan, date(2026, 2, 11), date(2026, 3, 10))  # 11 days after
    got = _outcomes(db, club.id)
    assert (got[late], got[later]) == ("renewed", "lost")


def test_zero_grace_still_counts_the_next_day(db, hand):
    club = hand.club(grace_days=0)
    plan = hand.plan(club)
    a = hand.member(club)
    first = hand.membership(club, a, plan, JAN, date(2026, 1, 31))
    hand.membership(club, a, plan, date(2026, 2, 1), date(2026, 2, 28))
    assert _outcomes(db, club.id)[first] == "renewed"


def _small_club(hand):
    """Five members, grace 30, today 15 June 2026:

    A  1 Jan – 31 Jan                              spell 31 days, ended
    B  1 Jan – 31 Mar                              spell 90 days, ended
    C  1 Jan – 31 Jan, 20 Feb – 19 Mar (gap 19)    one spell, 78 days, ended
    D  1 Feb – 31 Jul                              running: censored at 135 days
    E  1 Jan – 31 May                              grace open: censored at 151 days
    """
    club = hand.club()
    plan = hand.plan(club)
    m = hand.membership
    members = {}
    for name, spans in {"A": [(JAN, date(2026, 1, 31))], "B": [(JAN, date(2026, 3, 31))],
                        "C": [(JAN, date(2026, 1, 31)), (date(2026, 2, 20), date(2026, 3, 19))],
                        "D": [(FEB, date(2026, 7, 31))], "E": [(JAN, date(2026, 5, 31))]}.items():
        members[name] = hand.member(club)
        for start, end in spans:
            m(club, members[name], plan, start, end)
    return club


def test_survival_by_hand(db, hand):
    club = _small_club(hand)
    with db.sessionmaker() as s:
        report = service.survival(s, club_id=club.id, as_of=AS_OF)
    assert (report.spells, report.events, report.censored, report.longest_days) == (5, 3, 2, 151)
    # 31: 1 of 5 → 0.8;  78: 1 of 4 → 0.6;  90: 1 of 3 → 0.4
    assert [(p.day, p.at_risk, p.events, p.survival) for p in report.items] == [
        (31, 5, 1, 0.8), (78, 4, 1, 0.6), (90, 3, 1, 0.4)]
    assert report.median_days == 90
    assert [(mk.day, mk.survival) for mk in report.marks] == [
        (30, 1.0), (90, 0.4), (180, None), (365, None), (730, None)]


def test_monthly_retention_by_hand(db, hand):
    club = _small_club(hand)
    with db.sessionmaker() as s:
        report = service.monthly(s, club_id=club.id, as_of=AS_OF, date_from=JAN)
    rows = {r.month: r for r in report.items}
    # 1 Jan: A B C E.  1 Feb: B D E (C between memberships).  1 Mar: B C D E.  1 Apr, 1 May: D E.
    # 1 Jun: D
    assert [rows[k].members_at_start for k in sorted(rows)] == [4, 3, 4, 2, 2, 1]
    jan, feb, mar, may, jun = (rows[k] for k in ("2026-01", "2026-02", "2026-03", "2026-05",
                                                 "2026-06"))
    # January: A's tenure ends (churned); C's gap is shorter than grace, so C is retained
    assert (jan.retained, jan.churned, jan.undecided, jan.retention_rate) == (3, 1, 0, 0.75)
    assert (jan.members_at_end, jan.growth, jan.growth_pct, jan.joined) == (3, -1, -25.0, 4)
    assert (feb.retained, feb.churned, feb.joined) == (3, 0, 1)
    assert (mar.retained, mar.churned, mar.churn_rate) == (2, 2, 0.5)  # B and C end in March
    assert (may.retained, may.churned, may.undecided, may.retention_rate) == (1, 0, 1, 1.0)
    assert (jun.members_at_end, jun.retained, jun.retention_rate) == (None, None, None)


def test_cohorts_by_hand(db, hand):
    club = _small_club(hand)
    with db.sessionmaker() as s:
        report = service.cohorts(s, club_id=club.id, as_of=AS_OF, date_from=JAN)
    rows = {r.cohort: r for r in report.items}
    # January cohort A B C E at the ends of Jan … May: C's gap is bridged, B ends 31 Mar
    assert rows["2026-01"].still == [4, 3, 2, 1, 1]
    assert rows["2026-01"].share == [1.0, 0.75, 0.5, 0.25, 0.25]
    assert rows["2026-02"].still == [1, 1, 1, 1]
    assert report.months == 5


def test_plan_filter_of_another_club_is_not_found(db, hand):
    import pytest

    from app.core.errors import NotFound

    club, other = hand.club(), hand.club(name="Elsewhere")
    theirs = hand.plan(other)
    with db.sessionmaker() as s, pytest.raises(NotFound):
        service.renewal_report(s, club_id=club.id, as_of=AS_OF, plan_id=theirs)


def test_visits_at_midnight_count_on_the_club_day(db, hand):
    """Attendance is counted on club-local days: 00:05 Berlin on the day after the end is
    already outside the window, 23:55 on the last day inside (both are the same UTC date)."""
    club = hand.club()
    plan = hand.plan(club)
    a, b = hand.member(club), hand.member(club)
    end = date(2026, 2, 25)
    for member in (a, b):
        mid = hand.membership(club, member, plan, date(2026, 1, 26), end)  # 31 days
        for k in range(4):  # 4 visits: 4 × 7 / 31 → under 1 a week
            hand.visits(club, member, [local(end - days(2 * k + 1), 18)], membership=mid)
    hand.visits(club, a, [local(end, 23, 55)])  # inside: 5 × 7 = 35 ≥ 31 → 1-2
    hand.visits(club, b, [local(end + days(1), 0, 5)])  # outside
    with db.sessionmaker() as s:
        report = service.renewal_breakdown(s, club_id=club.id, as_of=AS_OF, by="attendance",
                                           date_from=JAN)
    assert {r.key: r.ended for r in report.items} == {"0-1": 1, "1-2": 1}
