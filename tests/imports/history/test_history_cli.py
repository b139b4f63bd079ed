"""`fitclub import history DIR` through typer's CliRunner."""
from sqlalchemy import func, select
from typer.testing import CliRunner

from app.access.models import Visit
from app.memberships.models import Membership
from tests.imports.history.conftest import DATA, add_members
from tests.imports.history.test_history_checks import write


def test_dry_run_prints_the_problems_and_exits_1_writing_nothing(cli, db, session, club):
    add_members(db, club.id, ["M001", "M002", "M003"])
    result = CliRunner().invoke(cli, ["import", "history", str(DATA / "messy"), "--club",
                                      str(club.id), "--dry-run"])
    assert result.exit_code == 1, result.output
    assert "dry run: nothing was written" in result.output
    assert "memberships.csv, row 5, column member: no member with this old-system id" \
        in result.output
    assert "checking visits.csv" in result.output  # the progress bar's line
    assert session.scalar(select(func.count()).select_from(Membership)) == 0


def test_import_then_again_exits_0_and_creates_nothing_twice(cli, session, club):
    args = ["import", "history", str(DATA / "clean"), "--club", str(club.id)]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "memberships.csv (memberships): 10 rows — created 10" in first.output
    assert "rows per second: memberships" in first.output
    assert "check against the old system" in first.output and "club after import" in first.output
    assert "≠" not in first.output  # every figure of the files is the club's
    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 0, second.output
    assert "created 0, already imported 10" in second.output
    assert session.scalar(select(func.count()).select_from(Visit)) == 16


def test_skip_bad_writes_the_rejects_next_to_the_files(cli, db, session, club, copy_of):
    add_members(db, club.id, ["M001", "M002", "M003"])
    directory = copy_of("messy")
    result = CliRunner().invoke(cli, ["import", "history", str(directory), "--club",
                                      str(club.id), "--skip-bad"])
    assert result.exit_code == 0, result.output
    assert (directory / "rejects" / "memberships.rejects.csv").exists()
    assert (directory / "rejects" / "visits.rejects.csv").exists()
    assert "rows not imported from plans.csv" in result.output


def test_a_directory_without_history_files_or_a_bad_reference_is_refused(cli, club, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    result = CliRunner().invoke(cli, ["import", "history", str(tmp_path), "--club", str(club.id)])
    assert result.exit_code == 2 and "no history files" in result.output
    result = CliRunner().invoke(cli, ["import", "history", str(DATA / "clean"), "--club",
                                      str(club.id), "--reference", "name"])
    assert result.exit_code == 2


def test_the_command_line_takes_a_mapping_per_file_and_refuses_a_bad_one(
        cli, session, club, tmp_path):
    directory = write(tmp_path / "set", members="external_id,first_name,last_name\nM1,Anna,A\n",
                      visits="Wer,Wann\nM1,2025-01-05 18:00\n")
    base = ["import", "history", str(directory), "--club", str(club.id)]
    bad = CliRunner().invoke(cli, [*base, "--mapping", "visits=member"])
    assert bad.exit_code == 2 and "FILE:FIELD=COLUMN" in bad.output
    done = CliRunner().invoke(cli, [*base, "--mapping", "visits:member=Wer",
                                    "--mapping", "visits.csv:occurred_at=Wann"])
    assert done.exit_code == 0, done.output
    assert session.scalar(select(func.count()).select_from(Visit)) == 1
