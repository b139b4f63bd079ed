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
- no text or list built on the way, and not the output, may exceed `MAX_OUTPUT` characters;
  a list, dict or namespace is measured by an estimate of its text (`_estimate`: walks nested
  containers, stops at the limit, never builds the text). Everything that could multiply its
  input is checked *before* the result is built: `"x" * n` and `[...] * n` (by that estimate),
  `ljust`/`center`/`zfill` widths, `format` (field sizes and widths; widths given by an argument,
  `{:{}}`, are refused), `join`, `replace`, `wordwrap`'s wrapstring, `~`, and turning a container
  into text (`{{ list }}`, `~`, `|string` and the other filters); integers are limited to
  `MAX_INT_BITS` bits;
- everything written, including into macros, `{% set %}` and `{% filter %}` blocks that are
  captured and perhaps thrown away, may add up to at most `MAX_WRITTEN` characters;
- only the filters in `FILTERS` exist; `%`-formatting of text is refused (join text with `~`);
  the string methods in `_UNSAFE_STR_METHODS` (`translate`, `format_map`, `encode`, …) are
  refused.

Exceeding a limit is a `RenderError`: at save time a 422 that says which limit (the save renders
the template for a sample member), at dispatch a failed touchpoint (`template_error`).
"""
import re
import time
from collections.abc import KeysView, ValuesView
from contextvars import ContextVar
from datetime import date
from functools import lru_cache, wraps
from string import Formatter

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, nodes, pass_context
from jinja2.exceptions import SecurityError
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range
from jinja2.utils import Namespace
from jinja2.visitor import NodeTransformer

from app.core.errors import Invalid

MAX_TEMPLATE = 10_000   # characters of template source
MAX_STEPS = 20_000      # loop iterations, calls, lookups and operators in one rendering
MAX_OUTPUT = 20_000     # characters of output, and of any text or list built while rendering
MAX_INT_BITS = 4_096    # size of any integer computed
MAX_WRITTEN = 100_000   # characters written in all, captured blocks and macro calls included
MAX_SECONDS = 2.0       # backstop only: the step count stops every template we know of first


def _nice_date(value) -> str:
    if isinstance(value, date):
        return f"{value.day} {value:%B %Y}"
    return "" if value is None else str(value)


class TemplateLimit(SecurityError):
    """A template went over one of the limits above."""


class _Budget:
    __slots__ = ("started", "steps", "written")

    def __init__(self) -> None:
        self.steps = 0
        self.written = 0
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


_CONTAINERS = (list, tuple, set, frozenset, KeysView, ValuesView)


def _estimate(value, limit: int = MAX_OUTPUT) -> int:
    """About `len(str(value))` (an upper bound for what templates can build), without building
    the text: walks nested containers (shared ones once per use, as `str()` would) and stops as
    soon as the count is over `limit`, so it costs at most about `limit` visits."""
    if isinstance(value, str):
        return len(value)
    total, visited, stack = 0, 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        visited += 1
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, (bytes, bytearray)):
            total += 4 * len(item) + 3
        elif item is None or isinstance(item, bool):
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() + item.bit_length() // 4 + 3
        elif isinstance(item, float):
            total += 24
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)
            if total <= limit:
                stack.extend(item.keys())
                stack.extend(item.values())
        elif isinstance(item, _CONTAINERS):
            total += 2 + 2 * len(item)
            if total <= limit:
                stack.extend(item)
        elif isinstance(item, Namespace):
            total += 13
            stack.append(getattr(item, "_Namespace__attrs", {}))
        else:  # dates, macros, loops, ranges, undefined: short texts
            total += 40
    if visited > 256:
        _step(visited // 256)
    return total


def _sized(value):
    """`value`, unless it is a text, container or number over the limits."""
    if isinstance(value, (str, bytes)):
        if len(value) > MAX_OUTPUT:
            raise _too_long()
    elif isinstance(value, (dict, Namespace, *_CONTAINERS)):
        if _estimate(value) > MAX_OUTPUT:
            raise _too_long()
    elif isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise TemplateLimit(f"the template computes a number larger than {MAX_INT_BITS} bits")
    return value


def _check_text(*values) -> None:
    """Refuse before turning `values` into text when the text would be too long."""
    total = 0
    for value in values:
        total += _estimate(value, MAX_OUTPUT - total)
        if total > MAX_OUTPUT:
            raise _too_long()


def _is_seq(value) -> bool:
    return isinstance(value, (str, bytes, list, tuple))


def _check_repeat(left, right) -> None:
    """`left * right`, refused before it is computed when the result would be too big."""
    for seq, n in ((left, right), (right, left)):
        if _is_seq(seq) and isinstance(n, int) and n > 0 \
                and _estimate(seq, MAX_OUTPUT // n + 1) * n > MAX_OUTPUT:
            raise _too_long()
    if isinstance(left, int) and isinstance(right, int) \
            and left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
        raise TemplateLimit(f"the template computes a number larger than {MAX_INT_BITS} bits")


def _check_power(base, exponent) -> None:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1 \
            and (base.bit_length() - 1) * exponent > MAX_INT_BITS:
        raise TemplateLimit(f"the template computes a number larger than {MAX_INT_BITS} bits")


def _check_join(items: list, separator: str) -> None:
    total = len(separator) * max(len(items) - 1, 0)
    for item in items:
        if total > MAX_OUTPUT:
            break
        total += _estimate(item, MAX_OUTPUT - total)
    if total > MAX_OUTPUT:
        raise _too_long()


_FIELD_ROOT = re.compile(r"[^.\[]*")
_DIGITS = re.compile(r"\d+")


def _check_format(text: str, args: tuple, kwargs: dict) -> None:
    """`text.format(*args, **kwargs)`, refused before it is built when it would be too long."""
    total, auto = 0, 0
    for literal, field, spec, conversion in Formatter().parse(text):
        total += len(literal)
        if field is None:
            continue
        spec = spec or ""
        if "{" in spec:
            raise TemplateLimit("a format width or precision given by an argument ({:{}}) is "
                                "not available in templates")
        if _BIG_NUMBER.search(spec):
            raise _too_long()
        name = _FIELD_ROOT.match(field).group()
        if name == "":
            value, auto = (args[auto] if auto < len(args) else None), auto + 1
        elif name.isdigit():
            value = args[int(name)] if int(name) < len(args) else None
        else:
            value = kwargs.get(name)
        size = _estimate(value, MAX_OUTPUT) * (10 if conversion == "a" else 1)
        total += size + sum(int(d) for d in _DIGITS.findall(spec))
        total += 320 if isinstance(value, float) else 0  # "{:f}" of 1e308
        if total > MAX_OUTPUT:
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
# string methods that multiply their input in ways not worth checking: refused outright
_UNSAFE_STR_METHODS = frozenset({"translate", "maketrans", "format_map", "expandtabs", "encode"})
_BIG_NUMBER = re.compile(r"\d{5,}")


def _check_str_method(text: str, name: str, args: tuple, kwargs: dict) -> None:
    if name in _UNSAFE_STR_METHODS:
        raise TemplateLimit(f"the text method {name}() is not available in templates")
    if name in _WIDTH_METHODS and args and isinstance(args[0], int) and args[0] > MAX_OUTPUT:
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
    """Wrapped around every list, tuple and dict written in a template."""
    _step()
    return _sized(value)


@pass_context
def _concat(context, *values):
    """Replaces every `~`: the parts are measured before they are turned into text."""
    _step()
    _check_text(*values)
    return "".join(map(str, values))


@pass_context
def _emit(context, value):
    """Wrapped around everything a template writes (`{{ }}` and text), captured or not."""
    size = _estimate(value)
    if size > MAX_OUTPUT:
        raise _too_long()
    budget = _budget.get()
    if budget is not None:
        budget.written += size
        if budget.written > MAX_WRITTEN:
            raise TemplateLimit(f"the template writes more than {MAX_WRITTEN:,} characters in "
                                "all (counting macros and captured blocks)")
    return value


def _wrap(node: nodes.Expr, name: str, *args: nodes.Expr) -> nodes.Filter:
    return nodes.Filter(node, name, list(args), [], None, None, lineno=node.lineno)


class _Bounded(NodeTransformer):
    """Rewrites a parsed template so every loop, `~`, container and output is counted and
    checked."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        node = self.generic_visit(node)
        node.iter = _wrap(node.iter, "_loop_budget")
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        node = self.generic_visit(node)
        first, *rest = node.nodes
        return _wrap(first, "_concat", *rest)

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        node = self.generic_visit(node)
        node.nodes = [_wrap(child, "_emit") for child in node.nodes]
        return node

    def _container(self, node: nodes.Expr) -> nodes.Node:
        node = self.generic_visit(node)
        if getattr(node, "ctx", "load") != "load":
            return node
        return _wrap(node, "_sized")

    visit_List = visit_Tuple = visit_Dict = _container


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with a step budget and size checks (see the module's docstring)."""

    intercepted_binops = frozenset({"*", "**", "%", "+", "-", "/", "//"})

    def is_safe_attribute(self, obj, attr, value):
        if isinstance(obj, (str, bytes)) and attr in _UNSAFE_STR_METHODS:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def call_binop(self, context, operator, left, right):
        _step()
        if operator == "*":
            _check_repeat(left, right)
        elif operator == "**":
            _check_power(left, right)
        elif operator == "%" and isinstance(left, (str, bytes)):
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
            if value.__name__ != "format":
                raise TemplateLimit(f"the text method {value.__name__}() is not available in "
                                    "templates")
            _check_format(text, args, kwargs)
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
        for value in (*args, *kwargs.values()):  # most filters turn their input into text
            if not isinstance(value, str) and _estimate(value) > MAX_OUTPUT:
                raise _too_long()
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


def _wordwrap_filter(environment, s, width=79, break_long_words=True, wrapstring=None,
                     break_on_hyphens=True):
    # every character may become its own line, each followed by the wrapstring
    if isinstance(s, str) and isinstance(wrapstring, str) \
            and len(s) + (len(s) + 1) * len(wrapstring) > MAX_OUTPUT:
        raise _too_long()
    return _WORDWRAP(environment, s, width, break_long_words, wrapstring, break_on_hyphens)


_JOIN, _REPLACE = _env.filters["join"], _env.filters["replace"]
_WORDWRAP = _env.filters["wordwrap"]
_join_filter.jinja_pass_arg = _JOIN.jinja_pass_arg
_replace_filter.jinja_pass_arg = _REPLACE.jinja_pass_arg
_wordwrap_filter.jinja_pass_arg = _WORDWRAP.jinja_pass_arg
# the filters a message needs; those that multiply their input (center, indent, format, batch,
# sum, …) are left out
FILTERS = ("abs", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first",
           "float", "int", "last", "length", "list", "lower", "max", "min", "reverse", "round",
           "safe", "sort", "string", "striptags", "title", "trim", "truncate", "unique", "upper",
           "urlencode", "wordcount", "wordwrap")
_env.filters = {name: _counted(_env.filters[name]) for name in FILTERS} | {
    "join": _counted(_join_filter), "replace": _counted(_replace_filter),
    "wordwrap": _counted(_wordwrap_filter), "nice_date": _counted(_nice_date),
    "_loop_budget": _loop_budget, "_sized": _sized_filter, "_concat": _concat, "_emit": _emit}
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


APP_PAGES = {"home": "", "classes": "/classes", "training": "/training", "door": "/door",
             "freeze": "/freeze", "me": "/me", "cancel": "/cancel"}
"""The member app's pages a message can link to (`{{ app.classes }}`: the timetable)."""


def app_links(public_base_url: str) -> dict[str, str]:
    """The member app's page addresses under the server's public address."""
    base = public_base_url.rstrip("/") + "/app"
    return {name: base + path for name, path in APP_PAGES.items()}


def context(*, member, club, membership=None, plan_name: str | None = None,
            stage=None, today: date, unsubscribe_url: str | None = None,
            public_base_url: str = "") -> dict:
    """What a template sees: `member`, `club`, `membership`, `stage`, `today`, `unsubscribe_url`,
    `app` (the member app's pages: `app.classes`, `app.training`, …)."""
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
        "app": app_links(public_base_url),
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
        today=today, unsubscribe_url="https://club.example/unsubscribe?token=sample",
        public_base_url="https://club.example")


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
