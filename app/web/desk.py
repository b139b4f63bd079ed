"""The front desk's pages: one search box, today's check-ins, and the member card with what the
desk does there — check in, sell, renew and freeze a membership, sell café items, add a note,
log a call or a conversation, sign the member out of the member app.

Opening the card and adding a note go through the members service's audited functions
(`view_member`, `add_staff_note`), so each writes the same privacy audit entry as the API.
"""
from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated

from fastapi import Form, Query, Request
from sqlalchemy.orm import Session

from app.access import logs as access_logs
from app.access import member_codes
from app.access import service as access_service
from app.billing import service as billing_service
from app.billing.schemas import PaymentMethod
from app.core.actors import Actor
from app.core.errors import Invalid
from app.core.schemas import IdPath
from app.core.types import MAX_ID
from app.crm import leads as leads_service
from app.crm import service as crm_service
from app.crm.schemas import InteractionCreate, InteractionKind
from app.dues import dunning
from app.inventory import service as inventory_service
from app.inventory.schemas import ProductLine
from app.memberapp import sessions as member_sessions
from app.members import service as members_service
from app.memberships import service as memberships_service
from app.retention import service as retention_service
from app.trainers import packages as pt_packages
from app.web.auth import PageSession, back_to, is_fetch
from app.web.kit import (
    CALL_OUTCOMES,
    DEFAULT_OUTCOMES,
    INTERACTION_TITLES,
    OUTCOMES,
    PAY_LATER,
    PAY_METHODS,
    REASON_TITLES,
    STAGE_TITLES,
    Back,
    DayText,
    DeskPage,
    Key,
    MemberId,
    Note,
    PayMethod,
    build,
    clean,
    done,
    fmt_day,
    fmt_money,
    form_key,
    once,
    page_router,
    render,
)

router = page_router()

SearchQ = Annotated[str | None, Query(max_length=100)]
EXPIRING_DAYS = 7


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
        until = summary.get("frozen_until")
        text = f"Frozen until {fmt_day(until)}" if until else "Frozen"
        badges.append({"kind": "frozen", "text": f"{text}; membership ends {fmt_day(end)}"})
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


# --- search and today's check-ins ----------------------------------------------------------------

def _by_app_code(session: Session, actor: Actor, q: str) -> dict | None:
    """A scanned member app code finds its member as a scanned card does; an expired one says
    so. None when `q` is no member's code here (it may be a card)."""
    try:
        member_id = member_codes.member_for_code(session, club_id=actor.club_id, code=q)
    except Invalid as exc:
        return {"items": [], "total": 0, "q": q, "problem": exc.message}
    if member_id is None:
        return None
    return members_service.member_hits(session, club_id=actor.club_id, member_ids=[member_id])


def _search(session: Session, actor: Actor, q: str | None) -> dict | None:
    q = " ".join((q or "").split())
    if not q:
        return None
    result = _by_app_code(session, actor, q) if member_codes.looks_like(q) else None
    if result is None:
        result = members_service.search_members(session, club_id=actor.club_id, q=q, limit=12)
    for item in result["items"]:
        item["badges"] = membership_badges(item["membership"])
    result["q"] = q
    return result


def _events(session: Session, actor: Actor):
    return access_logs.list_events(session, club_id=actor.club_id, limit=15)


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


# --- the member card ----------------------------------------------------------------------------

def _lead(session: Session, actor: Actor, member_id: int) -> dict | None:
    """The member's lead, for the card (None without one, or not visible to the desk)."""
    lead = leads_service.member_lead(session, actor=actor, member_id=member_id)
    if lead is None:
        return None
    return {"id": lead.id, "stage": lead.stage, "title": STAGE_TITLES.get(lead.stage)}


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
    timeline, _ = crm_service.timeline(session, club_id=club_id, member_id=member_id, limit=20)
    stage = retention_service.member_retention(session, club_id=club_id,
                                               member_id=member_id)["stage"]
    badges = membership_badges(detail["membership"], balance.debt, club.currency)
    problem = dunning.payment_problem(session, club_id=club_id, member_id=member_id, today=today)
    if problem:  # "owes 49.00 since 3 March, 2nd reminder sent"
        badges.append({"kind": "debt", "text": "O" + problem["text"][1:]})
    return render(request, "member.html", {
        "title": detail["name"], "m": detail, "badges": badges, "payment_problem": problem,
        "balance": balance, "memberships": memberships, "current": current, "plans": plans,
        "products": [p for p in products if p.on_hand > 0],
        "packages": pt_packages.member_packages(session, club_id=club_id, member_id=member_id),
        "visits": access_logs.member_visits(session, club_id=club_id, member_id=member_id,
                                               limit=6).items,
        "tasks": [t for t in open_tasks if t.due_date <= today], "timeline": timeline,
        "notes": members_service.list_notes(session, club_id=club_id, member_id=member_id,
                                            limit=5)["items"],
        "stage": stage, "outcomes": OUTCOMES, "default_outcomes": DEFAULT_OUTCOMES,
        "key": form_key(), "as_of": today, **_freeze_form(current, today),
        "lead": _lead(session, actor, member_id),
        "app_sessions": member_sessions.live_count(session, club_id=club_id,
                                                   member_id=member_id)})


def _freeze_form(current, today: date) -> dict:
    """The freeze form's defaults (two weeks, or what is left of the allowance, within the
    membership) and the freezes still to come or running, each of which can be ended early."""
    if current is None:
        return {"freeze_start": today, "freeze_end": today, "freezes": []}
    start = max(today, current.start_date)
    days = max(min(14, current.freeze_days_left), 1)
    end = min(start + timedelta(days=days - 1), current.end_date)
    return {"freeze_start": start, "freeze_end": end,
            "freezes": [f for f in current.freezes if f.end_date >= today]}


# --- at the desk: check in, sell, freeze, note ---------------------------------------------------

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


def take_payment(session: Session, actor: Actor, sale_id: int, total: Decimal,
                 method: str) -> str:
    """Pay a new sale in full by `method`, or leave it as a debt ("later")."""
    if method == PAY_LATER or total <= 0:
        return "not paid yet (debt)" if total > 0 else "nothing to pay"
    billing_service.add_payment(session, actor=actor, sale_id=sale_id,
                                method=PaymentMethod(method), amount=total)
    return f"paid by {dict(PAY_METHODS)[method].lower()}"


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


@router.post("/desk/freezes/{freeze_id}/end")
def end_freeze(request: Request, session: PageSession, actor: DeskPage,
               freeze_id: IdPath("freeze id"), back: Back = None):
    outcome = memberships_service.end_freeze(session, actor=actor, freeze_id=freeze_id)
    url = back_to(request, back, f"/desk/members/{outcome.membership.member_id}")
    if outcome.freeze is None:
        text = f"The freeze is cancelled; {outcome.days_returned} freeze days are back"
    else:
        text = (f"The freeze ended on {fmt_day(outcome.freeze.end_date)}; "
                f"{outcome.days_returned} freeze days are back")
    return done(request, url, f"{text} and the membership now ends on "
                              f"{fmt_day(outcome.membership.end_date)}.", "ok", "Freeze ended")


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


@router.post("/desk/members/{member_id}/app-sessions/revoke")
def revoke_app_sessions(request: Request, session: PageSession, actor: DeskPage,
                        member_id: MemberId, back: Back = None):
    """Sign the member out of the member app on every device (a lost phone)."""
    url = back_to(request, back, f"/desk/members/{member_id}")
    ended = member_sessions.revoke_by_staff(session, actor=actor, member_id=member_id)
    return done(request, url, f"Signed out of the member app on {ended} "
                              f"device{'s' if ended != 1 else ''}.", "ok")


# --- member card: log a call / conversation / note ----------------------------------------------

@router.post("/desk/members/{member_id}/interactions")
def log_interaction(request: Request, session: PageSession, actor: DeskPage, member_id: MemberId,
                    kind: Annotated[str, Form(max_length=20)],
                    summary: Annotated[str | None, Form(max_length=500)] = None,
                    outcome: Annotated[str | None, Form(max_length=30)] = None,
                    next_step: Note = None, next_step_date: DayText = None, back: Back = None):
    url = back_to(request, back, f"/desk/members/{member_id}")
    call = kind == InteractionKind.call.value
    data = build(InteractionCreate, kind=kind, summary=clean(summary),
                 outcome=clean(outcome) if call else None, next_step=clean(next_step),
                 next_step_date=clean(next_step_date))
    logged = crm_service.add_interaction(session, actor=actor, member_id=member_id, data=data)
    text = INTERACTION_TITLES.get(logged.kind, logged.kind) + " logged"
    if call and logged.outcome:
        text += f" ({CALL_OUTCOMES.get(logged.outcome, logged.outcome).lower()})"
    if logged.task_id:
        text += f"; a call-back task is due {fmt_day(data.next_step_date)}"
    return done(request, url, text + ".", "ok")
