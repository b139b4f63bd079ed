"""The schema exists only through Alembic: up, down, and no drift from the models."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from app.core import migrate
from app.core.db import make_engine
from app.registry import metadata
from tests.conftest import create_database, drop_database


def _drift(engine) -> list:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, metadata)


def test_models_and_migrations_do_not_drift(db):
    assert _drift(db.engine) == []


def test_upgrade_from_empty_and_downgrade_to_base(db, tmp_path):
    url = create_database(db.backend, tmp_path)
    try:
        migrate.upgrade(url)
        engine = make_engine(url)
        tables = set(inspect(engine).get_table_names())
        assert set(metadata.tables) <= tables
        assert _drift(engine) == []
        engine.dispose()
        migrate.downgrade(url, "base")
        engine = make_engine(url)
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        engine.dispose()
        migrate.upgrade(url)
    finally:
        drop_database(url)
