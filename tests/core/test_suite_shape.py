"""The suite's own shape: the builders are written once, in tests/builders.py, and no conftest
imports another conftest (what two directories share is in tests/builders.py or is a fixture of
tests/conftest.py)."""
import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
BUILDERS = TESTS / "builders.py"
BUILDER_NAMES = {"club", "staff", "device", "member", "card", "plan", "membership", "freeze",
                 "visit", "visits", "sale", "product", "trainer", "package", "task"}


def _parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _functions(path: Path) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [node for node in ast.walk(_parsed(path))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]


def _is_fixture(function) -> bool:
    return any("fixture" in ast.unparse(decorator) for decorator in function.decorator_list)


def _where(path: Path, node) -> str:
    return f"{path.relative_to(TESTS.parent)}:{node.lineno}"


def test_builders_are_defined_in_tests_builders_only():
    """`def member(`, `def plan(`... anywhere but tests/builders.py is a second copy (a fixture
    of that name is fine: it is a thin fixture over the builders)."""
    elsewhere = [f"{_where(path, f)} def {f.name}("
                 for path in sorted(TESTS.rglob("*.py")) if path != BUILDERS
                 for f in _functions(path) if f.name in BUILDER_NAMES and not _is_fixture(f)]
    assert elsewhere == [], "write builders in tests/builders.py:\n" + "\n".join(elsewhere)


def test_the_builders_module_has_the_builders_this_check_looks_for():
    defined = {f.name for f in _functions(BUILDERS)}
    assert {"member", "plan", "membership", "staff", "device", "product", "trainer"} <= defined


def _imports_a_conftest(node) -> bool:
    if isinstance(node, ast.Import):
        return any(alias.name.split(".")[-1] == "conftest" for alias in node.names)
    if isinstance(node, ast.ImportFrom):
        return ((node.module or "").split(".")[-1] == "conftest"
                or any(alias.name == "conftest" for alias in node.names))
    return False


def test_no_conftest_imports_another_conftest():
    conftests = sorted(TESTS.rglob("conftest.py"))
    assert TESTS / "conftest.py" in conftests
    found = [f"{_where(path, node)} {ast.unparse(node)}" for path in conftests
             for node in ast.walk(_parsed(path)) if _imports_a_conftest(node)]
    assert found == [], "share through tests/builders.py or a tests/conftest.py fixture:\n" + \
        "\n".join(found)
