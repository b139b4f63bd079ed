"""Pages for the front desk, the tasks list, the owner's dashboard, the playbook editor, stock
and trainers' schedules: server-rendered Jinja2 over the same service functions the JSON API
calls, inside the request's session (`SessionDep`).

Install on an app with `install(app)`: the page router, `/static`, and the HTML error page. How
sessions, CSRF and errors work is described in `app.web.auth`; the routes in docs/pages.md.
"""
import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel
from sqlalchemy.orm import Session

from app.access import service as access_service
from app.billing import service as billing_service
from app.billing.schemas import PaymentMethod
from app.clubs import service as clubs_service
from app.core import clock, idempotency
from app.core.actors import DESK, MANAGERS, STAFF, Actor, Role
from app.core.csvout import csv_response
from app.core.errors import Unauthorized
from app.core.schemas import IdPath
from app.core.types import MAX_ID
from app.crm import service as crm_service
from app.inventory import service as inventory_service
from app.inventory.schemas import ProductLine, WriteOffReason
from app.members import service as members_service
from app.memberships import service as memberships_service
from app.memberships.rules import add_months
from app.trainers import classes as trainer_classes
from app.trainers import packages as pt_packages
from app.trainers import results as trainer_results
from app.trainers import service as trainers_service
from app.trainers import sessions as pt_sessions
from app.web import charts
from app.web.auth import (
    SESSION_COOKIE,
    PageRoute,
    PageSession,
    WebStatic,
    back_to,
    clear_flash,
    clear_login_nonce,
    clear_session_cookie,
    cookie_secure,
    csrf_for,
    end_session,
    is_fetch,
    local_path,
    page_actor,
    read_flash,
    redirect,
    require_page,
    session_actor,
    session_ttl,
    set_error_page,
    set_flash,
    set_session_cookie,
    start_session,
)

HERE = Path(__file__).parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"

router = APIRouter(include_in_schema=False, route_class=PageRoute)
templates = Jinja2Templates(directory=str(TEMPLATES_DIR))

PageActor = Annotated[Actor, Depends(page_actor)]
DeskPage = Annotated[Actor, Depends(require_page(*DESK))]
StaffPage = Annotated[Actor, Depends(require_page(*STAFF))]
ManagerPage = Annotated[Actor, Depends(require_page(*MANAGERS))]

MemberId = IdPath("member id")
Key = Annotated[str | None, Form(max_length=64, pattern=r"^[A-Za-z0-9_-]*$")]
Back = Annotated[str | None, Form(max_length=2000)]
Text = Annotated[str | None, Form(max_length=1000)]
SearchQ = Annotated[str | None, Query(max_length=100)]
DayQ = Annotated[date | None, Query(ge=date(2000, 1, 1), le=date(2100, 12, 31))]
FromQ = Annotated[date | None, Query(alias="from", ge=date(2000, 1, 1), le=date(2100, 12, 31))]
ToQ = Annotated[date | None, Query(alias="to", ge=date(2000, 1, 1), le=date(2100, 12, 31))]

PAY_LATER = "later"
PAY_METHODS = [("card", "Card"), ("cash", "Cash"), ("transfer", "Bank transfer"),
               (PAY_LATER, "Pay later (leaves a debt)")]
PayMethod = Annotated[str, Form(pattern=r"^(card|cash|transfer|later)$")]
EXPIRING_DAYS = 7
CURRENCY_SIGNS = {"EUR": "€", "USD": "$", "GBP": "£", "CHF": "CHF ", "PLN": "zł "}

REASON_TITLES = {
    "ok": "Checked in", "override": "Let in by staff", "unknown_card": "Unknown card",
    "card_blocked": "Card blocked", "no_membership": "No membership",
    "membership_not_started": "Membership not started", "membership_expired": "Membership expired",
    "membership_frozen": "Membership frozen", "membership_cancelled": "Membership cancelled",
    "outside_access_hours": "Outside the plan's hours", "visit_limit_reached": "No visits left",
    "anti_passback": "Already checked in", "debt": "Unpaid balance",
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


# --- rendering -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class NavItem:
    href: str
    label: str
    roles: tuple[Role, ...]


NAV = (NavItem("/desk", "Front desk", DESK), NavItem("/tasks", "Tasks", STAFF),
       NavItem("/owner", "Dashboard", MANAGERS), NavItem("/owner/playbook", "Playbook", MANAGERS),
       NavItem("/manage/stock", "Stock", MANAGERS),
       NavItem("/manage/trainers", "Trainers", MANAGERS),
       NavItem("/crm/leads", "Leads", DESK), NavItem("/manage/import", "Member data", MANAGERS),
       NavItem("/manage/staff", "Staff", MANAGERS),
       NavItem("/manage/devices", "Turnstiles", MANAGERS))


def nav_for(actor: Actor | None, path: str) -> list[dict]:
    if actor is None:
        return []
    items = [n for n in NAV if actor.role in n.roles]
    current = max((n.href for n in items if path == n.href or path.startswith(n.href + "/")),
                  key=len, default=None)
    return [{"href": n.href, "label": n.label, "current": n.href == current} for n in items]


def home_for(actor: Actor) -> str:
    if actor.role in MANAGERS:
        return "/owner"
    if actor.role in DESK:
        return "/desk"
    return "/tasks"


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


def take_payment(session: Session, actor: Actor, sale_id: int, total: Decimal,
                 method: str) -> str:
    """Pay a new sale in full by `method`, or leave it as a debt ("later")."""
    if method == PAY_LATER or total <= 0:
        return "not paid yet (debt)" if total > 0 else "nothing to pay"
    billing_service.add_payment(session, actor=actor, sale_id=sale_id,
                                method=PaymentMethod(method), amount=total)
    return f"paid by {dict(PAY_METHODS)[method].lower()}"


# --- status of a member at a glance -------------------------------------------------------------------

def membership_badges(summary: dict, debt: Decimal | None = None,
                      currency: str = "EUR") -> list[dict]:
    """The coloured labels of a member: active / expiring soon / frozen / expired … and debt."""
    status = summary.get("status") or "none"
    end = summary.get("end_date")
    days_left = summary.get("days_left")
    badges = []
    if status == "active":
        if days_left is not None and days_left <= EXPIRING_DAYS:
            word = "today" if days_left <= 1 else f"in {days_left} days"
            badges.append({"kind": "expiring", "text": f"Expires {word} ({fmt_day(end)})"})
        else:
            badges.append({"kind": "active", "text": f"Active until {fmt_day(end)}"})
        if summary.get("visits_left") is not None:
            badges.append({"kind": "info", "text": f"{summary['visits_left']} visits left"})
    elif status == "frozen":
        badges.append({"kind": "frozen", "text": f"Frozen (ends {fmt_day(end)})"})
    elif status == "pending":
        badges.append({"kind": "pending",
                       "text": f"Starts {fmt_day(summary.get('start_date'))}"})
    elif status == "expired":
        badges.append({"kind": "expired", "text": f"Expired {fmt_day(end)}"})
    elif status == "cancelled":
        badges.append({"kind": "expired", "text": "Cancelled"})
    else:
        badges.append({"kind": "none", "text": "No membership"})
    if debt is not None and debt > 0:
        badges.append({"kind": "debt", "text": f"Debt {fmt_money(debt, currency)}"})
    return badges


# --- sign in and out -------------------------------------------------------------------------------

def _login_form(request: Request, *, next_url: str, email: str = "", error: str | None = None,
                status: int = 200) -> Response:
    nonce = secrets.token_urlsafe(32)
    response = render(request, "login.html",
                      {"next": next_url, "email": email, "error": error, "title": "Sign in"},
                      status=status, csrf=csrf_for(request, nonce))
    response.set_cookie("fitclub_login", nonce, max_age=3600, path="/login", httponly=True,
                        samesite="lax", secure=cookie_secure(request))
    return response


@router.get("/login")
def login_page(request: Request, session: PageSession,
               next: Annotated[str | None, Query(max_length=2000)] = None):
    actor = session_actor(session, request.cookies.get(SESSION_COOKIE, ""))
    if actor is not None:
        return redirect(local_path(next, home_for(actor)))
    return _login_form(request, next_url=local_path(next, ""))


@router.post("/login")
def login(request: Request, session: PageSession,
          email: Annotated[str, Form(max_length=254)],
          password: Annotated[str, Form(max_length=200)],
          next: Back = None):
    try:
        token, _user = start_session(session, email=email, password=password,
                                     ttl=session_ttl(request),
                                     address=request.client.host if request.client else None)
    except Unauthorized as exc:  # the failure is already counted in its own transaction
        return _login_form(request, next_url=local_path(next, ""), email=email,
                           error=exc.message, status=exc.status_code)
    target = local_path(next, "")
    if target.startswith("/invitations/"):  # accepting one: possibly someone with no club yet
        response = redirect(target)
    else:
        actor = session_actor(session, token)
        response = redirect(local_path(next, home_for(actor)))
    set_session_cookie(request, response, token)
    clear_login_nonce(request, response)
    return response


@router.post("/logout")
def logout(request: Request, session: PageSession, actor: PageActor):
    end_session(session, token=request.cookies.get(SESSION_COOKIE, ""))
    response = redirect("/login")
    clear_session_cookie(request, response)
    set_flash(request, response, "You are signed out.", "info")
    return response


@router.get("/")
def home(actor: PageActor):
    return redirect(home_for(actor))


# --- front desk ---------------------------------------------------------------------------------

def _search(session: Session, actor: Actor, q: str | None) -> dict | None:
    q = " ".join((q or "").split())
    if not q:
        return None
    result = members_service.search_members(session, club_id=actor.club_id, q=q, limit=12)
    for item in result["items"]:
        item["badges"] = membership_badges(item["membership"])
    result["q"] = q
    return result


def _events(session: Session, actor: Actor):
    return access_service.list_events(session, club_id=actor.club_id, limit=15)


@router.get("/desk")
def desk(request: Request, session: PageSession, actor: DeskPage, q: SearchQ = None):
    return render(request, "desk.html", {
        "title": "Front desk", "q": q or "", "results": _search(session, actor, q),
        "events": _events(session, actor)})


@router.get("/desk/search")
def desk_search(request: Request, session: PageSession, actor: DeskPage, q: SearchQ = None):
    return render(request, "_search_results.html", {"results": _search(session, actor, q)})


@router.get("/desk/events")
def desk_events(request: Request, session: PageSession, actor: DeskPage):
    return render(request, "_events.html", {"events": _events(session, actor)})


@router.get("/desk/members/{member_id}")
def member_card(request: Request, session: PageSession, actor: DeskPage, member_id: MemberId):
    club_id = actor.club_id
    detail = members_service.view_member(session, actor=actor, member_id=member_id)  # audited
    today = detail["as_of"]
    club = request.state.club
    balance = billing_service.member_balance(session, club_id=club_id, member_id=member_id)
    memberships, _total = memberships_service.member_memberships(
        session, club_id=club_id, member_id=member_id, as_of=today, limit=8)
    current = next((m for m in memberships if m.id == detail["membership"]["membership_id"]),
                   None)
    plans, _ = memberships_service.list_plans(session, club_id=club_id, active=True)
    products, _ = inventory_service.list_products(session, club_id=club_id, active=True,
                                                  limit=200)
    open_tasks, _ = crm_service.list_tasks(session, actor=actor, status="open",
                                           member_id=member_id, limit=20)
    timeline = []
    if hasattr(crm_service, "timeline"):
        timeline, _ = crm_service.timeline(session, club_id=club_id, member_id=member_id,
                                           limit=20)
    stage = None
    try:
        from app.retention import service as retention_service

        stage = retention_service.member_retention(session, club_id=club_id,
                                                   member_id=member_id)["stage"]
    except ImportError:  # pragma: no cover - retention is optional for the card
        stage = None
    return render(request, "member.html", {
        "title": detail["name"], "m": detail,
        "badges": membership_badges(detail["membership"], balance.debt, club.currency),
        "balance": balance, "memberships": memberships, "current": current, "plans": plans,
        "products": [p for p in products if p.on_hand > 0],
        "packages": pt_packages.member_packages(session, club_id=club_id,
                                                member_id=member_id),
        "visits": access_service.member_visits(session, club_id=club_id, member_id=member_id,
                                               limit=6).items,
        "tasks": [t for t in open_tasks if t.due_date <= today], "timeline": timeline,
        "notes": members_service.list_notes(session, club_id=club_id, member_id=member_id,
                                            limit=5)["items"],
        "stage": stage, "outcomes": OUTCOMES, "default_outcomes": DEFAULT_OUTCOMES,
        "key": form_key(), "freeze_start": today, "freeze_end": today + timedelta(days=13),
        "lead": crm_pages().lead_for_member(session, actor=actor, member_id=member_id)})


def crm_pages():
    """The CRM pages module (imported late: it builds on this one)."""
    from app.web import crm_pages as module

    return module


@router.post("/desk/members/{member_id}/check-in")
def check_in(request: Request, session: PageSession, actor: DeskPage, member_id: MemberId,
             key: Key = None, override_reason: Annotated[str | None, Form(max_length=500)] = None,
             back: Back = None):
    url = back_to(request, back, f"/desk/members/{member_id}")
    decision = access_service.desk_check_in(session, actor=actor, member_id=member_id,
                                            override_reason=(override_reason or "").strip() or None,
                                            idempotency_key=key or None)
    title = REASON_TITLES.get(decision.reason, decision.reason.replace("_", " "))
    if is_fetch(request):
        return render(request, "_decision.html", {"decision": decision, "title": title,
                                                  "member_id": member_id})
    if decision.allow:
        return done(request, url, decision.message, "ok", title)
    return done(request, url, decision.message, "error", f"Denied: {title}")


@router.post("/desk/members/{member_id}/memberships")
def sell_membership(request: Request, session: PageSession, actor: DeskPage, member_id: MemberId,
                    plan_id: Annotated[int, Form(ge=1, le=MAX_ID)], method: PayMethod,
                    key: Key = None, back: Back = None):
    url = back_to(request, back, f"/desk/members/{member_id}")
    if not once(session, request, actor, key, {"member": member_id, "plan": plan_id}):
        return done(request, url, "This sale was already recorded.", "info")
    sold = memberships_service.sell_membership(session, actor=actor, member_id=member_id,
                                               plan_id=plan_id)
    paid = take_payment(session, actor, sold.sale.id, sold.sale.total, method)
    return done(request, url, f"{sold.plan.name}, {fmt_day(sold.start_date)} – "
                              f"{fmt_day(sold.end_date)}: {fmt_money(sold.sale.total, request.state.club.currency)} {paid}.",
                "ok", "Membership sold")


@router.post("/desk/memberships/{membership_id}/renew")
def renew_membership(request: Request, session: PageSession, actor: DeskPage,
                     membership_id: IdPath("membership id"), method: PayMethod,
                     plan_id: Annotated[int | None, Form(ge=1, le=MAX_ID)] = None,
                     key: Key = None, back: Back = None):
    current = memberships_service.get_membership(session, club_id=actor.club_id,
                                                 membership_id=membership_id)
    url = back_to(request, back, f"/desk/members/{current.member_id}")
    if not once(session, request, actor, key, {"membership": membership_id, "plan": plan_id}):
        return done(request, url, "This renewal was already recorded.", "info")
    sold = memberships_service.renew_membership(session, actor=actor,
                                                membership_id=membership_id, plan_id=plan_id)
    paid = take_payment(session, actor, sold.sale.id, sold.sale.total, method)
    return done(request, url, f"{sold.plan.name} from {fmt_day(sold.start_date)} to "
                              f"{fmt_day(sold.end_date)}: {fmt_money(sold.sale.total, request.state.club.currency)} {paid}.",
                "ok", "Membership renewed")


@router.post("/desk/memberships/{membership_id}/freeze")
def freeze_membership(request: Request, session: PageSession, actor: DeskPage,
                      membership_id: IdPath("membership id"),
                      start_date: Annotated[date, Form(ge=date(2000, 1, 1), le=date(2100, 1, 1))],
                      end_date: Annotated[date, Form(ge=date(2000, 1, 1), le=date(2100, 1, 1))],
                      reason: Annotated[str | None, Form(max_length=200)] = None,
                      back: Back = None):
    current = memberships_service.get_membership(session, club_id=actor.club_id,
                                                 membership_id=membership_id)
    url = back_to(request, back, f"/desk/members/{current.member_id}")
    outcome = memberships_service.freeze_membership(
        session, actor=actor, membership_id=membership_id, start_date=start_date,
        end_date=end_date, reason=(reason or "").strip() or None)
    return done(request, url, f"Frozen {outcome.days_returned} days from {fmt_day(start_date)}; "
                              f"the membership now ends on {fmt_day(outcome.membership.end_date)}.",
                "ok", "Membership frozen")


@router.post("/desk/members/{member_id}/cafe")
def sell_cafe(request: Request, session: PageSession, actor: DeskPage, member_id: MemberId,
              product_id: Annotated[int, Form(ge=1, le=MAX_ID)],
              quantity: Annotated[int, Form(ge=1, le=99)], method: PayMethod,
              key: Key = None, back: Back = None):
    url = back_to(request, back, f"/desk/members/{member_id}")
    if not once(session, request, actor, key,
                {"member": member_id, "product": product_id, "quantity": quantity}):
        return done(request, url, "This sale was already recorded.", "info")
    sale = inventory_service.sell_products(
        session, actor=actor, member_id=member_id,
        items=[ProductLine(product_id=product_id, quantity=quantity)])
    paid = take_payment(session, actor, sale.id, sale.total, method)
    what = ", ".join(line.description for line in sale.lines)
    return done(request, url, f"{what}: {fmt_money(sale.total, request.state.club.currency)} "
                              f"{paid}.", "ok", "Café sale")


@router.post("/desk/members/{member_id}/notes")
def add_note(request: Request, session: PageSession, actor: DeskPage, member_id: MemberId,
             text: Annotated[str, Form(min_length=1, max_length=5000)], back: Back = None):
    url = back_to(request, back, f"/desk/members/{member_id}")
    members_service.add_staff_note(session, actor=actor, member_id=member_id,
                                   text=text.strip())  # audited
    return done(request, url, "Note added.", "ok")


# --- tasks -----------------------------------------------------------------------------------------

@router.get("/tasks")
def tasks_page(request: Request, session: PageSession, actor: StaffPage):
    tasks = crm_service.tasks_today(session, actor=actor)
    overdue = [t for t in tasks if t.overdue]
    due_today = [t for t in tasks if not t.overdue]
    return render(request, "tasks.html", {
        "title": "Tasks", "overdue": overdue, "due_today": due_today, "outcomes": OUTCOMES,
        "default_outcomes": DEFAULT_OUTCOMES})


@router.post("/tasks/{task_id}/complete")
def complete_task(request: Request, session: PageSession, actor: StaffPage,
                  task_id: IdPath("task id"),
                  outcome: Annotated[str, Form(min_length=1, max_length=200)],
                  note: Text = None, back: Back = None):
    url = back_to(request, back, "/tasks")
    text = outcome.strip() + (f": {note.strip()}" if note and note.strip() else "")
    task = crm_service.complete_task(session, actor=actor, task_id=task_id, outcome=text[:1000])
    return done(request, url, f"{task.title} — {text}", "ok", "Task done")


# --- owner: dashboard -------------------------------------------------------------------------------

BREAKDOWNS = [("plan", "plan"), ("attendance", "attendance band"), ("trainer", "home trainer"),
              ("cohort", "join cohort"), ("stage", "at-risk history"),
              ("channel", "touchpoint channel")]


def _analytics():
    try:
        from app.analytics import service as analytics_service
    except ImportError:  # pragma: no cover - the package is optional while it is written
        return None
    return analytics_service


def _period_query(date_from: date | None, date_to: date | None) -> str:
    parts = []
    if date_from:
        parts.append(f"from={date_from.isoformat()}")
    if date_to:
        parts.append(f"to={date_to.isoformat()}")
    return "&".join(parts)


def resolve_period(session: Session, actor: Actor, date_from: date | None,
                   date_to: date | None) -> tuple[date, date]:
    """The dashboard's period: `to` defaults to (and is capped at) the club's today, `from` to
    the first of the month eleven months earlier — twelve calendar months, as the analytics API
    documents its default. Explicit dates are passed to every service so all figures agree."""
    today = clubs_service.club_today(clubs_service.get_club(session, actor.club_id))
    date_to = min(date_to or today, today)
    date_from = date_from or add_months(date_to.replace(day=1), -11)
    return date_from, date_to


def dashboard_data(session: Session, actor: Actor, date_from: date | None,
                   date_to: date | None, by: str) -> dict:
    """Everything the dashboard shows, from the analytics, trainers and inventory services."""
    a = _analytics()
    club_id = actor.club_id
    date_from, date_to = resolve_period(session, actor, date_from, date_to)
    period = {"date_from": date_from, "date_to": date_to}
    data: dict[str, Any] = {"analytics": a is not None, **period}
    if a is not None:
        data.update(
            renewals=a.renewal_report(session, club_id=club_id, **period),
            breakdown=a.renewal_breakdown(session, club_id=club_id, by=by, **period),
            monthly=a.monthly(session, club_id=club_id, **period),
            cohorts=a.cohorts(session, club_id=club_id, **period),
            touchpoints=a.touchpoint_effectiveness(session, club_id=club_id, **period),
            kpis=a.kpi_report(session, club_id=club_id, **period))
    data.update(
        trainers=trainer_results.trainer_results(session, actor=actor, **period),
        stock_value=inventory_service.stock_value(session, club_id=club_id),
        cafe_sales=inventory_service.sales_report(session, club_id=club_id, group_by="category",
                                                  **period),
        low_stock=inventory_service.low_stock(session, club_id=club_id))
    return data


WIDE, HALF = 1160, 600  # viewBox widths: about 1:1 with the panels on a 1280px screen
PROVISIONAL = "#8fb3cf"  # a month whose renewals are not all decided yet


def dashboard_charts(data: dict) -> dict:
    """The SVG charts of the dashboard (server-side, with data labels)."""
    out: dict[str, Any] = {}
    if data["analytics"]:
        r = data["renewals"]
        out["renewals"] = charts.bar_chart(
            chart_id="chart-renewals", title="Renewal rate by month",
            description=("Share of memberships that ended in each month and were renewed "
                         "(renewed ÷ decided); the latest months are provisional while members "
                         "are still in their grace days."),
            labels=[i.label for i in r.items], keys=[i.key for i in r.items],
            values=[i.renewal_rate for i in r.items], value_format=charts.pct, y_max=1.0,
            colours=[PROVISIONAL if i.in_grace else None for i in r.items],
            tooltips=[f"{i.label}: {charts.pct(i.renewal_rate, 1)} — {i.renewed} renewed, "
                      f"{i.lost} lost, {i.in_grace} undecided of {i.ended} ended"
                      + (" (provisional)" if i.in_grace else "") for i in r.items],
            width=WIDE, height=300)
        b = data["breakdown"]
        out["breakdown"] = charts.bar_chart(
            chart_id="chart-breakdown", title=f"Renewal rate by {b.by}",
            description=f"Renewal rate of the memberships that ended in the period, by {b.by}.",
            labels=[i.label for i in b.items], keys=[i.key for i in b.items],
            values=[i.renewal_rate for i in b.items], value_format=charts.pct, y_max=1.0,
            colour=charts.TEAL, width=HALF)
        months = [i for i in data["monthly"].items]
        out["retention"] = charts.line_chart(
            chart_id="chart-retention", title="Monthly retention and churn",
            description=("Of the members at the start of each month: the share still a member "
                         "next month (retention) and the share who left (churn)."),
            labels=[m.month for m in months],
            series=[charts.Series("retention", [m.retention_rate for m in months], charts.TEAL),
                    charts.Series("churn", [m.churn_rate for m in months], charts.RED, True)],
            value_format=charts.pct, y_max=1.0, width=HALF)
        out["base"] = charts.bar_chart(
            chart_id="chart-base", title="Member base at the start of each month",
            description="Members with a valid membership on the first day of each month.",
            labels=[m.month for m in months], values=[m.members_at_start for m in months],
            tooltips=[f"{m.month}: {m.members_at_start} members, {m.joined} joined"
                      + (f", growth {m.growth:+d}" if m.growth is not None else "")
                      for m in months], width=HALF)
        c = data["cohorts"]
        out["cohorts"] = charts.heatmap(
            chart_id="chart-cohorts", title="Cohorts: share still a member",
            description=("Each row is the month members joined; each column the months since; "
                         "the cell is the share of that cohort still a member."),
            row_labels=[row.cohort for row in c.items],
            col_labels=[str(k) for k in range(c.months)],
            cells=[row.share for row in c.items],
            row_notes=[str(row.members) for row in c.items], width=WIDE)
        t = data["touchpoints"]
        out["touchpoints"] = charts.interval_chart(
            chart_id="chart-touchpoints", title="Touchpoint effectiveness",
            description=("Renewal rate of members who got each touchpoint minus the rate of the "
                         "held-out control group, with its 95% interval."),
            rows=[charts.Interval(key=i.key, label=i.name, estimate=i.difference, low=i.ci_low,
                                  high=i.ci_high, verdict=i.verdict) for i in t.items],
            width=WIDE)
        k = data["kpis"]
        out["frequency"] = charts.bar_chart(
            chart_id="chart-frequency", title="Visits per week",
            description="Members by their average visits per week in the period.",
            labels=[b.band for b in k.visit_frequency.bins],
            values=[b.members for b in k.visit_frequency.bins], colour=charts.TEAL,
            tooltips=[f"{b.band} visits a week: {b.members} members ({charts.pct(b.share)})"
                      for b in k.visit_frequency.bins], width=HALF)
    trainers = data["trainers"]
    out["trainers"] = charts.bar_chart(
        chart_id="chart-trainers", title="Renewal rate of each trainer's PT clients",
        description="Memberships of each trainer's PT clients that ended in the period and "
                    "were renewed.",
        labels=[tr.trainer_name for tr in trainers], keys=[str(tr.trainer_id) for tr in trainers],
        values=[tr.renewal_rate for tr in trainers], value_format=charts.pct, y_max=1.0,
        colour=charts.TEAL, empty_message="No trainers yet", width=HALF)
    return out


@router.get("/owner")
def dashboard(request: Request, session: PageSession, actor: ManagerPage,
              date_from: FromQ = None, date_to: ToQ = None,
              by: Annotated[str, Query(pattern=r"^(plan|attendance|trainer|cohort|stage|channel)$")]
              = "plan"):
    data = dashboard_data(session, actor, date_from, date_to, by)
    period = _period_query(date_from, date_to)
    return render(request, "owner.html", {
        "title": "Dashboard", "d": data, "charts": dashboard_charts(data), "by": by,
        "breakdowns": BREAKDOWNS, "period": period,
        "q": ("?" + period) if period else "", "amp": ("&" + period) if period else ""})


# --- owner: CSV under the cookie session -------------------------------------------------------------

def _as_dict(item) -> dict:
    return item.model_dump() if isinstance(item, BaseModel) else dict(item)


def table_csv(name: str, items: list, extra: list[dict] | None = None) -> Response:
    rows = [_as_dict(i) for i in items] + list(extra or [])
    header = list(rows[0]) if rows else []
    return csv_response(name, header, [[row.get(c) for c in header] for row in rows])


CSV_REPORTS = ("renewals", "renewals-breakdown", "retention-monthly", "cohorts", "touchpoints",
               "kpis", "trainers", "cafe-stock", "cafe-sales", "low-stock")


@router.get("/owner/csv/{report}.csv")
def dashboard_csv(session: PageSession, actor: ManagerPage, report: str,
                  date_from: FromQ = None, date_to: ToQ = None,
                  by: Annotated[str, Query(pattern=r"^(plan|attendance|trainer|cohort|stage|channel)$")]
                  = "plan"):
    from app.core.errors import NotFound

    if report not in CSV_REPORTS:
        raise NotFound("No such report", code="report_not_found")
    a = _analytics()
    club_id = actor.club_id
    date_from, date_to = resolve_period(session, actor, date_from, date_to)
    period = {"date_from": date_from, "date_to": date_to}
    if report in ("renewals", "renewals-breakdown", "retention-monthly", "cohorts",
                  "touchpoints", "kpis") and a is None:
        raise NotFound("Analytics are not available yet", code="analytics_missing")
    if report == "renewals":
        r = a.renewal_report(session, club_id=club_id, **period)
        return table_csv("renewals", r.items,
                         [{"key": "total", "label": "total", **r.totals.model_dump()}])
    if report == "renewals-breakdown":
        r = a.renewal_breakdown(session, club_id=club_id, by=by, **period)
        return table_csv(f"renewals-by-{by}", r.items,
                         [{"key": "total", "label": "total", **r.totals.model_dump()}])
    if report == "retention-monthly":
        return table_csv("retention-monthly",
                         a.monthly(session, club_id=club_id, **period).items)
    if report == "cohorts":
        c = a.cohorts(session, club_id=club_id, **period)
        header = ["cohort", "members"] + [f"m{k}" for k in range(c.months)]
        rows = [[r.cohort, r.members, *r.share, *([None] * (c.months - len(r.share)))]
                for r in c.items]
        return csv_response("retention-cohorts", header, rows)
    if report == "touchpoints":
        return table_csv("touchpoints",
                         a.touchpoint_effectiveness(session, club_id=club_id, **period).items)
    if report == "kpis":
        k = a.kpi_report(session, club_id=club_id, **period)
        rows = [["leads", "", key, value] for key, value in k.leads.model_dump().items()]
        for check in [k.average_check, *k.average_check_by_kind]:
            rows += [["average_check", check.kind, key, value]
                     for key, value in check.model_dump().items() if key != "kind"]
        for month in k.member_base:
            rows += [["member_base", month.month, "members_at_start", month.members_at_start],
                     ["member_base", month.month, "growth_pct", month.growth_pct]]
        for b in k.visit_frequency.bins:
            rows += [["visit_frequency", b.band, "members", b.members],
                     ["visit_frequency", b.band, "share", b.share]]
        return csv_response("kpis", ["section", "item", "measure", "value"], rows)
    if report == "trainers":
        start, end = resolve_period(session, actor, date_from, date_to)
        return table_csv("trainers", trainer_results.trainer_results(
            session, actor=actor, date_from=start, date_to=end))
    if report == "cafe-stock":
        return table_csv("cafe-stock", inventory_service.stock_value(session,
                                                                     club_id=club_id)["items"])
    if report == "cafe-sales":
        return table_csv("cafe-sales", inventory_service.sales_report(
            session, club_id=club_id, group_by="category", **period)["items"])
    return table_csv("low-stock", inventory_service.low_stock(session, club_id=club_id)["items"])


# --- owner: playbook editor ---------------------------------------------------------------------------

def _retention():
    try:
        from app.retention import playbook
        from app.retention import service as retention_service
    except ImportError:  # pragma: no cover
        return None, None
    return playbook, retention_service


def trigger_text(d) -> str:
    stage = STAGE_LABELS.get(d.stage, d.stage) if d.stage else "any membership stage"
    days = d.days if d.days is not None else 0
    match d.trigger:
        case "days_after_stage_entry":
            return (f"on entering {stage}" if days == 0
                    else f"{days} day{'s' if days != 1 else ''} after entering {stage}")
        case "days_before_end":
            return f"{days} days before the membership ends ({stage})"
        case "visit_milestone":
            return f"on the member's visit number {d.visits}"
        case "no_visit_days":
            return f"no visit for {days} days in {stage}"
        case "birthday":
            return "on the member's birthday"
        case "visits_below_by_day":
            return f"fewer than {d.visits} visits by day {days} in {stage}"
    return d.trigger.replace("_", " ")


CHANNEL_LABELS = {"email": "Email", "sms": "SMS", "call_task": "Call task (desk)",
                  "trainer_task": "Trainer task"}


@router.get("/owner/playbook")
def playbook_page(request: Request, session: PageSession, actor: ManagerPage):
    playbook, _svc = _retention()
    if playbook is None:
        return render(request, "playbook.html", {"title": "Playbook", "groups": [],
                                                 "missing": True})
    definitions = playbook.list_definitions(session, club_id=actor.club_id)
    order = [s.value for s in playbook.Stage]
    groups: dict[str, list] = defaultdict(list)
    for d in sorted(definitions, key=lambda d: (order.index(d.stage) if d.stage in order
                                                else len(order), -d.priority, d.id)):
        groups[d.stage or ""].append(d)
    settings = clubs_service.club_settings(request.state.club)
    return render(request, "playbook.html", {
        "title": "Playbook", "groups": list(groups.items()), "trigger_text": trigger_text,
        "channels": CHANNEL_LABELS, "club_holdout": settings.holdout_share, "missing": False})


def _preview_members(session: Session, actor: Actor, stage: str | None,
                     retention_service) -> list[dict]:
    rows, _ = retention_service.members_in_stage(session, club_id=actor.club_id, stage=stage,
                                                 limit=12, offset=0)
    members = []
    for row in rows:
        m = members_service.get_member(session, club_id=actor.club_id, member_id=row.member_id)
        members.append({"id": m.id, "name": f"{m.first_name} {m.last_name}"})
    if not members:
        found = members_service.search_members(session, club_id=actor.club_id, q=None, limit=12)
        members = [{"id": i["id"], "name": i["name"]} for i in found["items"]]
    return members


@router.get("/owner/playbook/{definition_id}")
def playbook_edit(request: Request, session: PageSession, actor: ManagerPage,
                  definition_id: IdPath("definition id")):
    playbook, retention_service = _retention()
    if playbook is None:
        return redirect("/owner/playbook")
    d = playbook.get_definition(session, club_id=actor.club_id, definition_id=definition_id)
    settings = clubs_service.club_settings(request.state.club)
    return render(request, "playbook_edit.html", {
        "title": f"Edit: {d.name}", "d": d, "trigger": trigger_text(d),
        "channel": CHANNEL_LABELS.get(d.channel, d.channel), "club_holdout": settings.holdout_share,
        "members": _preview_members(session, actor, d.stage, retention_service)})


def _holdout(value: str | None) -> float | None:
    from app.core.errors import Invalid

    text = (value or "").strip().rstrip("%").strip()
    if not text:
        return None
    try:
        share = float(text.replace(",", ".")) / 100
    except ValueError:
        raise Invalid("The held-out share is a percentage between 0 and 90",
                      code="invalid_holdout") from None
    if not 0 <= share <= 0.9:
        raise Invalid("The held-out share is a percentage between 0 and 90",
                      code="invalid_holdout")
    return round(share, 4)


@router.post("/owner/playbook/{definition_id}")
def playbook_save(request: Request, session: PageSession, actor: ManagerPage,
                  definition_id: IdPath("definition id"),
                  name: Annotated[str, Form(min_length=1, max_length=200)],
                  body_template: Annotated[str, Form(min_length=1, max_length=10_000)],
                  subject_template: Annotated[str, Form(max_length=500)] = "",
                  holdout_pct: Annotated[str | None, Form(max_length=10)] = None,
                  enabled: Annotated[str | None, Form(max_length=5)] = None):
    back_to(request, None, f"/owner/playbook/{definition_id}")
    playbook, _svc = _retention()
    d = playbook.update_definition(session, club_id=actor.club_id, definition_id=definition_id,
                                   changes={"name": name.strip(),
                                            "subject_template": subject_template,
                                            "body_template": body_template,
                                            "holdout_share": _holdout(holdout_pct),
                                            "enabled": enabled == "on"})
    return done(request, f"/owner/playbook/{d.id}", f"{d.name} saved.", "ok")


@router.post("/owner/playbook/{definition_id}/toggle")
def playbook_toggle(request: Request, session: PageSession, actor: ManagerPage,
                    definition_id: IdPath("definition id"),
                    enabled: Annotated[str, Form(pattern=r"^(on|off)$")], back: Back = None):
    url = back_to(request, back, "/owner/playbook")
    playbook, _svc = _retention()
    d = playbook.set_enabled(session, club_id=actor.club_id, definition_id=definition_id,
                             enabled=enabled == "on")
    state = "enabled" if d.enabled else "disabled"
    return done(request, url, f"{d.name} {state}.", "ok")


@router.post("/owner/playbook/{definition_id}/preview")
def playbook_preview(request: Request, session: PageSession, actor: ManagerPage,
                     definition_id: IdPath("definition id"),
                     member_id: Annotated[int, Form(ge=1, le=MAX_ID)],
                     body_template: Annotated[str, Form(min_length=1, max_length=10_000)],
                     subject_template: Annotated[str, Form(max_length=500)] = ""):
    """The draft rendered for one member by the retention service's preview, never saved: the
    draft is applied inside a SAVEPOINT that is rolled back."""
    playbook, retention_service = _retention()
    savepoint = session.begin_nested()
    try:
        playbook.update_definition(session, club_id=actor.club_id, definition_id=definition_id,
                                   changes={"subject_template": subject_template,
                                            "body_template": body_template})
        preview = retention_service.preview(session, club_id=actor.club_id,
                                            definition_id=definition_id, member_id=member_id,
                                            settings=request.app.state.settings)
    finally:
        savepoint.rollback()
    return render(request, "_preview.html", {"p": preview,
                                             "channel": CHANNEL_LABELS.get(preview["channel"])})


# --- managers: stock ------------------------------------------------------------------------------

@router.get("/manage/stock")
def stock_page(request: Request, session: PageSession, actor: ManagerPage):
    club_id = actor.club_id
    items, _total = inventory_service.stock(session, club_id=club_id, active=True, limit=500)
    movements, _ = inventory_service.list_movements(session, club_id=club_id, limit=12)
    names = {i["product_id"]: i["name"] for i in items}
    value = inventory_service.stock_value(session, club_id=club_id)
    return render(request, "stock.html", {
        "title": "Stock", "items": items, "low": inventory_service.low_stock(session,
                                                                           club_id=club_id),
        "movements": movements, "names": names, "value": value,
        "reasons": [r.value for r in WriteOffReason], "key": form_key()})


@router.post("/manage/stock/receipts")
def stock_receipt(request: Request, session: PageSession, actor: ManagerPage,
                  product_id: Annotated[int, Form(ge=1, le=MAX_ID)],
                  quantity: Annotated[int, Form(ge=1, le=100_000)],
                  unit_cost: Annotated[Decimal, Form(ge=0, max_digits=12, decimal_places=4)],
                  supplier: Annotated[str | None, Form(max_length=200)] = None,
                  note: Text = None, key: Key = None):
    back_to(request, None, "/manage/stock")
    payload = {"product": product_id, "quantity": quantity, "cost": str(unit_cost)}
    if not once(session, request, actor, key, payload):
        return done(request, "/manage/stock", "This receipt was already booked.", "info")
    receipt = inventory_service.receive_stock(session, actor=actor, product_id=product_id,
                                              quantity=quantity, unit_cost=unit_cost,
                                              supplier=(supplier or "").strip() or None,
                                              note=(note or "").strip() or None)
    product = inventory_service.read_product(session, club_id=actor.club_id,
                                             product_id=product_id)
    return done(request, "/manage/stock", f"{quantity} × {product.name} received; "
                                          f"{receipt.on_hand_after} on hand.", "ok",
                "Receipt booked")


@router.post("/manage/stock/write-offs")
def stock_write_off(request: Request, session: PageSession, actor: ManagerPage,
                    product_id: Annotated[int, Form(ge=1, le=MAX_ID)],
                    quantity: Annotated[int, Form(ge=1, le=100_000)],
                    reason: Annotated[WriteOffReason, Form()],
                    note: Text = None, key: Key = None):
    back_to(request, None, "/manage/stock")
    payload = {"product": product_id, "quantity": quantity, "reason": reason.value}
    if not once(session, request, actor, key, payload):
        return done(request, "/manage/stock", "This write-off was already booked.", "info")
    movement = inventory_service.write_off(session, actor=actor, product_id=product_id,
                                           quantity=quantity, reason=reason,
                                           note=(note or "").strip() or None)
    product = inventory_service.read_product(session, club_id=actor.club_id,
                                             product_id=product_id)
    return done(request, "/manage/stock", f"{quantity} × {product.name} written off "
                                          f"({reason.value.replace('_', ' ')}); "
                                          f"{movement.on_hand_after} on hand.", "ok",
                "Write-off booked")


# --- managers: trainers' week --------------------------------------------------------------------

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@router.get("/manage/trainers")
def trainers_page(request: Request, session: PageSession, actor: ManagerPage, week: DayQ = None):
    club = request.state.club
    zone = clubs_service.club_zone(club)
    today = clubs_service.club_today(club)
    monday = (week or today) - timedelta(days=(week or today).weekday())
    sunday = monday + timedelta(days=6)
    trainers = trainers_service.list_trainers(session, club_id=actor.club_id, active=True)
    hours = {t.id: trainers_service.get_hours(session, club_id=actor.club_id, trainer_id=t.id)
             for t in trainers}
    absences = {t.id: [a for a in trainers_service.list_absences(session, club_id=actor.club_id,
                                                                  trainer_id=t.id)
                       if a.start_date <= sunday and a.end_date >= monday] for t in trainers}
    sessions = pt_sessions.list_sessions(session, actor=actor, date_from=monday,
                                         date_to=sunday, limit=500).items
    classes = trainer_classes.list_occurrences(session, club_id=actor.club_id,
                                               date_from=monday, date_to=sunday)
    days = []
    for offset in range(7):
        day = monday + timedelta(days=offset)
        entries = []
        for s in sessions:
            if s.starts_at.astimezone(zone).date() == day:
                entries.append({"at": s.starts_at.astimezone(zone), "end": s.ends_at.astimezone(zone),
                                "kind": "PT", "trainer": s.trainer_name,
                                "what": f"with {s.member_name}", "status": s.status})
        for c in classes:
            if c.day == day:
                entries.append({"at": c.starts_at.astimezone(zone), "end": c.ends_at.astimezone(zone),
                                "kind": "Class", "trainer": c.trainer_name,
                                "what": f"{c.name} — {c.booked_count}/{c.capacity} booked"
                                        + (f", {c.waitlist_count} waiting" if c.waitlist_count else ""),
                                "status": c.status})
        entries.sort(key=lambda e: (e["at"], e["trainer"]))
        working = [{"trainer": t.name,
                    "intervals": [f"{iv.start:%H:%M}–{iv.end:%H:%M}"
                                  for iv in hours[t.id].intervals if iv.weekday == offset + 1],
                    "away": any(a.start_date <= day <= a.end_date for a in absences[t.id])}
                   for t in trainers]
        days.append({"day": day, "name": WEEKDAYS[offset], "entries": entries,
                     "working": [w for w in working if w["intervals"] or w["away"]],
                     "is_today": day == today})
    return render(request, "trainers.html", {
        "title": "Trainers", "trainers": trainers, "hours": hours, "absences": absences,
        "days": days, "monday": monday, "sunday": sunday,
        "prev_week": monday - timedelta(days=7), "next_week": monday + timedelta(days=7),
        "weekdays": WEEKDAYS})


# --- installing ----------------------------------------------------------------------------------

def install(app: FastAPI) -> None:
    """Add the pages and /static to an app (idempotent)."""
    if getattr(app.state, "web_installed", False):
        return
    app.include_router(router)
    app.include_router(crm_pages().router)
    from app.web import staff_pages  # builds on this module, like the CRM pages

    app.include_router(staff_pages.router)
    from app.web import device_pages

    app.include_router(device_pages.router)
    app.mount("/static", WebStatic(directory=str(STATIC_DIR)), name="static")
    app.state.web_installed = True
