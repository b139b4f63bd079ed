"""A member owns their data in the app: consents and the preferred channel (each change a
statement in the consent history, audited with the member as the actor, on the staff's
timeline) and the download of everything the club holds (the privacy export)."""
import json

from sqlalchemy import select

from app.core.audit import MEMBER_LABEL, AuditEntry
from app.crm.models import Interaction
from app.members.models import Consent, Member
from app.web.member_kit import MEMBER_COOKIE
from tests.memberapp.conftest import post_form


def test_a_member_changes_consents_and_preferred_channel(client, gym, world):
    anna = gym.member("Anna", "Berg", email="anna@example.org", phone="+4915112345678",
                      email_consent=True, sms_consent=False)
    client.cookies.set(MEMBER_COOKIE, world.app_session(anna), path="/app")
    page = client.get("/app/me").text
    assert 'id="consent-email" checked' in page and 'id="consent-sms">' in page
    saved = post_form(client, "/app/me", "/app/me/preferences",
                      {"sms": "on", "preferred": "sms"})  # email unticked, SMS ticked
    assert saved.status_code == 200 and "Saved." in saved.text
    with gym.db.sessionmaker() as s:
        member = s.get(Member, anna)
        assert (member.email_consent, member.sms_consent, member.preferred_channel) == (
            False, True, "sms")
        history = s.scalars(select(Consent).where(Consent.member_id == anna)
                            .order_by(Consent.channel)).all()
        assert [(c.channel, c.granted, c.source, c.staff_id) for c in history] == [
            ("email", False, "member_app", None), ("sms", True, "member_app", None)]
        [audited] = s.scalars(select(AuditEntry).where(AuditEntry.entity_id == anna,
                                                       AuditEntry.action == "consent_changed"))
        assert audited.actor_label == MEMBER_LABEL and audited.staff_id is None
        assert audited.fields == ["email_consent", "preferred_channel", "sms_consent"]
        [entry] = s.scalars(select(Interaction).where(Interaction.kind == "consent"))
        assert entry.summary == "In the member app: withdrew email, agreed to SMS, prefers sms"
    same = post_form(client, "/app/me", "/app/me/preferences", {"sms": "on", "preferred": "sms"})
    assert "Nothing changed." in same.text
    assert gym.count(Consent, member_id=anna) == 2


def test_consent_for_a_channel_without_an_address_is_refused(client, gym, world):
    anna = gym.member("Anna", "Berg", email="anna@example.org", phone=None)
    client.cookies.set(MEMBER_COOKIE, world.app_session(anna), path="/app")
    assert 'name="sms"' not in client.get("/app/me").text
    refused = post_form(client, "/app/me", "/app/me/preferences", {"sms": "on"})
    assert "no address for this channel" in refused.text
    assert gym.count(Consent, member_id=anna) == 0


def test_a_member_downloads_their_data(client, gym, world):
    anna = gym.member("Anna", "Berg", email="anna@example.org")
    gym.membership(anna)
    bert = gym.member("Bert", "Other")
    client.cookies.set(MEMBER_COOKIE, world.app_session(anna), path="/app")
    r = client.get("/app/me/data.json")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert r.headers["content-disposition"] == f'attachment; filename="my-data-{anna}.json"'
    data = json.loads(r.content)
    assert data["member_id"] == anna and data["profile"]["email"] == "anna@example.org"
    assert data["tables"]["memberships"][0]["member_id"] == anna
    assert "member_app_sessions" not in data["tables"]  # digests of cookies: bookkeeping
    assert str(bert) not in {str(row.get("member_id")) for rows in data["tables"].values()
                             for row in rows}
    [exported] = gym.scalars(select(AuditEntry).where(AuditEntry.action == "exported"))
    assert (exported.entity_id, exported.actor_label) == (anna, MEMBER_LABEL)
