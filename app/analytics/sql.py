"""What only the analytics reports need in SQL: the per-report PostgreSQL settings (`prepare`),
window functions with a literal frame and `not_indexed` (steering SQLite's planner). The portable pieces they share with other domains
(date and month arithmetic, `day_start`, greatest/least, …) are in `app.core.sql`.
"""
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from app.core.sql import is_postgres

REPORT_WORK_MEM = "64MB"


def prepare(session: Session) -> None:
    """Ready this session's transaction for report queries (idempotent).

    PostgreSQL: `SET LOCAL work_mem` so the sorts and hashes of a report stay in memory, and
    `jit = off` (compiling costs more than it saves at these sizes); both end with the
    transaction. SQLite needs nothing: its time-zone and calendar functions are registered on
    every connection as it opens (`app.core.db.make_engine`).
    """
    if not is_postgres(session):
        return
    connection = session.connection()
    connection.exec_driver_sql(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'")
    connection.exec_driver_sql("SET LOCAL jit = off")


# --- window functions with a literal frame ------------------------------------------------------

PRIOR_ROWS = "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING"
LATER_ROWS = "ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING"


class window(ColumnElement):
    """`fn OVER (PARTITION BY … ORDER BY … <frame>)` with the frame written out literally.

    Functions over the same partition, order and frame then share one window pass on
    PostgreSQL (SQLAlchemy 2.1 sends frame offsets as bound parameters, which makes each
    `OVER` a different window and costs a pass each).
    """

    inherit_cache = False

    def __init__(self, fn, *, partition_by, order_by, frame: str = PRIOR_ROWS):
        self.fn = fn
        self.partition_by = list(partition_by) if isinstance(partition_by, (list, tuple)) \
            else [partition_by]
        self.order_by = list(order_by) if isinstance(order_by, (list, tuple)) else [order_by]
        self.frame = frame
        self.type = fn.type

    def get_children(self, **kw):
        return [self.fn, *self.partition_by, *self.order_by]

    @property
    def _from_objects(self):
        return [f for c in self.get_children() for f in c._from_objects]


@compiles(window)
def _window(element, compiler, **kw):
    fn = compiler.process(element.fn, **kw)
    partition = ", ".join(compiler.process(c, **kw) for c in element.partition_by)
    order = ", ".join(compiler.process(c, **kw) for c in element.order_by)
    return f"{fn} OVER (PARTITION BY {partition} ORDER BY {order} {element.frame})"


# --- steering SQLite's planner -------------------------------------------------------------------

class not_indexed(FunctionElement):
    """The column's value, written so that SQLite can use no index of it: `column + 0`.

    For a correlated condition such as `member_id = outer.member_id AND club_id = :club`,
    SQLite (no statistics by default) may pick the index on `club_id` and read the whole club's
    rows for every outer row, instead of the few rows of the member; written on
    `not_indexed(club_id)`, the condition still holds but only the member's index is usable.
    PostgreSQL plans these from statistics and gets the bare column (an expression would also
    lose the column's statistics there).
    """

    inherit_cache = True
    name = "not_indexed"

    def __init__(self, column):
        super().__init__(column)
        self.type = column.type


@compiles(not_indexed)
def _not_indexed(element, compiler, **kw):
    (column,) = [compiler.process(c, **kw) for c in element.clauses]
    return column


@compiles(not_indexed, "sqlite")
def _not_indexed_sqlite(element, compiler, **kw):
    (column,) = [compiler.process(c, **kw) for c in element.clauses]
    return f"({column} + 0)"
