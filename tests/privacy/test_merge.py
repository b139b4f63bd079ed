"""Merging a duplicate: everything moves to the kept member in one go, nothing is left behind."""
from datetime import timedelta

from sqlalchemy import func, select

from app.core.actors import Role
from app.privacy import graph
from app.privacy.duplicates import MERGE_DROPS
from tests.privacy.conftest import full_person


def link_counts(db, member_id: int) -> dict[tuple[str, str], int]:
    """Rows per (table, member column) that refer to the member — every FK to members.id."""
    with db.sessionmaker() as s:
        return {(t.name, c.name): s.scalar(select(func.count()).select_from(t)
                                           .where(c == member_id))
                for t, c in graph.member_links()}


def merge(c, keep_id: int, body: dict, staff=None):
    return c.call("POST", f"/members/{keep_id}/merge", staff=staff or c.manager, json=body)


def test_the_manager_merges_a_duplicate_and_nothing_anywhere_still_points_at_it(club, db):
    keep = full_person(club)
    dup = full_person(club, first="Zefirine", last="Quillfeather", email="zq@example.net",
                      phone="+4915199911122", birth_date="1987-04-23", card="ZQ-OLD-1")
    club.ok("POST", f"/members/{dup.id}/notes", json={"text": "second record, same person?"})
    keep_before, dup_before = link_counts(db, keep.id), link_counts(db, dup.id)
    renewals_before = club.ok("GET", "/analytics/renewals", staff=club.manager)["totals"]

    r = merge(club, keep.id, {"duplicate_id": dup.id})
    assert r.status_code == 200, r.text
    result = r.json()

    after = link_counts(db, keep.id)
    assert all(n == 0 for n in link_counts(db, dup.id).values())  # no orphan, anywhere
    for (table, column), n in dup_before.items():
        if table in MERGE_DROPS or table == "stage_changes":
            continue
        dropped = result["dropped"].get(table, 0)
        assert after[(table, column)] == keep_before[(table, column)] + n - dropped, table
        assert result["moved"].get(table, 0) == n - dropped, table
    assert result["moved"]["visits"] == dup_before[("visits", "member_id")] >= 1
    assert result["moved"]["memberships"] == 2 and result["moved"]["sales"] == 3
    assert result["moved"]["member_notes"] == 2 and result["moved"]["cards"] == 1
    assert result["moved"]["tasks"] == 1 and result["moved"]["interactions"] == 2
    # unique per member: one stage row, one welcome email per cycle (both joined the same day)
    assert result["dropped"] == {"member_stages": 1, "scheduled_touchpoints": 1,
                                 "member_search_terms": 2}
    assert after[("stage_changes", "member_id")] >= (keep_before[("stage_changes", "member_id")]
                                                     + dup_before[("stage_changes", "member_id")])
    assert any("overlap" in w for w in result["warnings"])  # both had a current membership

    assert club.call("GET", f"/members/{dup.id}").status_code == 404
    found = club.ok("GET", "/members", params={"q": dup.card})
    assert [m["id"] for m in found["items"]] == [keep.id]
    assert club.ok("GET", "/members", params={"q": "zefirine"})["total"] == 0
    assert result["member"]["email"] == keep.email and result["taken"] == []

    # the merge recomputes the kept member's stage itself (not left to the next daily run):
    # joined 45 days ago, past the 30 days of onboarding the welcome run left them in
    retention = club.ok("GET", f"/retention/members/{keep.id}", staff=club.manager)
    joined = club.today - timedelta(days=45)
    assert retention["stage"] is not None, retention
    assert (retention["stage"]["stage"], retention["stage"]["since"],
            retention["stage"]["cycle"]) == ("establishing",
                                             (joined + timedelta(days=30)).isoformat(),
                                             f"t{joined.isoformat()}"), retention
    latest = retention["history"][0]
    assert (latest["from_stage"], latest["to_stage"], latest["source"]) == (
        "onboarding", "establishing", "event"), retention["history"]
    assert club.ok("GET", "/analytics/renewals", staff=club.manager)["totals"] == renewals_before
    timeline = club.ok("GET", f"/members/{keep.id}/timeline")
    assert timeline["total"] >= 4

    audit = club.ok("GET", "/audit", staff=club.manager,
                    params={"member_id": keep.id, "action": "merged"})
    assert audit["total"] == 1
    assert audit["items"][0]["detail"] == {"merged_member_id": dup.id}

    # the same request again: a clear 409, nothing changes
    counts = link_counts(db, keep.id)
    again = merge(club, keep.id, {"duplicate_id": dup.id})
    assert again.status_code == 409 and again.json()["error"] == "already_merged"
    assert f"#{keep.id}" in again.json()["message"]
    assert link_counts(db, keep.id) == counts


def test_take_chooses_whose_name_and_email_stay_and_fills_what_the_kept_one_lacks(club):
    keep = club.register("Jon", "Smyth", email="old@example.org")
    dup = club.register("John", "Smith", email="john.smith@example.org", phone="+4915111122233",
                      birth_date="1990-01-02")
    r = merge(club, keep["id"], {"duplicate_id": dup["id"],
                                 "take": {"name": "duplicate", "email": "duplicate"}})
    assert r.status_code == 200, r.text
    member = r.json()["member"]
    assert (member["first_name"], member["last_name"], member["email"], member["phone"],
            member["birth_date"]) == ("John", "Smith", "john.smith@example.org",
                                      "+4915111122233", "1990-01-02")
    assert sorted(r.json()["taken"]) == ["birth_date", "email", "name", "phone"]
    assert [m["id"] for m in club.ok("GET", "/members", params={"q": "john smi"})["items"]] == [
        keep["id"]]
    assert club.ok("GET", "/members", params={"q": "smyth"})["total"] == 0


def test_merge_refuses_self_other_clubs_erased_members_and_the_front_desk(club, world):
    a = club.register("Ana", "Berg")
    b = club.register("Anna", "Berg")
    r = merge(club, a["id"], {"duplicate_id": a["id"]})
    assert r.status_code == 422 and r.json()["error"] == "same_member"
    assert merge(club, a["id"], {"duplicate_id": b["id"]}, staff=club.desk).status_code == 403
    other = world.club("Hilltop Gym")
    outsider_manager = world.staff(other, Role.manager)
    stranger = club.client.post("/api/v1/members", headers=world.staff(other).headers,
                                json={"first_name": "Ana", "last_name": "Berg"}).json()
    assert merge(club, a["id"], {"duplicate_id": stranger["id"]}).status_code == 404
    assert merge(club, stranger["id"], {"duplicate_id": a["id"]}).status_code == 404
    assert merge(club, a["id"], {"duplicate_id": b["id"]},
                 staff=outsider_manager).status_code == 404
    assert merge(club, a["id"], {"duplicate_id": b["id"], "take": {"name": "theirs"}}
                 ).status_code == 422
    club.ok("POST", f"/members/{b['id']}/erase", staff=club.manager,
            json={"reason": "request", "confirm": True})
    r = merge(club, a["id"], {"duplicate_id": b["id"]})
    assert r.status_code == 409 and r.json()["error"] == "member_erased"
    assert club.ok("GET", f"/members/{a['id']}")["first_name"] == "Ana"
