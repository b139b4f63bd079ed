"""Owners define the club's own member fields; the desk fills them in and sees them."""
from sqlalchemy import func, select

from app.customfields.models import CustomField, CustomFieldValue
from app.members.models import Member
from tests.web.conftest import sign_in


def _fields_of(details: list[dict]) -> set[str]:
    return {d["field"] for d in details}


# --- the user's moment ---------------------------------------------------------------------------

def test_owner_adds_fields_and_the_desk_fills_them_in_at_registration(owner, desk, fields):
    created = desk.register("Anna", "Schmidt", custom={
        "shirt_size": "m", "weight_kg": "72,5", "medical_check": "2026-03-01",
        "newsletter_paper": True, "employer": "  Acme GmbH "})
    assert created["custom"] == {"shirt_size": "M", "weight_kg": 72.5,
                                 "medical_check": "2026-03-01", "newsletter_paper": True,
                                 "employer": "Acme GmbH"}
    read = desk.get(f"/members/{created['id']}").json()
    assert read["custom"] == created["custom"]
    assert list(read["custom"]) == list(fields)  # form order


def test_each_type_is_defined_as_asked(owner, fields):
    listed = owner.get("/custom-fields").json()
    assert [(f["key"], f["type"], f["position"]) for f in listed] == [
        ("shirt_size", "choice", 0), ("weight_kg", "number", 1), ("medical_check", "date", 2),
        ("newsletter_paper", "yes_no", 3), ("employer", "text", 4)]
    assert listed[0]["choices"] == ["S", "M", "L"]
    assert all(f["choices"] == [] for f in listed[1:])
    assert listed[1]["label"] == "Weight (kg)"
    assert all(f["required"] is False and f["archived_at"] is None for f in listed)


def test_whole_numbers_come_back_as_integers_and_decimals_keep_four_places(desk, fields):
    member = desk.register("Ben", "Berg", custom={"weight_kg": 80})
    assert member["custom"]["weight_kg"] == 80 and isinstance(member["custom"]["weight_kg"], int)
    r = desk.patch(f"/members/{member['id']}", {"custom": {"weight_kg": "1.234,5678"}})
    assert r.status_code == 200, r.text
    assert r.json()["custom"]["weight_kg"] == 1234.5678


# --- validation ------------------------------------------------------------------------------------

def test_every_bad_value_is_a_422_naming_its_field_and_nothing_is_written(desk, fields, session):
    session.rollback()
    r = desk.post("/members", {"first_name": "Anna", "last_name": "Schmidt", "custom": {
        "shirt_size": "XXL", "weight_kg": "heavy", "medical_check": "01/03/2026",
        "newsletter_paper": "maybe", "employer": "x" * 501}})
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "validation_error"
    assert _fields_of(body["details"]) == {"custom.shirt_size", "custom.weight_kg",
                                           "custom.medical_check", "custom.newsletter_paper",
                                           "custom.employer"}
    messages = {d["field"]: d["message"] for d in body["details"]}
    assert "one of the choices: S, M, L" in messages["custom.shirt_size"]
    assert "not a number" in messages["custom.weight_kg"]
    assert "YYYY-MM-DD" in messages["custom.medical_check"]
    assert "yes or no" in messages["custom.newsletter_paper"]
    assert "at most 500 characters" in messages["custom.employer"]
    assert "custom.shirt_size" in body["message"]
    assert session.scalar(select(func.count()).select_from(Member)) == 0
    assert session.scalar(select(func.count()).select_from(CustomFieldValue)) == 0


def test_wrong_json_types_are_refused_with_a_message(desk, fields):
    for key, value, expected in [("weight_kg", True, "must be a number"),
                                 ("weight_kg", [1], "must be a number"),
                                 ("weight_kg", 1.23456, "4 decimal places"),
                                 ("weight_kg", 1e12, "11 digits"),
                                 ("medical_check", 20260301, "a date"),
                                 ("medical_check", "2026-02-30", "not a date in the calendar"),
                                 ("newsletter_paper", 1, "true or false"),
                                 ("employer", {"a": 1}, "must be text"),
                                 ("shirt_size", 3, "one of: S, M, L")]:
        r = desk.post("/members", {"first_name": "A", "last_name": "B", "custom": {key: value}})
        assert r.status_code == 422, (key, value, r.text)
        detail = r.json()["details"][0]
        assert detail["field"] == f"custom.{key}" and expected in detail["message"], detail


def test_an_unknown_key_is_a_422_naming_the_key(desk, fields, session):
    session.rollback()
    r = desk.post("/members", {"first_name": "A", "last_name": "B",
                               "custom": {"shoe_size": "42"}})
    assert r.status_code == 422
    assert r.json()["details"] == [{"field": "custom.shoe_size", "type": "value_error",
                                    "message": "this club has no custom field 'shoe_size'"}]
    member = desk.register("Anna", "Schmidt")
    r = desk.patch(f"/members/{member['id']}", {"first_name": "Anne",
                                                 "custom": {"shoe_size": "42"}})
    assert r.status_code == 422
    assert _fields_of(r.json()["details"]) == {"custom.shoe_size"}
    assert desk.get(f"/members/{member['id']}").json()["first_name"] == "Anna"


def test_a_required_field_must_be_given_when_a_member_is_created(owner, desk):
    owner.define("emergency_contact", "text", label="Emergency contact", required=True)
    r = desk.post("/members", {"first_name": "Anna", "last_name": "Schmidt"})
    assert r.status_code == 422
    assert r.json()["details"] == [{"field": "custom.emergency_contact", "type": "value_error",
                                    "message": "Emergency contact is required"}]
    r = desk.post("/members", {"first_name": "Anna", "last_name": "Schmidt",
                               "custom": {"emergency_contact": "  "}})
    assert r.status_code == 422
    assert "required" in r.json()["details"][0]["message"]

    member = desk.register("Anna", "Schmidt", custom={"emergency_contact": "Paul 0151 1234"})
    assert member["custom"] == {"emergency_contact": "Paul 0151 1234"}
    # an update that leaves the field alone is fine; emptying it is not
    assert desk.patch(f"/members/{member['id']}", {"last_name": "Berg"}).status_code == 200
    r = desk.patch(f"/members/{member['id']}", {"custom": {"emergency_contact": None}})
    assert r.status_code == 422
    assert r.json()["details"][0]["field"] == "custom.emergency_contact"


def test_turning_required_on_later_is_enforced_on_new_members_only(owner, desk, fields):
    before = desk.register("Anna", "Schmidt")
    r = owner.patch(f"/custom-fields/{fields['employer']['id']}", {"required": True})
    assert r.status_code == 200 and r.json()["required"] is True
    assert desk.patch(f"/members/{before['id']}", {"first_name": "Anne"}).status_code == 200
    r = desk.post("/members", {"first_name": "Ben", "last_name": "Berg"})
    assert r.status_code == 422
    assert r.json()["details"][0]["field"] == "custom.employer"


def test_update_changes_and_clears_values(desk, fields, session):
    member = desk.register("Anna", "Schmidt", custom={"shirt_size": "S", "employer": "Acme"})
    r = desk.patch(f"/members/{member['id']}", {"custom": {"shirt_size": "L", "employer": None,
                                                           "newsletter_paper": False}})
    assert r.status_code == 200, r.text
    assert r.json()["custom"] == {"shirt_size": "L", "newsletter_paper": False}
    session.rollback()
    assert session.scalar(select(func.count()).select_from(CustomFieldValue)) == 2


# --- defining fields ------------------------------------------------------------------------------

def test_a_key_is_unique_in_the_club_and_cannot_be_changed(owner, other_owner, fields):
    r = owner.post("/custom-fields", {"key": "shirt_size", "label": "Size", "type": "text"})
    assert r.status_code == 409 and r.json()["error"] == "custom_field_key_taken"
    other_owner.define("shirt_size", "text")  # another club may use the same key
    r = owner.patch(f"/custom-fields/{fields['shirt_size']['id']}", {"key": "size"})
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "key"
    r = owner.post("/custom-fields", {"key": "Shirt Size", "label": "Size", "type": "text"})
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "key"


def test_choices_belong_to_choice_fields_only(owner):
    r = owner.post("/custom-fields", {"key": "size", "label": "Size", "type": "choice"})
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "choices"
    r = owner.post("/custom-fields", {"key": "size", "label": "Size", "type": "text",
                                      "choices": ["S"]})
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "choices"
    r = owner.post("/custom-fields", {"key": "size", "label": "Size", "type": "choice",
                                      "choices": ["S", "s"]})
    assert r.status_code == 422 and "listed twice" in r.json()["message"]


def test_removing_a_choice_members_have_is_refused_with_the_count(owner, desk, fields):
    for name in ("Anna", "Ben"):
        desk.register(name, "Schmidt", custom={"shirt_size": "S"})
    desk.register("Cleo", "Schmidt", custom={"shirt_size": "M"})
    field_id = fields["shirt_size"]["id"]
    r = owner.patch(f"/custom-fields/{field_id}", {"choices": ["M", "L", "XL"]})
    assert r.status_code == 409
    body = r.json()
    assert body["error"] == "custom_choice_in_use"
    assert body["details"] == {"count": 2, "choices": {"S": 2}}
    assert "2 member(s)" in body["message"]
    # removing an unused choice, relabelling and reordering work
    r = owner.patch(f"/custom-fields/{field_id}", {"choices": ["S", "M", "XL"],
                                                   "label": "T-shirt", "position": 9})
    assert r.status_code == 200, r.text
    assert (r.json()["choices"], r.json()["label"], r.json()["position"]) == (
        ["S", "M", "XL"], "T-shirt", 9)


def test_archiving_hides_the_field_but_keeps_the_values(owner, desk, fields, session):
    member = desk.register("Anna", "Schmidt", custom={"shirt_size": "S", "employer": "Acme"})
    field_id = fields["shirt_size"]["id"]
    r = owner.post(f"/custom-fields/{field_id}/archive")
    assert r.status_code == 200 and r.json()["archived_at"] is not None
    assert owner.post(f"/custom-fields/{field_id}/archive").json() == r.json()  # repeatable

    assert "shirt_size" not in [f["key"] for f in desk.get("/custom-fields").json()]
    archived = desk.get("/custom-fields", params={"include_archived": True}).json()
    assert "shirt_size" in [f["key"] for f in archived]
    assert desk.get(f"/members/{member['id']}").json()["custom"] == {"employer": "Acme"}
    session.rollback()
    kept = session.scalar(select(CustomFieldValue.value_text)
                          .where(CustomFieldValue.field_id == field_id))
    assert kept == "S"
    session.rollback()

    r = desk.patch(f"/members/{member['id']}", {"custom": {"shirt_size": "M"}})
    assert r.status_code == 422 and "archived" in r.json()["details"][0]["message"]
    # a field with values cannot be deleted, only archived
    r = owner.delete(f"/custom-fields/{field_id}")
    assert r.status_code == 409 and r.json()["details"] == {"count": 1}


def test_an_archived_required_field_is_no_longer_required(owner, desk):
    field = owner.define("emergency_contact", "text", required=True)
    assert owner.post(f"/custom-fields/{field['id']}/archive").status_code == 200
    desk.register("Anna", "Schmidt")


def test_a_field_nobody_filled_in_can_be_deleted(owner, fields, session):
    assert owner.delete(f"/custom-fields/{fields['employer']['id']}").status_code == 204
    assert owner.get(f"/custom-fields/{fields['employer']['id']}").status_code == 404
    session.rollback()
    assert session.scalar(select(func.count()).select_from(CustomField)) == 4


# --- who may do what ------------------------------------------------------------------------------

def test_owners_and_managers_define_fields_all_staff_read_them(manager, desk, trainer, fields):
    made = manager.define("locker", "number")
    assert manager.patch(f"/custom-fields/{made['id']}", {"searchable": True}).status_code == 200
    for staffer in (desk, trainer):
        r = staffer.post("/custom-fields", {"key": "x", "label": "X", "type": "text"})
        assert r.status_code == 403 and r.json()["error"] == "forbidden_role"
        assert staffer.patch(f"/custom-fields/{made['id']}", {"label": "Y"}).status_code == 403
        assert staffer.post(f"/custom-fields/{made['id']}/archive").status_code == 403
        assert staffer.delete(f"/custom-fields/{made['id']}").status_code == 403
        assert len(staffer.get("/custom-fields").json()) == 6


def test_another_club_cannot_see_or_use_the_fields(owner, desk, other_owner, fields, client,
                                                   world):
    field_id = fields["shirt_size"]["id"]
    assert other_owner.get("/custom-fields").json() == []
    for r in (other_owner.get(f"/custom-fields/{field_id}"),
              other_owner.patch(f"/custom-fields/{field_id}", {"label": "Mine"}),
              other_owner.post(f"/custom-fields/{field_id}/archive"),
              other_owner.delete(f"/custom-fields/{field_id}")):
        assert r.status_code == 404 and r.json()["error"] == "custom_field_not_found"
    r = other_owner.post("/members", {"first_name": "A", "last_name": "B",
                                      "custom": {"shirt_size": "S"}})
    assert r.status_code == 422
    assert r.json()["details"][0]["message"] == "this club has no custom field 'shirt_size'"
    desk.register("Anna", "Schmidt", custom={"shirt_size": "S"})
    r = other_owner.get("/members", params={"field": "shirt_size", "value": "S"})
    assert r.status_code == 422 and r.json()["details"][0]["field"] == "field"
    assert owner.get(f"/custom-fields/{field_id}").json()["label"] == "Shirt size"


# --- shown ------------------------------------------------------------------------------------------

def test_the_member_card_page_lists_the_custom_values(client, desk, fields):
    member = desk.register("Anna", "Schmidt", custom={"weight_kg": 72.5, "newsletter_paper": False,
                                                      "medical_check": "2026-03-01"})
    sign_in(client, desk.staff.email)
    html = client.get(f"/desk/members/{member['id']}").text
    assert "More about Anna" in html
    assert '<dt>Weight (kg)</dt><dd data-field="weight_kg">72.5</dd>' in html
    assert '<dt>Paper newsletter</dt><dd data-field="newsletter_paper">no</dd>' in html
    assert '<dd data-field="medical_check">2026-03-01</dd>' in html
    assert "Shirt size" not in html  # no value, not shown
