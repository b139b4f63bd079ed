"""The CRM pages over TestClient: leads, the member card's call log, tasks, the member import,
exports, custom fields and duplicates — on SQLite and PostgreSQL."""
import csv
import io
import re
from datetime import timedelta

from sqlalchemy import func, select

from app.core.actors import Actor, Role
from app.core.db import transaction
from app.crm import service as crm_service
from app.crm.models import Interaction, Lead, Task
from app.crm.schemas import TaskCreate
from app.customfields.models import CustomField
from app.members import service as members_service
from app.members.models import Member
from app.members.schemas import MemberCreate, MemberUpdate
from tests.web.conftest import csrf_of, sign_in

MESSY_CSV = (
    "Vorname;Nachname;E-Mail;Telefon;Geburtsdatum\n"
    "Jürgen;Groß;juergen@example.de;0151 23456789;05.03.1980\n"
    "Mia;;mia@example.de;0151 23456781;01.01.1990\n"              # row 3: no last name
    "Lena;Berg;lena(at)example;0151 23456782;02.02.1992\n"       # row 4: bad email
    "Tom;Kurz;tom@example.de;0151 23;03.03.1993\n"              # row 5: not a phone number
    "Ute;Lang;ute@example.de;;31.02.1970\n"                     # row 6: no such day
    "Pia;Hof;pia@example.de;0151 23456785;\n"
).encode("cp1252")  # what Excel saves on a German Windows machine


def _flash(html: str) -> str:
    match = re.search(r'<div class="flash (\w+)"[^>]*data-flash>\s*(.*?)\s*</div>', html, re.DOTALL)
    return f"{match.group(1)}: {re.sub(r'<[^>]+>', '', match.group(2))}" if match else ""


def _key(html: str) -> str:
    return re.search(r'name="key" value="([\w-]+)"', html).group(1)


def _count(db, model, *where) -> int:
    with transaction(db.sessionmaker) as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


# --- leads -------------------------------------------------------------------------------------

def test_walk_in_becomes_a_lead_books_a_trial_and_is_lost_only_with_a_reason(web, club_world, db):
    sign_in(web, club_world.desk.email)
    board = web.get("/crm/leads")
    assert board.status_code == 200 and "New lead" in board.text
    answer = web.post("/crm/leads", data={
        "csrf_token": csrf_of(board.text), "key": _key(board.text), "first_name": "Lena",
        "last_name": "Berg", "phone": "0151 23456789", "source": "walk_in",
        "note": "asked about yoga", "sms_consent": "on"})
    assert answer.status_code == 200 and re.search(r"/crm/leads/\d+$", str(answer.url))
    assert "Lead recorded" in _flash(answer.text) and "Lena Berg is a new lead" in _flash(answer.text)
    lead_id = int(str(answer.url).rsplit("/", 1)[1])
    assert 'data-stage="new"' in answer.text
    assert "Move to contacted" in answer.text and "Book the trial" in answer.text
    assert "Move to won" not in answer.text  # won comes from a sale

    board = web.get("/crm/leads").text
    new_column = board.split('data-stage="new"')[1].split("</section>")[0]
    assert "Lena Berg" in new_column and "Walk-in" in new_column and "+49151" in new_column

    page = web.get(f"/crm/leads/{lead_id}").text
    trial = web.post(f"/crm/leads/{lead_id}/stage", data={
        "csrf_token": csrf_of(page), "stage": "trial_booked",
        "trial_date": club_world.today.isoformat()})
    assert "Moved to trial booked" in _flash(trial.text)
    assert "follow-up task" in _flash(trial.text)
    tasks = web.get("/tasks").text
    assert "Follow up the trial of Lena Berg" in tasks

    no_reason = web.post(f"/crm/leads/{lead_id}/stage", data={
        "csrf_token": csrf_of(page), "stage": "lost"})
    assert no_reason.status_code == 200
    assert _flash(no_reason.text).startswith("error: Please check the form")
    assert "say why the lead was lost" in _flash(no_reason.text)
    backwards = web.post(f"/crm/leads/{lead_id}/stage", data={
        "csrf_token": csrf_of(page), "stage": "contacted"})
    assert "does not go back" in _flash(backwards.text)
    lost = web.post(f"/crm/leads/{lead_id}/stage", data={
        "csrf_token": csrf_of(page), "stage": "lost", "lost_reason": "price",
        "note": "found a cheaper gym"})
    assert "Moved to lost (price)" in _flash(lost.text)
    assert "Reopen (back to new)" in lost.text
    history = lost.text.split('class="timeline lead-history"')[1]
    assert "Trial booked → Lost (price) — found a cheaper gym" in history
    assert "Created as New — asked about yoga" in history
    board = web.get("/crm/leads").text
    assert '<span data-closed="lost">1 lost</span>' in board
    with transaction(db.sessionmaker) as s:
        lead = s.get(Lead, lead_id)
        assert (lead.stage, lead.lost_reason, lead.source) == ("lost", "price", "walk_in")
        member = s.get(Member, lead.member_id)
        assert member.sms_consent is True and member.email_consent is False


def test_a_known_person_is_shown_instead_of_a_second_record(web, club_world, db):
    sign_in(web, club_world.desk.email)
    members_before = _count(db, Member)
    board = web.get("/crm/leads").text
    anna = web.post("/crm/leads", data={
        "csrf_token": csrf_of(board), "key": _key(board), "first_name": "Anne",
        "last_name": "Smith", "phone": "+49 151 1234 5678", "source": "phone"})
    assert anna.status_code == 409
    problem = anna.text.split('id="lead-problem"')[1].split("</div>\n  </div>")[0]
    assert f'href="/desk/members/{club_world.members["anna"]}"' in problem
    assert "Anna Schmidt" in problem and "already has this phone" in problem
    assert "a lead</button>" not in problem  # Anna holds a membership: not a prospect
    assert 'value="Anne"' in anna.text  # the form keeps what was typed

    board = web.get("/crm/leads").text
    dora = web.post("/crm/leads", data={
        "csrf_token": csrf_of(board), "key": _key(board), "first_name": "Dora",
        "last_name": "P.", "email": "DORA@example.com", "source": "referral",
        "source_detail": "Anna"})
    assert dora.status_code == 409 and "Make Dora Prospect a lead" in dora.text
    form = dora.text.split('action="/crm/leads" class="inline"')[1].split("</form>")[0]
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', form))
    made = web.post("/crm/leads", data=fields)
    assert "Dora Prospect is a new lead (Referral)" in _flash(made.text)
    assert _count(db, Member) == members_before
    with transaction(db.sessionmaker) as s:
        lead = s.scalar(select(Lead).where(Lead.member_id == club_world.members["dora"]))
        assert (lead.source, lead.source_detail) == ("referral", "Anna")

    again = web.post("/crm/leads", data=fields)  # the same form twice: recorded once
    assert "already recorded" in _flash(again.text)


def test_a_bad_new_lead_form_is_shown_again_with_the_message(web, club_world, db):
    sign_in(web, club_world.desk.email)
    board = web.get("/crm/leads").text
    answer = web.post("/crm/leads", data={
        "csrf_token": csrf_of(board), "key": _key(board), "first_name": "Solo",
        "last_name": " ", "email": "not-an-email", "source": "walk_in"})
    assert answer.status_code == 422
    assert "Please check the form" in answer.text
    assert 'value="Solo"' in answer.text
    weird = web.post("/crm/leads", data={
        "csrf_token": csrf_of(board), "first_name": "A", "last_name": "B", "source": "tv"})
    assert weird.status_code == 422 and "Source" in weird.text
    assert _count(db, Lead) == 0


def test_assigning_a_lead_and_the_mine_filter(web, club_world, db):
    sign_in(web, club_world.manager.email)
    board = web.get("/crm/leads").text
    made = web.post("/crm/leads", data={
        "csrf_token": csrf_of(board), "key": _key(board), "first_name": "Kai",
        "last_name": "Neu", "email": "kai@example.org", "source": "website"})
    lead_id = int(str(made.url).rsplit("/", 1)[1])
    assigned = web.post(f"/crm/leads/{lead_id}/assign", data={
        "csrf_token": csrf_of(made.text), "assignee": "me"})
    assert "assigned to" in _flash(assigned.text)
    assert "Kai Neu" in web.get("/crm/leads", params={"mine": "1"}).text
    assert "Kai Neu" not in web.get("/crm/leads", params={"source": "walk_in"}).text
    with transaction(db.sessionmaker) as s:
        assert s.get(Lead, lead_id).assignee_user_id == club_world.manager.user_id

    web.cookies.clear()
    sign_in(web, club_world.desk.email)  # a colleague's lead is not the desk's
    assert "Kai Neu" not in web.get("/crm/leads").text
    assert web.get(f"/crm/leads/{lead_id}").status_code == 404


# --- the member card ---------------------------------------------------------------------------

def test_log_a_call_with_a_next_step_makes_a_task_and_shows_on_the_timeline(web, club_world, db):
    anna = club_world.members["anna"]
    with transaction(db.sessionmaker) as s:
        members_service.update_member(s, club_id=club_world.club_id, member_id=anna,
                                      data=MemberUpdate(preferred_channel="sms"))
    sign_in(web, club_world.desk.email)
    card = web.get(f"/desk/members/{anna}").text
    prefs = re.search(r"data-prefs>(.*?)</p>", card, re.DOTALL).group(1)
    assert "Prefers SMS" in re.sub(r"<[^>]+>", "", prefs)
    answer = web.post(f"/desk/members/{anna}/interactions", data={
        "csrf_token": csrf_of(card), "kind": "call", "outcome": "call_back_later",
        "summary": "Thinking about the yearly plan", "next_step": "offer the yearly plan",
        "next_step_date": club_world.today.isoformat()})
    assert "Call logged (call back later); a call-back task is due" in _flash(answer.text)
    timeline = answer.text.split('id="timeline-h"')[1]
    assert "Thinking about the yearly plan" in timeline and "next: offer the yearly plan" in timeline
    assert "Call back: offer the yearly plan" in web.get("/tasks").text
    with transaction(db.sessionmaker) as s:
        task = s.scalar(select(Task).where(Task.member_id == anna, Task.kind == "call_back"))
        assert task.due_date == club_world.today
        assert task.assignee_user_id == club_world.desk.user_id

    email = web.post(f"/desk/members/{anna}/interactions", data={
        "csrf_token": csrf_of(card), "kind": "email", "summary": "Sent the timetable"})
    assert "has not agreed to receive email" in _flash(email.text)
    empty = web.post(f"/desk/members/{anna}/interactions", data={
        "csrf_token": csrf_of(card), "kind": "note", "summary": "  "})
    assert "What was said" in _flash(empty.text)
    date_without_step = web.post(f"/desk/members/{anna}/interactions", data={
        "csrf_token": csrf_of(card), "kind": "call", "summary": "x",
        "next_step_date": club_world.today.isoformat()})
    assert "give next_step" in _flash(date_without_step.text)
    assert _count(db, Interaction, Interaction.member_id == anna,
                  Interaction.kind.in_(["call", "email", "note"])) == 1


# --- tasks -------------------------------------------------------------------------------------

def test_tasks_show_overdue_and_can_be_rescheduled_reassigned_and_cancelled(web, club_world, db):
    boss = Actor(club_world.manager.user_id, "M", club_world.club_id, Role.manager)
    with transaction(db.sessionmaker) as s:
        late = crm_service.create_task(s, actor=boss, data=TaskCreate(
            title="Call Bert about renewing", member_id=club_world.members["bert"],
            kind="renewal_offer", assignee_role="front_desk",
            due_date=club_world.today - timedelta(days=2))).id
        other = crm_service.create_task(s, actor=boss, data=TaskCreate(
            title="Order towels", assignee_role="front_desk")).id
    sign_in(web, club_world.desk.email)
    page = web.get("/tasks").text
    item = page.split(f'id="task-{late}"')[1].split("</li>")[0]
    assert "overdue since" in item
    later = web.post(f"/tasks/{late}/change", data={
        "csrf_token": csrf_of(page), "due_date": (club_world.today + timedelta(days=3)).isoformat(),
        "assignee": "me"})
    assert "Task changed" in _flash(later.text) and "for you" in _flash(later.text)
    assert "Call Bert about renewing" not in later.text.split("</h1>", 1)[1].split("flash")[-1]
    cancelled = web.post(f"/tasks/{other}/cancel", data={"csrf_token": csrf_of(page),
                                                           "reason": "already ordered"})
    assert "Task cancelled" in _flash(cancelled.text)
    again = web.post(f"/tasks/{other}/cancel", data={"csrf_token": csrf_of(page),
                                                       "reason": "twice"})
    assert "already cancelled" in _flash(again.text)
    nothing = web.post(f"/tasks/{late}/change", data={"csrf_token": csrf_of(page),
                                                        "assignee": "keep"})
    assert "Choose a new date" in _flash(nothing.text)
    with transaction(db.sessionmaker) as s:
        task = s.get(Task, late)
        assert task.due_date == club_world.today + timedelta(days=3)
        assert task.assignee_user_id == club_world.desk.user_id
        assert s.get(Task, other).outcome == "cancelled: already ordered"

    web.cookies.clear()
    sign_in(web, club_world.trainer.email)
    assert "Reschedule, reassign or cancel" not in web.get("/tasks").text


# --- role gates and CSRF -----------------------------------------------------------------------

def test_the_desk_is_refused_the_managers_pages_and_trainers_the_leads(web, club_world):
    sign_in(web, club_world.desk.email)
    for path in ("/manage/import", "/manage/custom-fields", "/manage/duplicates",
                 "/manage/export/members.csv", "/manage/duplicates/merge?keep=1&duplicate=2"):
        answer = web.get(path)
        assert answer.status_code == 403, path
        assert "<h1 id=\"error-h\">Not allowed</h1>" in answer.text
    page = web.get("/crm/leads").text
    answer = web.post("/manage/custom-fields", data={"csrf_token": csrf_of(page),
                                                      "label": "Shirt", "type": "text"})
    assert answer.status_code == 403
    nav = page.split('aria-label="Main"')[1].split("</nav>")[0]
    assert "Leads" in nav and "Member data" not in nav
    web.cookies.clear()
    sign_in(web, club_world.trainer.email)
    assert web.get("/crm/leads").status_code == 403


def test_forms_without_the_csrf_token_are_refused(web, club_world, db):
    sign_in(web, club_world.owner.email)
    for path, data in (("/crm/leads", {"first_name": "X", "last_name": "Y", "source": "walk_in"}),
                       ("/manage/custom-fields", {"label": "Shirt", "type": "text"}),
                       (f"/desk/members/{club_world.members['anna']}/interactions",
                        {"kind": "note", "summary": "forged"})):
        answer = web.post(path, data=data)
        assert answer.status_code == 403 and "Form expired" in answer.text, path
        forged = web.post(path, data={**data, "csrf_token": "0" * 64})
        assert forged.status_code == 403, path
    upload = web.post("/manage/import", data={"dates": "day_first"},
                      files={"file": ("forged.csv", b"first_name,last_name\nX,Y\n", "text/csv")})
    assert upload.status_code == 403 and "Form expired" in upload.text
    assert _count(db, Lead) == 0 and _count(db, CustomField) == 0


# --- import and export -------------------------------------------------------------------------

def test_import_dry_run_reports_every_problem_then_skip_bad_imports_the_good_rows(web, club_world,
                                                                                 db):
    sign_in(web, club_world.owner.email)
    members_before = _count(db, Member)
    page = web.get("/manage/import").text
    dry = web.post("/manage/import", data={"csrf_token": csrf_of(page), "dates": "day_first"},
                   files={"file": ("alte_mitglieder.csv", MESSY_CSV, "text/csv")})
    assert dry.status_code == 200 and "/manage/import/" in str(dry.url)
    assert "Dry run: nothing was written" in dry.text
    assert re.search(r'data-count="rows">6<', dry.text)
    assert re.search(r'data-count="created">2<', dry.text)
    assert re.search(r'data-count="errors">4<', dry.text)
    table = dry.text.split('id="problems"')[1].split("</table>")[0]
    rows = re.findall(r"<tr class=\"[^\"]*\"><td>(\d+)</td><td>([^<]*)</td>", table)
    assert ("3", "Nachname") in rows and ("4", "E-Mail") in rows
    assert ("5", "Telefon") in rows and ("6", "Geburtsdatum") in rows
    assert "lena(at)example" in table
    assert _count(db, Member) == members_before  # a dry run writes nothing

    token = re.search(r'/manage/import/([\w-]+)/rejects\.csv', dry.text).group(1)
    rejects = web.get(f"/manage/import/{token}/rejects.csv")
    assert rejects.headers["content-type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(rejects.text.lstrip("\ufeff"))))
    assert [line[0] for line in lines[1:]] == ["Mia", "Lena", "Tom", "Ute"]
    assert lines[0][-1] == "problem"

    refused = web.post(f"/manage/import/{token}", data={
        "csrf_token": csrf_of(dry.text), "mode": "all_or_nothing", "day_first": "on"})
    assert "Not imported" in refused.text and "all_or_nothing" in refused.text
    assert _count(db, Member) == members_before
    done = web.post(f"/manage/import/{token}", data={
        "csrf_token": csrf_of(dry.text), "mode": "skip_bad", "day_first": "on"})
    assert "<h2 id=\"report-h\">Imported</h2>" in done.text
    assert re.search(r'data-count="created">2<', done.text)
    assert _count(db, Member) == members_before + 2
    with transaction(db.sessionmaker) as s:
        jurgen = s.scalar(select(Member).where(Member.email == "juergen@example.de"))
        assert (jurgen.first_name, jurgen.phone, jurgen.birth_date.isoformat()) == (
            "Jürgen", "+4915123456789", "1980-03-05")
    left = web.get(f"/manage/import/{token}/rejects.csv").text
    assert "Lena" in left and "Jürgen" not in left
    twice = web.post(f"/manage/import/{token}", data={
        "csrf_token": csrf_of(dry.text), "mode": "skip_bad", "day_first": "on"})
    assert "already imported" in _flash(twice.text)
    assert _count(db, Member) == members_before + 2


def test_an_unreadable_file_and_another_clubs_upload(web, club_world, world):
    sign_in(web, club_world.owner.email)
    page = web.get("/manage/import").text
    empty = web.post("/manage/import", data={"csrf_token": csrf_of(page)},
                     files={"file": ("empty.csv", b"", "text/csv")})
    assert empty.url.path == "/manage/import" and "was empty" in _flash(empty.text)
    no_names = web.post("/manage/import", data={"csrf_token": csrf_of(page)},
                        files={"file": ("x.csv", b"colour;size\nred;L\n", "text/csv")})
    assert no_names.status_code == 422 and "no column for first name" in no_names.text
    assert web.get("/manage/import/not-a-token-at-all-xxxxxx").status_code == 404
    token = re.search(r"/manage/import/([\w-]+)", str(no_names.url)).group(1)
    other = world.club(name="Elsewhere")
    stranger = world.staff(other, Role.owner)
    web.cookies.clear()
    sign_in(web, stranger.email)
    answer = web.get(f"/manage/import/{token}")
    assert answer.status_code == 404 and "not known" in answer.text


def test_exports_under_the_cookie_session(web, club_world):
    sign_in(web, club_world.manager.email)
    members = web.get("/manage/export/members.csv")
    assert members.status_code == 200 and members.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(members.text.lstrip("\ufeff"))))
    assert {"Anna", "Bert", "Dora"} <= {r["first_name"] for r in rows}
    leads = web.get("/manage/export/leads.csv")
    assert leads.status_code == 200 and "stage" in leads.text.splitlines()[0]


# --- custom fields -----------------------------------------------------------------------------

def test_custom_fields_add_edit_and_archive(web, club_world, db):
    sign_in(web, club_world.owner.email)
    page = web.get("/manage/custom-fields").text
    added = web.post("/manage/custom-fields", data={
        "csrf_token": csrf_of(page), "label": "Shirt size", "type": "choice",
        "choices": "S\nM\nL", "searchable": "on"})
    assert "Shirt size (shirt_size) added" in _flash(added.text)
    row = added.text.split('data-field="shirt_size"')[1].split("</tr>")[0]
    assert "S, M, L" in row
    no_choices = web.post("/manage/custom-fields", data={
        "csrf_token": csrf_of(page), "label": "Level", "type": "choice"})
    assert no_choices.status_code == 200 and _flash(no_choices.text).startswith("error:")
    bad_key = web.post("/manage/custom-fields", data={
        "csrf_token": csrf_of(page), "label": "Employer", "key": "Employer!", "type": "text"})
    assert "Key" in _flash(bad_key.text)
    taken = web.post("/manage/custom-fields", data={
        "csrf_token": csrf_of(page), "label": "Shirt size", "type": "text"})
    assert "already" in _flash(taken.text)
    with transaction(db.sessionmaker) as s:
        field = s.scalar(select(CustomField).where(CustomField.key == "shirt_size"))
        field_id = field.id
    edited = web.post(f"/manage/custom-fields/{field_id}", data={
        "csrf_token": csrf_of(page), "label": "T-shirt size", "choices": "S\nM\nL\nXL",
        "searchable": "on", "required": "on"})
    assert "T-shirt size saved" in _flash(edited.text)
    archived = web.post(f"/manage/custom-fields/{field_id}/archive",
                        data={"csrf_token": csrf_of(page)})
    assert "archived" in _flash(archived.text)
    with transaction(db.sessionmaker) as s:
        field = s.get(CustomField, field_id)
        assert (field.label, field.choices, field.required) == ("T-shirt size",
                                                                ["S", "M", "L", "XL"], True)
        assert field.archived_at is not None
    assert _count(db, CustomField) == 1


# --- duplicates ---------------------------------------------------------------------------------

def test_duplicates_merge_into_the_chosen_record_and_dismiss(web, club_world, db):
    with transaction(db.sessionmaker) as s:
        twin = members_service.create_member(s, club_id=club_world.club_id, data=MemberCreate(
            first_name="Anna", last_name="Schmidt", email="anna.s@example.org",
            phone="+49 151 1234 5678", different_person=True)).id
        s.add(Interaction(club_id=club_world.club_id, member_id=twin, kind="note",
                          summary="met at the open day",
                          occurred_at=club_world_now()))
        other = members_service.create_member(s, club_id=club_world.club_id, data=MemberCreate(
            first_name="Dorothea", last_name="Prospekt", email="dora@example.com",
            different_person=True)).id
    anna = club_world.members["anna"]
    sign_in(web, club_world.manager.email)
    page = web.get("/manage/duplicates")
    assert page.status_code == 200 and "Same phone" in page.text
    assert f"/manage/duplicates/merge?keep={anna}&amp;duplicate={twin}" in page.text
    confirm = web.get("/manage/duplicates/merge", params={"keep": anna, "duplicate": twin})
    assert "Merge Anna Schmidt into Anna Schmidt?" in confirm.text
    merged = web.post("/manage/duplicates/merge", data={
        "csrf_token": csrf_of(confirm.text), "keep_id": anna, "duplicate_id": twin})
    assert merged.url.path == f"/desk/members/{anna}"
    assert "Merged" in _flash(merged.text) and "met at the open day" in merged.text
    again = web.post("/manage/duplicates/merge", data={
        "csrf_token": csrf_of(confirm.text), "keep_id": anna, "duplicate_id": twin})
    assert _flash(again.text).startswith("error:")

    page = web.get("/manage/duplicates").text
    assert "Dorothea" in page
    dismissed = web.post("/manage/duplicates/dismiss", data={
        "csrf_token": csrf_of(page), "member_id": club_world.members["dora"],
        "other_member_id": other})
    assert "different people" in _flash(dismissed.text)
    assert "No likely duplicates" in dismissed.text
    assert _count(db, Member, Member.id == twin) == 0


def club_world_now():
    from app.core import clock

    return clock.now()
