"""The member app's pages (/app/…): mobile-first, server-rendered, in the member's language.

Signing in (no password): `/app/sign-in` asks for an email address or a mobile number;
`/app/sign-in/link` (the emailed link: a page with a button, because mail scanners open links)
and `/app/sign-in/code` (the SMS code) sign in; `/app/sign-in/club` lets a member of several
clubs choose one. The member's own view is `/app` (read-only), their settings `/app/me`
(consents, preferred channel, devices, their data as JSON, signing out), `/app/classes` the club's
classes to book, cancel or wait for (`app.memberapp.classes`). `/app/cancel` cancels a
contract — without signing in (§312k BGB), or signed in. `/app/door` shows the member's door code
(a QR code changing every minute), `/app/freeze` freezes a membership, `/app/training` books
and cancels personal-training sessions with the member's trainer (`app.memberapp.training`).
Rules are in `app.memberapp`; how the cookie, CSRF and the language work is in `app.web.member_kit`.
"""
import json
import secrets
from datetime import date
from typing import Annotated

from fastapi import BackgroundTasks, Form, Query, Request
from fastapi.responses import Response

from app.core.errors import DomainError
from app.memberapp import account, cancel, door, freeze, signin, training, view
from app.memberapp import classes as member_classes
from app.memberapp import sessions as member_sessions
from app.memberapp.signin import Verified
from app.members import service as members_service
from app.web.auth import PageSession, redirect, set_flash, settings_of
from app.web.member_kit import (
    APP,
    CHOICE_COOKIE,
    CODE_COOKIE,
    MEMBER_COOKIE,
    SIGN_IN,
    MaybeMember,
    MemberPage,
    done,
    error_text,
    forget_cookie,
    member_router,
    render,
    set_choice_cookie,
    set_code_cookie,
    set_member_cookie,
    texts,
    zone_for,
)

router = member_router()

Typed = Annotated[str, Form(max_length=254)]
Token = Annotated[str, Form(max_length=200)]
Code = Annotated[str, Form(max_length=20)]
Tick = Annotated[str | None, Form(max_length=5)]
Kind = Annotated[str, Form(max_length=20)]
Reason = Annotated[str | None, Form(max_length=2000)]


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


def _device(request: Request) -> str | None:
    return member_sessions.device_label(request.headers.get("user-agent"))


def _factory(request: Request):
    return request.app.state.sessionmaker


def _later(tasks: BackgroundTasks, deliver) -> None:
    """A message goes out after the answer: its timing says nothing about who is a member."""
    if deliver is not None:
        tasks.add_task(deliver)


def _signed_in(request: Request, verified: Verified) -> Response:
    """After a right link or code: the member's home, or the club choice."""
    if verified.token is None:
        response = redirect(f"{SIGN_IN}/club")
        set_choice_cookie(request, response, verified.choice)
        return response
    response = redirect(APP)
    set_member_cookie(request, response, verified.token)
    forget_cookie(request, response, CODE_COOKIE, path=SIGN_IN)
    forget_cookie(request, response, CHOICE_COOKIE, path=SIGN_IN)
    return response


# --- signing in ---------------------------------------------------------------------------------

@router.get("/app/sign-in")
def sign_in_page(request: Request, member: MaybeMember):
    if member is not None:
        return redirect(APP)
    return render(request, "sign_in.html", {"title": texts(request)("sign_in.title")})


@router.post("/app/sign-in")
def request_sign_in(request: Request, tasks: BackgroundTasks, session: PageSession,
                    address: Typed):
    lang = texts(request).lang
    session.rollback()  # the service works in transactions of its own (SQLite: one writer)
    try:
        requested = signin.request_sign_in(_factory(request), settings=settings_of(request),
                                           typed=address, address=_address(request), lang=lang)
    except DomainError as exc:
        return render(request, "sign_in.html", {"title": texts(request)("sign_in.title"),
                                                "error": error_text(request, exc),
                                                "typed": address}, status=exc.status_code)
    _later(tasks, requested.deliver)
    if requested.channel == "email":
        return render(request, "sign_in_sent.html", {
            "title": texts(request)("sign_in.sent_title"), "minutes": requested.minutes})
    response = redirect(f"{SIGN_IN}/code")
    set_code_cookie(request, response, requested.handle, requested.minutes)
    return response


@router.get("/app/sign-in/link")
def link_page(request: Request, session: PageSession,
              token: Annotated[str, Query(max_length=200)] = ""):
    """The emailed link opens this page; its button signs in (a link preview does not)."""
    return render(request, "sign_in_link.html", {"title": texts(request)("sign_in.title"),
                                                 "token": token})


@router.post("/app/sign-in/link")
def use_link(request: Request, session: PageSession, token: Token):
    texts(request)  # the language, read before the request's transaction ends
    session.rollback()
    try:
        verified = signin.verify_link(_factory(request), settings=settings_of(request),
                                      token=token, address=_address(request),
                                      device=_device(request))
    except DomainError as exc:
        return render(request, "sign_in.html", {"title": texts(request)("sign_in.title"),
                                                "error": error_text(request, exc)},
                      status=exc.status_code)
    return _signed_in(request, verified)


@router.get("/app/sign-in/code")
def code_page(request: Request, session: PageSession):
    if not request.cookies.get(CODE_COOKIE):
        return redirect(SIGN_IN)
    return render(request, "sign_in_code.html", {"title": texts(request)("code.title")})


@router.post("/app/sign-in/code")
def use_code(request: Request, session: PageSession, code: Code):
    texts(request)  # the language, read before the request's transaction ends
    session.rollback()
    try:
        verified = signin.verify_code(_factory(request), settings=settings_of(request),
                                      handle=request.cookies.get(CODE_COOKIE), code=code,
                                      address=_address(request), device=_device(request))
    except DomainError as exc:
        page = "sign_in_code.html" if exc.code == "sign_in_code_wrong" else "sign_in.html"
        return render(request, page, {"title": texts(request)("sign_in.title"),
                                      "error": error_text(request, exc)},
                      status=exc.status_code)
    return _signed_in(request, verified)


@router.get("/app/sign-in/club")
def club_page(request: Request, session: PageSession):
    clubs = signin.choices(session, choice=request.cookies.get(CHOICE_COOKIE))
    if not clubs:
        return redirect(SIGN_IN)
    return render(request, "sign_in_club.html", {"title": texts(request)("club.title"),
                                                 "clubs": clubs})


@router.post("/app/sign-in/club")
def choose_club(request: Request, session: PageSession,
                member_id: Annotated[int, Form(ge=1, le=2**63 - 1)]):
    texts(request)  # the language, read before the request's transaction ends
    session.rollback()
    verified = signin.choose_club(_factory(request), settings=settings_of(request),
                                  choice=request.cookies.get(CHOICE_COOKIE),
                                  member_id=member_id, device=_device(request))
    return _signed_in(request, verified)


@router.post("/app/sign-out")
def sign_out(request: Request, session: PageSession, member: MemberPage):
    member_sessions.sign_out(session, actor=member)
    response = done(request, SIGN_IN, "flash.signed_out", "info")
    forget_cookie(request, response, MEMBER_COOKIE)
    return response


@router.post("/app/sign-out-others")
def sign_out_others(request: Request, session: PageSession, member: MemberPage):
    ended = member_sessions.sign_out_others(session, actor=member)
    return done(request, "/app/me", "flash.signed_out_others", count=ended)


# --- the member's own view ---------------------------------------------------------------------

@router.get("/app")
def home(request: Request, session: PageSession, member: MemberPage):
    overview = view.overview(session, actor=member)
    return render(request, "home.html", {"title": texts(request)("home.title"),
                                         "o": overview})


@router.get("/app/me")
def me_page(request: Request, session: PageSession, member: MemberPage):
    return render(request, "me.html", {
        "title": texts(request)("me.title"),
        "m": members_service.get_member(session, club_id=member.club_id,
                                        member_id=member.member_id),
        "devices": member_sessions.live_sessions(session, club_id=member.club_id,
                                                 member_id=member.member_id)})


@router.post("/app/me/preferences")
def change_preferences(request: Request, session: PageSession, member: MemberPage,
                       email: Tick = None, sms: Tick = None,
                       preferred: Annotated[str | None, Form(max_length=10)] = None):
    changed = account.change_preferences(session, actor=member, email=email == "on",
                                         sms=sms == "on", preferred=preferred or None)
    return done(request, "/app/me", "flash.saved" if changed else "flash.unchanged",
                "ok" if changed else "info")


@router.get("/app/me/data.json")
def my_data(request: Request, session: PageSession, member: MemberPage):
    data = account.export(session, actor=member)
    return Response(json.dumps(data, default=str, ensure_ascii=False, indent=1),
                    media_type="application/json", headers={
                        "Content-Disposition": f'attachment; filename="my-data-'
                                               f'{member.member_id}.json"',
                        "Cache-Control": "no-store"})


# --- cancelling a contract (§312k BGB) -------------------------------------------------------------

@router.get("/app/cancel")
def cancel_page(request: Request, session: PageSession, member: MaybeMember):
    """Reachable without signing in; signed in, the member's running contracts."""
    running = (cancel.running_contracts(session, club_id=member.club_id,
                                        member_id=member.member_id) if member else [])
    return render(request, "cancel.html", {"title": texts(request)("cancel.title"),
                                           "running": running})


@router.post("/app/cancel")
def cancel_without_sign_in(request: Request, tasks: BackgroundTasks, session: PageSession,
                           member_number: Annotated[str, Form(max_length=64)],
                           contact: Typed, kind: Kind = "ordinary", reason: Reason = None):
    lang = texts(request).lang  # read before the request's transaction ends
    session.rollback()
    try:
        receipt = cancel.cancel_without_sign_in(
            _factory(request), settings=settings_of(request), member_number=member_number,
            contact=contact, kind=kind, reason=reason, address=_address(request),
            language=lang)
    except DomainError as exc:
        return render(request, "cancel.html", {
            "title": texts(request)("cancel.title"), "running": [],
            "error": error_text(request, exc), "typed": {
                "member_number": member_number, "contact": contact, "kind": kind,
                "reason": reason}}, status=exc.status_code)
    _later(tasks, receipt.deliver)
    return render(request, "cancel_receipt.html", {"title": texts(request)("receipt.title"),
                                                   "r": receipt})


@router.post("/app/cancel/contract")
def cancel_signed_in(request: Request, tasks: BackgroundTasks, session: PageSession,
                     member: MemberPage,
                     contract_id: Annotated[int, Form(ge=1, le=2**63 - 1)],
                     kind: Kind = "ordinary", reason: Reason = None):
    lang = texts(request).lang  # read before the request's transaction ends
    session.rollback()
    receipt = cancel.cancel_signed_in(_factory(request), settings=settings_of(request),
                                      actor=member, contract_id=contract_id, kind=kind,
                                      reason=reason, language=lang)
    _later(tasks, receipt.deliver)
    return render(request, "cancel_receipt.html", {"title": texts(request)("receipt.title"),
                                                   "r": receipt})


# --- getting in: the door code -------------------------------------------------------------------

@router.get("/app/door")
def door_page(request: Request, session: PageSession, member: MemberPage):
    """The member's door code (QR and digits); `/static/member-door.js` reloads the page when
    the next minute's code is due."""
    return render(request, "door.html", {"title": texts(request)("door.title"),
                                         "d": door.door(session, actor=member)})


# --- freezing a membership ---------------------------------------------------------------------------

@router.get("/app/freeze")
def freeze_page(request: Request, session: PageSession, member: MemberPage):
    return render(request, "freeze.html", {"title": texts(request)("freeze.title"),
                                           "f": freeze.options(session, actor=member),
                                           "key": secrets.token_urlsafe(24)})


@router.post("/app/freeze")
def ask_freeze(request: Request, session: PageSession, member: MemberPage,
               membership_id: Annotated[int, Form(ge=1, le=2**63 - 1)],
               start_date: Annotated[date, Form()],
               days: Annotated[int, Form(ge=1, le=366)],
               key: Annotated[str, Form(max_length=64)]):
    """Freeze now or ask the club (the club's `app_freeze_mode`); the same form twice: one
    request, the same answer."""
    t = texts(request)
    try:
        asked = freeze.request_freeze(session, actor=member, membership_id=membership_id,
                                      start_date=start_date, days=days, key=key)
    except DomainError as exc:  # back to the form (whatever the browser's referrer policy)
        session.rollback()
        response = redirect("/app/freeze")
        set_flash(request, response, error_text(request, exc), "error")
        return response
    if asked.status == "pending":
        return done(request, "/app/freeze", "flash.freeze_requested")
    return done(request, "/app/freeze", "flash.freeze_applied", start=t.day(asked.start_date),
                end=t.day(asked.end_date))


# --- group classes ---------------------------------------------------------------------------------

BookingId = Annotated[int, Form(ge=1, le=2**63 - 1)]


@router.get("/app/classes")
def classes_page(request: Request, session: PageSession, member: MemberPage):
    return render(request, "classes.html", {"title": texts(request)("classes.title"),
                                            "tt": member_classes.timetable(session,
                                                                           actor=member)})


@router.post("/app/classes/book")
def book_class(request: Request, session: PageSession, member: MemberPage,
               occurrence_id: BookingId):
    booked = member_classes.book(session, actor=member, occurrence_id=occurrence_id)
    b = booked.booking
    if booked.again:
        return done(request, "/app/classes", "flash.class_unchanged", "info")
    if b.status == "waitlisted":
        return done(request, "/app/classes", "flash.class_waitlisted", n=b.waitlist_position)
    return done(request, "/app/classes", "flash.class_booked")


@router.post("/app/classes/cancel")
def cancel_class(request: Request, tasks: BackgroundTasks, session: PageSession,
                 member: MemberPage, booking_id: BookingId):
    result = member_classes.cancel(session, actor=member, booking_id=booking_id)
    if result.promoted_id is not None:  # after the commit: a rolled-back one tells nobody
        tasks.add_task(member_classes.notify_promoted, _factory(request),
                       settings_of(request), result.promoted_id)
    if result.again:
        return done(request, "/app/classes", "flash.class_unchanged", "info")
    if result.visit_used:
        return done(request, "/app/classes", "flash.class_cancelled_visit", "info")
    return done(request, "/app/classes", "flash.class_cancelled")


# --- personal training ----------------------------------------------------------------------------

Id = Annotated[int, Form(ge=1, le=2**63 - 1)]


def _training(request: Request, session, member, *, error: str | None = None,
              status: int = 200) -> Response:
    return render(request, "training.html", {"title": texts(request)("training.title"),
                                             "o": training.overview(session, actor=member),
                                             "error": error}, status=status)


@router.get("/app/training")
def training_page(request: Request, session: PageSession, member: MemberPage):
    return _training(request, session, member)


@router.post("/app/training/book")
def book_training(request: Request, session: PageSession, member: MemberPage, trainer_id: Id,
                  start: Annotated[str, Form(max_length=40)]):
    """A taken slot, no package, …: the page again with the reason (409 and the like) and the
    slots as they are now (not a redirect: the status says what happened)."""
    t = texts(request)  # the language, read before the transaction may be given up
    try:
        booked = training.book(session, actor=member, trainer_id=trainer_id, start=start)
    except DomainError as exc:
        session.rollback()
        return _training(request, session, member, error=error_text(request, exc),
                         status=exc.status_code)
    if booked.again:
        return done(request, "/app/training", "flash.pt_again", "info")
    return done(request, "/app/training", "flash.pt_booked",
                time=t.time(booked.session.starts_at, zone_for(request)),
                name=booked.session.trainer_name)


@router.post("/app/training/cancel")
def cancel_training(request: Request, session: PageSession, member: MemberPage,
                    session_id: Id):
    t = texts(request)  # the language, read before the transaction may be given up
    try:
        result = training.cancel(session, actor=member, session_id=session_id)
    except DomainError as exc:  # another member's session: 404; one that started: 409
        session.rollback()
        return _training(request, session, member, error=error_text(request, exc),
                         status=exc.status_code)
    if result.again:
        return done(request, "/app/training", "flash.pt_again", "info")
    when = t.time(result.session.starts_at, zone_for(request))
    if result.session.late_cancel:
        return done(request, "/app/training", "flash.pt_cancelled_late", "warn", time=when,
                    hours=training.cancel_hours(session, actor=member))
    return done(request, "/app/training", "flash.pt_cancelled", time=when)
