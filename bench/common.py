"""Shared by the benchmarks: throw-away databases, the demo club, timing and tables."""
from __future__ import annotations

import os
import platform
import resource
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG_ADMIN_URL = os.environ.get("FITCLUB_BENCH_PG_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@contextmanager
def fresh_database(backend: str, label: str = "bench", keep: bool = False) -> Iterator[str]:
    """A new empty database (PostgreSQL: created from the admin URL; SQLite: a temp file),
    migrated to head; dropped afterwards unless `keep`."""
    from app.core import migrate

    name = f"fitclub_{label}_{uuid.uuid4().hex[:8]}"
    if backend == "sqlite":
        tmp = Path(tempfile.mkdtemp(prefix="fitclub-bench-"))
        url = f"sqlite:///{tmp / (name + '.db')}"
    elif backend == "postgresql":
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    else:
        raise ValueError(f"unknown backend {backend!r}")
    try:
        migrate.upgrade(url)
        yield url
    finally:
        if not keep:
            drop_database(url)
        else:
            print(f"(kept database {url})")


def drop_database(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        try:
            path.parent.rmdir()
        except OSError:
            pass
        return
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
    admin.dispose()


@dataclass
class Built:
    result: object  # app.demo.generator.DemoResult
    seconds: float
    peak_rss_mb: float


def build_demo(url: str, *, members: int, visits: bool = True, months: int = 18, seed: int = 7,
               as_of: date | None = None, progress: bool = True) -> Built:
    """The demo club in `url`, timed."""
    from app.core.db import make_engine, make_sessionmaker
    from app.demo.generator import DemoOptions
    from app.demo.generator import build_demo as generate

    engine = make_engine(url)
    started = time.perf_counter()
    result = generate(make_sessionmaker(engine),
                      DemoOptions(members=members, months=months, seed=seed, as_of=as_of,
                                  visits=visits, dues=False,  # bench.billing has its own
                                  progress=print if progress else None))
    seconds = time.perf_counter() - started
    engine.dispose()
    return Built(result, seconds, peak_rss_mb())


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of the values (p in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table, columns padded to their widest cell."""
    cells = [[str(h) for h in headers]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True)), line]
    out += ["  ".join(c.rjust(w) if _numeric(c) else c.ljust(w)
                      for c, w in zip(r, widths, strict=True)) for r in cells[1:]]
    return "\n".join(out)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _numeric(cell: str) -> bool:
    return cell.replace(",", "").replace(".", "").replace("-", "").replace("%", "").isdigit()


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def machine() -> str:
    return (f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")
