"""Stripe's webhooks for a club: verified by signature, kept once per event, applied in order.

Stripe signs each delivery with the club's endpoint secret (`Stripe-Signature: t=<unix
seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`); the `stripe` library verifies it, and the
timestamp must be at most five minutes old by the app's clock. A delivery that fails either is
refused (400) and writes nothing. Each event is kept once (`ProviderEvent`, unique per club and
event id): a replay answers 200 and changes nothing. Handled types:
- `checkout.session.completed` (mode setup): the payer saved a card; its details are read from
  Stripe (SetupIntent, PaymentMethod) onto the `StoredCard`;
- `payment_intent.succeeded`: the collection is paid and the payment recorded once;
- `payment_intent.payment_failed`: a pending collection failed, with Stripe's decline code.
Deliveries may come out of order: outcomes only move forward (pending → failed → paid), so a
failure arriving after the success changes nothing, and the days written are those of the
event's own `created` instant, not of its arrival. Other types are kept and ignored.
"""
import json
from datetime import UTC, datetime, timedelta

import stripe
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.clubs import service as clubs_service
from app.core import clock
from app.core.config import Settings
from app.core.errors import Conflict, Invalid, NotFound
from app.dues import cards, terms
from app.dues.card_provider import ChargeResult, charge_result
from app.dues.models import Collection, ProviderEvent

TOLERANCE = timedelta(minutes=5)
"""How old a signature's timestamp may be (Stripe's libraries default to 300 seconds)."""
PROVIDER = "stripe"


MAX_UNIX = 2**31 - 1


def _signed_at(header: str) -> datetime:
    """The timestamp the signature was checked with: the first item named exactly `t`, as the
    `stripe` library reads it (a second `t`, or one with a space before it, is not it)."""
    items = [item.split("=", 2) for item in header.split(",")]
    value = next((item[1] for item in items if item[0] == "t" and len(item) > 1), "").strip()
    if value.isascii() and value.isdigit() and int(value) <= MAX_UNIX:
        return datetime.fromtimestamp(int(value), UTC)
    raise Invalid("The Stripe-Signature header carries no usable timestamp",
                  code="bad_signature", status_code=400)


def verify(payload: bytes, signature: str | None, secret: str) -> dict:
    """The event in a delivery whose signature is good and fresh; 400 otherwise."""
    try:
        stripe.WebhookSignature.verify_header(payload, signature, secret, tolerance=None)
    except (stripe.SignatureVerificationError, ValueError) as error:
        raise Invalid("The webhook's signature does not match this club's endpoint secret",
                      code="bad_signature", status_code=400) from error
    if _signed_at(signature or "") < clock.now() - TOLERANCE:
        raise Invalid("The webhook's signature is older than five minutes (a replay?)",
                      code="stale_signature", status_code=400)
    try:
        event = json.loads(payload)
    except ValueError:
        event = None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) \
            or not 0 < len(event["id"]) <= 100 or not isinstance(event.get("type"), str):
        raise Invalid("The webhook carries no Stripe event", code="invalid_event",
                      status_code=400)
    created = event.get("created")
    if not isinstance(created, int) or isinstance(created, bool) or not 0 < created <= MAX_UNIX:
        event["created"] = None
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    event["data"] = {"object": obj if isinstance(obj, dict) else {}}
    return event


def _remember(session: Session, *, club_id: int, event: dict) -> bool:
    """Keep the event once; False when it was received before."""
    known = session.scalar(select(ProviderEvent.id).where(
        ProviderEvent.club_id == club_id, ProviderEvent.provider == PROVIDER,
        ProviderEvent.event_id == event["id"]))
    if known is not None:
        return False
    created = event.get("created")
    row = ProviderEvent(club_id=club_id, provider=PROVIDER, event_id=event["id"],
                        type=event["type"][:60], created=created, received_at=clock.now())
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:  # a concurrent delivery of the same event
        return False
    return True


def handle_stripe_webhook(session: Session, *, club_id: int, payload: bytes,
                          signature: str | None, settings: Settings | None = None) -> str:
    """Verify, keep and apply one delivery; `applied`, `unchanged`, `duplicate` or `ignored`."""
    club = clubs_service.get_club(session, club_id) if club_id else None
    if club is None:
        raise NotFound("Club not found")
    secret = terms.settings_for(session, club_id).stripe_webhook_secret
    if not secret:
        raise Conflict("This club has no Stripe webhook secret set", code="stripe_not_configured")
    event = verify(payload, signature, secret)
    if not _remember(session, club_id=club_id, event=event):
        return "duplicate"
    created = event["created"]
    at = datetime.fromtimestamp(created, UTC) if created is not None else clock.now()
    day = clubs_service.club_today(club, at)
    obj = event["data"]["object"]
    kind = event["type"]
    if kind == "checkout.session.completed":
        if obj.get("mode") != "setup" or not obj.get("id"):
            return "ignored"
        card = cards.complete_card_setup(session, club_id=club_id, setup_ref=str(obj["id"]),
                                         settings=settings)
        return "applied" if card is not None and card.method_ref else "ignored"
    if kind in ("payment_intent.succeeded", "payment_intent.payment_failed"):
        collection = _collection_for(session, club_id=club_id, intent=obj)
        if collection is None:
            return "ignored"
        result = charge_result(obj)
        if kind == "payment_intent.payment_failed" and result.status != "failed":
            result = ChargeResult(status="failed", ref=obj.get("id"), failure_code="failed",
                                  failure_reason="The charge failed")
        changed = cards.apply_charge(session, collection=collection, result=result,
                                     occurred_on=day)
        return "applied" if changed else "unchanged"
    return "ignored"


def _collection_for(session: Session, *, club_id: int, intent: dict) -> Collection | None:
    """The collection a PaymentIntent charges: by its id, else by the metadata fitclub sent."""
    ref = intent.get("id")
    if not isinstance(ref, str) or not ref:
        return None
    found = session.scalars(select(Collection).where(
        Collection.club_id == club_id, Collection.provider_ref == ref)).first()
    if found is not None:
        return found
    metadata = intent.get("metadata")
    wanted = str(metadata.get("collection_id") or "") if isinstance(metadata, dict) else ""
    if not wanted.isdigit() or len(wanted) > 18:
        return None
    found = session.get(Collection, int(wanted))
    if found is None or found.club_id != club_id or found.method != "card" \
            or found.provider_ref not in (None, ref):
        return None
    return found
