"""The member app's pages for joining online and renewing (`/app/join`, `/app/renew`).

`/app/join` lists the club's plans sold online (`?club=<id>` names the club on an instance with
several; with one club it is that one); `/app/join/{plan}` asks for the person's details, shows
the contract's terms and takes the signature (the full name typed, "I accept"); the answer is
the same confirmation page whether a new member was made or the address was registered already
("we have sent you an email"). `/app/renew` does the same for a signed-in member without a
running contract. The rules are in `app.memberapp.join`.
"""
import secrets
from datetime import date
from typing import Annotated

from fastapi import BackgroundTasks, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.clubs import service as clubs_service
from app.clubs.models import Club
from app.core.errors import DomainError, NotFound
from app.core.types import MAX_ID
from app.memberapp import join
from app.web.auth import PageSession, redirect, settings_of
from app.web.member_kit import (
    MaybeMember,
    MemberPage,
    _club,
    error_text,
    member_router,
    render,
    texts,
)

router = member_router()

Text = Annotated[str, Form(max_length=254)]
Optional = Annotated[str | None, Form(max_length=254)]
Tick = Annotated[str | None, Form(max_length=5)]
Key = Annotated[str, Form(max_length=64)]
ClubId = Annotated[int | None, Query(ge=1, le=MAX_ID)]


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


def _the_club(request: Request, session: Session, club_id: int | None) -> Club:
    """The club joined: the one named, else the signed-in member's or the instance's only one;
    it becomes the page's club (its name, its language) — before any text is read."""
    club = None
    if club_id is not None:
        club = session.get(Club, club_id)
        if club is not None:
            request.state.club = club
    else:
        club = _club(request)
    if club is None:
        raise NotFound("Open the join link your club gives you", code="join_club_unknown")
    return club


def _form(request: Request, session: Session, club_id: int, plan_id: int, *,
          renewing: bool = False, member_id: int | None = None, typed: dict | None = None,
          error: str | None = None, status: int = 200) -> Response:
    t = texts(request)
    club = clubs_service.get_club(session, club_id)
    plan = join.online_plan(session, club=club, plan_id=plan_id)
    start = (join.renew_start(session, club_id=club.id, member_id=member_id) if renewing
             else clubs_service.club_today(club))
    terms = join.terms_text(t.lang, club=club, plan=plan, start=start)
    return render(request, "join_form.html", {
        "title": t("join.title"), "plan": plan, "terms": terms,
        "shown": join.digest_of(terms), "renewing": renewing, "club_id": club.id,
        "key": (typed or {}).get("key") or secrets.token_urlsafe(24), "typed": typed or {},
        "error": error}, status=status)


def _signed(request: Request, tasks: BackgroundTasks, signed: join.Signed,
            renewing: bool) -> Response:
    if signed.deliver is not None:
        tasks.add_task(signed.deliver)  # after the answer: its timing tells nobody anything
    return render(request, "join_done.html", {"title": texts(request)("join.done_title"),
                                              "s": signed, "renewing": renewing})


# --- joining -----------------------------------------------------------------------------------

@router.get("/app/join")
def join_page(request: Request, session: PageSession, member: MaybeMember,
              club: ClubId = None):
    the_club = _the_club(request, session, club)
    plans = join.online_plans(session, club=the_club)
    return render(request, "join.html", {"title": texts(request)("join.title"),
                                         "plans": plans, "club_id": the_club.id,
                                         "renewing": member is not None})


@router.get("/app/join/{plan_id}")
def join_form(request: Request, session: PageSession, member: MaybeMember,
              plan_id: int, club: ClubId = None):
    if member is not None:
        return redirect(f"/app/renew/{plan_id}")
    return _form(request, session, _the_club(request, session, club).id, plan_id)


@router.post("/app/join/{plan_id}")
def sign_join(request: Request, tasks: BackgroundTasks, session: PageSession, plan_id: int,
              club_id: Annotated[int, Form(ge=1, le=MAX_ID)],
              first_name: Text, last_name: Text, email: Text, key: Key,
              shown: Annotated[str, Form(max_length=64)],
              typed_name: Text = "", phone: Optional = None,
              birth_date: Annotated[date | None, Form()] = None, email_ok: Tick = None,
              sms_ok: Tick = None, accept: Tick = None):
    club_id = _the_club(request, session, club_id).id
    lang = texts(request).lang  # read before the request's transaction ends
    session.rollback()  # the service works in transactions of its own (SQLite: one writer)
    typed = {"first_name": first_name, "last_name": last_name, "email": email, "phone": phone,
             "birth_date": birth_date, "email_ok": email_ok == "on", "sms_ok": sms_ok == "on",
             "typed_name": typed_name, "key": key}
    try:
        signed = join.join(
            request.app.state.sessionmaker, settings=settings_of(request), club_id=club_id,
            plan_id=plan_id, details=join.Details(first_name, last_name, email, phone,
                                                  birth_date, email_ok == "on", sms_ok == "on"),
            signing=join.Signing(typed_name, accept == "on", key, shown),
            address=_address(request), lang=lang)
    except DomainError as exc:
        if exc.status_code == 404:
            raise
        session.rollback()
        if exc.code == "join_terms_changed":
            typed.pop("key")
        return _form(request, session, club_id, plan_id, typed=typed,
                     error=error_text(request, exc), status=exc.status_code)
    return _signed(request, tasks, signed, renewing=False)


# --- renewing ----------------------------------------------------------------------------------

@router.get("/app/renew")
def renew_page(request: Request, session: PageSession, member: MemberPage):
    club = _the_club(request, session, None)
    return render(request, "join.html", {
        "title": texts(request)("join.renew_title"), "renewing": True, "club_id": club.id,
        "plans": join.online_plans(session, club=club),
        "running": join.running_contract(session, club_id=club.id,
                                         member_id=member.member_id)})


@router.get("/app/renew/{plan_id}")
def renew_form(request: Request, session: PageSession, member: MemberPage, plan_id: int):
    return _form(request, session, member.club_id, plan_id, renewing=True,
                 member_id=member.member_id)


@router.post("/app/renew/{plan_id}")
def sign_renew(request: Request, tasks: BackgroundTasks, session: PageSession,
               member: MemberPage, plan_id: int, key: Key,
               shown: Annotated[str, Form(max_length=64)], typed_name: Text = "",
               accept: Tick = None):
    lang = texts(request).lang  # read before the request's transaction ends
    session.rollback()
    try:
        signed = join.renew(request.app.state.sessionmaker, settings=settings_of(request),
                            actor=member, plan_id=plan_id,
                            signing=join.Signing(typed_name, accept == "on", key, shown),
                            address=_address(request), lang=lang)
    except DomainError as exc:
        if exc.status_code == 404:
            raise
        session.rollback()
        return _form(request, session, member.club_id, plan_id, renewing=True,
                     member_id=member.member_id,
                     typed={"typed_name": typed_name,
                            "key": None if exc.code == "join_terms_changed" else key},
                     error=error_text(request, exc), status=exc.status_code)
    return _signed(request, tasks, signed, renewing=True)
