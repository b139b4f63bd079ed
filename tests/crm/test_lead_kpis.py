"""Lead KPIs for analytics: time to first contact and conversion, against a hand computation."""
from datetime import UTC, datetime

from app.core.actors import Role
from app.core.db import transaction
from app.crm.models import Interaction, Lead, LeadStageChange


def t(day: int, hour: int = 0, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def _arrange(db, rw, club, staff_id):
    """Seven leads around March 2026 (Berlin), with moves and logged contacts."""
    def lead(created, source, stage, *, reason=None, moves=(), contacts=(), c=club):
        member = rw.member(c)
        with transaction(db.sessionmaker) as s:
            row = Lead(club_id=c.id, member_id=member, stage=stage, source=source,
                       lost_reason=reason, created_at=created, updated_at=created)
            s.add(row)
            s.flush()
            s.add(LeadStageChange(club_id=c.id, lead_id=row.id, from_stage=None,
                                  to_stage="new", at=created))
            for frm, to, at in moves:
                s.add(LeadStageChange(club_id=c.id, lead_id=row.id, from_stage=frm,
                                      to_stage=to, at=at, staff_id=staff_id))
            for kind, at, by in contacts:
                s.add(Interaction(club_id=c.id, member_id=member, kind=kind, channel=kind,
                                  summary=kind, staff_id=by, occurred_at=at))

    # L1: contacted after 2 h, then won
    lead(t(2, 10), "walk_in", "won", moves=[("new", "contacted", t(2, 12)),
                                            ("contacted", "won", t(9))])
    # L2: a staff call after 6 h comes before the move after 24 h
    lead(t(3, 8), "website", "contacted", moves=[("new", "contacted", t(4, 8))],
         contacts=[("call", t(3, 14), staff_id)])
    # L3: an engine email and a note are not contacts; new → lost is not one either
    lead(t(5, 9), "website", "lost", reason="no_response",
         moves=[("new", "lost", t(6))],
         contacts=[("email", t(5, 10), None), ("note", t(5, 11), staff_id)])
    # L4: an email logged after 24 h, then trial booked, then lost on price
    lead(t(10), "referral", "lost", reason="price",
         moves=[("new", "trial_booked", t(12)), ("trial_booked", "lost", t(14))],
         contacts=[("email", t(11), staff_id)])
    # L5: an SMS before the lead existed does not count; won by a sale after 120 h
    lead(t(20), "website", "won", moves=[("new", "won", t(25))],
         contacts=[("sms", t(19), staff_id)])
    # L6: 28 Feb 23:30 UTC is 1 March 00:30 in Berlin: in the period, never contacted
    lead(t(28, 23, 30, month=2), "walk_in", "new")
    # L7: 31 March 22:30 UTC is 1 April 00:30 in Berlin (summer time): not in the period
    lead(t(31, 22, 30), "walk_in", "won", moves=[("new", "won", t(31, 23))])


def test_lead_kpis_match_the_hand_computation(client, world, db, rw):
    club, other = world.club(), world.club("Other")
    manager = world.staff(club, Role.manager)
    _arrange(db, rw, club, manager.user_id)
    with transaction(db.sessionmaker) as s:  # another club's lead in the period: not counted
        other_member = rw.member(other)
        s.add(Lead(club_id=other.id, member_id=other_member, stage="won", source="walk_in",
                   created_at=t(15), updated_at=t(15)))
    r = client.get("/api/v1/analytics/leads?from=2026-03-01&to=2026-03-31",
                   headers=manager.headers)
    assert r.status_code == 200, r.text
    report = r.json()
    # created: L1–L6; contacted: L1 (2 h), L2 (6 h), L4 (24 h), L5 (120 h)
    assert (report["created"], report["contacted"], report["won"], report["lost"],
            report["open"]) == (6, 4, 2, 2, 2)
    assert report["conversion_rate"] == round(2 / 6, 4)
    # hours [2, 6, 24, 120]: median at rank 1.5 → 6 + 0.5 × 18 = 15; p90 at rank 2.7 →
    # 24 + 0.7 × 96 = 91.2
    assert report["first_contact"] == {"contacted": 4, "median_hours": 15.0, "p90_hours": 91.2}
    assert report["by_source"] == [
        {"source": "referral", "created": 1, "won": 0, "conversion_rate": 0.0},
        {"source": "walk_in", "created": 2, "won": 1, "conversion_rate": 0.5},
        {"source": "website", "created": 3, "won": 1, "conversion_rate": round(1 / 3, 4)}]
    assert report["lost_by_reason"] == [{"reason": "no_response", "lost": 1},
                                        {"reason": "price", "lost": 1}]
    csv = client.get("/api/v1/analytics/leads?from=2026-03-01&to=2026-03-31&format=csv",
                     headers=manager.headers)
    assert csv.status_code == 200 and "by_source,website,conversion_rate,0.3333" in csv.text
    assert "first_contact,,median_hours,15.0" in csv.text


def test_an_empty_period_and_who_may_ask(client, world):
    club = world.club()
    manager, desk = world.staff(club, Role.manager), world.staff(club, Role.front_desk)
    r = client.get("/api/v1/analytics/leads?from=2026-01-01&to=2026-01-31",
                   headers=manager.headers)
    assert r.status_code == 200
    assert r.json()["created"] == 0 and r.json()["conversion_rate"] is None
    assert r.json()["first_contact"]["median_hours"] is None
    assert client.get("/api/v1/analytics/leads", headers=desk.headers).status_code == 403
    r = client.get("/api/v1/analytics/leads?from=2026-02-01&to=2026-01-01",
                   headers=manager.headers)
    assert r.status_code == 422
