"""The member card shows a member's payment problem as the desk should say it."""
from datetime import timedelta

from app.clubs import service as clubs_service
from app.clubs.models import Club
from app.core.actors import Role
from app.core.db import transaction
from app.dues import dunning
from tests.web.conftest import sign_in


def test_the_member_card_shows_what_is_owed_since_when_and_the_reminders(web, world, db):
    club = world.club()
    desk = world.staff(club, Role.front_desk)
    member = world.member(club, "Emma", "Owing")
    with transaction(db.sessionmaker) as s:
        today = clubs_service.club_today(s.get(Club, club.id))
    failed = today - timedelta(days=7)
    world.failed_dues(club, member, failed_on=failed, reminder_days=3)
    for day in range(7, -1, -1):  # the daily runs since the failure (one reminder a day at most)
        with transaction(db.sessionmaker) as s:
            dunning.advance_dunning(s, club_id=club.id, day=today - timedelta(days=day))
    sign_in(web, desk.email)
    html = web.get(f"/desk/members/{int(member)}").text
    assert f"Owes 49.00 since {dunning.nice_day(failed, today)}, 2nd reminder sent" in html
