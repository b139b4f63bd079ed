"""A database made at the first revision and filled with a demo club upgrades to head intact.

Generic over the revision history: the demo club is built with today's models in a database at
head, then copied — the columns the first revision has — into a database at the first revision,
which is upgraded to head through every later revision; the row count of every table must not
change (a revision adding a NOT NULL column without a default to a filled table fails here).
"""
from datetime import date

from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect, select, text

from app.core import migrate
from app.core.db import make_engine, make_sessionmaker
from app.demo.generator import DemoOptions, build_demo
from app.registry import metadata
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


def _copy_into_old_schema(source, target) -> None:
    """Every row of `source` (head) into `target` (an older revision), the columns it has."""
    old = MetaData()
    old.reflect(target)
    with source.connect() as src, target.begin() as dst:
        for table in metadata.sorted_tables:
            if table.name not in old.tables:
                continue
            into = old.tables[table.name]
            columns = [c.name for c in into.columns]
            rows = src.execute(select(*(table.c[name] for name in columns))).mappings().all()
            if rows:
                dst.execute(into.insert(), [dict(r) for r in rows])


def test_upgrade_from_first_revision_keeps_every_row(db, tmp_path):
    head_url = create_database(db.backend, tmp_path)
    url = create_database(db.backend, tmp_path)
    try:
        migrate.upgrade(head_url, "head")
        head_engine = make_engine(head_url)
        build_demo(make_sessionmaker(head_engine), DemoOptions(members=40, months=3, seed=5,
                                                               as_of=date(2026, 6, 15)))
        migrate.upgrade(url, _first_revision())
        engine = make_engine(url)
        _copy_into_old_schema(head_engine, engine)
        head_engine.dispose()
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
        drop_database(head_url)
