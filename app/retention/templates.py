"""Touchpoint texts: Jinja2 in a sandbox, with the member, club and membership as plain data.

Templates are written by club owners, so they run in `ImmutableSandboxedEnvironment` (no access
to Python internals, no mutation) and see only dictionaries built here — never ORM objects.
Undefined names are errors (`StrictUndefined`): a typo is caught when the template is saved
(rendered against a sample member) instead of sending "Hello ," to members.
"""
from datetime import date
from functools import lru_cache

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from app.core.errors import Invalid

MAX_TEMPLATE = 10_000


def _nice_date(value) -> str:
    if isinstance(value, date):
        return f"{value.day} {value:%B %Y}"
    return "" if value is None else str(value)


_env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False,
                                     trim_blocks=True, lstrip_blocks=True)
_env.filters["nice_date"] = _nice_date


class RenderError(Exception):
    """A template failed to compile or render; the message is Jinja's."""


def _describe(exc: TemplateError) -> str:
    if isinstance(exc, TemplateSyntaxError):
        return f"line {exc.lineno}: {exc.message}"
    return exc.message or exc.__class__.__name__


@lru_cache(maxsize=1024)
def _compiled(source: str):
    return _env.from_string(source)


def render(source: str, context: dict) -> str:
    try:
        return _compiled(source).render(context).strip()
    except TemplateError as exc:
        raise RenderError(_describe(exc)) from exc
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise RenderError(str(exc)) from exc


def context(*, member, club, membership=None, plan_name: str | None = None,
            stage=None, today: date, unsubscribe_url: str | None = None) -> dict:
    """What a template sees: `member`, `club`, `membership`, `stage`, `today`, `unsubscribe_url`."""
    days_left = None
    if membership is not None:
        days_left = max((membership.end_date - today).days + 1, 0)
    return {
        "member": {
            "id": member.id,
            "first_name": member.first_name or "",
            "last_name": member.last_name or "",
            "name": f"{member.first_name or ''} {member.last_name or ''}".strip(),
            "email": member.email,
            "phone": member.phone,
            "birth_date": member.birth_date,
        },
        "club": {"id": club.id, "name": club.name, "timezone": club.timezone,
                 "currency": club.currency},
        "membership": {
            "id": membership.id if membership is not None else None,
            "plan": plan_name,
            "start_date": membership.start_date if membership is not None else None,
            "end_date": membership.end_date if membership is not None else None,
            "days_left": days_left,
        },
        "stage": {"name": stage.stage if stage is not None else None,
                  "since": stage.since if stage is not None else None},
        "today": today,
        "unsubscribe_url": unsubscribe_url or "",
    }


class _Sample:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def sample_context(club_name: str = "Riverside Fitness") -> dict:
    today = date(2026, 1, 15)
    return context(
        member=_Sample(id=1, first_name="Alex", last_name="Example", email="alex@example.com",
                       phone="+4915112345678", birth_date=date(1990, 1, 15)),
        club=_Sample(id=1, name=club_name, timezone="Europe/Berlin", currency="EUR"),
        membership=_Sample(id=1, start_date=date(2025, 2, 1), end_date=date(2026, 1, 31)),
        plan_name="Annual Unlimited", stage=_Sample(stage="active", since=date(2025, 5, 2)),
        today=today, unsubscribe_url="https://club.example/unsubscribe?token=sample")


def check(field: str, source: str) -> None:
    """Refuse a template that does not compile or render for a sample member (422)."""
    if len(source) > MAX_TEMPLATE:
        raise Invalid(f"{field} is longer than {MAX_TEMPLATE} characters", code="invalid_template",
                      details={"field": field})
    try:
        render(source, sample_context())
    except RenderError as exc:
        raise Invalid(f"{field}: {exc}", code="invalid_template",
                      details={"field": field, "error": str(exc)}) from exc
