"""Named source layouts (issue 23): a source's own export, as its documentation describes it,
imports with `--from <source>` and no mapping — each example set in docs/examples/<source>/
end to end into a new club, through the command line and the API."""
import shutil
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from app.access.models import Visit
from app.core.db import transaction
from app.core.errors import Invalid
from app.imports.history.common import Options
from app.imports.history.service import find_files, import_history
from app.imports.history.sources import SOURCES, source_layout
from app.members.models import Member, MemberNote
from tests.imports.history.conftest import upload, wait

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


@pytest.fixture
def example(tmp_path):
    def copy(source: str) -> Path:
        return shutil.copytree(EXAMPLES / source, tmp_path / source)
    return copy


def local(session, visit_ids, zone="Europe/Berlin"):
    return [(ref, at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M"))
            for ref, at in session.execute(
                select(Member.external_ref, Visit.occurred_at).join(Member,
                                                                    Member.id == Visit.member_id)
                .where(Visit.id.in_(visit_ids)).order_by(Visit.occurred_at))]


PERFECTGYM_VISITS = [("100231", "2026-05-04 07:42"), ("100232", "2026-05-04 18:10"),
                     ("100245", "2026-05-12 06:30"), ("100231", "2026-06-02 07:40"),
                     ("100260", "2026-06-10 17:05")]


def check_perfectgym(session, club_id):
    members = {m.external_ref: m for m in session.scalars(
        select(Member).where(Member.club_id == club_id))}
    assert {ref: (m.first_name, m.last_name, m.gender, m.phone)
            for ref, m in members.items()} == {
        "100231": ("Anna", "Kowalska", "female", "+48601234567"),
        "100232": ("Jan", "Kowalski", "male", "+48601234567"),
        "100245": ("Piotr", "Nowak", "male", "+48512998101"),
        "100260": ("Zofia", "Wiśniewska", "female", "+48698450322")}
    noted = set(session.scalars(select(MemberNote.member_id)))
    assert {members["100231"].id, members["100232"].id} <= noted  # the shared phone, noted
    visits = session.scalars(select(Visit.id).where(Visit.club_id == club_id)).all()
    assert local(session, visits) == PERFECTGYM_VISITS


def test_perfectgym_reports_import_from_the_command_line_with_no_mapping(
        cli, session, world, example):
    club = world.club()
    directory = example("perfectgym")
    args = ["import", "history", str(directory), "--club", str(club.id), "--from", "perfectgym"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "Users cards.csv (members): 4 rows — created 4" in result.output
    assert "Visits in club.csv (visits): 5 rows" in result.output
    assert "the same phone as row 2 (Anna Kowalska): both are imported" in result.output
    assert "≠" not in result.output  # the files' totals are the club's
    check_perfectgym(session, club.id)

    session.rollback()
    again = CliRunner().invoke(cli, args)  # a re-run creates nothing twice
    assert again.exit_code == 0, again.output
    assert "created 0, already imported 4" in again.output
    check_perfectgym(session, club.id)


def test_perfectgym_reports_import_over_the_api(client, session, world, example):
    club = world.club()
    owner = world.staff(club, "owner")
    session.rollback()
    r = upload(client, owner.headers, example("perfectgym"), **{"from": "perfectgym"})
    assert r.status_code == 202, r.text
    job = wait(client, owner.headers, r.json()["id"])
    assert job["status"] == "done", job
    assert job["report"]["status"] == "imported", job["report"]
    assert job["options"]["source"] == "perfectgym"
    session.rollback()
    check_perfectgym(session, club.id)


def test_a_users_mapping_wins_over_the_layout_and_missing_layout_columns_are_no_error(
        db, session, world, tmp_path):
    club = world.club()
    directory = tmp_path / "pgm"
    directory.mkdir()
    (directory / "Users cards.csv").write_text(
        "User number,Name,Last name,Nickname\n7,Anna,Kowalska,Ania\n", encoding="utf-8")
    files, ignored = find_files(directory, source_layout("perfectgym"))
    assert list(files) == ["members"] and ignored == []
    with transaction(db.sessionmaker) as s:
        report = import_history(s, club_id=club.id, files=files, options=Options(
            source="perfectgym", mapping={"members": {"first_name": "Nickname"}}))
    assert report.errors == 0 and report.written
    assert session.scalar(select(Member.first_name)) == "Ania"


def test_without_from_a_sources_report_names_are_not_history_files(tmp_path):
    shutil.copytree(EXAMPLES / "perfectgym", tmp_path / "pgm")
    files, ignored = find_files(tmp_path / "pgm")
    assert files == {} and sorted(ignored) == ["Users cards.csv", "Visits in club.csv"]


def test_an_unknown_source_is_a_clear_error_naming_the_known_ones(
        cli, client, session, world, example):
    with pytest.raises(Invalid, match="unknown source 'mindbody'; the known sources are "
                                      + ", ".join(sorted(SOURCES))):
        source_layout("mindbody")
    club = world.club()
    owner = world.staff(club, "owner")
    session.rollback()
    directory = example("perfectgym")
    result = CliRunner().invoke(cli, ["import", "history", str(directory), "--club",
                                      str(club.id), "--from", "mindbody"])
    assert result.exit_code == 2
    said = " ".join(result.output.replace("│", " ").split())
    assert "unknown source 'mindbody'; the known sources are perfectgym" in said, said
    r = upload(client, owner.headers, directory, **{"from": "mindbody"})
    assert r.status_code == 422 and r.json()["error"] == "unknown_source", r.text
    assert session.scalar(select(Member.id)) is None  # nothing written
