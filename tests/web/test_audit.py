"""The desk's pages write the privacy audit through the members service, like the API: opening a
member card is one "viewed" entry (as GET /api/v1/members/{id}), the card's note form one
"note_added" entry (as POST /api/v1/members/{id}/notes)."""
from sqlalchemy import select

from app.core.audit import AuditEntry
from tests.web.conftest import csrf_of, sign_in


def _entries(session, member_id: int) -> list[tuple]:
    rows = session.execute(select(AuditEntry.action, AuditEntry.staff_id, AuditEntry.actor_label,
                                  AuditEntry.entity, AuditEntry.fields, AuditEntry.detail)
                           .where(AuditEntry.entity_id == member_id)
                           .order_by(AuditEntry.id)).all()
    session.rollback()
    return [(action, staff, label, entity, list(fields or []), detail)
            for action, staff, label, entity, fields, detail in rows]


def test_opening_the_member_card_writes_the_same_view_entry_as_the_api(web, club_world, session):
    desk = club_world.desk
    anna = club_world.members["anna"]
    assert _entries(session, anna) == []

    sign_in(web, desk.email)
    assert web.get(f"/desk/members/{anna}").status_code == 200
    page = _entries(session, anna)
    assert page == [("viewed", desk.user_id, None, "member", [], None)]

    api = web.get(f"/api/v1/members/{anna}", headers=desk.headers)
    assert api.status_code == 200, api.text
    assert _entries(session, anna) == page * 2


def test_a_note_from_the_card_is_audited_like_the_api_s(web, club_world, session):
    desk = club_world.desk
    bert = club_world.members["bert"]
    sign_in(web, desk.email)
    card = web.get(f"/desk/members/{bert}")
    before = len(_entries(session, bert))

    answer = web.post(f"/desk/members/{bert}/notes", follow_redirects=False,
                      data={"csrf_token": csrf_of(card.text), "text": "prefers mornings"})
    assert answer.status_code == 303, answer.text
    page = _entries(session, bert)[before:]
    assert page == [("note_added", desk.user_id, None, "member", ["notes"], None)]

    api = web.post(f"/api/v1/members/{bert}/notes", headers=desk.headers,
                   json={"text": "asked about PT"})
    assert api.status_code == 201, api.text
    assert _entries(session, bert)[before + 1:] == page
