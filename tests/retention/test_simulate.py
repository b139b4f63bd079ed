"""A year of a small synthetic club, replayed day by day with recording channels.

"Meets a touchpoint" means a scheduled touchpoint with status sent (a message or a staff task),
held_out (control group: recorded, not delivered) or skipped (consent, cap): every play that
fired for the member in the cycle. Cancelled ones (a stop condition held) do not count.
"""
from collections import defaultdict
from datetime import date, timedelta

from sqlalchemy import select

from app.core.db import transaction
from app.memberships.rules import end_date_for
from app.retention import service
from app.retention.channels import Channels, Recording
from app.retention.models import ScheduledTouchpoint, TouchpointDefinition
from app.retention.playbook import MESSAGE_CHANNELS
from tests.retention.conftest import BERLIN, local

S = date(2025, 1, 6)  # a Monday
END = end_date_for(S, duration_days=None, duration_months=12)
MET = ("sent", "held_out", "skipped")


def _rows(db, club_id):
    with transaction(db.sessionmaker) as s:
        return s.execute(select(ScheduledTouchpoint, TouchpointDefinition.key)
                         .join(TouchpointDefinition,
                               TouchpointDefinition.id == ScheduledTouchpoint.definition_id)
                         .where(ScheduledTouchpoint.club_id == club_id)).all()


def test_a_year_of_a_small_club(rw, db):
    club = rw.club()  # default settings: holdout 10%, cap 2 per 7 days, quiet 21:00-09:00
    plan = rw.plan(club)
    typical = rw.member(club, "Tina", birth_date=date(1991, 6, 12))
    m = rw.membership(club, typical, plan, S)
    rw.regular_visits(club, typical, S, END)
    rw.membership(club, typical, plan, END + timedelta(days=1),
                  sold_at=local(END - timedelta(days=10), 17), renews_id=m)
    rw.regular_visits(club, typical, END + timedelta(days=1), END + timedelta(days=10))
    fading = rw.member(club, "Felix")
    rw.membership(club, fading, plan, S)
    rw.regular_visits(club, fading, S, S + timedelta(days=120))
    silent = rw.member(club, "Sam", email_consent=False, sms_consent=False)
    rw.membership(club, silent, plan, S)
    rw.regular_visits(club, silent, S, END, weekdays=(1,))
    others = [rw.member(club) for _ in range(6)]
    for i, other in enumerate(others):
        rw.membership(club, other, plan, S + timedelta(days=7 * i))
        rw.regular_visits(club, other, S + timedelta(days=7 * i), END, weekdays=(1, 4))

    channels = Channels(email=Recording(), sms=Recording())
    result = service.simulate(db.sessionmaker, club_id=club.id, start=S - timedelta(days=1),
                              end=END + timedelta(days=5), channels=channels)
    assert result.days == (END - S).days + 7

    rows = _rows(db, club.id)
    by_member = defaultdict(list)
    for tp, key in rows:
        by_member[tp.member_id].append((tp, key))

    # the typical member meets 10-15 touchpoints in the yearly cycle
    met = sorted(key for tp, key in by_member[typical] if tp.status in MET)
    assert 10 <= len(met) <= 15, met
    assert {"welcome", "intro_session", "progress_check", "visit_10", "visit_50", "birthday",
            "renewal_reminder", "renewal_offer"} <= set(met)
    assert not {"miss_you", "winback", "low_visits_sms"} & set(met)
    # ... and renewing ten days before the end cancelled the rest of the renewal plays
    keys = {key for _, key in by_member[typical]}
    assert "renewal_call" not in keys and "renewal_last" not in keys

    # the member who stopped coming gets the at-risk sequence
    fading_keys = {key: tp.status for tp, key in by_member[fading]}
    assert {"miss_you", "at_risk_call", "at_risk_trainer"} <= set(fading_keys)
    assert fading_keys["at_risk_call"] in ("sent", "held_out")

    # consent: nothing was sent by email or SMS to the member without consent
    silent_rows = [(tp, key) for tp, key in by_member[silent] if tp.channel in MESSAGE_CHANNELS]
    assert silent_rows and all(tp.status != "sent" for tp, _ in silent_rows)
    assert any(tp.reason == "no_consent" for tp, _ in silent_rows)

    recorded = {msg.touchpoint_id: msg for ch in (channels.email, channels.sms)
                for msg in ch.messages}
    sent = {tp.id: tp for tp, _ in rows if tp.status == "sent" and tp.channel in MESSAGE_CHANNELS}
    assert set(recorded) == set(sent)  # every message once, and only for sent touchpoints
    assert not {tp.id for tp, _ in rows if tp.status == "held_out"} & set(recorded)
    assert any(tp.status == "held_out" for tp, _ in rows)
    assert silent not in {msg.member_id for msg in recorded.values()}

    # quiet hours and the frequency cap held for every message
    for tp in sent.values():
        hour = tp.sent_at.astimezone(BERLIN).hour
        assert 9 <= hour < 21, tp.sent_at
    per_member = defaultdict(list)
    for tp in sent.values():
        per_member[tp.member_id].append(tp.sent_at)
    for times in per_member.values():
        times.sort()
        for i, at in enumerate(times):
            window = [t for t in times[i:] if t < at + timedelta(days=7)]
            assert len(window) <= 2, (times, at)


def test_simulate_replays_idempotently(rw, db):
    club = rw.club(holdout_share=0)
    plan = rw.plan(club)
    member = rw.member(club)
    rw.membership(club, member, plan, S)
    first = service.simulate(db.sessionmaker, club_id=club.id, start=S, end=S + timedelta(days=30))
    again = service.simulate(db.sessionmaker, club_id=club.id, start=S, end=S + timedelta(days=30))
    assert sum(first.scheduled.values()) > 0
    assert sum(again.scheduled.values()) == 0 and again.dispatch.claimed == 0
