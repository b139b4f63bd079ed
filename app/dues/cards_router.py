"""Cards on file: start a card set-up, show its QR code, remove a card, charge due cards; and
Stripe's webhook (`webhook_router`, no staff sign-in: the signature is the proof, listed before
the staff routers like the devices' routes)."""
from html import escape
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import HTMLResponse, Response

from app.clubs import service as clubs_service
from app.clubs.deps import DeskActor, ManagerActor
from app.core.deps import SessionDep, SettingsDep
from app.core.idempotency import Idempotency, run_once
from app.core.schemas import IdPath
from app.dues import card_webhooks, cards
from app.dues.card_schemas import (
    CardRead,
    CardsCharged,
    CardSetupCreate,
    CardSetupRead,
    WebhookAnswer,
)
from app.dues.models import StoredCard

STRIPE_DOWN = {502: {"description": "Stripe could not be reached; try again",
                     "content": {"application/json": {
                         "schema": {"$ref": "#/components/schemas/Error"}}}}}
router = APIRouter(prefix="/api/v1", tags=["cards on file"])
webhook_router = APIRouter(prefix="/api/v1", tags=["cards on file"])


def _read(card: StoredCard) -> CardRead:
    return CardRead.model_validate({**{k: getattr(card, k) for k in CardRead.model_fields
                                       if k != "status"}, "status": cards.card_status(card)})


@router.post("/payers/{payer_id}/cards", response_model=CardSetupRead, status_code=201,
             responses=STRIPE_DOWN)
def start_card_setup(session: SessionDep, actor: DeskActor, settings: SettingsDep,
                     payer_id: IdPath("payer id"), body: CardSetupCreate, idem: Idempotency):
    """Open Stripe's page where the payer saves a card: emailed as a link, or shown as a QR code
    (`qr_url`). The card is `pending` until the payer completes the page (Stripe's webhook)."""

    def action() -> CardSetupRead:
        card, url = cards.start_card_setup(session, actor=actor, payer_id=payer_id,
                                           send_email=body.send_email, settings=settings)
        return CardSetupRead(**_read(card).model_dump(), url=url, emailed=body.send_email,
                             qr_url=f"/api/v1/cards/{card.id}/qr.svg")

    return run_once(session, club_id=actor.club_id, request=idem, body=body, status_code=201,
                    action=action)


@router.get("/payers/{payer_id}/cards", response_model=list[CardRead])
def payer_cards(session: SessionDep, actor: DeskActor, payer_id: IdPath("payer id")):
    """The payer's cards, newest first (removed ones too)."""
    return [_read(card) for card in cards.payer_cards(session, club_id=actor.club_id,
                                                       payer_id=payer_id)]


@router.get("/cards/{card_id}", response_model=CardRead)
def get_card(session: SessionDep, actor: DeskActor, card_id: IdPath("card id")):
    return _read(cards.get_card(session, club_id=actor.club_id, card_id=card_id))


@router.get("/cards/{card_id}/qr.svg", response_class=Response,
            responses={200: {"content": {"image/svg+xml": {}}}} | STRIPE_DOWN)
def card_qr(session: SessionDep, actor: DeskActor, settings: SettingsDep,
            card_id: IdPath("card id")):
    """The open set-up page's link as a QR code, for the payer to scan at the desk."""
    url = cards.card_link(session, club_id=actor.club_id, card_id=card_id, settings=settings)
    return Response(cards.qr_svg(url), media_type="image/svg+xml",
                    headers={"Cache-Control": "no-store"})


@router.delete("/cards/{card_id}", response_model=CardRead)
def remove_card(session: SessionDep, actor: DeskActor, settings: SettingsDep,
                card_id: IdPath("card id")):
    """Stop charging the card (it stays on record with `removed_on`) and detach it at Stripe
    (Stripe unreachable: removed here all the same; removing it again retries the detach)."""
    return _read(cards.remove_card(session, actor=actor, card_id=card_id, settings=settings))


@router.post("/dues/cards/charge", response_model=CardsCharged, responses=STRIPE_DOWN)
def charge_cards(request: Request, session: SessionDep, actor: ManagerActor,
                 settings: SettingsDep):
    """Charge the card collections due today now (the daily run does it too); a repeat charges
    nothing twice."""
    day = clubs_service.club_today_by_id(session, actor.club_id)
    # each charge commits its claim before Stripe is asked, in transactions of its own: end
    # this request's first (SQLite has one writer)
    session.commit()
    charged = cards.charge_due_cards(request.app.state.sessionmaker, club_id=actor.club_id,
                                     day=day, settings=settings)
    return CardsCharged(charged=charged, day=day)


async def _raw_body(request: Request) -> bytes:
    return await request.body()


@webhook_router.post("/dues/stripe/webhook/{club_id}", response_model=WebhookAnswer,
                     responses=STRIPE_DOWN)
def stripe_webhook(session: SessionDep, settings: SettingsDep, club_id: IdPath("club id"),
                   payload: Annotated[bytes, Depends(_raw_body)],
                   stripe_signature: Annotated[str | None, Header()] = None):
    """Stripe's events for the club (set this URL as the club's webhook endpoint in Stripe).
    Verified by the `Stripe-Signature` header with the club's endpoint secret; a replay answers
    200 and changes nothing."""
    outcome = card_webhooks.handle_stripe_webhook(
        session, club_id=club_id, payload=payload, signature=stripe_signature, settings=settings)
    return WebhookAnswer(outcome=outcome)


@webhook_router.get("/dues/stripe/return/{club_id}", response_class=HTMLResponse)
def card_page_return(club_id: IdPath("club id"),
                     result: Literal["saved", "cancelled"] = "saved"):
    """Where Stripe's card page sends the payer back to."""
    text = ("Thank you: your card is saved for your membership dues. You can close this page."
            if result == "saved" else
            "No card was saved. Ask the front desk for a new link if you want to try again.")
    return HTMLResponse(f"<!doctype html><html lang=en><meta charset=utf-8>"
                        f"<title>fitclub</title><p>{escape(text)}</p></html>")
