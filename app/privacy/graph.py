"""Where a member's rows are, found by walking the schema (`app.registry.metadata`).

Merge, export and erasure must reach every table that holds something about a person, including
tables other packages add later. So none of them lists tables: they ask this module.

- `member_links()`: every (table, column) with a foreign key to `members.id`;
- `owned_tables()`: those tables, plus the tables that hang off them by a cascading foreign
  key (freezes under memberships, sale lines and payments under sales, delivery attempts under
  touchpoints, …) — the rows that live and die with the member's own rows;
- `owned_where(table, member_id)`: the WHERE clause selecting the member's rows of such a table.
"""
from dataclasses import dataclass
from functools import cache

from sqlalchemy import Column, ColumnElement, Table, or_, select
from sqlalchemy.types import JSON, String

from app.registry import metadata

MEMBERS = "members"
MAX_DEPTH = 3


@dataclass(frozen=True)
class Link:
    """`table.column` refers to `parent` (members, or another owned table) by its id."""

    table: Table
    column: Column
    parent: str


def member_links() -> list[tuple[Table, Column]]:
    """Every foreign-key column to members.id, sorted by table and column name."""
    found = []
    for table in metadata.sorted_tables:
        if table.name == MEMBERS:
            continue
        for fk in table.foreign_keys:
            if fk.column.table.name == MEMBERS and fk.column.name == "id":
                found.append((table, fk.parent))
    return sorted(found, key=lambda tc: (tc[0].name, tc[1].name))


@cache
def owned_tables() -> dict[str, list[Link]]:
    """Table name → how its rows belong to a member (direct member columns, or a cascading parent).

    A table with a member column belongs to the member through it (every such column: a pair
    table has two). A table without one belongs through a parent if its foreign key to an owned
    table cascades on delete (a SET NULL reference, like a stock movement's sale, is a mention,
    not ownership).
    """
    owned: dict[str, list[Link]] = {}
    for table, column in member_links():
        owned.setdefault(table.name, []).append(Link(table, column, MEMBERS))
    frontier = set(owned)
    for _ in range(MAX_DEPTH - 1):
        added: set[str] = set()
        for table in metadata.sorted_tables:
            if table.name in owned or table.name == MEMBERS:
                continue
            for fk in table.foreign_keys:
                parent = fk.column.table.name
                if (parent in frontier and fk.column.name == "id"
                        and (fk.ondelete or "").upper() == "CASCADE"):
                    owned.setdefault(table.name, []).append(Link(table, fk.parent, parent))
                    added.add(table.name)
        frontier = added
        if not frontier:
            break
    return owned


def owned_where(table_name: str, member_id: int) -> ColumnElement[bool]:
    """The rows of `table_name` that belong to the member (see `owned_tables`)."""
    clauses = []
    for link in owned_tables()[table_name]:
        if link.parent == MEMBERS:
            clauses.append(link.column == member_id)
        else:
            parent = metadata.tables[link.parent]
            clauses.append(link.column.in_(select(parent.c.id)
                                           .where(owned_where(link.parent, member_id))))
    return or_(*clauses)


def text_columns(table: Table) -> list[Column]:
    """String and JSON columns (what can hold a name, an email, a code or free text)."""
    return [c for c in table.columns if isinstance(c.type, String | JSON)
            and not c.foreign_keys and not c.primary_key]


def is_free_text(column: Column) -> bool:
    """Text a person typed or a message rendered: unbounded text, or strings of 200+ chars."""
    if not isinstance(column.type, String) or isinstance(column.type, JSON):
        return False
    length = column.type.length
    return length is None or length >= 200
