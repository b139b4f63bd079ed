"""Trainers' results, checked against figures computed here from the rows, and who sees what."""
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select, update

from app.core import clock
from app.core.db import transaction
from app.memberships.models import Membership
from app.trainers.models import ClassBooking, ClassOccurrence, PtPackage, PtSession
from tests.builders import money
from tests.trainers.conftest import BERLIN

GRACE_DAYS = 30  # the club default


def _reference(gym, trainer_id: int, first: date, last: date) -> dict:
    """The same figures, from plain rows and plain Python (no SQL aggregation)."""
    now = clock.now()
    hi = datetime.combine(last + timedelta(days=1), time(0), tzinfo=BERLIN).astimezone(UTC)
    with gym.db.sessionmaker() as s:
        sessions = list(s.scalars(select(PtSession)))
        packages = list(s.scalars(select(PtPackage)))
        classes = list(s.scalars(select(ClassOccurrence)))
        bookings = list(s.scalars(select(ClassBooking)))
        memberships = list(s.scalars(select(Membership)))

    def in_period(at: datetime) -> bool:
        return first <= at.astimezone(BERLIN).date() <= last

    mine = [x for x in sessions if x.trainer_id == trainer_id and in_period(x.starts_at)]
    done = [x for x in mine if x.status == "completed"]
    sold = [p for p in packages if p.trainer_id == trainer_id and in_period(p.created_at)]
    taught = [c for c in classes if c.trainer_id == trainer_id and c.status == "scheduled"
              and in_period(c.starts_at) and c.starts_at < now]
    came = sum(1 for b in bookings if b.status == "booked" and b.attended_at is not None
               and b.occurrence_id in {c.id for c in taught})
    capacity = sum(c.capacity for c in taught)
    clients = {x.member_id for x in sessions if x.trainer_id == trainer_id
               and x.status == "completed" and x.starts_at < hi}
    ended = [m for m in memberships if m.member_id in clients and first <= m.end_date <= last
             and (m.cancelled_on is None or m.cancelled_on > m.end_date)]
    renewed = [m for m in ended if any(
        n.member_id == m.member_id and n.id != m.id and n.start_date > m.start_date
        and m.end_date - timedelta(days=30) <= n.start_date <= m.end_date
        + timedelta(days=GRACE_DAYS)
        and (n.cancelled_on is None or n.cancelled_on > n.start_date) for n in memberships)]
    return {
        "sessions_delivered": len(done),
        "complimentary_sessions": sum(x.complimentary for x in done),
        "no_shows": sum(x.status == "no_show" for x in mine),
        "late_cancellations": sum(x.status == "cancelled" and x.late_cancel for x in mine),
        "distinct_clients": len({x.member_id for x in done}),
        "package_sales": len(sold),
        "package_repurchases": sum(any(q.member_id == p.member_id and q.id < p.id
                                       for q in packages) for p in sold),
        "package_revenue": money(sum((p.price for p in sold), money(0))),
        "classes_held": len(taught), "class_capacity": capacity, "class_attendance": came,
        "class_fill_rate": round(came / capacity, 4) if capacity else None,
        "memberships_ended": len(ended), "memberships_renewed": len(renewed),
        "renewal_rate": round(len(renewed) / len(ended), 4) if ended else None,
    }


def _figures(row: dict) -> dict:
    out = {k: v for k, v in row.items()
           if k not in ("trainer_id", "trainer_name", "date_from", "date_to")}
    out["package_revenue"] = money(out["package_revenue"])
    return out


def _arrange(gym):
    """Two trainers, five members; sessions, packages, a class and memberships around a period."""
    gym.client.patch("/api/v1/trainers/settings", json={"pt_cancel_hours": 48},
                     headers=gym.manager.headers)
    a, b = gym.trainer(), gym.trainer()
    m1, m2, m3, m4, m5 = (gym.member(f"M{i}") for i in range(1, 6))
    product = gym.pt_product(sessions=10, price="300.00")
    gym.package(m1, product, trainer_id=a.id)
    gym.package(m2, product, trainer_id=a.id)
    old = gym.package(m3, product, trainer_id=b.id)
    gym.package(m1, gym.pt_product(sessions=5, price="160.00"), trainer_id=a.id)  # a re-purchase
    gym.package(m4, product)  # no home trainer: nobody's sale
    with transaction(gym.db.sessionmaker) as s:  # m3's package was bought long before
        s.execute(update(PtPackage).where(PtPackage.id == old["id"])
                  .values(created_at=clock.now() - timedelta(days=60)))

    def done(coach, member, day, hh=10, action="complete", **kw):
        s = gym.booked(coach, member, gym.at(day, hh), **kw)
        assert gym.act(s["id"], action).status_code == 200
        return s

    done(a, m1, -25)                       # before the period
    done(a, m1, -5)
    done(a, m2, -4)
    done(a, m1, -3)
    done(a, m2, -2, action="no-show")
    done(a, m4, -6, complimentary=True)    # m4 becomes a's client too
    done(b, m3, -5, hh=11)
    gym.booked(a, m2, gym.at(5, 10))  # booked, not delivered
    late = gym.booked(a, m1, gym.at(1, 10))
    assert gym.act(late["id"], "cancel", staff=gym.desk).json()["late_cancel"] is True

    past = gym.class_at(a, gym.at(-3, 18), capacity=10)
    gym.class_at(a, gym.at(2, 18), capacity=10)  # in the period, not held yet
    now = clock.now()
    with transaction(gym.db.sessionmaker) as s:
        for i, (member, status, attended) in enumerate([
                (m1, "booked", True), (m2, "booked", True), (m3, "booked", True),
                (m4, "booked", False), (m5, "cancelled", False)]):
            s.add(ClassBooking(club_id=gym.club.id, occurrence_id=past["id"], member_id=member,
                               status=status, queued_at=now - timedelta(days=4, minutes=i),
                               attended_at=now - timedelta(days=3) if attended else None,
                               attendance_source="staff" if attended else None))

    plan = gym.plan()["id"]
    gym.membership(m1, plan, start_offset=-40)  # ends day -11 ...
    gym.membership(m1, plan, start_offset=-10)  # ... renewed the next day
    gym.membership(m2, plan, start_offset=-40)  # ends day -11, not renewed
    gym.membership(m4, plan, start_offset=-45)  # ends day -16 ...
    gym.membership(m4, plan, start_offset=15)   # ... a new one 31 days later: past the grace
    gym.membership(m3, plan, start_offset=-35)  # b's client: ends day -6 ...
    gym.membership(m3, plan, start_offset=2)    # ... renewed within the grace days
    gym.membership(m5, plan, start_offset=-40)  # nobody's PT client
    return a, b


def test_results_match_figures_computed_from_the_rows(gym):
    a, b = _arrange(gym)
    first, last = gym.day(-20), gym.day(3)
    params = {"from": first.isoformat(), "to": last.isoformat()}
    r = gym.client.get("/api/v1/trainers/results", params=params, headers=gym.manager.headers)
    assert r.status_code == 200, r.text
    rows = {row["trainer_id"]: row for row in r.json()}
    assert set(rows) == {a.id, b.id}
    got_a, got_b = _figures(rows[a.id]), _figures(rows[b.id])
    assert got_a == _reference(gym, a.id, first, last)
    assert got_b == _reference(gym, b.id, first, last)
    # and the reference is not vacuous: the arrangement in numbers
    assert got_a == {
        "sessions_delivered": 4, "complimentary_sessions": 1, "no_shows": 1,
        "late_cancellations": 1, "distinct_clients": 3, "package_sales": 3,
        "package_repurchases": 1, "package_revenue": money("760.00"), "classes_held": 1,
        "class_capacity": 10, "class_attendance": 3, "class_fill_rate": 0.3,
        "memberships_ended": 3, "memberships_renewed": 1, "renewal_rate": 0.3333}
    assert (got_b["sessions_delivered"], got_b["distinct_clients"], got_b["package_sales"],
            got_b["classes_held"], got_b["class_fill_rate"]) == (1, 1, 0, 0, None)
    assert (got_b["memberships_ended"], got_b["memberships_renewed"], got_b["renewal_rate"]) \
        == (1, 1, 1.0)
    one = gym.client.get(f"/api/v1/trainers/{a.id}/results", params=params,
                         headers=gym.manager.headers).json()
    assert _figures(one) == got_a and one["date_from"] == first.isoformat()


def test_a_trainer_sees_only_their_own_results(gym):
    a, b = gym.trainer(), gym.trainer()
    params = {"from": gym.day(-7).isoformat(), "to": gym.day(0).isoformat()}
    r = gym.client.get(f"/api/v1/trainers/{b.id}/results", params=params, headers=a.headers)
    assert r.status_code == 403 and r.json()["error"] == "not_your_results"
    r = gym.client.get(f"/api/v1/trainers/{a.id}/results", params=params, headers=a.headers)
    assert r.status_code == 200 and r.json()["trainer_id"] == a.id
    r = gym.client.get("/api/v1/trainers/results", params=params, headers=a.headers)
    assert [row["trainer_id"] for row in r.json()] == [a.id]
    r = gym.client.get("/api/v1/trainers/results", params=params, headers=gym.desk.headers)
    assert r.status_code == 403
    r = gym.client.get("/api/v1/trainers/results", headers=gym.manager.headers,
                       params={"from": gym.day(0).isoformat(), "to": gym.day(-1).isoformat()})
    assert r.status_code == 422 and r.json()["error"] == "invalid_period"


def test_a_trainer_cannot_see_another_trainers_clients_or_their_notes(gym):
    a, b = gym.trainer(), gym.trainer()
    member = gym.member()
    gym.package(member, trainer_id=b.id)
    s = gym.booked(b, member, gym.at(-1, 10))
    r = gym.act(s["id"], "complete", staff=b.staff, json={"note": "knee injury: no lunges"})
    assert r.status_code == 200
    notes_url = f"/api/v1/trainers/{b.id}/clients/{member}/notes"
    r = gym.client.get(notes_url, headers=a.headers)
    assert r.status_code == 403 and r.json()["error"] == "not_your_trainer_profile"
    assert "knee" not in r.text
    assert gym.client.post(notes_url, json={"text": "x"}, headers=a.headers).status_code == 403
    assert gym.client.get(notes_url, headers=gym.desk.headers).status_code == 403
    assert gym.client.get(f"/api/v1/trainers/{b.id}/clients", headers=a.headers).status_code \
        == 403
    own = gym.client.get(notes_url, headers=b.headers).json()
    assert [n["text"] for n in own["items"]] == ["knee injury: no lunges"]
    assert own["items"][0]["session_id"] == s["id"]
    seen = gym.client.get(notes_url, headers=gym.manager.headers).json()
    assert seen["total"] == 1
    clients = gym.client.get(f"/api/v1/trainers/{b.id}/clients", headers=b.headers).json()
    assert [(c["member_id"], c["sessions_completed"], c["sessions_left"]) for c in clients] == \
        [(member, 1, 9)]
    assert datetime.fromisoformat(clients[0]["last_session_at"]) == gym.at(-1, 10)
