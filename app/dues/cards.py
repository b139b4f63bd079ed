"""Cards on file: saving a card through the provider's hosted page, charging it off-session.

- **Saving a card** (`start_card_setup`): the payer's provider customer is created once (its id
  kept on every card of the payer) and a hosted set-up page is opened; a `StoredCard` row keeps
  the page's id (`setup_ref`) until the payer completes it. The desk emails the link (a notice,
  key `card_link:<card id>`) or shows it as a QR code. When the provider reports the page
  complete (`complete_card_setup`, from the webhook) the saved method and its brand, last four
  digits and expiry are filled in.
- **Charging** (`charge_due_cards`): each planned card collection due on or before the day is
  claimed (planned → pending, one guarded UPDATE, so two runs at once charge it once) and
  charged off-session under the idempotency key `fitclub-<club>-collection-<id>-attempt-<n>`:
  a retried or re-run call gets the provider's first answer back and never charges twice. The
  card charged is the collection's while it is saved, else the payer's newest saved card (none:
  the collection fails with `no_card`, for dunning). An immediate success or decline is applied at once (`apply_charge`), exactly as its webhook
  would be; the webhook repeating it changes nothing.
- **Outcomes only move forward**: pending → failed → paid. A success is money received and
  always wins (a failure reported after it changes nothing); the payment is recorded once, under
  the event key `card:<payment intent id>`.
"""
import io
import logging
from contextlib import nullcontext
from datetime import date

import segno
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.clubs import service as clubs_service
from app.core.actors import Actor
from app.core.config import Settings, get_settings
from app.core.db import transaction
from app.core.errors import Conflict, Invalid, NotFound
from app.dues import invoicing, notices, terms
from app.dues.card_provider import (
    CardProvider,
    ChargeResult,
    ProviderUnavailable,
    SavedMethod,
    StripeProvider,
)
from app.dues.models import Collection, Invoice, Payer, StoredCard

log = logging.getLogger("fitclub.dues.cards")



def provider_for(session: Session, *, club_id: int, settings: Settings | None = None
                 ) -> CardProvider:
    """The club's card provider (Stripe with the club's secret key); 409 when it has none."""
    settings = settings or get_settings()
    key = terms.settings_for(session, club_id).stripe_secret_key
    if not key:
        raise Conflict("This club takes no cards on file yet: add its Stripe secret key in the "
                       "billing settings first", code="stripe_not_configured")
    return StripeProvider(secret_key=key, api_base=settings.stripe_api_base,
                          timeout=settings.stripe_timeout,
                          network_retries=settings.stripe_network_retries)


def card_status(card: StoredCard) -> str:
    """pending (the payer has not completed the page), saved or removed."""
    if card.removed_on is not None:
        return "removed"
    return "saved" if card.method_ref else "pending"


def _payer(session: Session, *, club_id: int, payer_id: int) -> Payer:
    payer = session.get(Payer, payer_id)
    if payer is None or payer.club_id != club_id:
        raise NotFound("Payer not found", code="payer_not_found")
    return payer


def _return_url(settings: Settings, club_id: int, result: str) -> str:
    base = str(settings.public_base_url).rstrip("/")
    return f"{base}/api/v1/dues/stripe/return/{club_id}?result={result}"


def start_card_setup(session: Session, *, actor: Actor, payer_id: int, send_email: bool,
                     settings: Settings | None = None,
                     provider: CardProvider | None = None) -> tuple[StoredCard, str]:
    """Open the provider's page where the payer saves a card; the card row and the page's link."""
    settings = settings or get_settings()
    payer = _payer(session, club_id=actor.club_id, payer_id=payer_id)
    if send_email and not payer.email:
        raise Invalid("The payer has no email address: add one, or show the QR code instead",
                      code="payer_has_no_email")
    provider = provider or provider_for(session, club_id=actor.club_id, settings=settings)
    customer_ref = session.scalar(
        select(StoredCard.customer_ref)
        .where(StoredCard.club_id == actor.club_id, StoredCard.payer_id == payer.id,
               StoredCard.provider == provider.name, StoredCard.customer_ref.is_not(None))
        .order_by(StoredCard.id).limit(1))
    metadata = {"fitclub_club_id": str(actor.club_id), "fitclub_payer_id": str(payer.id)}
    started = provider.create_setup(
        payer_ref=f"club-{actor.club_id}-payer-{payer.id}", name=payer.name, email=payer.email,
        customer_ref=customer_ref, success_url=_return_url(settings, actor.club_id, "saved"),
        cancel_url=_return_url(settings, actor.club_id, "cancelled"), metadata=metadata)
    card = StoredCard(club_id=actor.club_id, payer_id=payer.id, provider=provider.name,
                      setup_ref=started.setup_ref, customer_ref=started.customer_ref)
    session.add(card)
    session.flush()
    if send_email:
        club = clubs_service.get_club(session, actor.club_id)
        notices.queue(
            session, club_id=actor.club_id, kind="card_link", key=f"card_link:{card.id}",
            to=payer.email, payer_id=payer.id, member_id=payer.member_id,
            subject=f"{club.name}: save your card for your membership dues",
            body=(f"Hello {payer.name},\n\nplease save the card your dues will be charged to on "
                  f"this secure page of our payment provider:\n\n{started.url}\n\n"
                  f"The link is valid for 24 hours.\n\n{club.name}\n"))
    return card, started.url


def get_card(session: Session, *, club_id: int, card_id: int) -> StoredCard:
    card = session.get(StoredCard, card_id)
    if card is None or card.club_id != club_id:
        raise NotFound("Card not found", code="card_not_found")
    return card


def payer_cards(session: Session, *, club_id: int, payer_id: int) -> list[StoredCard]:
    """The payer's cards, newest first (removed ones too, for history)."""
    payer = _payer(session, club_id=club_id, payer_id=payer_id)
    return list(session.scalars(select(StoredCard).where(
        StoredCard.club_id == club_id, StoredCard.payer_id == payer.id)
        .order_by(StoredCard.id.desc())))


def card_link(session: Session, *, club_id: int, card_id: int,
              settings: Settings | None = None, provider: CardProvider | None = None) -> str:
    """The link of the card's set-up page while it is open (asked of the provider)."""
    card = get_card(session, club_id=club_id, card_id=card_id)
    if card_status(card) != "pending":
        raise Conflict(f"This card is {card_status(card)} already: there is no page to open",
                       code="card_not_pending")
    provider = provider or provider_for(session, club_id=club_id, settings=settings)
    state = provider.describe_setup(card.setup_ref)
    if state.method_ref:
        _fill(card, state)
        session.flush()
        raise Conflict("The payer has saved the card already", code="card_not_pending")
    if state.status != "open" or not state.url:
        raise Conflict("The card page has expired: start a new card set-up for the payer",
                       code="card_link_expired")
    return state.url


def qr_svg(url: str) -> bytes:
    """The link as a QR code (SVG) for the payer to scan at the desk."""
    out = io.BytesIO()
    segno.make(url, error="m").save(out, kind="svg", scale=6, border=2, xmldecl=False)
    return out.getvalue()


def remove_card(session: Session, *, actor: Actor, card_id: int) -> StoredCard:
    """Stop using the card (kept for history); removing it again changes nothing."""
    card = get_card(session, club_id=actor.club_id, card_id=card_id)
    if card.removed_on is None:
        card.removed_on = clubs_service.club_today_by_id(session, actor.club_id)
        session.flush()
    return card


def _fill(card: StoredCard, state: SavedMethod) -> None:
    card.method_ref = state.method_ref
    card.customer_ref = state.customer_ref or card.customer_ref
    card.brand = (state.brand or "")[:20] or None
    card.last4 = (state.last4 or "")[:4] or None
    card.exp_month = state.exp_month
    card.exp_year = state.exp_year


def complete_card_setup(session: Session, *, club_id: int, setup_ref: str,
                        provider: CardProvider | None = None,
                        settings: Settings | None = None) -> StoredCard | None:
    """Fill in the card the payer saved on the page `setup_ref`; None for an unknown page."""
    card = session.scalars(select(StoredCard).where(
        StoredCard.club_id == club_id, StoredCard.setup_ref == setup_ref)).first()
    if card is None or card.method_ref is not None:
        return card
    provider = provider or provider_for(session, club_id=club_id, settings=settings)
    state = provider.describe_setup(setup_ref)
    if state.method_ref:
        _fill(card, state)
        session.flush()
    return card


def apply_charge(session: Session, *, collection: Collection, result: ChargeResult,
                 occurred_on: date) -> bool:
    """Apply a charge's outcome to its collection (once); True when something changed.

    A success records the payment (event key `card:<ref>`) and marks the collection paid, even
    after a failure was reported; a failure marks a pending collection failed and never undoes
    a payment."""
    if result.ref and collection.provider_ref is None:
        collection.provider_ref = result.ref
    if result.status == "succeeded":
        return _paid(session, collection=collection, result=result, occurred_on=occurred_on)
    if result.status == "failed" and collection.status in ("planned", "pending"):
        collection.status = "failed"
        collection.failed_on = occurred_on
        collection.failure_code = (result.failure_code or "failed")[:30]
        collection.failure_reason = (result.failure_reason or "")[:200] or None
        session.flush()
        return True
    session.flush()
    return False


def _paid(session: Session, *, collection: Collection, result: ChargeResult,
          occurred_on: date) -> bool:
    ref = result.ref or collection.provider_ref
    payment = invoicing.record_payment(
        session, club_id=collection.club_id, invoice_id=collection.invoice_id,
        amount=result.amount if result.amount is not None else collection.amount,
        method="card", occurred_on=occurred_on, event_key=f"card:{ref}",
        collection_id=collection.id, reference=ref)
    changed = payment is not None or collection.status != "paid"
    collection.status = "paid"
    collection.failed_on = collection.failure_code = collection.failure_reason = None
    session.flush()
    return changed


def _due_ids(session: Session, *, club_id: int, day: date) -> list[int]:
    return list(session.scalars(
        select(Collection.id)
        .where(Collection.club_id == club_id, Collection.method == "card",
               Collection.status == "planned", Collection.due_on <= day)
        .order_by(Collection.due_on, Collection.id)))


def idempotency_key(collection: Collection) -> str:
    return (f"fitclub-{collection.club_id}-collection-{collection.id}"
            f"-attempt-{collection.attempt}")


def _card_to_charge(session: Session, collection: Collection) -> StoredCard | None:
    """The collection's card while it is saved, else the payer's newest saved card."""
    card = session.get(StoredCard, collection.card_id) if collection.card_id else None
    if card is not None and card.club_id == collection.club_id and card_status(card) == "saved":
        return card
    return session.scalars(
        select(StoredCard)
        .where(StoredCard.club_id == collection.club_id,
               StoredCard.payer_id == collection.payer_id,
               StoredCard.method_ref.is_not(None), StoredCard.removed_on.is_(None))
        .order_by(StoredCard.id.desc()).limit(1)).first()


def _charge_one(session: Session, *, collection_id: int, day: date,
                provider: CardProvider) -> bool:
    """Claim one planned collection and charge it; False when it was not ours to charge."""
    claimed = session.execute(
        update(Collection)
        .where(Collection.id == collection_id, Collection.status == "planned")
        .values(status="pending")
        .execution_options(synchronize_session=False)).rowcount
    if not claimed:
        return False
    collection = session.get(Collection, collection_id, populate_existing=True)
    invoice = session.get(Invoice, collection.invoice_id)
    if invoicing.open_amount(session, invoice) <= 0:
        collection.status = "cancelled"
        session.flush()
        return False
    card = _card_to_charge(session, collection)
    if card is None:
        apply_charge(session, collection=collection, occurred_on=day,
                     result=ChargeResult(status="failed", ref=None, failure_code="no_card",
                                         failure_reason="The payer has no saved card"))
        return True
    collection.card_id = card.id
    result = provider.charge(
        customer_ref=card.customer_ref or "", method_ref=card.method_ref,
        amount=collection.amount, currency=invoice.currency,
        idempotency_key=idempotency_key(collection),
        description=f"Invoice {invoice.number}",
        metadata={"fitclub_club_id": str(collection.club_id),
                  "collection_id": str(collection.id), "invoice_id": str(invoice.id),
                  "invoice_number": invoice.number, "attempt": str(collection.attempt)})
    apply_charge(session, collection=collection, result=result, occurred_on=day)
    return True


def charge_due_cards(session_or_factory: Session | sessionmaker, *, club_id: int, day: date,
                     settings: Settings | None = None,
                     provider: CardProvider | None = None) -> int:
    """Charge the club's planned card collections due on or before `day`; how many were charged.

    Given a sessionmaker, each collection is its own transaction (the scheduler's way); given a
    session, each is a savepoint in it (a request's way). A provider that cannot be reached
    leaves its collection planned for the next run; when it fails before anything was charged,
    the error is raised. A club without a Stripe key but with card collections due: 409.
    `provider`: another than the club's Stripe (the demo club's stand-in card network)."""
    factory = session_or_factory if isinstance(session_or_factory, sessionmaker) else None
    with (transaction(factory) if factory else nullcontext(session_or_factory)) as session:
        ids = _due_ids(session, club_id=club_id, day=day)
        if ids and provider is None:
            provider = provider_for(session, club_id=club_id, settings=settings)

    def run(collection_id: int) -> bool:
        if factory is not None:
            with transaction(factory) as own:
                return _charge_one(own, collection_id=collection_id, day=day,
                                   provider=provider)
        with session_or_factory.begin_nested():
            return _charge_one(session_or_factory, collection_id=collection_id, day=day,
                               provider=provider)

    charged = 0
    for collection_id in ids:
        try:
            charged += run(collection_id)
        except ProviderUnavailable:
            log.warning("club %s: the card provider is unavailable; card collections left "
                        "for the next run", club_id)
            if not charged:
                raise
            break
    return charged
