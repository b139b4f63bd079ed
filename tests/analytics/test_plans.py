"""SQLite plans (no statistics, as in a new user's database): a lookup repeated for each
ending membership or member reads that membership's or member's rows through their index, never
all of the club's rows through a club-level index (that made the touchpoint report take minutes
on a 2,000-member club with the engine's history; docs/analytics.md, "SQLite")."""
import re

import pytest
from sqlalchemy import event

from app.analytics import service
from app.core.db import transaction
from tests.analytics.conftest import AS_OF

REPORTS = {
    "touchpoints": lambda s, club: service.touchpoint_effectiveness(s, club_id=club, as_of=AS_OF),
    "channel": lambda s, club: service.renewal_breakdown(s, club_id=club, by="channel",
                                                         as_of=AS_OF),
    "stage": lambda s, club: service.renewal_breakdown(s, club_id=club, by="stage", as_of=AS_OF),
    "process": lambda s, club: service.process_report(s, club_id=club, as_of=AS_OF),
    "kpis": lambda s, club: service.kpi_report(s, club_id=club, as_of=AS_OF),
}
CLUB_INDEX = re.compile(r"INDEX (ix_\w+_club_\w+|ix_\w+_club_id)\b")


def _plans(db, report, club_id: int) -> list[list[tuple[str, bool]]]:
    """Per SELECT the report runs: its plan lines, each with whether it runs once per outer row
    (below a correlated subquery)."""
    seen: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            seen.append((statement, parameters))

    with transaction(db.sessionmaker) as s:
        event.listen(db.engine, "before_cursor_execute", capture)
        try:
            report(s, club_id)
        finally:
            event.remove(db.engine, "before_cursor_execute", capture)
        plans = []
        for statement, parameters in seen:
            rows = s.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                  parameters).all()
            parent = {node: up for node, up, _, _ in rows}
            detail = {node: text for node, _, _, text in rows}
            plans.append([(text, _correlated(node, parent, detail))
                          for node, _, _, text in rows])
    return plans


def _correlated(node: int, parent: dict, detail: dict) -> bool:
    while node in parent:
        node = parent[node]
        if detail.get(node, "").startswith("CORRELATED"):
            return True
    return False


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_lookups_per_row_use_the_rows_own_index(db, hand, name):
    if db.is_postgres:
        pytest.skip("PostgreSQL plans from statistics")
    club = hand.club()
    plan = hand.plan(club)
    member = hand.member(club)
    hand.membership(club, member, plan, AS_OF.replace(month=1, day=1), AS_OF.replace(day=1))
    hand.definition(club, "renewal_offer")
    plans = _plans(db, REPORTS[name], club.id)
    assert plans
    lines = [line for plan_ in plans for line in plan_]
    for text, per_row in lines:
        assert not (per_row and CLUB_INDEX.search(text)), (name, text)
    text = "\n".join(text for text, _ in lines)
    # the stored pairs and channel sends (migration 0015), per ending membership
    stored = {"touchpoints": "analytics_touchpoint_pairs", "channel": "analytics_channel_sends"}
    if name in stored:
        assert f"SEARCH {stored[name]} USING INDEX sqlite_autoindex_{stored[name]}_1 " \
            "(club_id=? AND membership_id=?)" in text, text
        assert "scheduled_touchpoints" not in text, text
