"""A database made at the first revision and filled with a demo club upgrades to head intact.

Generic over the revision history: it starts at the first revision (today the only one, so the
upgrade is a no-op; every later revision is exercised by the same test without changes) and
compares the row count of every table before and after.
"""
from datetime import date

from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from app.core import migrate
from app.core.db import make_engine, make_sessionmaker
from app.demo.generator import DemoOptions, build_demo
from tests.conftest import create_database, drop_database


def _first_revision() -> str:
    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    bases = script.get_bases()
    assert len(bases) == 1, f"one root revision expected, found {bases}"
    return bases[0]


def _counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t: conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one()
                for t in inspect(engine).get_table_names() if t != "alembic_version"}


def test_upgrade_from_first_revision_keeps_every_row(db, tmp_path):
    url = create_database(db.backend, tmp_path)
    try:
        migrate.upgrade(url, _first_revision())
        engine = make_engine(url)
        build_demo(make_sessionmaker(engine), DemoOptions(members=40, months=3, seed=5,
                                                          as_of=date(2026, 6, 15)))
        before = _counts(engine)
        engine.dispose()
        assert sum(before.values()) > 200 and before["members"] >= 40

        migrate.upgrade(url, "head")

        engine = make_engine(url)
        after = _counts(engine)
        with engine.connect() as conn:
            heads = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        engine.dispose()
        script = ScriptDirectory.from_config(migrate.alembic_config(url))
        assert heads == [script.get_current_head()]
        lost = {t: (n, after.get(t)) for t, n in before.items() if after.get(t) != n}
        assert not lost, f"row counts changed by the upgrade: {lost}"
    finally:
        drop_database(url)
