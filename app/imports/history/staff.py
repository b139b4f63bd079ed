"""staff.csv: the club's staff and their roles; trainers get a trainer profile.

A staff member is found by email. One who already has a role in the club is left as they are.
Every other row goes through the one role rule (`app.clubs.service.check_may_grant`, as whoever
started the import; the CLI is the operator): a manager's import refuses owner and manager rows.
An email without an account gets a new account (an unusable random password: they cannot sign in
until an owner resets it) with the role and, for trainers, a trainer profile; an email that has
an account (another club's staff) only gets an invitation, which that person must accept signed
in (docs/staff.md) — an import never attaches an existing account.
"""
import re
import secrets

from sqlalchemy import select

from app.clubs import service as clubs_service
from app.clubs import staff as staff_service
from app.clubs.models import ClubStaff, StaffUser
from app.core.actors import Actor, Role
from app.core.errors import Forbidden
from app.imports.csvfile import CsvFile, Problem
from app.imports.history.common import Columns, Context, Row, fold
from app.imports.history.report import FileReport
from app.trainers.models import TrainerProfile

KIND = "staff"
FIELDS: dict[str, tuple[str, ...]] = {
    "email": ("e_mail", "mail", "login"),
    "name": ("full_name", "staff_name", "trainer", "mitarbeiter"),
    "role": ("position", "job", "rolle", "funktion"),
}
REQUIRED = ("email", "name", "role")
ROLES = {"owner": Role.owner, "inhaber": Role.owner, "manager": Role.manager,
         "leitung": Role.manager, "studioleitung": Role.manager, "front desk": Role.front_desk,
         "front_desk": Role.front_desk, "frontdesk": Role.front_desk,
         "reception": Role.front_desk, "empfang": Role.front_desk, "theke": Role.front_desk,
         "trainer": Role.trainer, "coach": Role.trainer, "personal trainer": Role.trainer}
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def load_trainers(ctx: Context) -> None:
    """The club's trainers by email (once per import)."""
    if ctx.state.get("trainers_loaded"):
        return
    ctx.state["trainers_loaded"] = True
    rows = ctx.session.execute(
        select(StaffUser.email, TrainerProfile.id).join(TrainerProfile,
                                                        TrainerProfile.user_id == StaffUser.id)
        .where(TrainerProfile.club_id == ctx.club_id))
    for email, trainer_id in rows:
        ctx.trainers[email] = trainer_id


def _role(text: str) -> Role:
    role = ROLES.get(fold(text.replace("-", " ")))
    if role is None:
        raise ValueError("not a role; write owner, manager, front_desk or trainer")
    return role


def _email(text: str) -> str:
    if not EMAIL.fullmatch(text) or len(text) > 254:
        raise ValueError("not an email address")
    return text.lower()


def _parse(row: Row) -> dict | None:
    values = {"email": row.take("email", _email, required=True),
              "name": row.string("name", 200, required=True),
              "role": row.take("role", _role, required=True)}
    return None if row.errors else values


def importer(ctx: Context) -> Actor | None:
    """Who the rows are granted by: the staff member who started the import (None: the operator
    at the CLI). Someone who no longer works in the club may grant nothing."""
    staff_id = ctx.state.get("staff_id")
    if staff_id is None:
        return None
    actor = clubs_service.staff_actor(ctx.session, club_id=ctx.club_id, user_id=staff_id)
    if actor is None:
        raise Forbidden("The person who started this import no longer works in the club",
                        code="forbidden_role")
    return actor


def check(ctx: Context, csv: CsvFile, report: FileReport) -> None:
    cols = Columns(csv, FIELDS, REQUIRED, report,
                   mapping=ctx.options.mapping.get(KIND))
    if report.file_errors:
        return
    load_trainers(ctx)
    by = importer(ctx)
    roles = dict(ctx.session.execute(
        select(StaffUser.email, ClubStaff.role).join(ClubStaff, ClubStaff.user_id == StaffUser.id)
        .where(ClubStaff.club_id == ctx.club_id)).all())
    seen: dict[str, int] = {}
    new_rows: set[int] = set()
    read_problems: list[Problem] = []
    for raw in csv.rows(read_problems):
        report.rows += 1
        row = Row(cols, raw)
        values = _parse(row)
        if values and values["email"] in seen:
            row.problem("email", f"the same email as row {seen[values['email']]}",
                        values["email"])
        if values and values["email"] not in roles:
            try:
                clubs_service.check_may_grant(by, club_id=ctx.club_id, current=None,
                                              role=values["role"])
            except Forbidden as exc:
                row.problem("role", exc.message, row.text("role"))
        if not row.settle(report):
            continue
        seen[values["email"]] = row.number
        if values["email"] in roles:
            report.existing += 1
            if roles[values["email"]] != values["role"].value:
                report.add(Problem(csv.name, row.number, cols.name("role"),
                                   f"already in the club as {roles[values['email']]}; "
                                   "left unchanged", row.text("role"), "warning"))
            continue
        report.new += 1
        new_rows.add(row.number)
        if values["role"] is Role.trainer:
            ctx.trainers.setdefault(values["email"], None)
    for problem in read_problems:
        report.reject(problem)
    ctx.state["staff_new"] = new_rows
    ctx.tick("checking", csv)


def write(ctx: Context, csv: CsvFile, report: FileReport) -> None:
    cols = Columns(csv, FIELDS, REQUIRED, FileReport(csv.name, KIND),
                   mapping=ctx.options.mapping.get(KIND))
    new_rows: set[int] = ctx.state.get("staff_new", set())
    club = clubs_service.get_club(ctx.session, ctx.club_id)
    by = importer(ctx)
    for raw in csv.rows():
        if raw.number not in new_rows:
            continue
        values = _parse(Row(cols, raw))
        if values is None:
            continue
        user = ctx.session.scalar(select(StaffUser).where(StaffUser.email == values["email"]))
        if user is not None:  # someone's existing account: only an invitation, never a grant
            staff_service.invite(ctx.session, by=by, club_id=ctx.club_id, email=values["email"],
                                 name=values["name"], role=values["role"])
            report.created += 1
            continue
        user = clubs_service.create_user(ctx.session, email=values["email"],
                                         name=values["name"],
                                         password=secrets.token_urlsafe(32))
        clubs_service.grant_role(ctx.session, by=by, user=user, club=club, role=values["role"])
        if values["role"] is Role.trainer and ctx.trainers.get(values["email"]) is None:
            profile = TrainerProfile(club_id=ctx.club_id, user_id=user.id, specialities=[],
                                     active=True)
            ctx.session.add(profile)
            ctx.session.flush()
            ctx.trainers[values["email"]] = profile.id
        report.created += 1
    ctx.tick("importing", csv)
