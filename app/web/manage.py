"""Running the club, for owners and managers: stock (receipts, write-offs), the trainers' week,
the club's staff (invite, change role, remove, reset a password, pending invitations) and the
turnstiles (approve a quarantined ZKTeco device, rotate a device key, revoke a device).

A temporary password, an invitation link or a device key is shown once, in the answer to the
POST that made it, never in a redirect or a cookie. Thin over `app.inventory.service`,
`app.trainers.service`, `app.clubs.staff` (docs/staff.md) and `app.access.devices`
(docs/turnstiles.md).
"""
from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated

from fastapi import Form, Query, Request
from pydantic import ValidationError

from app.access import devices
from app.clubs import service as clubs_service
from app.clubs import staff as staff_service
from app.clubs.schemas import StaffCreate
from app.core.actors import Role
from app.core.errors import Invalid
from app.core.schemas import IdPath
from app.core.types import MAX_ID
from app.inventory import service as inventory_service
from app.inventory.schemas import WriteOffReason
from app.trainers import classes as trainer_classes
from app.trainers import service as trainers_service
from app.trainers import sessions as pt_sessions
from app.web.auth import PageSession, back_to, settings_of
from app.web.kit import (
    ROLE_LABELS,
    Key,
    ManagerPage,
    Text,
    done,
    form_key,
    once,
    page_router,
    render,
)

router = page_router()

DayQ = Annotated[date | None, Query(ge=date(2000, 1, 1), le=date(2100, 12, 31))]
StaffId = IdPath("staff user id")
InvitationId = IdPath("invitation id")
DeviceId = IdPath("device id")
STAFF_PAGE = "/manage/staff"
DEVICES_PAGE = "/manage/devices"


# --- stock ------------------------------------------------------------------------------------

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


# --- the trainers' week --------------------------------------------------------------------

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


# --- staff ------------------------------------------------------------------------------------

def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise Invalid("Choose a role: owner, manager, front desk or trainer",
                      code="invalid_form") from None


def _staff_page(request: Request, session, actor, *, issued: dict | None = None,
                invited: dict | None = None):
    staff = staff_service.list_staff(session, club_id=actor.club_id, limit=500)["items"]
    may_add = [r for r in Role if actor.role == Role.owner or r in staff_service.MANAGER_MAY_MANAGE]
    return render(request, "staff.html", {
        "title": "Staff", "staff": staff, "roles": ROLE_LABELS, "may_add": may_add,
        "is_owner": actor.role == Role.owner, "manager_may": staff_service.MANAGER_MAY_MANAGE,
        "invitations": staff_service.list_invitations(session, club_id=actor.club_id),
        "issued": issued, "invited": invited})


@router.get(STAFF_PAGE)
def staff_page(request: Request, session: PageSession, actor: ManagerPage):
    return _staff_page(request, session, actor)


@router.post(STAFF_PAGE)
def add_staff(request: Request, session: PageSession, actor: ManagerPage,
              email: Annotated[str, Form(max_length=254)],
              name: Annotated[str, Form(max_length=200)],
              role: Annotated[str, Form(max_length=20)]):
    back_to(request, None, STAFF_PAGE)
    try:
        data = StaffCreate(email=email, name=name, role=_role(role))
    except ValidationError as exc:
        field = str(exc.errors()[0].get("loc", ("input",))[0])
        message = exc.errors()[0].get("msg", "not valid")
        raise Invalid(f"Please check the form — {field}: {message}", code="invalid_form") from None
    row, token = staff_service.add_staff(session, actor=actor, email=data.email,
                                         name=data.name, role=data.role)
    return _staff_page(request, session, actor, invited={
        **row, "url": staff_service.accept_url(settings_of(request), token)})


@router.post(STAFF_PAGE + "/invitations/{invitation_id}/link")
def reissue_invitation(request: Request, session: PageSession, actor: ManagerPage,
                       invitation_id: InvitationId):
    back_to(request, None, STAFF_PAGE)
    row, token = staff_service.reissue_invitation(session, actor=actor,
                                                  invitation_id=invitation_id)
    return _staff_page(request, session, actor, invited={
        **row, "url": staff_service.accept_url(settings_of(request), token)})


@router.post(STAFF_PAGE + "/invitations/{invitation_id}/cancel")
def cancel_invitation(request: Request, session: PageSession, actor: ManagerPage,
                      invitation_id: InvitationId):
    back_to(request, None, STAFF_PAGE)
    staff_service.cancel_invitation(session, actor=actor, invitation_id=invitation_id)
    return done(request, STAFF_PAGE, "The invitation is cancelled; its link no longer works.")


@router.post(STAFF_PAGE + "/{user_id}/role")
def change_role(request: Request, session: PageSession, actor: ManagerPage, user_id: StaffId,
                role: Annotated[str, Form(max_length=20)]):
    back_to(request, None, STAFF_PAGE)
    row = staff_service.change_role(session, actor=actor, user_id=user_id, role=_role(role))
    return done(request, STAFF_PAGE, f"{row['name']} is now {ROLE_LABELS[row['role']].lower()}.")


@router.post(STAFF_PAGE + "/{user_id}/remove")
def remove_staff(request: Request, session: PageSession, actor: ManagerPage, user_id: StaffId):
    back_to(request, None, STAFF_PAGE)
    row = staff_service.get_staff(session, club_id=actor.club_id, user_id=user_id)
    staff_service.remove_staff(session, actor=actor, user_id=user_id)
    return done(request, STAFF_PAGE, f"{row['name']} no longer works in this club; their "
                "tasks, sales and history stay.")


@router.post(STAFF_PAGE + "/{user_id}/reset-password")
def reset_password(request: Request, session: PageSession, actor: ManagerPage,
                   user_id: StaffId):
    back_to(request, None, STAFF_PAGE)
    row = staff_service.get_staff(session, club_id=actor.club_id, user_id=user_id)
    password = staff_service.reset_password(session, actor=actor, user_id=user_id)
    return _staff_page(request, session, actor, issued={
        "name": row["name"], "email": row["email"], "password": password, "new": False})


# --- turnstiles --------------------------------------------------------------------------------

def _devices_page(request: Request, session, actor, *, issued: dict | None = None):
    return render(request, "devices.html", {
        "title": "Turnstiles", "devices": devices.list_devices(session, club_id=actor.club_id),
        "issued": issued})


@router.get(DEVICES_PAGE)
def devices_page(request: Request, session: PageSession, actor: ManagerPage):
    return _devices_page(request, session, actor)


@router.post(DEVICES_PAGE + "/{device_id}/approve")
def approve(request: Request, session: PageSession, actor: ManagerPage, device_id: DeviceId,
            networks: Annotated[str, Form(max_length=2000)] = "",
            seen: Annotated[list[str] | None, Form()] = None):
    """The networks typed in plus the seen addresses ticked; none: 422 (never a default)."""
    back_to(request, None, DEVICES_PAGE)
    wanted = [n for n in networks.replace(",", " ").split() if n]
    wanted += [a for a in (seen or [])[:devices.NETWORKS_MAX] if a.strip()]
    device = devices.approve_device(session, club_id=actor.club_id, device_id=device_id,
                                    allowed_networks=wanted or None, approved_by=actor.user_id)
    return done(request, DEVICES_PAGE, f"{device.name} is approved; it may call from "
                f"{', '.join(device.allowed_networks)}.")


@router.post(DEVICES_PAGE + "/{device_id}/rotate-key")
def rotate(request: Request, session: PageSession, actor: ManagerPage, device_id: DeviceId):
    back_to(request, None, DEVICES_PAGE)
    device, key = devices.rotate_key(session, club_id=actor.club_id, device_id=device_id)
    return _devices_page(request, session, actor, issued={"name": device.name, "key": key,
                                                  "protocol": device.protocol})


@router.post(DEVICES_PAGE + "/{device_id}/revoke")
def revoke(request: Request, session: PageSession, actor: ManagerPage, device_id: DeviceId):
    back_to(request, None, DEVICES_PAGE)
    device = devices.revoke_device(session, club_id=actor.club_id, device_id=device_id)
    return done(request, DEVICES_PAGE, f"{device.name} is revoked: it is refused from now on.")
