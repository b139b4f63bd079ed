"""The duplicate finder: same email, same phone, or a very similar name with the same birthday."""
import pytest

from app.privacy.duplicates import name_match


@pytest.mark.parametrize(("a", "b", "expected"), [
    (("Anna", "Schmidt"), ("anna", "SCHMIDT"), "same_name"),
    (("Zoë", "O'Brien"), ("Zoe", "OBrien"), "same_name"),
    (("Schmidt", "Anna"), ("Anna", "Schmidt"), "swapped_name"),
    (("Anna", "Schmidt"), ("Anna", "Schmitt"), "similar_name"),
    (("Anna", "Kowalczyk"), ("Anna", "Kowalcyzk"), "similar_name"),
    (("Anna", "Berg"), ("Anna", "Borg"), "similar_name"),
    (("Anna", "Berg"), ("Anna", "Bergmann"), None),
    (("Anna", "Schmidt"), ("Paul", "Schmidt"), None),
    (("Jon", "Smith"), ("John", "Smith"), "similar_name"),
])
def test_names_match_when_folded_equal_swapped_or_a_letter_or_two_apart(a, b, expected):
    assert name_match(*a, *b) == expected


def pairs(c, staff=None) -> list[tuple[int, int, list[str]]]:
    page = c.ok("GET", "/members/duplicates", staff=staff)
    return [(p["member"]["id"], p["other"]["id"], p["reasons"]) for p in page["items"]]


def test_the_desk_sees_likely_duplicates_with_the_reason_and_a_side_by_side(club, world):
    anna = club.register("Anna", "Schmidt", email="anna@example.org", birth_date="1990-05-17")
    anna_again = club.register("Anna", "Schmitt", email="anna@example.org",
                             birth_date="1990-05-17")
    paul = club.register("Paul", "Meier", phone="+4915112345678")
    paul_again = club.register("P.", "Meyer", phone="0151 12345678")
    swapped = club.register("Lee", "Chen", birth_date="1985-02-03")
    swapped_again = club.register("Chen", "Lee", birth_date="1985-02-03")
    club.register("Anna", "Schmidt", birth_date="1991-05-17")  # same name, another birthday: no
    club.register("Maria", "Lopez", birth_date="1990-05-17")  # same birthday, another name: no
    other = world.club("Hilltop Gym")
    club.client.post("/api/v1/members", headers=world.staff(other).headers,
                     json={"first_name": "Anna", "last_name": "Schmidt",
                           "email": "anna@example.org"})
    plan = club.plan()
    club.sell(anna["id"], plan["id"])
    club.check_in(anna["id"])

    found = pairs(club)
    assert found == [
        (anna["id"], anna_again["id"], ["email", "similar_name"]),
        (paul["id"], paul_again["id"], ["phone"]),
        (swapped["id"], swapped_again["id"], ["swapped_name"]),
    ]
    first = club.ok("GET", "/members/duplicates")["items"][0]
    assert (first["member"]["memberships"], first["member"]["visits"]) == (1, 1)
    assert first["member"]["last_visit_at"] is not None
    assert (first["other"]["memberships"], first["other"]["visits"]) == (0, 0)
    assert first["explanation"] == "same email; very similar name, same birth date"

    # "different person": remembered, not shown again (repeating it changes nothing)
    for _ in range(2):
        r = club.call("POST", "/members/duplicates/dismissals", staff=club.manager,
                      json={"member_id": paul_again["id"], "other_member_id": paul["id"]})
        assert r.status_code == 201, r.text
    assert [p[:2] for p in pairs(club)] == [(anna["id"], anna_again["id"]),
                                           (swapped["id"], swapped_again["id"])]
    assert club.call("POST", "/members/duplicates/dismissals", staff=club.desk,
                     json={"member_id": anna["id"], "other_member_id": anna_again["id"]}
                     ).status_code == 403
    assert club.call("POST", "/members/duplicates/dismissals", staff=club.manager,
                     json={"member_id": anna["id"], "other_member_id": anna["id"]}
                     ).status_code == 422

    # merged: the pair is gone
    r = club.call("POST", f"/members/{anna['id']}/merge", staff=club.manager,
                  json={"duplicate_id": anna_again["id"]})
    assert r.status_code == 200, r.text
    assert [p[:2] for p in pairs(club)] == [(swapped["id"], swapped_again["id"])]
    club.ok("POST", "/members/duplicates/dismissals", staff=club.manager,
            json={"member_id": swapped["id"], "other_member_id": swapped_again["id"]})
    assert pairs(club) == []
