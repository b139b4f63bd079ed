"""The history import's checks one by one: references, freezes, PT packages, staff, visits."""
from datetime import UTC, date, datetime

from sqlalchemy import select

from app.access.models import Visit
from app.clubs.models import ClubStaff, StaffUser
from app.core.db import transaction
from app.members.models import Member
from app.memberships.models import Membership
from app.trainers.models import PtPackage, PtProduct, TrainerProfile
from tests.imports.history.conftest import DATA, add_members, counts

PLANS = "plan_id,name,duration_months,price\nP1,Monthly,1,49.90\n"


def write(directory, **files):
    directory.mkdir(exist_ok=True)
    for name, content in files.items():
        (directory / f"{name}.csv").write_text(content, encoding="utf-8")
    return directory


def errors(report):
    return [(p.file, p.row, p.column, p.message) for p in report.problems
            if p.severity == "error"]


def test_a_dry_run_of_a_fresh_club_counts_on_the_members_csv_and_writes_nothing(
        session, club, run):
    before = counts(session)
    session.rollback()
    report = run(DATA / "clean", dry_run=True)
    assert report.errors == 0, report.problems
    assert {f.kind: f.new for f in report.files.values()} == {
        "members": 6, "staff": 2, "plans": 3, "memberships": 10, "freezes": 1, "pt_packages": 1,
        "visits": 16}
    assert counts(session) == before


def test_members_are_found_by_card_or_email_and_shared_references_are_refused(
        db, session, club, run, tmp_path):
    add_members(db, club.id, ["M001", "M002"])
    with transaction(db.sessionmaker) as s:  # a second member with M001's email
        s.add(Member(club_id=club.id, first_name="Twin", last_name="Last1",
                     email="m001@example.com"))
    by_card = write(tmp_path / "card", plans=PLANS, memberships=(
        "card,plan,start\nCARDM001,P1,2025-01-01\ncard m002,P1,2025-01-01\nCARDX,P1,2025-01-01\n"))
    report = run(by_card, reference="card", dry_run=True)
    assert errors(report) == [("memberships.csv", 4, "card", "no member with this card")]

    by_email = write(tmp_path / "email", plans=PLANS, memberships=(
        "email,plan,start\nM001@Example.com,P1,2025-01-01\nm002@example.com,P1,2025-01-01\n"))
    report = run(by_email, reference="email", dry_run=True)
    shared = "2 members have this email; use another reference (e.g. --reference external_id)"
    assert errors(report) == [("memberships.csv", 2, "email", shared)]


def test_freezes_must_lie_in_their_membership_and_not_overlap(db, session, club, run, tmp_path):
    add_members(db, club.id, ["M001"])
    directory = write(tmp_path / "set", plans=PLANS, memberships=(
        "membership_id,member,plan,start_date\nA,M001,P1,2025-01-01\n"), freezes=(
        "membership,start_date,end_date\nA,2025-01-05,2025-01-10\nA,2025-01-09,2025-01-12\n"
        "A,2025-01-25,2025-02-05\nB,2025-01-05,2025-01-06\n"))
    report = run(directory, dry_run=True)
    assert [(r, c) for _, r, c, _ in errors(report)] == [(3, "start_date"), (4, "start_date"),
                                                         (5, "membership")]
    assert "outside its membership (2025-01-01 to 2025-01-31)" in errors(report)[1][3]


def test_pt_packages_keep_their_balance_and_unknown_products_are_created_inactive(
        db, session, club, run, tmp_path):
    add_members(db, club.id, ["M001"])
    directory = write(tmp_path / "set", staff="email,name,role\nkim@club.test,Kim,Trainer\n",
                      pt_packages=(
        "package_id,member,product,trainer,sessions_total,sessions_left,price,valid_from,"
        "valid_until\n"
        "K1,M001,PT Five,kim@club.test,5,2,\"250,00\",2026-01-01,2026-06-30\n"
        "K2,M001,PT Five,nobody@club.test,5,1,250,2026-01-01,2026-06-30\n"
        "K3,M001,PT Five,,5,7,250,2026-01-01,2026-06-30\n"))
    report = run(directory, skip_bad=True)
    assert [(r, c) for _, r, c, _ in errors(report)] == [(3, "trainer"), (4, "sessions_left")]
    package = session.scalar(select(PtPackage))
    product = session.get(PtProduct, package.product_id)
    trainer = session.get(TrainerProfile, package.trainer_id)
    assert (package.sessions_total, package.sessions_left, str(package.price)) == (5, 2, "250.00")
    assert (product.name, product.sessions, product.active) == ("PT Five", 5, False)
    assert session.scalar(select(StaffUser.email).where(StaffUser.id == trainer.user_id)) == \
        "kim@club.test"
    assert "created the product 'PT Five'" in report.notes[0]


def test_staff_are_given_their_role_once_and_bad_roles_are_refused(
        db, session, club, world, run, tmp_path):
    manager = world.staff(club, "manager")
    directory = write(tmp_path / "set", staff=(
        f"E-Mail,Name,Rolle\n{manager.email},Boss,owner\nnew@club.test,New Person,Empfang\n"
        "bad@club.test,Bad,janitor\n"))
    report = run(directory, skip_bad=True)
    assert [(r, c) for _, r, c, _ in errors(report)] == [(4, "Rolle")]
    assert any(p.severity == "warning" and "left unchanged" in p.message
               for p in report.problems)
    roles = dict(session.execute(select(StaffUser.email, ClubStaff.role).join(
        ClubStaff, ClubStaff.user_id == StaffUser.id)).all())
    assert roles == {manager.email: "manager", "new@club.test": "front_desk"}


def test_visits_by_card_in_club_time_or_with_an_offset_are_the_same_visit(
        db, session, club, run, tmp_path):
    add_members(db, club.id, ["M001"])
    directory = write(tmp_path / "set", visits=(
        "card,timestamp\nCARDM001,2025-07-01 18:00\nCARDM001,2025-07-01T16:00:00Z\n"
        "CARDM001,01.07.2025 18:00:00\nCARDM001,2025-07-02 09:15\n"))
    report = run(directory)
    visits = session.scalars(select(Visit.occurred_at).order_by(Visit.occurred_at)).all()
    assert visits == [datetime(2025, 7, 1, 16, 0, tzinfo=UTC), datetime(2025, 7, 2, 7, 15,
                                                                        tzinfo=UTC)]
    fr = report.files["visits.csv"]
    assert (fr.rows, fr.created, fr.existing, fr.warnings) == (4, 2, 2, 4)  # no memberships


def test_a_renewal_named_in_the_file_wins_and_must_be_the_same_members(
        db, session, club, run, tmp_path):
    add_members(db, club.id, ["M001", "M002"])
    directory = write(tmp_path / "set", plans=PLANS, memberships=(
        "id,member,plan,start,renews\nA,M001,P1,2025-01-01,\nB,M001,P1,2025-06-01,A\n"
        "C,M002,P1,2025-01-01,A\n"))
    report = run(directory, skip_bad=True)
    assert [(r, c) for _, r, c, _ in errors(report)] == [(4, "renews")]
    ms = {m.external_ref: m for m in session.scalars(select(Membership))}
    assert ms["B"].renews_id == ms["A"].id  # 4 months later, but the file says so
    assert ms["B"].end_date == date(2025, 6, 30)
