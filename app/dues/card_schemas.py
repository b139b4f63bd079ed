"""Request and response bodies of the cards-on-file API."""
from datetime import date, datetime

from pydantic import Field

from app.core.schemas import In, Out


class CardSetupCreate(In):
    send_email: bool = Field(False, description="Email the link to the payer (else show the "
                                                "QR code at the desk)")


class CardRead(Out):
    id: int
    payer_id: int
    provider: str
    status: str = Field(description="pending (the payer has not saved the card yet), saved or "
                                    "removed")
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    removed_on: date | None
    created_at: datetime


class CardSetupRead(CardRead):
    url: str = Field(description="The provider's page where the payer saves the card")
    qr_url: str = Field(description="The same link as a QR code (SVG), for the desk")
    emailed: bool


class CardsCharged(Out):
    charged: int
    day: date


class WebhookAnswer(Out):
    received: bool = True
    outcome: str
