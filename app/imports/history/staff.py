"""staff.csv: the club's staff and their roles; trainers get a trainer profile.

A staff member is found by email. One who already has a role in the club is left as they are;
one who works in another club gets a role here. New staff users get an unusable random password:
they cannot sign in until an owner sets one (docs/import.md).
"""
import re
import secrets

from sqlalchemy import select

from app.clubs import service as clubs_service
from app.clubs.models import ClubStaff, StaffUser
from app.clubs.schemas import Role
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


def check(ctx: Context, csv: CsvFile, report: FileReport) -> None:
    cols = Columns(csv, FIELDS, REQUIRED, report)
    if report.file_errors:
        return
    load_trainers(ctx)
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
    cols = Columns(csv, FIELDS, REQUIRED, FileReport(csv.name, KIND))
    new_rows: set[int] = ctx.state.get("staff_new", set())
    club = clubs_service.get_club(ctx.session, ctx.club_id)
    for raw in csv.rows():
        if raw.number not in new_rows:
            continue
        values = _parse(Row(cols, raw))
        if values is None:
            continue
        user = ctx.session.scalar(select(StaffUser).where(StaffUser.email == values["email"]))
        if user is None:
            user = clubs_service.create_user(ctx.session, email=values["email"],
                                             name=values["name"],
                                             password=secrets.token_urlsafe(32))
        clubs_service.grant_role(ctx.session, user=user, club=club, role=values["role"])
        if values["role"] is Role.trainer and ctx.trainers.get(values["email"]) is None:
            profile = TrainerProfile(club_id=ctx.club_id, user_id=user.id, specialities=[],
                                     active=True)
            ctx.session.add(profile)
            ctx.session.flush()
            ctx.trainers[values["email"]] = profile.id
        report.created += 1
    ctx.tick("importing", csv)
