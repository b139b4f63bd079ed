"""The house plan, enforced: every module of `app/` imports only from its own layer or below,
no import cycle among modules, no import of `app.*` inside a function, no room too big.

The layers (CONTRIBUTING.md, "The house plan"), bottom to top:

    core → models → clubs → customfields → billing → memberships → members → dues → access
         → crm → trainers → inventory → retention → imports → privacy → memberapp → analytics
         → interfaces (API routers, CLI commands, web pages) → top (wiring, demo, main, cli,
           asgi)

`models` is every domain's tables (`app/<domain>/models.py`, and `app.registry`, which imports
them all): tables refer to each other by foreign key, so any service may read them; they import
only core and other models. A domain
module imports core, models, its own package and the domains below it — never one above, never a
router. The check reads the source (no import is executed), so it also sees what a test run
never imports.
"""
import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app"
DOMAINS = ("clubs", "customfields", "billing", "memberships", "members", "dues", "access", "crm",
           "trainers", "inventory", "retention", "imports", "privacy", "memberapp", "analytics")
INTERFACE_PACKAGES = ("web", "ops")
TOP = ("app.wiring", "app.demo", "app.main", "app.cli", "app.asgi")
CORE, MODELS = 0, 1
INTERFACES = 2 + len(DOMAINS)
TOP_LAYER = INTERFACES + 1
MAX_FILE_LINES = 800
MAX_FUNCTION_LINES = 80
LONG_REASON = "# long:"  # in the comment above a longer function: why it stays one piece


def _modules() -> dict[str, Path]:
    found = {}
    for path in APP.rglob("*.py"):
        parts = list(path.relative_to(APP.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def layer(module: str) -> int:
    parts = module.split(".")
    if module == "app" or parts[1] == "core":
        return CORE
    if any(module == top or module.startswith(top + ".") for top in TOP):
        return TOP_LAYER
    if parts[1] in INTERFACE_PACKAGES:
        return INTERFACES
    if parts[-1] in ("router", "cli") or parts[-1].endswith("_router"):
        return INTERFACES
    if parts[-1] == "models" or module == "app.registry":  # the registry: every models module
        return MODELS
    assert parts[1] in DOMAINS, f"{module}: a package the house plan does not place (add it)"
    return 2 + DOMAINS.index(parts[1])


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> list[tuple[str, int, bool]]:
    """(imported app module, line, inside a function) for every import of `app.*`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    in_function = {id(node) for f in ast.walk(tree)
                   if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for node in ast.walk(f)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                     for alias in node.names]
        else:
            continue
        for name in names:
            target = _resolve(name) if name.startswith("app") else None
            if target and target != module:
                found.append((target, node.lineno, id(node) in in_function))
    return found


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def _allowed(source: str, target: str) -> bool:
    s, t = layer(source), layer(target)
    if t < s:
        return True
    if t > s:
        return False
    if s in (CORE, MODELS, INTERFACES, TOP_LAYER):
        return True
    return source.split(".")[1] == target.split(".")[1]  # a domain's own package


def test_every_import_goes_down_the_layers():
    wrong = [f"{MODULES[m].relative_to(APP.parent)}:{line} imports {t} "
             f"(layer {layer(m)} → {layer(t)})"
             for m, edges in GRAPH.items() for t, line, _ in edges if not _allowed(m, t)]
    assert not wrong, "imports against the house plan:\n" + "\n".join(sorted(wrong))


def test_no_import_by_name_at_run_time():
    """`importlib.import_module` / `__import__` would hide an edge from every check here."""
    hidden = []
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            named = (node.func.attr if isinstance(node, ast.Call)
                     and isinstance(node.func, ast.Attribute) else
                     node.func.id if isinstance(node, ast.Call)
                     and isinstance(node.func, ast.Name) else None)
            if named in ("import_module", "__import__"):
                hidden.append(f"{path.relative_to(APP.parent)}:{node.lineno}")
    assert not hidden, "imports by name at run time:\n" + "\n".join(hidden)


def test_pages_do_not_import_routers():
    """A page calls services; the API's routers are for HTTP callers only."""
    wrong = [f"{MODULES[m].relative_to(APP.parent)}:{line} imports {t}"
             for m, edges in GRAPH.items() if m.startswith("app.web.")
             for t, line, _ in edges
             if t.split(".")[-1] == "router" and not t.startswith("app.web")
             or t.endswith("_router")]
    assert not wrong, "\n".join(wrong)


def test_no_import_inside_a_function():
    hidden = [f"{MODULES[m].relative_to(APP.parent)}:{line} imports {t}"
              for m, edges in GRAPH.items() for t, line, inner in edges if inner]
    assert not hidden, ("imports of app modules inside functions hide a dependency (put them "
                        "at the top; a cycle means a function is in the wrong module):\n"
                        + "\n".join(sorted(hidden)))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root, children in graph.items():
        if root in index:
            continue
        work = [(root, iter(sorted(children)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle_among_modules():
    graph = {m: {t for t, _, _ in edges} for m, edges in GRAPH.items()}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_layer_rule_refuses_an_upward_import():
    assert _allowed("app.access.service", "app.members.service")
    assert not _allowed("app.members.service", "app.access.service")
    assert not _allowed("app.members.service", "app.members.router")
    assert _allowed("app.members.service", "app.access.models")  # tables are one layer
    assert not _allowed("app.core.deps", "app.clubs.service")


def test_no_room_too_big():
    big = [f"{path.relative_to(APP.parent)}: {n} lines"
           for path in MODULES.values() if (n := len(path.read_text().splitlines()))
           > MAX_FILE_LINES]
    assert not big, f"files over {MAX_FILE_LINES} lines (split along their seams):\n" + \
        "\n".join(big)


def test_long_functions_say_why():
    long = []
    for path in MODULES.values():
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            size = node.end_lineno - node.lineno + 1
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            above = first - 2  # the comment block right above the function (or its decorators)
            while above > 0 and lines[above - 1].lstrip().startswith("#"):
                above -= 1
            if size > MAX_FUNCTION_LINES and not any(
                    LONG_REASON in line for line in lines[above:first - 1]):
                long.append(f"{path.relative_to(APP.parent)}:{node.lineno} {node.name} "
                            f"({size} lines)")
    assert not long, (f"functions over {MAX_FUNCTION_LINES} lines without a '{LONG_REASON} why' "
                      "comment on the line above:\n" + "\n".join(long))
