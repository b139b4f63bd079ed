"""The page kit: what every page module of `app.web` shares.

The Jinja2 templates with their filters and labels, `render` (a template inside the page: the
menu for the actor's role, the flash message, the CSRF token), `done` (flash a message and
redirect), one-time form keys (`form_key`, `once`), form helpers (`clean`, `ticked`, `build`),
the annotated types of page parameters, and the page actors (`DeskPage`, `StaffPage`,
`ManagerPage`, `PageActor`: the signed-in staff member, checked against the roles).

It sits below the page modules (`account`, `desk`, `tasks`, `leads`, `owner`, `data`,
`manage`, `money`): they import it, it imports none of them. Sessions, CSRF and the error handling of
the route class are `app.web.auth`'s.
"""
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from app.clubs import service as clubs_service
from app.core import clock, idempotency
from app.core.actors import DESK, MANAGERS, STAFF, Actor, Role
from app.core.errors import Invalid
from app.core.schemas import IdPath
from app.web import charts
from app.web.auth import (
    PageRoute,
    clear_flash,
    csrf_for,
    page_actor,
    read_flash,
    redirect,
    require_page,
    set_error_page,
    set_flash,
)

HERE = Path(__file__).parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
M = TypeVar("M", bound=BaseModel)


def page_router() -> APIRouter:
    """A page module's router: HTML pages (not in the OpenAPI document), through `PageRoute`."""
    return APIRouter(include_in_schema=False, route_class=PageRoute)


# --- page actors and parameters ----------------------------------------------------------------

PageActor = Annotated[Actor, Depends(page_actor)]
DeskPage = Annotated[Actor, Depends(require_page(*DESK))]
StaffPage = Annotated[Actor, Depends(require_page(*STAFF))]
ManagerPage = Annotated[Actor, Depends(require_page(*MANAGERS))]

MemberId = IdPath("member id")
Key = Annotated[str | None, Form(max_length=64, pattern=r"^[A-Za-z0-9_-]*$")]
Back = Annotated[str | None, Form(max_length=2000)]
Text = Annotated[str | None, Form(max_length=1000)]
Short = Annotated[str | None, Form(max_length=200)]
Name = Annotated[str | None, Form(max_length=100)]
Note = Annotated[str | None, Form(max_length=500)]
Tick = Annotated[str | None, Form(max_length=5)]
DayText = Annotated[str | None, Form(max_length=10)]

PAY_LATER = "later"
PAY_METHODS = [("card", "Card"), ("cash", "Cash"), ("transfer", "Bank transfer"),
               (PAY_LATER, "Pay later (leaves a debt)")]
PayMethod = Annotated[str, Form(pattern=r"^(card|cash|transfer|later)$")]


# --- labels ----------------------------------------------------------------------------------

CURRENCY_SIGNS = {"EUR": "€", "USD": "$", "GBP": "£", "CHF": "CHF ", "PLN": "zł "}

REASON_TITLES = {
    "ok": "Checked in", "override": "Let in by staff", "unknown_card": "Unknown card",
    "code_expired": "App code expired",
    "card_blocked": "Card blocked", "no_membership": "No membership",
    "membership_not_started": "Membership not started", "membership_expired": "Membership expired",
    "membership_frozen": "Membership frozen", "membership_cancelled": "Membership cancelled",
    "outside_access_hours": "Outside the plan's hours", "visit_limit_reached": "No visits left",
    "anti_passback": "Already checked in", "debt": "Unpaid balance",
    "payment_overdue": "Payment overdue",
}

STAGE_LABELS = {"prospect": "prospect", "onboarding": "onboarding", "establishing": "establishing",
                "active": "active", "at_risk": "at risk", "renewal_due": "renewal due",
                "lapsed": "lapsed", "lost": "lost", "frozen": "frozen"}

OUTCOMES = {
    "call": ["Reached — coming back", "Reached — not interested", "No answer", "Left a message"],
    "renewal_offer": ["Reached — will renew", "Reached — thinking about it",
                      "Reached — will not renew", "No answer", "Left a message"],
    "follow_up": ["Reached", "No answer", "Left a message"],
    "trainer": ["Session booked", "Reached — not now", "No answer"],
    "congratulate": ["Congratulated"],
    "reorder": ["Ordered", "Not needed"],
}
DEFAULT_OUTCOMES = ["Done"]

STAGE_TITLES = {"new": "New", "contacted": "Contacted", "trial_booked": "Trial booked",
                "trial_done": "Trial done", "won": "Won", "lost": "Lost"}
SOURCE_TITLES = {"walk_in": "Walk-in", "website": "Website", "referral": "Referral",
                 "campaign": "Campaign", "phone": "Phone", "social": "Social media",
                 "other": "Other"}
LOST_TITLES = {"price": "Price", "location": "Location", "schedule": "Opening hours / schedule",
               "chose_competitor": "Chose a competitor", "not_interested": "Not interested",
               "no_response": "No response", "other": "Other"}
CALL_OUTCOMES = {"reached": "Reached", "no_answer": "No answer", "voicemail": "Left a voicemail",
                 "wrong_number": "Wrong number", "call_back_later": "Call back later"}
INTERACTION_TITLES = {"call": "Call", "desk_visit": "Conversation at the desk",
                      "meeting": "Meeting", "note": "Note", "email": "Email sent",
                      "sms": "SMS sent"}
CHANNEL_TITLES = {"email": "email", "sms": "SMS", "phone": "a phone call", "none": "no messages"}
ROLE_TITLES = {"front_desk": "front desk", "manager": "managers", "trainer": "trainers"}

ROLE_LABELS = {Role.owner: "Owner", Role.manager: "Manager", Role.front_desk: "Front desk",
               Role.trainer: "Trainer"}


# --- formatting (Jinja filters) --------------------------------------------------------------------

def fmt_money(value, currency: str | None = "EUR") -> str:
    if value is None:
        return "–"
    amount = Decimal(value).quantize(Decimal("0.01"))
    sign = "−" if amount < 0 else ""
    prefix = CURRENCY_SIGNS.get(currency or "", f"{currency} " if currency else "")
    return f"{sign}{prefix}{abs(amount):,.2f}"


def fmt_day(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, datetime):
        value = value.date()
    return f"{value.day} {value:%b %Y}"


def fmt_time(value: datetime | None, zone=None) -> str:
    if value is None:
        return "–"
    return (value.astimezone(zone) if zone else value).strftime("%H:%M")


def fmt_when(value: datetime | None, zone=None) -> str:
    if value is None:
        return "–"
    local = value.astimezone(zone) if zone else value
    return f"{local.day} {local:%b %Y %H:%M}"


templates.env.filters.update(money=fmt_money, day=fmt_day, hm=fmt_time, when=fmt_when,
                             pct=charts.pct, pts=charts.points)
templates.env.globals.update(reason_titles=REASON_TITLES, stage_labels=STAGE_LABELS)
# labels the CRM templates (and the member card) use
templates.env.globals.update(stage_titles=STAGE_TITLES, source_titles=SOURCE_TITLES,
                             lost_titles=LOST_TITLES, call_outcomes=CALL_OUTCOMES,
                             interaction_titles=INTERACTION_TITLES, channel_titles=CHANNEL_TITLES,
                             role_titles=ROLE_TITLES)


# --- rendering -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class NavItem:
    href: str
    label: str
    roles: tuple[Role, ...]


NAV = (NavItem("/desk", "Front desk", DESK), NavItem("/tasks", "Tasks", STAFF),
       NavItem("/owner", "Dashboard", MANAGERS), NavItem("/owner/money", "Money", MANAGERS),
       NavItem("/owner/playbook", "Playbook", MANAGERS),
       NavItem("/manage/stock", "Stock", MANAGERS),
       NavItem("/manage/trainers", "Trainers", MANAGERS),
       NavItem("/crm/leads", "Leads", DESK), NavItem("/manage/import", "Member data", MANAGERS),
       NavItem("/manage/billing", "Billing", MANAGERS), NavItem("/manage/staff", "Staff", MANAGERS),
       NavItem("/manage/devices", "Turnstiles", MANAGERS))


def nav_for(actor: Actor | None, path: str) -> list[dict]:
    if actor is None:
        return []
    items = [n for n in NAV if actor.role in n.roles]
    current = max((n.href for n in items if path == n.href or path.startswith(n.href + "/")),
                  key=len, default=None)
    return [{"href": n.href, "label": n.label, "current": n.href == current} for n in items]


def render(request: Request, name: str, context: dict | None = None, *, status: int = 200,
           csrf: str | None = None) -> Response:
    actor = getattr(request.state, "actor", None)
    club = getattr(request.state, "club", None)
    zone = clubs_service.club_zone(club) if club is not None else None
    flash = read_flash(request)
    ctx: dict[str, Any] = {
        "actor": actor, "club": club, "zone": zone,
        "currency": club.currency if club is not None else "EUR",
        "today": clubs_service.club_today(club) if club is not None else clock.today(UTC),
        "csrf": csrf if csrf is not None else csrf_for(request),
        "nav": nav_for(actor, request.url.path), "flash": flash,
        "path": request.url.path,
        "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        "is_manager": actor is not None and actor.role in MANAGERS,
        "is_desk": actor is not None and actor.role in DESK,
        "pay_methods": PAY_METHODS, "now": clock.now(),
    }
    ctx.update(context or {})
    response = templates.TemplateResponse(request, name, ctx, status_code=status)
    if flash:
        clear_flash(response)
    return response


def _error_page(request: Request, status: int, title: str, message: str) -> Response:
    return render(request, "error.html", {"title": title, "message": message, "status": status},
                  status=status)


set_error_page(_error_page)


# --- after a form: flash and redirect; one-time keys ---------------------------------------------

def done(request: Request, url: str, text: str, kind: str = "ok",
         title: str | None = None) -> Response:
    response = redirect(url)
    set_flash(request, response, text, kind, title)
    return response


def form_key() -> str:
    """A one-time key rendered into forms that create money or stock (a double submit is a no-op)."""
    return secrets.token_urlsafe(18)


def once(session: Session, request: Request, actor: Actor, key: str | None,
         payload: dict) -> bool:
    """Claim a form's one-time key; False when this very form was already submitted.

    Uses the API's idempotency table (`app.core.idempotency`): the key row commits or rolls back
    with the sale it guards.
    """
    if not key:
        return True
    claimed = idempotency.claim(
        session, club_id=actor.club_id, key=f"web:{key}",
        endpoint=f"WEB {request.method} {request.url.path}",
        request_hash=idempotency.request_hash(payload))
    if isinstance(claimed, idempotency.StoredResponse):
        return False
    idempotency.remember(session, claim_id=claimed, status_code=303, body={"form": "done"})
    return True


# --- form values -------------------------------------------------------------------------------

FIELD_LABELS = {  # form field → what the form calls it, for messages
    "first_name": "First name", "last_name": "Last name", "email": "Email", "phone": "Phone",
    "source": "Source", "source_detail": "Detail", "note": "Note", "stage": "Stage",
    "lost_reason": "Reason", "trial_date": "Trial date", "summary": "What was said",
    "outcome": "Outcome", "next_step": "Next step", "next_step_date": "Next step date",
    "kind": "Kind", "due_date": "Due date", "key": "Key", "label": "Label", "type": "Type",
    "choices": "Choices", "reason": "Reason", "title": "Title",
}


def clean(value: str | None) -> str | None:
    """A form text: stripped, and None when empty."""
    if value is None:
        return None
    value = value.strip()
    return value or None


def build(model: type[M], **data: Any) -> M:
    """The service's request model from form values; a bad value is a 422 with a sentence."""
    try:
        return model(**data)
    except ValidationError as exc:
        parts = []
        for error in exc.errors()[:4]:
            loc = [str(p) for p in error.get("loc", ()) if not isinstance(p, int)]
            label = FIELD_LABELS.get(loc[0], loc[0].replace("_", " ")) if loc else ""
            message = error.get("msg", "not valid").removeprefix("Value error, ")
            parts.append(f"{label}: {message}" if label else message)
        raise Invalid("Please check the form — " + "; ".join(parts),
                      code="invalid_form") from None


def ticked(value: str | None) -> bool:
    return value in ("on", "true", "1", "yes")
