"""Issue 23: a real export from another system — visits by card, families sharing a phone, an
export with its own column names, and a same-day export with visits later "today"."""
from datetime import timedelta

from sqlalchemy import func, select

from app.access.models import Visit
from app.core import clock
from app.members.models import Member, MemberNote
from app.memberships.models import Membership
from app.privacy import duplicates
from app.trainers.models import PtPackage
from tests.imports.history.conftest import DATA, add_members
from tests.imports.history.test_history_checks import errors, write

MEMBERS = ("external_id,first_name,last_name,email,phone,card\n"
           "M1,Anna,Schmidt,family@example.com,030 1234567,CARD1\n"
           "M2,Ben,Schmidt,family@example.com,030 1234567,CARD2\n"
           "M3,Clara,Weber,clara@example.com,,CARD3\n")
CARDS = ("external_id,first_name,last_name,card\nM1,Anna,Schmidt,CARD1\nM2,Ben,Schmidt,CARD2\n"
         "M3,Clara,Weber,CARD3\n")
PLANS = "plan_id,name,duration_months,price\nP1,Monthly,1,49.90\n"


def test_visits_memberships_and_pt_naming_cards_of_this_imports_members_are_found(
        session, club, run, tmp_path):
    directory = write(
        tmp_path / "set", members=CARDS, plans=PLANS,
        memberships="card,plan,start_date\nCARD1,P1,2025-01-01\ncard 3,P1,2025-02-01\n",
        pt_packages=("card,product,sessions_total,sessions_left,valid_from,valid_until\n"
                     "CARD2,PT Five,5,2,2025-01-01,2025-06-30\n"),
        visits="card,occurred_at\nCARD1,2025-01-05 18:00\nCARD3,2025-02-03 09:00\n"
               "CARD2,2025-03-01 10:00\n")
    dry = run(directory, dry_run=True)
    assert errors(dry) == []
    assert dry.files["visits.csv"].new == 3

    report = run(directory)
    assert errors(report) == [] and report.written
    by_ref = dict(session.execute(select(Member.external_ref, Member.id)).all())
    visits = session.execute(select(Visit.member_id, Visit.membership_id)
                             .order_by(Visit.occurred_at)).all()
    assert [v.member_id for v in visits] == [by_ref["M1"], by_ref["M3"], by_ref["M2"]]
    assert visits[0].membership_id is not None  # inside M1's membership, found by card
    owners = session.scalars(select(Membership.member_id).order_by(Membership.start_date)).all()
    assert owners == [by_ref["M1"], by_ref["M3"]]
    assert session.scalar(select(PtPackage.member_id)) == by_ref["M2"]


def test_a_shared_phone_and_email_is_a_warning_both_are_imported_and_noted(
        session, club, run, tmp_path):
    directory = write(tmp_path / "set", members=MEMBERS)
    report = run(directory)
    assert errors(report) == [] and report.written
    warnings = [(p.row, p.column, p.message) for p in report.problems
                if p.severity == "warning"]
    assert (3, "email", "the same email as row 2 (Anna Schmidt): both are imported") in warnings
    assert (3, "phone", "the same phone as row 2 (Anna Schmidt): both are imported") in warnings
    members = {m.first_name: m for m in session.scalars(select(Member))}
    assert set(members) == {"Anna", "Ben", "Clara"}
    notes = {members_id: text for members_id, text in session.execute(
        select(MemberNote.member_id, MemberNote.text))}
    assert "Ben Schmidt" in notes[members["Anna"].id] and "email" in notes[members["Anna"].id]
    assert "Anna Schmidt" in notes[members["Ben"].id] and "phone" in notes[members["Ben"].id]
    assert members["Clara"].id not in notes
    found = duplicates.find_duplicates(session, club_id=club.id)
    pair = found["items"][0]
    assert {pair["member"]["id"], pair["other"]["id"]} == {members["Anna"].id, members["Ben"].id}

    session.rollback()
    again = run(directory)  # a re-run creates nothing twice
    assert again.files["members.csv"].created == 0
    assert session.scalar(select(func.count()).select_from(Member)) == 3


def test_a_member_of_the_club_with_another_old_id_and_the_same_email_is_another_person(
        db, session, club, run, tmp_path):
    old = add_members(db, club.id, ["X0"])["X0"]  # email x0@example.com
    directory = write(tmp_path / "set", members=(
        "external_id,first_name,last_name,email\nM9,Ida,Ex,X0@example.com\n"))
    report = run(directory)
    assert errors(report) == [] and report.files["members.csv"].created == 1
    assert any(p.severity == "warning" and f"member #{old} has this email too" in p.message
               for p in report.problems)
    ida = session.scalar(select(Member.id).where(Member.external_ref == "M9"))
    noted = set(session.scalars(select(MemberNote.member_id)))
    assert noted == {old, ida}


def test_the_external_id_and_the_card_must_still_be_unique(session, club, run, tmp_path):
    directory = write(tmp_path / "set", members=(
        "external_id,first_name,last_name,card\nM1,Anna,A,C1\nM1,Ben,B,C2\nM3,Cara,C,C1\n"))
    report = run(directory, dry_run=True)
    assert [(r, c) for _, r, c, _ in errors(report)] == [(3, "external_id"), (4, "card")]


def test_history_files_with_english_export_names_need_no_mapping(session, club, run, tmp_path):
    directory = write(
        tmp_path / "set", members=CARDS,
        plans="plan_code,plan_name,duration_months,price\nP1,Monthly,1,49.90\n",
        memberships=("membership_external_id,member_external_id,plan_code,start_date,price_paid\n"
                     "A1,M1,P1,2025-01-01,45.00\n"),
        freezes="membership_external_id,start_date,end_date\nA1,2025-01-10,2025-01-12\n",
        visits="client,occurred_at\nM3,2025-01-05 18:00\n")
    report = run(directory)
    assert errors(report) == [] and report.written, report.problems
    assert session.scalar(select(Membership.price)) == 45


def test_a_mapping_per_file_names_the_columns(session, club, run, tmp_path):
    directory = write(
        tmp_path / "set", members=CARDS, plans=PLANS,
        memberships="Kontrakt,Wer,Tarifcode,Ab\nA1,M1,P1,2025-01-01\n",
        visits="Wer,Wann\nM1,2025-01-05 18:00\n")
    mapping = {"memberships": {"membership_id": "Kontrakt", "member": "Wer", "plan": "Tarifcode",
                               "start_date": "Ab"},
               "visits": {"member": "Wer", "occurred_at": "Wann"}}
    report = run(directory, mapping=mapping)
    assert errors(report) == [] and report.written, report.problems
    assert session.scalar(select(Membership.external_ref)) == "A1"
    assert session.scalar(select(func.count()).select_from(Visit)) == 1
    session.rollback()
    bad = run(directory, dry_run=True, mapping={"visits": {"member": "Nope"}})
    assert any("Nope" in m for _, _, _, m in errors(bad))


def test_future_visits_of_a_same_day_export_are_one_warning_and_skipped(
        session, club, run, tmp_path):
    soon = (clock.now() + timedelta(hours=3)).isoformat()
    later = (clock.now() + timedelta(hours=5)).isoformat()
    past = (clock.now() - timedelta(days=3)).isoformat()
    directory = write(tmp_path / "set", members=CARDS,
                      visits=f"member,occurred_at\nM1,{past}\nM1,{soon}\nM2,{later}\n")
    report = run(directory)
    assert errors(report) == [] and report.written
    future = [p for p in report.problems if "future" in p.message]
    assert len(future) == 1 and future[0].severity == "warning"
    assert "2 visits" in future[0].message
    assert session.scalar(select(func.count()).select_from(Visit)) == 1

    session.rollback()
    refused = run(directory, dry_run=True, future_visits="refuse")
    assert [r for _, r, _, m in errors(refused) if "future" in m] == [3, 4]



def test_the_check_report_puts_the_files_totals_beside_the_clubs(session, club, run):
    dry = run(DATA / "clean", dry_run=True)
    assert not dry.figures["club_after_import"] and dry.figures["club"]["members"] == 0
    report = run(DATA / "clean")
    files, in_club = report.figures["files"], report.figures["club"]
    assert report.figures["club_after_import"]
    assert files == in_club
    assert files["members"] == 6 and sum(files["visits_per_month"].values()) == 16
    assert files["revenue_per_month"]["2024-06"] == "499.00"
    assert ("members", "6", "6") in report.comparison
    assert "figures" in report.as_dict()


def test_cards_families_and_a_mapped_export_in_one_run(session, club, run, tmp_path):
    """The issue's "done when": visits by card, a family sharing a phone and an email, and an
    export with its own column names, imported in one run."""
    directory = write(
        tmp_path / "set", members=MEMBERS,
        plans="plan_code,plan_name,duration_months,price\nP1,Monthly,1,49.90\n",
        memberships=("contract,customer,Tarif,Ab,price_paid\n"
                     "A1,M1,P1,2025-01-01,45.00\nA2,M2,P1,2025-01-01,45.00\n"),
        visits="card,occurred_at\nCARD1,2025-01-05 18:00\nCARD2,2025-01-06 18:00\n")
    report = run(directory, mapping={"memberships": {"plan": "Tarif", "start_date": "Ab"}})
    assert errors(report) == [] and report.written, report.problems
    assert session.scalar(select(func.count()).select_from(Member)) == 3
    assert session.scalar(select(func.count()).select_from(Visit).where(
        Visit.membership_id.is_not(None))) == 2
    assert report.figures["files"] == report.figures["club"]
