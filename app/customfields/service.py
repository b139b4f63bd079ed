"""Custom member fields: definitions per club, typed values per member, and search by value.

Other domains call (keep these names — CSV import/export, members):

- `definitions(session, club_id=, include_archived=False)` — the club's fields, form order;
- `parse_text(field, raw)` — a CSV cell or form text → typed value (`ValueError` with a human
  message; "" → None);
- `validate(session, club_id=, values=, creating=)` — `{key: value}` → `{field_id: typed}`, or
  `Invalid` naming every bad `custom.<key>`;
- `set_values(session, club_id=, member_id=, values=)` — validate and upsert (None deletes);
- `values_for(session, club_id=, member_ids=)` — `{member_id: {key: typed}}` in one query;
- `format_text(field, value)` — a typed value as CSV text (`parse_text` reads it back);
- `value_columns(field, value)` — a typed value as table columns, for bulk inserts;
- `json_value(value)` — a typed value for a JSON answer (numbers as numbers);
- `shown(session, club_id=, values=)` — label and text of a member's values, for pages;
- `value_conditions(session, club_id=, key=, value=)` — WHERE conditions on
  `CustomFieldValue` for "members whose <key> is <value>" (the members list filter).

Required fields: turning `required` on while members have no value is allowed; it is enforced
on new writes only (a new member must have a value; an existing value cannot be emptied).
"""
import re
from collections.abc import Iterable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core import clock
from app.core.errors import Conflict, Invalid, NotFound
from app.core.sql import successor
from app.customfields.models import MAX_TEXT, CustomField, CustomFieldValue
from app.customfields.schemas import CustomFieldCreate, CustomFieldUpdate
from app.members.models import Member

MAX_INTEGER_DIGITS = 11
DECIMAL_PLACES = 4
_QUANTUM = Decimal(1).scaleb(-DECIMAL_PLACES)
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DOTTED_DATE = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})")
YES = frozenset({"yes", "y", "true", "1", "ja", "j"})
NO = frozenset({"no", "n", "false", "0", "nein"})
ID_CHUNK = 5000


# --- definitions -------------------------------------------------------------------------------

def definitions(session: Session, *, club_id: int,
                include_archived: bool = False) -> list[CustomField]:
    """The club's custom fields in form order (position, then id); archived ones only if asked."""
    stmt = select(CustomField).where(CustomField.club_id == club_id)
    if not include_archived:
        stmt = stmt.where(CustomField.archived_at.is_(None))
    return list(session.scalars(stmt.order_by(CustomField.position, CustomField.id)))


def get_field(session: Session, *, club_id: int, field_id: int) -> CustomField:
    """This club's field with this id; another club's field is NotFound, like a missing one."""
    field = session.scalar(select(CustomField).where(CustomField.id == field_id,
                                                     CustomField.club_id == club_id))
    if field is None:
        raise NotFound("Custom field not found", code="custom_field_not_found")
    return field


def _field_error(field: str, message: str) -> Invalid:
    return Invalid(f"Please check the input — {field}: {message}", code="validation_error",
                   details=[{"field": field, "message": message, "type": "value_error"}])


def _check_choices(type_: str, choices: list[str] | None) -> list[str]:
    if type_ == "choice":
        if not choices:
            raise _field_error("choices", "a choice field needs at least one choice")
        return list(choices)
    if choices:
        raise _field_error("choices", f"only choice fields have choices, not {type_} fields")
    return []


def create_field(session: Session, *, club_id: int, data: CustomFieldCreate) -> CustomField:
    """Define a new field; 409 custom_field_key_taken when the club already uses the key."""
    choices = _check_choices(data.type.value, data.choices)
    taken = Conflict(f"This club already has a custom field '{data.key}' (perhaps archived); "
                     "choose another key", code="custom_field_key_taken",
                     details={"key": data.key})
    if session.scalar(select(CustomField.id).where(CustomField.club_id == club_id,
                                                   CustomField.key == data.key)):
        raise taken
    position = data.position
    if position is None:
        last = session.scalar(select(func.max(CustomField.position))
                              .where(CustomField.club_id == club_id))
        position = 0 if last is None else last + 1
    field = CustomField(club_id=club_id, key=data.key, label=data.label, type=data.type.value,
                        choices=choices, required=data.required, searchable=data.searchable,
                        position=position)
    try:
        with session.begin_nested():
            session.add(field)
            session.flush()
    except IntegrityError:
        raise taken from None
    return field


def update_field(session: Session, *, club_id: int, field_id: int,
                 data: CustomFieldUpdate) -> CustomField:
    """Change label, choices, required, searchable or position (key and type are fixed).

    Removing a choice that members have is refused (409 custom_choice_in_use with the counts).
    """
    field = get_field(session, club_id=club_id, field_id=field_id)
    changes = data.model_dump(exclude_unset=True)
    if "choices" in changes:
        choices = _check_choices(field.type, changes["choices"])
        removed = [c for c in field.choices if c not in choices]
        if removed:
            in_use = dict(session.execute(
                select(CustomFieldValue.value_text, func.count())
                .where(CustomFieldValue.field_id == field.id,
                       CustomFieldValue.value_text.in_(removed))
                .group_by(CustomFieldValue.value_text)).all())
            if in_use:
                count = sum(in_use.values())
                listed = ", ".join(f"'{c}' ({n})" for c, n in in_use.items())
                raise Conflict(f"{count} member(s) have a choice you removed: {listed}; change "
                               "their values first", code="custom_choice_in_use",
                               details={"count": count, "choices": in_use})
        changes["choices"] = choices
    for name, value in changes.items():
        setattr(field, name, value)
    session.flush()
    return field


def archive_field(session: Session, *, club_id: int, field_id: int) -> CustomField:
    """Hide a field from forms and member pages; its values are kept (repeating is harmless)."""
    field = get_field(session, club_id=club_id, field_id=field_id)
    if field.archived_at is None:
        field.archived_at = clock.now()
        session.flush()
    return field


def delete_field(session: Session, *, club_id: int, field_id: int) -> None:
    """Delete a field nobody has a value for; one with values must be archived instead (409)."""
    field = get_field(session, club_id=club_id, field_id=field_id)
    count = session.scalar(select(func.count()).select_from(CustomFieldValue)
                           .where(CustomFieldValue.field_id == field.id))
    if count:
        raise Conflict(f"{count} member(s) have a value for '{field.key}'; archive the field "
                       "instead (its values are kept)", code="custom_field_in_use",
                       details={"count": count})
    session.delete(field)
    session.flush()


# --- typed values ------------------------------------------------------------------------------

def _tidy(number: Decimal) -> Decimal:
    """12.5000 → 12.5, 100.0000 → 100 (not 1E+2)."""
    number = number.normalize()
    return number.quantize(Decimal(1)) if number.as_tuple().exponent > 0 else number


def _check_number(number: Decimal) -> Decimal:
    if not number.is_finite():
        raise ValueError("must be a number")
    if number != number.quantize(_QUANTUM):
        raise ValueError(f"at most {DECIMAL_PLACES} decimal places")
    if abs(number) >= Decimal(10) ** MAX_INTEGER_DIGITS:
        raise ValueError(f"at most {MAX_INTEGER_DIGITS} digits before the decimal point")
    return _tidy(number)


def _parse_number(raw: str) -> Decimal:
    """"12,5", "12.5", "1.234,5", "1,234.5", "1 234" → Decimal; the last separator is decimal."""
    text = "".join(raw.split()).replace("'", "")
    if "," in text and "." in text:
        thousands = "." if text.rfind(",") > text.rfind(".") else ","
        text = text.replace(thousands, "").replace(",", ".")
    elif text.count(",") == 1:
        text = text.replace(",", ".")
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"'{raw}' is not a number (write e.g. 12.5 or 12,5)")
    try:
        return _check_number(Decimal(text))
    except InvalidOperation:
        raise ValueError(f"'{raw}' is not a number (write e.g. 12.5 or 12,5)") from None


def _parse_date(raw: str, *, dotted: bool) -> date:
    text = raw.strip()
    try:
        if _ISO_DATE.fullmatch(text):
            return date.fromisoformat(text)
        if dotted and (match := _DOTTED_DATE.fullmatch(text)):
            day, month, year = map(int, match.groups())
            return date(year, month, day)
    except ValueError:
        raise ValueError(f"'{raw}' is not a date in the calendar") from None
    raise ValueError(f"'{raw}' is not a date (write YYYY-MM-DD"
                     + (" or DD.MM.YYYY)" if dotted else ")"))


def _parse_bool(raw: str) -> bool:
    word = raw.strip().casefold()
    if word in YES:
        return True
    if word in NO:
        return False
    raise ValueError(f"'{raw}' is not yes or no (write yes/no, true/false, 1/0 or ja/nein)")


def _choice(field: CustomField, raw: str) -> str:
    text = raw.strip()
    for choice in field.choices:
        if choice.casefold() == text.casefold():
            return choice
    raise ValueError(f"'{raw}' is not one of the choices: {', '.join(field.choices)}")


def _text(raw: str) -> str | None:
    text = raw.strip()
    if "\x00" in text:
        raise ValueError("text must not contain NUL characters")
    if len(text) > MAX_TEXT:
        raise ValueError(f"at most {MAX_TEXT} characters (this is {len(text)})")
    return text or None


def parse_text(field: CustomField, raw: str) -> Any:
    """A CSV cell or form text → the field's typed value; "" → None; ValueError if it does not fit.

    yes/no accepts yes/no, true/false, 1/0, ja/nein (any case); numbers take a comma or a dot
    as decimal separator; dates are YYYY-MM-DD or DD.MM.YYYY; choices match in any case.
    """
    if raw is None or not raw.strip():
        return None
    match field.type:
        case "number":
            return _parse_number(raw)
        case "date":
            return _parse_date(raw, dotted=True)
        case "yes_no":
            return _parse_bool(raw)
        case "choice":
            return _choice(field, raw)
        case _:
            return _text(raw)


def _coerce(field: CustomField, value: Any) -> Any:
    """A value from JSON (or already typed by `parse_text`) → the field's typed value."""
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        if field.type == "date":
            return _parse_date(value, dotted=False)
        return parse_text(field, value)
    match field.type:
        case "number" if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
            try:
                return _check_number(Decimal(str(value)))
            except InvalidOperation:
                raise ValueError("must be a number") from None
        case "date" if isinstance(value, date):
            return value
        case "yes_no" if isinstance(value, bool):
            return value
    expected = {"text": "text", "number": "a number", "date": "a date as text (YYYY-MM-DD)",
                "choice": f"one of: {', '.join(field.choices)}",
                "yes_no": "true or false"}[field.type]
    raise ValueError(f"must be {expected}")


def _checked(session: Session, *, club_id: int, values: dict, creating: bool,
             ) -> list[tuple[CustomField, Any]]:
    """The (field, typed value) pairs for `values`, or Invalid listing every bad one."""
    fields = definitions(session, club_id=club_id, include_archived=True)
    by_key = {f.key: f for f in fields}
    by_id = {f.id: f for f in fields}
    errors: list[dict] = []
    checked: list[tuple[CustomField, Any]] = []
    mentioned: set[int] = set()

    def error(key, message: str) -> None:
        errors.append({"field": f"custom.{key}", "message": message, "type": "value_error"})

    for key, raw in values.items():
        field = by_id.get(key) if isinstance(key, int) else by_key.get(key)
        if field is None:
            error(key, f"this club has no custom field '{key}'")
            continue
        mentioned.add(field.id)
        if field.archived_at is not None:
            error(field.key, f"{field.label} is archived and can no longer be filled in")
            continue
        try:
            value = _coerce(field, raw)
        except ValueError as exc:
            error(field.key, str(exc))
            continue
        if value is None and field.required:
            error(field.key, f"{field.label} is required and cannot be emptied")
            continue
        checked.append((field, value))
    if creating:
        for field in fields:
            if field.required and field.archived_at is None and field.id not in mentioned:
                error(field.key, f"{field.label} is required")
    if errors:
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        raise Invalid(f"Please check the input — {summary}", code="validation_error",
                      details=errors)
    return checked


def validate(session: Session, *, club_id: int, values: dict[str, object],
             creating: bool) -> dict[int, object]:
    """Check `{key: value}` against the club's fields → `{field_id: typed value}` (None clears).

    Values may be JSON values or already typed (Decimal, date, bool). Unknown or archived keys,
    values that do not fit the type, and (with `creating`) required fields left out raise one
    `Invalid` whose details name every `custom.<key>`.
    """
    return {field.id: value for field, value in
            _checked(session, club_id=club_id, values=values, creating=creating)}


def set_values(session: Session, *, club_id: int, member_id: int,
               values: dict[str, object]) -> None:
    """Validate and store a member's values (`{key: value}`; None deletes the value).

    Keys may also be field ids as returned by `validate`. Nothing is written if any is invalid.
    """
    checked = _checked(session, club_id=club_id, values=values, creating=False)
    if not checked:
        return
    if session.scalar(select(Member.id).where(Member.id == member_id,
                                              Member.club_id == club_id)) is None:
        raise NotFound("Member not found", code="member_not_found")
    existing = {row.field_id: row for row in session.scalars(
        select(CustomFieldValue).where(CustomFieldValue.member_id == member_id,
                                       CustomFieldValue.field_id.in_([f.id for f, _ in checked])))}
    gone = [existing[f.id].id for f, v in checked if v is None and f.id in existing]
    if gone:
        session.execute(delete(CustomFieldValue).where(CustomFieldValue.id.in_(gone)))
    for field, value in checked:
        if value is None:
            continue
        row = existing.get(field.id)
        if row is None:
            row = CustomFieldValue(club_id=club_id, member_id=member_id, field_id=field.id)
            session.add(row)
        _store(row, field, value)
    session.flush()


def value_columns(field: CustomField, value: Any) -> dict[str, Any]:
    """A typed value as the `custom_field_values` columns (for bulk Core inserts)."""
    columns = dict.fromkeys(("value_text", "value_folded", "value_number", "value_date",
                             "value_bool"))
    if field.type in ("text", "choice"):
        columns["value_text"], columns["value_folded"] = value, value.casefold()[:MAX_TEXT]
    elif field.type == "number":
        columns["value_number"] = value
    elif field.type == "date":
        columns["value_date"] = value
    else:
        columns["value_bool"] = value
    return columns


def _store(row: CustomFieldValue, field: CustomField, value: Any) -> None:
    for name, column_value in value_columns(field, value).items():
        setattr(row, name, column_value)


def _typed(field_type: str, row) -> Any:
    if field_type == "number":
        return None if row.value_number is None else _tidy(Decimal(row.value_number))
    if field_type == "date":
        return row.value_date
    if field_type == "yes_no":
        return row.value_bool
    return row.value_text


def _chunks(ids: Iterable[int]) -> Iterable[list[int]]:
    ids = list(dict.fromkeys(ids))
    for start in range(0, len(ids), ID_CHUNK):
        yield ids[start:start + ID_CHUNK]


def values_for(session: Session, *, club_id: int, member_ids: list[int],
               include_archived: bool = False) -> dict[int, dict[str, object]]:
    """`{member_id: {key: typed value}}` for the given members (every id present, in form order).

    One query (per 5000 members); archived fields are left out unless asked for.
    """
    result: dict[int, dict[str, object]] = {member_id: {} for member_id in member_ids}
    for chunk in _chunks(member_ids):
        stmt = (select(CustomFieldValue.member_id, CustomField.key, CustomField.type,
                       CustomFieldValue.value_text, CustomFieldValue.value_number,
                       CustomFieldValue.value_date, CustomFieldValue.value_bool)
                .join(CustomField, CustomField.id == CustomFieldValue.field_id)
                .where(CustomFieldValue.club_id == club_id, CustomField.club_id == club_id,
                       CustomFieldValue.member_id.in_(chunk))
                .order_by(CustomFieldValue.member_id, CustomField.position, CustomField.id))
        if not include_archived:
            stmt = stmt.where(CustomField.archived_at.is_(None))
        for row in session.execute(stmt):
            result[row.member_id][row.key] = _typed(row.type, row)
    return result


def format_text(field: CustomField, value: Any) -> str:
    """A typed value as CSV text: yes/no, 12.5, 2026-01-31; None → ""."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return format(_tidy(value), "f")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def shown(session: Session, *, club_id: int, values: dict[str, object]) -> list[dict]:
    """`[{"key", "label", "text"}]` of a member's values (from `values_for`), in form order."""
    if not values:
        return []
    return [{"key": field.key, "label": field.label, "text": format_text(field, values[field.key])}
            for field in definitions(session, club_id=club_id) if field.key in values]


def json_value(value: Any) -> Any:
    """A typed value for a JSON answer: Decimal → int or float, date → ISO text, others as is."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


# --- search ------------------------------------------------------------------------------------


def value_conditions(session: Session, *, club_id: int, key: str,
                     value: str) -> list[ColumnElement[bool]]:
    """Conditions on `CustomFieldValue` for members whose searchable field `key` matches `value`.

    Choice, yes/no, number and date match exactly; text matches case-insensitively at the start
    ("ber" finds "Berlin"). Each is one range of a (field_id, value) index. An unknown, archived
    or unsearchable key, or a value that does not fit the type, is a 422.
    """
    field = session.scalar(select(CustomField).where(CustomField.club_id == club_id,
                                                     CustomField.key == key,
                                                     CustomField.archived_at.is_(None)))
    if field is None:
        raise _field_error("field", f"this club has no custom field '{key}'")
    if not field.searchable:
        raise _field_error("field", f"{field.label} is not searchable; an owner or manager can "
                                    "make it searchable")
    try:
        typed = parse_text(field, value)
    except ValueError as exc:
        raise _field_error("value", str(exc)) from None
    if typed is None:
        raise _field_error("value", "give a value to look for")
    base = [CustomFieldValue.club_id == club_id, CustomFieldValue.field_id == field.id]
    match field.type:
        case "number":
            return [*base, CustomFieldValue.value_number == typed]
        case "date":
            return [*base, CustomFieldValue.value_date == typed]
        case "yes_no":
            return [*base, CustomFieldValue.value_bool == typed]
        case "choice":
            return [*base, CustomFieldValue.value_folded == typed.casefold()]
    folded = typed.casefold()[:MAX_TEXT]
    return [*base, and_(CustomFieldValue.value_folded >= folded,
                        CustomFieldValue.value_folded < successor(folded))]
