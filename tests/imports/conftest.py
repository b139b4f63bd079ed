"""Shared by the import tests: the `fitclub import …` commands on the test database."""
from collections.abc import Iterator

import pytest
import typer

from app.core.config import get_settings
from app.imports import cli as imports_cli


@pytest.fixture
def cli(db, monkeypatch) -> Iterator[typer.Typer]:
    """`fitclub import …` (and `fitclub export …`) on the test database."""
    monkeypatch.setenv("DATABASE_URL", db.url)
    get_settings.cache_clear()
    app = typer.Typer()
    imports_cli.register(app)
    yield app
    get_settings.cache_clear()
