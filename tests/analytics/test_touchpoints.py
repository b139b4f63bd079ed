"""Touchpoint effectiveness on hand-built exposed and held-out groups with known outcomes."""
from datetime import date

import pytest

from app.analytics import service, stats
from tests.analytics import reference as ref
from tests.analytics.conftest import AS_OF, days

END = date(2026, 3, 31)


def _group(hand, club, plan, definition, status, n, renewed, channel="email"):
    """n members whose membership ends 31 Mar; `renewed` of them start another on 1 Apr."""
    for i in range(n):
        member = hand.member(club)
        mid = hand.membership(club, member, plan, date(2026, 3, 1), END)
        if i < renewed:
            hand.membership(club, member, plan, END + days(1), END + days(30))
        hand.touchpoint(club, member, definition, mid, status, channel=channel,
                        on=END - days(14))


@pytest.mark.parametrize(("published", "expected"), [
    # Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((6, 7, 2, 7), (0.0582, 0.8062)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
])
def test_the_interval_is_newcombes(published, expected):
    _, low, high = stats.newcombe(*published)
    assert (round(low, 4), round(high, 4)) == expected


def test_rates_difference_interval_and_verdicts(db, hand):
    club = hand.club()
    plan = hand.plan(club)
    lifts = hand.definition(club, "renewal_offer")
    lowers = hand.definition(club, "renewal_nag", channel="sms")
    flat = hand.definition(club, "renewal_reminder")
    tiny = hand.definition(club, "renewal_gift")
    hand.definition(club, "birthday", stage=None)  # planned for nobody
    _group(hand, club, plan, lifts, "sent", 40, 30)
    _group(hand, club, plan, lifts, "held_out", 40, 16)
    _group(hand, club, plan, lifts, "skipped", 10, 2)  # planned, not delivered (consent)
    _group(hand, club, plan, lowers, "sent", 40, 10, channel="sms")
    _group(hand, club, plan, lowers, "held_out", 40, 28, channel="sms")
    _group(hand, club, plan, flat, "sent", 40, 20)
    _group(hand, club, plan, flat, "held_out", 40, 21)
    _group(hand, club, plan, tiny, "sent", 10, 8)
    _group(hand, club, plan, tiny, "held_out", 5, 1)
    # one still in grace (ends ten days ago), one with both a held-out and a sent row
    member = hand.member(club)
    mid = hand.membership(club, member, plan, AS_OF - days(40), AS_OF - days(10))
    hand.touchpoint(club, member, flat, mid, "sent", on=AS_OF - days(20))
    member = hand.member(club)
    mid = hand.membership(club, member, plan, date(2026, 3, 1), END)
    hand.touchpoint(club, member, flat, mid, "sent", cycle="a")
    hand.touchpoint(club, member, flat, mid, "held_out", cycle="b")

    with db.sessionmaker() as s:
        report = service.touchpoint_effectiveness(s, club_id=club.id, as_of=AS_OF,
                                                  date_from=date(2026, 1, 1))
    rows = {r.key: r for r in report.items}

    def check(row, x1, n1, x2, n2):
        d, low, high = ref.newcombe(x1, n1, x2, n2)  # the test's own formula
        assert (row.exposed, row.exposed_renewed, row.held_out, row.held_out_renewed) == (
            n1, x1, n2, x2)
        assert (row.exposed_rate, row.held_out_rate) == (round(x1 / n1, 4), round(x2 / n2, 4))
        assert (row.difference, row.ci_low, row.ci_high) == (
            round(d, 4), round(low, 4), round(high, 4))

    check(rows["renewal_offer"], 30, 40, 16, 40)
    # 75 % against 40 % in groups of 40: the raw 95 % interval is above 0, but judged together
    # with the report's nine other comparisons and valid however often it is looked at, the
    # corrected interval is not: no verdict yet (it was "lifts renewals" before issue #24)
    assert rows["renewal_offer"].verdict == "no measurable effect"
    assert rows["renewal_offer"].ci_low > 0
    assert rows["renewal_offer"].adjusted_low < 0 < rows["renewal_offer"].adjusted_high
    # intention to treat: the skipped ten count with the assigned
    offer = rows["renewal_offer"]
    assert (offer.assigned, offer.assigned_renewed) == (50, 32)
    d, low, high = ref.newcombe(32, 50, 16, 40)
    assert (offer.itt_difference, offer.itt_ci_low, offer.itt_ci_high) == (
        round(d, 4), round(low, 4), round(high, 4))
    assert offer.itt_ci_low > 0 and offer.itt_verdict == "no measurable effect"  # as above

    check(rows["renewal_nag"], 10, 40, 28, 40)
    assert rows["renewal_nag"].verdict == "lowers renewals" and rows["renewal_nag"].ci_high < 0
    assert rows["renewal_nag"].adjusted_high < 0 and rows["renewal_nag"].itt_adjusted_high < 0
    check(rows["renewal_reminder"], 20, 40, 21, 40)
    assert rows["renewal_reminder"].verdict == "no measurable effect"
    assert (rows["renewal_reminder"].in_grace, rows["renewal_reminder"].mixed) == (1, 1)
    check(rows["renewal_gift"], 8, 10, 1, 5)
    assert rows["renewal_gift"].verdict == "too few members to tell"
    assert rows["renewal_gift"].difference == 0.6  # shown, but not judged
    birthday = rows["birthday"]
    assert (birthday.exposed, birthday.held_out, birthday.difference, birthday.verdict) == (
        0, 0, None, "too few members to tell")
    assert report.min_group == 30 and "Newcombe" in report.method
    # one family: two comparisons for each of the five definitions; the nag's two are found
    assert (report.family_size, report.discoveries, report.alpha) == (10, 2, 0.05)
    assert report.adjusted_level == pytest.approx(0.05 * 2 / 10)
    assert "always-valid" in report.method and "Benjamini" in report.method


def test_thirty_in_each_group_is_enough(db, hand):
    club = hand.club()
    plan = hand.plan(club)
    offer = hand.definition(club, "renewal_offer")
    _group(hand, club, plan, offer, "sent", 30, 27)
    _group(hand, club, plan, offer, "held_out", 29, 10)
    with db.sessionmaker() as s:
        row = service.touchpoint_effectiveness(s, club_id=club.id, as_of=AS_OF,
                                               date_from=date(2026, 1, 1)).items[0]
    assert row.verdict == "too few members to tell"  # 29 held out
    member = hand.member(club)
    mid = hand.membership(club, member, plan, date(2026, 3, 1), END)
    hand.touchpoint(club, member, offer, mid, "held_out")
    with db.sessionmaker() as s:
        row = service.touchpoint_effectiveness(s, club_id=club.id, as_of=AS_OF,
                                               date_from=date(2026, 1, 1)).items[0]
    assert (row.exposed, row.held_out, row.verdict) == (30, 30, "lifts renewals")


def test_a_touchpoint_counts_for_its_membership_only(db, hand):
    club = hand.club()
    plan = hand.plan(club)
    offer = hand.definition(club, "renewal_offer")
    member = hand.member(club)
    first = hand.membership(club, member, plan, date(2026, 1, 1), date(2026, 1, 31))
    second = hand.membership(club, member, plan, date(2026, 2, 1), date(2026, 2, 28))
    hand.touchpoint(club, member, offer, second, "sent")  # for the second one
    hand.touchpoint(club, member, offer, None, "sent")  # for none
    with db.sessionmaker() as s:
        row = service.touchpoint_effectiveness(s, club_id=club.id, as_of=AS_OF,
                                               date_from=date(2026, 1, 1)).items[0]
        by_channel = service.renewal_breakdown(s, club_id=club.id, as_of=AS_OF, by="channel",
                                               date_from=date(2026, 1, 1))
    assert (row.exposed, row.exposed_renewed) == (1, 0)  # the second: lost
    assert {r.key: (r.ended, r.renewed) for r in by_channel.items} == {
        "email": (1, 0), "none": (1, 1)}
    assert by_channel.totals.ended == 2 and first
