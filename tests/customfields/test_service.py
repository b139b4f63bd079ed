"""The service API the CSV import and export call: parse, validate, store, read, format."""
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.core.errors import Invalid, NotFound
from app.customfields import service
from app.customfields.models import CustomField, CustomFieldValue


def _field(type_: str, choices=None) -> CustomField:
    return CustomField(club_id=1, key="f", label="F", type=type_, choices=choices or [],
                       required=False, searchable=False, position=0)


@pytest.mark.parametrize(("type_", "raw", "expected"), [
    ("yes_no", "yes", True), ("yes_no", "JA", True), ("yes_no", "1", True),
    ("yes_no", "true", True), ("yes_no", "Nein", False), ("yes_no", "0", False),
    ("yes_no", "false", False), ("yes_no", " no ", False),
    ("number", "12,5", Decimal("12.5")), ("number", "12.5", Decimal("12.5")),
    ("number", "1.234,5", Decimal("1234.5")), ("number", "1,234.5", Decimal("1234.5")),
    ("number", "-3", Decimal(-3)), ("number", "1 000", Decimal(1000)),
    ("date", "2026-01-31", date(2026, 1, 31)), ("date", "31.01.2026", date(2026, 1, 31)),
    ("date", "1.2.2026", date(2026, 2, 1)),
    ("text", "  hello ", "hello"), ("choice", "m", "M"),
    ("text", "", None), ("number", "  ", None), ("choice", "", None),
])
def test_parse_text_reads_csv_cells(type_, raw, expected):
    assert service.parse_text(_field(type_, ["S", "M"]), raw) == expected


@pytest.mark.parametrize(("type_", "raw", "message"), [
    ("yes_no", "maybe", "not yes or no"), ("number", "12,5,3", "not a number"),
    ("number", "abc", "not a number"), ("number", "0.00001", "4 decimal places"),
    ("date", "2026-02-30", "not a date in the calendar"), ("date", "Jan 5", "DD.MM.YYYY"),
    ("choice", "XL", "one of the choices: S, M"), ("text", "x" * 501, "at most 500"),
])
def test_parse_text_refuses_with_a_human_message(type_, raw, message):
    with pytest.raises(ValueError, match=message):
        service.parse_text(_field(type_, ["S", "M"]), raw)


@pytest.mark.parametrize(("type_", "value", "text"), [
    ("yes_no", True, "yes"), ("yes_no", False, "no"), ("number", Decimal("12.5000"), "12.5"),
    ("number", Decimal("100.0000"), "100"), ("date", date(2026, 1, 31), "2026-01-31"),
    ("choice", "M", "M"), ("text", "Acme; GmbH", "Acme; GmbH"), ("text", None, ""),
])
def test_format_text_writes_what_parse_text_reads_back(type_, value, text):
    field = _field(type_, ["S", "M"])
    assert service.format_text(field, value) == text
    assert service.parse_text(field, text) == (
        service._tidy(value) if isinstance(value, Decimal) else value)


def test_validate_set_values_and_values_for(session, world, fields, desk):
    club_id = desk.club.id
    anna = desk.register("Anna", "Schmidt")["id"]
    ben = desk.register("Ben", "Berg")["id"]
    session.rollback()
    checked = service.validate(session, club_id=club_id, creating=False, values={
        "shirt_size": "s", "weight_kg": Decimal("72.5"), "medical_check": date(2026, 3, 1)})
    assert checked == {fields["shirt_size"]["id"]: "S", fields["weight_kg"]["id"]: Decimal("72.5"),
                       fields["medical_check"]["id"]: date(2026, 3, 1)}

    service.set_values(session, club_id=club_id, member_id=anna, values={
        "shirt_size": "S", "weight_kg": Decimal("72.5"), "newsletter_paper": True})
    service.set_values(session, club_id=club_id, member_id=ben, values=checked)  # ids work too
    service.set_values(session, club_id=club_id, member_id=ben, values={"weight_kg": None})
    assert service.values_for(session, club_id=club_id, member_ids=[anna, ben, 999]) == {
        anna: {"shirt_size": "S", "weight_kg": Decimal("72.5"), "newsletter_paper": True},
        ben: {"shirt_size": "S", "medical_check": date(2026, 3, 1)},
        999: {}}
    assert session.scalar(select(CustomFieldValue.value_folded)
                          .where(CustomFieldValue.member_id == anna,
                                 CustomFieldValue.field_id == fields["shirt_size"]["id"])) == "s"


def test_set_values_writes_nothing_when_one_value_is_bad(session, fields, desk):
    anna = desk.register("Anna", "Schmidt")["id"]
    session.rollback()
    with pytest.raises(Invalid) as caught:
        service.set_values(session, club_id=desk.club.id, member_id=anna,
                           values={"shirt_size": "S", "weight_kg": "x", "nope": 1})
    assert {d["field"] for d in caught.value.details} == {"custom.weight_kg", "custom.nope"}
    assert session.scalars(select(CustomFieldValue)).all() == []


def test_set_values_refuses_another_clubs_member(session, fields, desk, other_owner):
    stranger = other_owner.register("Zed", "Zero")["id"]
    session.rollback()
    with pytest.raises(NotFound):
        service.set_values(session, club_id=desk.club.id, member_id=stranger,
                           values={"shirt_size": "S"})


def test_definitions_in_form_order_without_archived(session, owner, fields):
    owner.patch(f"/custom-fields/{fields['employer']['id']}", {"position": 0})
    owner.post(f"/custom-fields/{fields['weight_kg']['id']}/archive")
    session.rollback()
    keys = [f.key for f in service.definitions(session, club_id=owner.club.id)]
    assert keys == ["shirt_size", "employer", "medical_check", "newsletter_paper"]
    everything = service.definitions(session, club_id=owner.club.id, include_archived=True)
    assert len(everything) == 5


def test_validate_on_create_names_missing_required_fields(session, owner):
    owner.define("emergency_contact", "text", label="Emergency contact", required=True)
    session.rollback()
    with pytest.raises(Invalid) as caught:
        service.validate(session, club_id=owner.club.id, values={}, creating=True)
    assert caught.value.details[0]["field"] == "custom.emergency_contact"
    assert service.validate(session, club_id=owner.club.id, values={}, creating=False) == {}
