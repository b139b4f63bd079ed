"""A local stand-in of Stripe's API (v1), a real threaded HTTP server on 127.0.0.1.

It speaks the subset fitclub uses, as Stripe documents it: form-encoded bodies with bracket keys
(`metadata[collection_id]=7`, `payment_method_types[0]=card`), `Authorization: Bearer <secret
key>` (each key its own account: another key's objects are "No such ..."), `Idempotency-Key`
honoured for 24 hours by the app's clock, as Stripe keeps keys (the same key answers the first
response again, with `Idempotent-Replayed: true`; other parameters under the same key are
refused; after 24 hours the key is new again), JSON objects with Stripe's id prefixes,
`object` and `livemode`, and errors in Stripe's envelope (`{"error": {"type", "code",
"decline_code", "message", ...}}`; a declined card is HTTP 402 `card_error`).

Endpoints: POST /v1/customers, POST /v1/checkout/sessions, GET /v1/checkout/sessions/{id},
GET /v1/setup_intents/{id}, GET /v1/payment_methods/{id}, POST /v1/payment_methods/{id}/detach,
POST /v1/payment_intents, GET /v1/payment_intents/{id}, GET /v1/payment_intents (a list, newest
first: `customer`, `created[gte|gt|lte|lt]`, `limit` 1-100 (10), `starting_after`; `{"object":
"list", "data", "has_more", "url"}`).

The payer's side of the hosted page is `complete_setup(session_id, card)`: the card is one of
Stripe's test payment methods below. Whatever Stripe would announce is kept as an event in
`events` (with `created` from the app's clock); `sign` makes the `Stripe-Signature` header by
Stripe's documented scheme (`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with the
endpoint secret>`) and `deliver` posts an event to fitclub's webhook.
"""
import hashlib
import hmac
import itertools
import json
import secrets
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qsl, urlsplit

from app.core import clock

API_VERSION = "2025-09-30.clover"
KEY_TTL = 24 * 3600
"""How long Stripe keeps an idempotency key (seconds)."""

TEST_CARDS = {
    # name: (brand, last4, outcome, decline code, message)
    "pm_card_visa": ("visa", "4242", None, None, None),
    "pm_card_mastercard": ("mastercard", "4444", None, None, None),
    "pm_card_chargeDeclined": ("visa", "0002", "card_declined", "generic_decline",
                               "Your card was declined."),
    "pm_card_chargeDeclinedInsufficientFunds": (
        "visa", "9995", "card_declined", "insufficient_funds",
        "Your card has insufficient funds."),
    "pm_card_chargeDeclinedExpiredCard": ("visa", "0069", "expired_card", "expired_card",
                                          "Your card has expired."),
    "pm_card_authenticationRequired": (
        "visa", "3155", "authentication_required", "authentication_required",
        "Your card was declined. This transaction requires authentication."),
}
"""Stripe's test payment methods (https://docs.stripe.com/testing) the stand-in knows."""


class StripeError(Exception):
    def __init__(self, status: int, error: dict):
        super().__init__(error.get("message"))
        self.status = status
        self.error = error


def _missing(kind: str, ref: str, param: str = "id") -> StripeError:
    return StripeError(404 if param == "id" else 400, {
        "type": "invalid_request_error", "code": "resource_missing", "param": param,
        "message": f"No such {kind}: '{ref}'"})


def _invalid(message: str, param: str | None = None) -> StripeError:
    return StripeError(400, {"type": "invalid_request_error", "code": "parameter_invalid",
                             "param": param, "message": message})


def unflatten(pairs: list[tuple[str, str]]) -> dict:
    """`a[b][0]=x` pairs into nested dicts and lists, as Stripe reads form bodies."""
    root: dict = {}
    for key, value in pairs:
        head, _, rest = key.partition("[")
        parts = [head] + ([p.rstrip("]") for p in ("[" + rest).split("[")[1:]] if rest else [])
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value

    def lists(node):
        if isinstance(node, dict):
            if node and all(k.isdigit() for k in node):
                return [lists(node[k]) for k in sorted(node, key=int)]
            return {k: lists(v) for k, v in node.items()}
        return node

    return lists(root)


def _truthy(value) -> bool:
    return str(value).lower() == "true"


class StripeStandin:
    def __init__(self, *keys: str):
        self.keys = set(keys)
        self.accounts: dict[str, dict[str, dict]] = {key: {} for key in keys}
        self.behaviour: dict[str, str] = {}
        self.replies: dict[tuple[str, str], tuple[dict, int, dict, int]] = {}
        self.requests: list[dict] = []
        self.events: list[dict] = []
        self.created: Counter = Counter()
        self.down = False
        self.lock = threading.Lock()
        self._ids = itertools.count(1)
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                standin._serve(self, "GET")

            def do_POST(self):
                standin._serve(self, "POST")

            def log_message(self, *_args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # the server side -------------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{'test_' if prefix == 'cs' else ''}{next(self._ids):04d}" \
               f"{secrets.token_hex(6)}"

    def _now(self) -> int:
        return int(clock.now().timestamp())

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length).decode() if length else ""
        params = unflatten(parse_qsl(parts.query if method == "GET" else body,
                                     keep_blank_values=True))
        auth = handler.headers.get("Authorization") or ""
        key = auth.removeprefix("Bearer ").strip()
        idem = handler.headers.get("Idempotency-Key")
        with self.lock:
            self.requests.append({"method": method, "path": parts.path, "params": params,
                                  "key": key, "idempotency_key": idem,
                                  "stripe_version": handler.headers.get("Stripe-Version")})
            status, reply, replayed = self._answer(method, parts.path, params, key, idem)
        payload = json.dumps(reply).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.send_header("Request-Id", f"req_{secrets.token_hex(7)}")
        if replayed:
            handler.send_header("Idempotent-Replayed", "true")
        handler.end_headers()
        handler.wfile.write(payload)

    def _answer(self, method: str, path: str, params: dict, key: str,
                idem: str | None) -> tuple[int, dict, bool]:
        if self.down:
            return 500, {"error": {"type": "api_error",
                                   "message": "An unknown error occurred"}}, False
        if key not in self.keys:
            return 401, {"error": {"type": "invalid_request_error",
                                   "message": f"Invalid API Key provided: {key[:8]}***"}}, False
        if method == "POST" and idem:
            known = self.replies.get((key, idem))
            if known is not None and known[3] <= self._now() - KEY_TTL:
                known = None  # Stripe forgets a key after 24 hours
            if known is not None:
                first_params, status, reply, _at = known
                if first_params != params:
                    return 400, {"error": {
                        "type": "idempotency_error",
                        "message": "Keys for idempotent requests can only be used with the "
                                   "same parameters they were first used with."}}, False
                return status, reply, True
        try:
            status, reply = 200, self._route(method, path, params, self.accounts[key], key, idem)
        except StripeError as error:
            status, reply = error.status, {"error": error.error}
        if method == "POST" and idem and status < 500:
            self.replies[(key, idem)] = (params, status, reply, self._now())
        return status, reply, False

    def _route(self, method: str, path: str, params: dict, objects: dict, key: str,
               idem: str | None) -> dict:
        segments = path.strip("/").split("/")
        if method == "POST" and path == "/v1/customers":
            return self._customer(params, objects)
        if method == "POST" and path == "/v1/checkout/sessions":
            return self._checkout_session(params, objects)
        if method == "POST" and path == "/v1/payment_intents":
            return self._payment_intent(params, objects, key, idem)
        if method == "GET" and path == "/v1/payment_intents":
            return self._list(objects, "payment_intent", params, path)
        if method == "POST" and len(segments) == 4 and segments[1] == "payment_methods" \
                and segments[3] == "detach":
            return self._detach(objects, segments[2], key)
        if method == "GET" and len(segments) == 4 and segments[1:3] == ["checkout", "sessions"]:
            return self._get(objects, "checkout.session", segments[3])
        if method == "GET" and len(segments) == 3 and segments[1] in (
                "setup_intents", "payment_methods", "customers", "payment_intents"):
            kind = {"setup_intents": "setup_intent", "payment_methods": "payment_method",
                    "customers": "customer", "payment_intents": "payment_intent"}[segments[1]]
            return self._get(objects, kind, segments[2])
        raise StripeError(404, {"type": "invalid_request_error",
                                "message": f"Unrecognized request URL ({method}: {path})."})

    def _get(self, objects: dict, kind: str, ref: str, param: str = "id") -> dict:
        found = objects.get(ref)
        if found is None or found["object"] != kind:
            raise _missing(kind, ref, param)
        return found

    def _list(self, objects: dict, kind: str, params: dict, path: str) -> dict:
        limit = params.get("limit") or "10"
        if not limit.isdigit() or not 1 <= int(limit) <= 100:
            raise _invalid("Invalid integer: limit must be between 1 and 100.", "limit")
        created = params.get("created") or {}
        if not isinstance(created, dict):
            created = {"eq": created}
        tests = {"gte": int.__ge__, "gt": int.__gt__, "lte": int.__le__, "lt": int.__lt__,
                 "eq": int.__eq__}
        found = [o for o in objects.values() if o["object"] == kind
                 and (not params.get("customer") or o.get("customer") == params["customer"])
                 and all(tests[op](o["created"], int(v)) for op, v in created.items())]
        found.sort(key=lambda o: (o["created"], o["id"]), reverse=True)  # newest first
        after = params.get("starting_after")
        if after:
            ids = [o["id"] for o in found]
            if after not in ids:
                raise _missing(kind, after, "starting_after")
            found = found[ids.index(after) + 1:]
        page = found[:int(limit)]
        return {"object": "list", "data": page, "has_more": len(found) > len(page), "url": path}

    def _detach(self, objects: dict, ref: str, key: str) -> dict:
        method = self._get(objects, "payment_method", ref)
        if method["customer"] is None:
            raise StripeError(400, {"type": "invalid_request_error", "message":
                                    "The payment method you provided is not attached to a "
                                    "customer so detachment is impossible."})
        method["customer"] = None
        self._event("payment_method.detached", method, key)
        return method

    def _store(self, objects: dict, obj: dict) -> dict:
        objects[obj["id"]] = obj
        self.created[obj["object"]] += 1
        return obj

    def _customer(self, params: dict, objects: dict) -> dict:
        return self._store(objects, {
            "id": self._id("cus"), "object": "customer", "created": self._now(),
            "email": params.get("email"), "name": params.get("name"), "livemode": False,
            "metadata": params.get("metadata") or {},
            "invoice_settings": {"default_payment_method": None}})

    def _checkout_session(self, params: dict, objects: dict) -> dict:
        mode = params.get("mode")
        if mode not in ("payment", "setup", "subscription"):
            raise _invalid("Missing required param: mode.", "mode")
        if not params.get("success_url"):
            raise _invalid("Missing required param: success_url.", "success_url")
        if mode != "setup":
            raise _invalid("The stand-in opens setup sessions only.", "mode")
        if not params.get("currency") and not params.get("payment_method_types"):
            raise _invalid("You must pass `currency` in setup mode when using dynamic "
                           "payment methods.", "currency")
        customer = params.get("customer")
        if customer is not None:
            self._get(objects, "customer", customer, "customer")
        intent = self._store(objects, {
            "id": self._id("seti"), "object": "setup_intent", "created": self._now(),
            "customer": customer, "payment_method": None, "status": "requires_payment_method",
            "usage": "off_session", "livemode": False,
            "metadata": (params.get("setup_intent_data") or {}).get("metadata") or {}})
        session_id = self._id("cs")
        return self._store(objects, {
            "id": session_id, "object": "checkout.session", "created": self._now(),
            "mode": "setup", "status": "open", "customer": customer,
            "client_reference_id": params.get("client_reference_id"),
            "success_url": params["success_url"], "cancel_url": params.get("cancel_url"),
            "payment_method_types": params.get("payment_method_types") or ["card"],
            "setup_intent": intent["id"], "payment_intent": None, "payment_status":
            "no_payment_required", "url": f"https://checkout.stripe.com/c/pay/{session_id}",
            "expires_at": self._now() + 24 * 3600, "livemode": False,
            "metadata": params.get("metadata") or {}})

    def _payment_intent(self, params: dict, objects: dict, key: str, idem: str | None) -> dict:
        amount = params.get("amount")
        if not (amount or "").isdigit() or int(amount) < 1:
            raise _invalid("Missing required param: amount.", "amount")
        if not params.get("currency"):
            raise _invalid("Missing required param: currency.", "currency")
        customer = params.get("customer")
        if customer is not None:
            self._get(objects, "customer", customer, "customer")
        method_ref = params.get("payment_method") or ""
        if method_ref in TEST_CARDS:
            method = self._payment_method(objects, method_ref, customer)
        else:
            method = objects.get(method_ref)
            if method is None or method["object"] != "payment_method":
                raise _missing("PaymentMethod", method_ref, "payment_method")
            if customer and method["customer"] != customer:
                raise _invalid(f"The provided PaymentMethod {method_ref} was previously used "
                               "without being attached to a Customer.", "payment_method")
        intent = self._store(objects, {
            "id": self._id("pi"), "object": "payment_intent", "created": self._now(),
            "amount": int(amount), "amount_received": 0, "currency": params["currency"],
            "customer": customer, "payment_method": method["id"], "status":
            "requires_confirmation", "description": params.get("description"),
            "metadata": params.get("metadata") or {}, "latest_charge": None,
            "last_payment_error": None, "livemode": False,
            "off_session": _truthy(params.get("off_session"))})
        if not _truthy(params.get("confirm")):
            return intent
        _brand, _last4, code, decline, message = TEST_CARDS[self.behaviour[method["id"]]]
        intent["latest_charge"] = f"ch_{secrets.token_hex(8)}"
        if code is None:
            intent.update(status="succeeded", amount_received=int(amount))
            self._event("payment_intent.succeeded", intent, key, idem)
            return intent
        error = {"type": "card_error", "code": code, "decline_code": decline,
                 "message": message, "charge": intent["latest_charge"],
                 "doc_url": f"https://docs.stripe.com/error-codes/{code.replace('_', '-')}",
                 "payment_method": method}
        intent.update(status="requires_payment_method", last_payment_error=error)
        self._event("payment_intent.payment_failed", intent, key, idem)
        raise StripeError(402, {**error, "payment_intent": intent})

    def _payment_method(self, objects: dict, test_card: str, customer: str | None) -> dict:
        brand, last4, *_ = TEST_CARDS[test_card]
        method = self._store(objects, {
            "id": self._id("pm"), "object": "payment_method", "type": "card",
            "created": self._now(), "customer": customer, "livemode": False,
            "card": {"brand": brand, "last4": last4, "exp_month": 12, "exp_year": 2034,
                     "country": "DE", "funding": "credit"},
            "billing_details": {"email": None, "name": None}, "metadata": {}})
        self.behaviour[method["id"]] = test_card
        return method

    def _event(self, kind: str, obj: dict, key: str, idem: str | None = None) -> dict:
        event = {"id": self._id("evt"), "object": "event", "api_version": API_VERSION,
                 "created": self._now(), "livemode": False, "pending_webhooks": 1,
                 "request": {"id": f"req_{secrets.token_hex(7)}", "idempotency_key": idem},
                 "type": kind, "data": {"object": json.loads(json.dumps(obj))}, "_key": key}
        self.events.append(event)
        return event

    # the payer's and the test's side ---------------------------------------------------------

    def complete_setup(self, session_id: str, card: str = "pm_card_visa") -> dict:
        """The payer enters `card` on the hosted page and confirms: the session completes."""
        with self.lock:
            for key, objects in self.accounts.items():
                session = objects.get(session_id)
                if session is not None:
                    break
            else:
                raise KeyError(session_id)
            assert session["status"] == "open", session["status"]
            method = self._payment_method(objects, card, session["customer"])
            intent = objects[session["setup_intent"]]
            intent.update(status="succeeded", payment_method=method["id"])
            session.update(status="complete", url=None)
            self._event("setup_intent.succeeded", intent, key)
            self._event("checkout.session.completed", session, key)
            return session

    def authenticate(self, intent_id: str) -> dict:
        """The payer confirms a charge the bank wanted authenticated: it succeeds; the event."""
        with self.lock:
            for key, objects in self.accounts.items():
                intent = objects.get(intent_id)
                if intent is not None:
                    break
            else:
                raise KeyError(intent_id)
            intent.update(status="succeeded", amount_received=intent["amount"],
                          last_payment_error=None)
            return self._event("payment_intent.succeeded", intent, key)

    def expire(self, session_id: str) -> None:
        with self.lock:
            for objects in self.accounts.values():
                if session_id in objects:
                    objects[session_id].update(status="expired", url=None)

    def last_event(self, kind: str) -> dict:
        return [e for e in self.events if e["type"] == kind][-1]

    def count(self, kind: str) -> int:
        return self.created[kind]

    def posts(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == "POST" and r["path"] == path]

    def gets(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == "GET" and r["path"] == path]

    def charges(self, collection_id: int) -> list[dict]:
        """Every PaymentIntent made for the collection (by the metadata fitclub sent)."""
        with self.lock:
            return [o for objects in self.accounts.values() for o in objects.values()
                    if o["object"] == "payment_intent"
                    and o["metadata"].get("collection_id") == str(collection_id)]


def event_body(event: dict) -> str:
    return json.dumps({k: v for k, v in event.items() if not k.startswith("_")}, indent=2)


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header Stripe sends: `t=<ts>,v1=<HMAC-SHA256("<ts>.<payload>")>`."""
    timestamp = int(clock.now().timestamp()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(),
                      hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def deliver(client, club_id: int, event: dict, secret: str, *, signature: str | None = None,
            timestamp: int | None = None):
    """POST the event to fitclub's webhook for the club, signed as Stripe signs it."""
    payload = event_body(event)
    return client.post(f"/api/v1/dues/stripe/webhook/{club_id}", content=payload.encode(),
                        headers={"Content-Type": "application/json; charset=utf-8",
                                 "Stripe-Signature": signature or sign(payload, secret,
                                                                      timestamp)})
