"""The card provider adapter: what fitclub asks of a card provider, and Stripe's implementation.

`CardProvider` is the whole interface the dues domain uses:
- `create_setup` opens the provider's hosted page where the payer saves a card (Stripe: a
  Customer, once per payer, and a Checkout Session in `mode=setup`);
- `describe_setup` reads what the payer saved there (Stripe: the Session, its SetupIntent and
  the PaymentMethod) and the page's link while it is open;
- `charge` takes money off-session from a saved card (Stripe: a PaymentIntent with
  `off_session=true, confirm=true`), under an idempotency key: the same key again answers the
  first result and never charges twice — for 24 hours, as long as Stripe keeps keys;
- `find_charge` looks a charge up by the metadata fitclub sent with it, for a run that died
  between asking and recording the answer (Stripe: the customer's PaymentIntents listed since
  the collection was planned — a list is read-after-write consistent, the search API is not);
- `detach` takes a removed card off the provider's customer, so it can never be charged again
  (Stripe: `POST /v1/payment_methods/{id}/detach`).
A decline is a result (`ChargeResult.status == "failed"` with the provider's codes), not an
error; `ProviderUnavailable` / `ProviderRefused` are for a provider that cannot be reached or
refuses the club's key.

`StripeProvider` uses the `stripe` library's `StripeClient` with the club's secret key against
`Settings.stripe_api_base` (https://api.stripe.com, or a local stand-in in the tests).
"""
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

import stripe

from app.core.errors import Conflict, DomainError

ZERO_DECIMAL = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf",
                          "ugx", "vnd", "vuv", "xaf", "xof", "xpf"})
"""Currencies Stripe counts in whole units (no cents)."""


class ProviderUnavailable(DomainError):
    status_code = 502
    code = "card_provider_unavailable"


class ProviderRefused(Conflict):
    code = "card_provider_refused"


@dataclass(frozen=True)
class SetupStart:
    setup_ref: str
    url: str
    customer_ref: str


@dataclass(frozen=True)
class SavedMethod:
    """What the hosted page holds: `method_ref` is None until the payer saved a card."""

    status: str
    """open, complete or expired (Stripe's Checkout Session status)."""
    url: str | None
    customer_ref: str | None
    method_ref: str | None = None
    brand: str | None = None
    last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None


@dataclass(frozen=True)
class ChargeResult:
    status: str
    """succeeded, pending (the provider still works on it) or failed."""
    ref: str | None
    """The provider's id of the charge (Stripe: `pi_...`); may be None for a refused request."""
    amount: Decimal | None = None
    failure_code: str | None = None
    failure_reason: str | None = None
    created: datetime | None = None
    """When the provider made the charge (from a looked-up or reported charge)."""


class CardProvider(Protocol):
    name: str

    def create_setup(self, *, payer_ref: str, name: str, email: str | None,
                     customer_ref: str | None, success_url: str, cancel_url: str,
                     metadata: dict[str, str]) -> SetupStart: ...

    def describe_setup(self, setup_ref: str) -> SavedMethod: ...

    def charge(self, *, customer_ref: str, method_ref: str, amount: Decimal, currency: str,
               idempotency_key: str, description: str,
               metadata: dict[str, str]) -> ChargeResult: ...

    def find_charge(self, *, ref: str | None, customer_ref: str | None,
                    created_since: datetime, metadata: dict[str, str]) -> ChargeResult | None:
        """The charge `ref`, else the one whose metadata holds all of `metadata`; None when the
        provider has none."""
        ...

    def detach(self, method_ref: str) -> bool:
        """Take the saved method off its customer; False when it was attached to none."""
        ...


def minor_units(amount: Decimal, currency: str) -> int:
    """The amount in the currency's smallest unit, as Stripe counts it (cents, or whole yen)."""
    factor = 1 if currency.lower() in ZERO_DECIMAL else 100
    return int((Decimal(amount) * factor).to_integral_value())


def from_minor_units(value: int, currency: str) -> Decimal:
    factor = 1 if currency.lower() in ZERO_DECIMAL else 100
    return (Decimal(value) / factor).quantize(Decimal("0.01"))


def _ref(value) -> str | None:
    """An expandable field: the id whether Stripe sent the id or the object."""
    if value is None or isinstance(value, str):
        return value
    return value.get("id") if isinstance(value, dict) else None


class StripeProvider:
    """Stripe through the `stripe` library's `StripeClient` (API v1)."""

    name = "stripe"

    def __init__(self, *, secret_key: str, api_base: str, timeout: float = 20.0,
                 network_retries: int = 0):
        self.client = stripe.StripeClient(
            secret_key, base_addresses={"api": api_base.rstrip("/")},
            max_network_retries=network_retries,
            http_client=stripe.RequestsClient(timeout=timeout))

    def _call(self, what: str, call):
        """Run one API call; a network failure or a refused key becomes a domain error."""
        try:
            return call().to_dict()
        except stripe.AuthenticationError as error:
            raise ProviderRefused("Stripe refused the club's secret key: check the key in the "
                                  "billing settings", code="stripe_key_refused") from error
        except stripe.PermissionError as error:
            raise ProviderRefused(f"Stripe refused to {what}: {error.user_message or error}",
                                  code="stripe_permission_refused") from error
        except stripe.InvalidRequestError as error:
            raise ProviderRefused(f"Stripe refused to {what}: {error.user_message or error}",
                                  code="stripe_request_refused") from error
        except (stripe.APIConnectionError, stripe.RateLimitError,
                stripe.APIError, stripe.IdempotencyError) as error:
            raise ProviderUnavailable(f"Stripe could not {what} just now; try again",
                                      code="stripe_unavailable") from error

    def create_setup(self, *, payer_ref: str, name: str, email: str | None,
                     customer_ref: str | None, success_url: str, cancel_url: str,
                     metadata: dict[str, str]) -> SetupStart:
        """A Checkout Session in setup mode for the payer's customer (created when None, or
        when Stripe knows it no more: a club that moved from its test key to its live key)."""
        if customer_ref is not None:
            try:
                return self._session(customer_ref, payer_ref=payer_ref, metadata=metadata,
                                     success_url=success_url, cancel_url=cancel_url)
            except ProviderRefused as refused:
                cause = refused.__cause__
                if getattr(cause, "code", None) != "resource_missing" \
                        or getattr(cause, "param", None) != "customer":
                    raise
        params = {"name": name, "metadata": metadata}
        if email:
            params["email"] = email
        customer = self._call("create the customer", lambda: self.client.v1.customers.create(
            params, {"idempotency_key": f"fitclub-customer-{payer_ref}"}))
        return self._session(customer["id"], payer_ref=payer_ref, metadata=metadata,
                             success_url=success_url, cancel_url=cancel_url)

    def _session(self, customer_ref: str, *, payer_ref: str, metadata: dict[str, str],
                 success_url: str, cancel_url: str) -> SetupStart:
        session = self._call("open the card page", lambda: self.client.v1.checkout.sessions.create({
            "mode": "setup", "customer": customer_ref, "payment_method_types": ["card"],
            "success_url": success_url, "cancel_url": cancel_url,
            "client_reference_id": payer_ref, "metadata": metadata,
            "setup_intent_data": {"metadata": metadata}}))
        return SetupStart(setup_ref=session["id"], url=session["url"], customer_ref=customer_ref)

    def describe_setup(self, setup_ref: str) -> SavedMethod:
        sessions = self.client.v1.checkout.sessions
        session = self._call("read the card page", lambda: sessions.retrieve(setup_ref))
        customer_ref = _ref(session.get("customer"))
        intent_ref = _ref(session.get("setup_intent"))
        if session.get("status") != "complete" or intent_ref is None:
            return SavedMethod(status=session.get("status") or "open", url=session.get("url"),
                               customer_ref=customer_ref)
        intent = self._call("read the saved card",
                            lambda: self.client.v1.setup_intents.retrieve(intent_ref))
        method_ref = _ref(intent.get("payment_method"))
        if intent.get("status") != "succeeded" or method_ref is None:
            return SavedMethod(status="open", url=session.get("url"), customer_ref=customer_ref)
        method = self._call("read the saved card",
                            lambda: self.client.v1.payment_methods.retrieve(method_ref))
        card = method.get("card") or {}
        return SavedMethod(status="complete", url=None,
                           customer_ref=_ref(method.get("customer")) or customer_ref,
                           method_ref=method["id"], brand=card.get("brand"),
                           last4=card.get("last4"), exp_month=card.get("exp_month"),
                           exp_year=card.get("exp_year"))

    def charge(self, *, customer_ref: str, method_ref: str, amount: Decimal, currency: str,
               idempotency_key: str, description: str,
               metadata: dict[str, str]) -> ChargeResult:
        params = {"amount": minor_units(amount, currency), "currency": currency.lower(),
                  "customer": customer_ref, "payment_method": method_ref,
                  "off_session": True, "confirm": True, "description": description,
                  "metadata": metadata}
        try:
            intent = self._call("take the payment", lambda: self.client.v1.payment_intents.create(
                params, {"idempotency_key": idempotency_key}))
        except ProviderRefused as refused:
            card_error = refused.__cause__
            if isinstance(card_error, stripe.InvalidRequestError):
                # a card detached or removed at Stripe: a failed charge, not the club's fault
                return ChargeResult(status="failed", ref=None,
                                    failure_code=(card_error.code or "invalid_request")[:30],
                                    failure_reason=str(card_error.user_message or
                                                       refused.message)[:200])
            raise
        except stripe.CardError as error:
            return card_failure(error)
        return charge_result(intent)

    def find_charge(self, *, ref: str | None, customer_ref: str | None,
                    created_since: datetime, metadata: dict[str, str]) -> ChargeResult | None:
        """`GET /v1/payment_intents/{ref}`, else `GET /v1/payment_intents?customer=…&created[gte]=…`
        page by page, matched on the metadata; a success wins over a failed try."""
        intents = self.client.v1.payment_intents
        if ref:
            return charge_result(self._call("read the payment", lambda: intents.retrieve(ref)))
        params: dict = {"limit": 100, "created": {"gte": int(created_since.timestamp())}}
        if customer_ref:
            params["customer"] = customer_ref
        found = None
        while True:
            page = self._call("look up the payment", lambda: intents.list(dict(params)))
            data = page.get("data") or []
            for intent in data:
                have = intent.get("metadata") or {}
                if all(have.get(k) == v for k, v in metadata.items()):
                    result = charge_result(intent)
                    if result.status == "succeeded":
                        return result
                    found = found or result
            if not page.get("has_more") or not data:
                return found
            params["starting_after"] = data[-1]["id"]

    def detach(self, method_ref: str) -> bool:
        """`POST /v1/payment_methods/{id}/detach` when the method is still on a customer (read
        first: detaching a detached method is an error at Stripe, so a repeat asks nothing)."""
        methods = self.client.v1.payment_methods
        try:
            method = self._call("read the card", lambda: methods.retrieve(method_ref))
        except ProviderRefused as refused:
            if getattr(refused.__cause__, "code", None) == "resource_missing":
                return False
            raise
        if method.get("customer") is None:
            return False
        self._call("detach the card", lambda: methods.detach(method_ref))
        return True


def card_failure(error: "stripe.CardError") -> ChargeResult:
    """A 402 from Stripe (declined, authentication required ...) as a failed charge."""
    body = (error.json_body or {}).get("error") or {}
    intent = body.get("payment_intent") or {}
    code = body.get("decline_code") or body.get("code") or error.code or "card_declined"
    return ChargeResult(status="failed", ref=_ref(intent) if intent else None,
                        failure_code=str(code)[:30],
                        failure_reason=str(body.get("message") or error.user_message
                                           or "The card was declined")[:200])


def charge_result(intent: dict) -> ChargeResult:
    """A PaymentIntent (from a response or an event) as the result of a charge."""
    status = intent.get("status")
    currency = intent.get("currency") or "eur"
    received = intent.get("amount_received")
    amount = from_minor_units(received if received else intent.get("amount") or 0, currency)
    stamp = intent.get("created")
    created = datetime.fromtimestamp(stamp, UTC) if isinstance(stamp, int) and not isinstance(
        stamp, bool) and 0 < stamp < 2**31 else None
    if status == "succeeded":
        return ChargeResult(status="succeeded", ref=intent.get("id"), amount=amount,
                            created=created)
    if status in ("processing", "requires_capture"):
        return ChargeResult(status="pending", ref=intent.get("id"), amount=amount,
                            created=created)
    error = intent.get("last_payment_error") or {}
    code = error.get("decline_code") or error.get("code") or status or "failed"
    reason = error.get("message") or ("The bank asks the payer to confirm the payment"
                                      if status == "requires_action" else "The charge failed")
    return ChargeResult(status="failed", ref=intent.get("id"), amount=amount,
                        failure_code=str(code)[:30], failure_reason=str(reason)[:200],
                        created=created)
