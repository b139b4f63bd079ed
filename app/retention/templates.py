"""Touchpoint texts: Jinja2 in a sandbox, with the member, club and membership as plain data.

Templates are written by club owners, so they run in `ImmutableSandboxedEnvironment` (no access
to Python internals, no mutation) and see only dictionaries built here — never ORM objects.
Undefined names are errors (`StrictUndefined`): a typo is caught when the template is saved
(rendered against a sample member) instead of sending "Hello ," to members.

The sandbox is also bounded, so a template cannot stall the server or fill its memory:

- the source is at most `MAX_TEMPLATE` characters;
- one rendering may take at most `MAX_STEPS` steps — every loop iteration (each `{% for %}` is
  counted, `range()` too), call, attribute or item lookup and arithmetic operator is one — a
  deterministic measure of render time; `MAX_SECONDS` of wall time is only a backstop;
- no text or list built on the way, and not the output, may exceed `MAX_OUTPUT` characters
  (items); `"x" * n`, `ljust`/`center`/`zfill` widths, `join` and `replace` are checked *before*
  the result is built; integers are limited to `MAX_INT_BITS` bits;
- only the filters in `FILTERS` exist; `%`-formatting of text is refused (join text with `~`).

Exceeding a limit is a `RenderError`: at save time a 422 that says which limit (the save renders
the template for a sample member), at dispatch a failed touchpoint (`template_error`).
"""
import re
import time
from contextvars import ContextVar
from datetime import date
from functools import lru_cache, wraps

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, nodes, pass_context
from jinja2.exceptions import SecurityError
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range
from jinja2.visitor import NodeTransformer

from app.core.errors import Invalid

MAX_TEMPLATE = 10_000   # characters of template source
MAX_STEPS = 20_000      # loop iterations, calls, lookups and operators in one rendering
MAX_OUTPUT = 20_000     # characters of output, and of any text or list built while rendering
MAX_INT_BITS = 4_096    # size of any integer computed
MAX_SECONDS = 2.0       # backstop only: the step count stops every template we know of first


def _nice_date(value) -> str:
    if isinstance(value, date):
        return f"{value.day} {value:%B %Y}"
    return "" if value is None else str(value)


class TemplateLimit(SecurityError):
    """A template went over one of the limits above."""


class _Budget:
    __slots__ = ("started", "steps")

    def __init__(self) -> None:
        self.steps = 0
        self.started = time.perf_counter()

    def step(self, n: int = 1) -> None:
        self.steps += n
        if self.steps > MAX_STEPS:
            raise TemplateLimit(
                f"the template does too much work: more than {MAX_STEPS:,} loop iterations, "
                "calls and lookups for one message (use fewer or shorter loops)")
        if self.steps % 1024 < n and time.perf_counter() - self.started > MAX_SECONDS:
            raise TemplateLimit(f"the template took longer than {MAX_SECONDS:g} seconds to "
                                "render (use fewer or shorter loops)")


_budget: ContextVar[_Budget | None] = ContextVar("template_budget", default=None)


def _step(n: int = 1) -> None:
    budget = _budget.get()
    if budget is not None:
        budget.step(n)


def _too_long(what: str = "a text or list") -> TemplateLimit:
    return TemplateLimit(f"the template builds {what} longer than {MAX_OUTPUT:,} characters")


def _sized(value):
    """`value`, unless it is a text, list or number over the limits."""
    if isinstance(value, (str, bytes, list, tuple, dict, set, frozenset)):
        if len(value) > MAX_OUTPUT:
            raise _too_long()
    elif isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise TemplateLimit(f"the template computes a number larger than {MAX_INT_BITS} bits")
    return value


def _is_seq(value) -> bool:
    return isinstance(value, (str, bytes, list, tuple))


def _check_repeat(left, right) -> None:
    """`left * right`, refused before it is computed when the result would be too big."""
    for seq, n in ((left, right), (right, left)):
        if _is_seq(seq) and isinstance(n, int) and len(seq) * max(n, 0) > MAX_OUTPUT:
            raise _too_long()
    if isinstance(left, int) and isinstance(right, int) \
            and left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
        raise TemplateLimit(f"the template computes a number larger than {MAX_INT_BITS} bits")


def _check_power(base, exponent) -> None:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1 \
            and (base.bit_length() - 1) * exponent > MAX_INT_BITS:
        raise TemplateLimit(f"the template computes a number larger than {MAX_INT_BITS} bits")


def _check_join(items: list, separator: str) -> None:
    total = sum(len(i) if isinstance(i, str) else 20 for i in items)
    if total + len(separator) * max(len(items) - 1, 0) > MAX_OUTPUT:
        raise _too_long()


def _check_replace(text: str, old: str, new: str, count: int = -1) -> None:
    if not isinstance(text, str) or not isinstance(old, str) or not isinstance(new, str):
        return
    times = len(text) + 1 if old == "" else text.count(old)
    if count is not None and count >= 0:
        times = min(times, count)
    if len(text) + times * len(new) > MAX_OUTPUT:
        raise _too_long()


_WIDTH_METHODS = {"ljust", "rjust", "center", "zfill"}
_BIG_NUMBER = re.compile(r"\d{5,}")


def _check_str_method(text: str, name: str, args: tuple, kwargs: dict) -> None:
    if name in _WIDTH_METHODS and args and isinstance(args[0], int) and args[0] > MAX_OUTPUT:
        raise _too_long()
    if name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(size, int) and len(text) * max(size, 1) > MAX_OUTPUT:
            raise _too_long()
    if name == "join" and args:
        items = list(args[0])
        _step(len(items))
        _check_join(items, text)
    if name == "replace" and len(args) >= 2:
        _check_replace(text, args[0], args[1], args[2] if len(args) > 2 else -1)


class _Range:
    """`range()` in a template: at most `MAX_RANGE` items, each one counted when iterated."""

    def __init__(self, *args: int) -> None:
        self._range = safe_range(*args)

    def __iter__(self):
        for item in self._range:
            _step()
            yield item

    def __reversed__(self):
        for item in reversed(self._range):
            _step()
            yield item

    def __len__(self) -> int:
        return len(self._range)

    def __getitem__(self, index):
        item = self._range[index]
        return _Range(item.start, item.stop, item.step) if isinstance(item, range) else item

    def __contains__(self, item) -> bool:
        return item in self._range

    def __repr__(self) -> str:
        return repr(self._range)


@pass_context
def _loop_budget(context, iterable):
    """Wrapped around every `{% for %}`: each iteration is one step."""
    for item in iterable:
        _step()
        yield item


@pass_context
def _sized_filter(context, value):
    """Wrapped around every `~` concatenation."""
    _step()
    return _sized(value)


class _Bounded(NodeTransformer):
    """Rewrites a parsed template so every loop and every `~` is counted and checked."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        node = self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, "_loop_budget", [], [], None, None,
                                 lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        node = self.generic_visit(node)
        return nodes.Filter(node, "_sized", [], [], None, None, lineno=node.lineno)


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with a step budget and size checks (see the module's docstring)."""

    intercepted_binops = frozenset({"*", "**", "%", "+", "-", "/", "//"})

    def call_binop(self, context, operator, left, right):
        _step()
        if operator == "*":
            _check_repeat(left, right)
        elif operator == "**":
            _check_power(left, right)
        elif operator == "%" and isinstance(left, str):
            raise TemplateLimit("%-formatting of text is not available in templates; "
                                "join text with ~")
        return _sized(super().call_binop(context, operator, left, right))

    def getattr(self, obj, attribute):
        _step()
        return super().getattr(obj, attribute)

    def getitem(self, obj, argument):
        _step()
        return _sized(super().getitem(obj, argument))

    def wrap_str_format(self, value):
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        text = value.__self__

        @wraps(wrapper)
        def checked(*args, **kwargs):
            values = list(args) + list(kwargs.values())
            if _BIG_NUMBER.search(text) or any(
                    isinstance(v, int) and abs(v) > MAX_OUTPUT for v in values):
                raise _too_long()
            return _sized(wrapper(*args, **kwargs))
        return checked

    def call(self, context, obj, /, *args, **kwargs):
        _step()
        if isinstance(obj, LoopContext) and args:  # a recursive loop's next level
            args = (_loop_budget(context, args[0]), *args[1:])
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, str):
            _check_str_method(owner, getattr(obj, "__name__", ""), args, kwargs)
        return _sized(super().call(context, obj, *args, **kwargs))


def _counted(function):
    """A filter that costs one step and may not build anything too big."""
    @wraps(function)
    def counted(*args, **kwargs):
        _step()
        return _sized(function(*args, **kwargs))
    return counted


_env = _Sandbox(undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True)


def _join_filter(eval_ctx, value, d="", attribute=None):
    items = list(value)
    _step(len(items))
    _check_join(items, d if isinstance(d, str) else str(d))
    return _JOIN(eval_ctx, items, d, attribute)


def _replace_filter(eval_ctx, s, old, new, count=None):
    _check_replace(s if isinstance(s, str) else str(s), old, new,
                   -1 if count is None else count)
    return _REPLACE(eval_ctx, s, old, new, count)


_JOIN, _REPLACE = _env.filters["join"], _env.filters["replace"]
_join_filter.jinja_pass_arg = _JOIN.jinja_pass_arg
_replace_filter.jinja_pass_arg = _REPLACE.jinja_pass_arg
# the filters a message needs; those that multiply their input (center, indent, format, batch,
# sum, …) are left out
FILTERS = ("abs", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first",
           "float", "int", "last", "length", "list", "lower", "max", "min", "reverse", "round",
           "safe", "sort", "string", "striptags", "title", "trim", "truncate", "unique", "upper",
           "urlencode", "wordcount", "wordwrap")
_env.filters = {name: _counted(_env.filters[name]) for name in FILTERS} | {
    "join": _counted(_join_filter), "replace": _counted(_replace_filter),
    "nice_date": _counted(_nice_date), "_loop_budget": _loop_budget, "_sized": _sized_filter}
_env.globals = {"range": _Range, "dict": dict, "namespace": _env.globals["namespace"]}


class RenderError(Exception):
    """A template failed to compile or render, or went over a limit; the message says why."""


def _describe(exc: TemplateError) -> str:
    if isinstance(exc, TemplateSyntaxError):
        return f"line {exc.lineno}: {exc.message}"
    return exc.message or exc.__class__.__name__


@lru_cache(maxsize=1024)
def _compiled(source: str):
    tree = _env.parse(source)
    tree = _Bounded().visit(tree)
    tree.set_environment(_env)
    return _env.from_string(tree)


def render(source: str, context: dict) -> str:
    """The text of a template for one member, within the limits (else RenderError)."""
    if len(source) > MAX_TEMPLATE:
        raise RenderError(f"the template is longer than {MAX_TEMPLATE:,} characters")
    token = _budget.set(_Budget())
    try:
        parts, size = [], 0
        for chunk in _compiled(source).generate(context):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise RenderError(f"the text would be longer than {MAX_OUTPUT:,} characters")
            parts.append(chunk)
            _step()
        return "".join(parts).strip()
    except TemplateError as exc:
        raise RenderError(_describe(exc)) from exc
    except RecursionError as exc:
        raise RenderError("the template nests or calls itself too deeply") from exc
    except (TypeError, ValueError, ArithmeticError, LookupError, MemoryError) as exc:
        raise RenderError(str(exc) or exc.__class__.__name__) from exc
    finally:
        _budget.reset(token)


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
        raise Invalid(f"{field} is longer than {MAX_TEMPLATE:,} characters",
                      code="invalid_template", details={"field": field})
    try:
        render(source, sample_context())
    except RenderError as exc:
        raise Invalid(f"{field}: {exc}", code="invalid_template",
                      details={"field": field, "error": str(exc)}) from exc
