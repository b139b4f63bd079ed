"""Writing the demo history in bulk: rows buffered per table and written in foreign-key order
(Core inserts on SQLite, `COPY` on PostgreSQL), with ids handed out here so nothing is read
back."""
from time import perf_counter

from sqlalchemy import insert
from sqlalchemy.orm import Session

from app.members.models import MemberSearchTerm
from app.registry import metadata

# Row layouts of the tables the history writes, in foreign-key order.
COLUMNS: dict[str, tuple[str, ...]] = {
    "members": ("id", "club_id", "first_name", "last_name", "email", "phone", "birth_date",
                "gender", "search_name", "phone_rev", "email_consent", "sms_consent", "source",
                "created_at", "updated_at"),
    # the members package owns this table's shape: take its columns as they are
    "member_search_terms": tuple(c.name for c in MemberSearchTerm.__table__.columns),
    "cards": ("id", "club_id", "member_id", "code", "status", "blocked_at", "block_reason",
              "created_at", "updated_at"),
    "consents": ("id", "club_id", "member_id", "channel", "granted", "source", "recorded_at",
                 "staff_id"),
    "sales": ("id", "club_id", "member_id", "staff_id", "total", "note", "created_at"),
    "memberships": ("id", "club_id", "member_id", "plan_id", "start_date", "end_date",
                    "original_end_date", "price", "visit_limit", "visits_used", "renews_id",
                    "sale_id", "cancelled_on", "cancel_reason", "cancel_note", "refund_amount",
                    "created_at", "updated_at"),
    "freezes": ("id", "club_id", "membership_id", "start_date", "end_date", "reason", "staff_id",
                "created_at"),
    "sale_lines": ("id", "club_id", "sale_id", "kind", "item_id", "description", "quantity",
                   "unit_price", "amount"),
    "payments": ("id", "club_id", "sale_id", "method", "kind", "amount", "staff_id",
                 "created_at"),
    "access_events": ("id", "club_id", "device_id", "dedup_key", "card_code", "member_id",
                      "membership_id", "direction", "source", "allowed", "reason", "message",
                      "occurred_at", "received_at", "staff_id", "override_reason"),
    "visits": ("id", "club_id", "member_id", "membership_id", "access_event_id", "occurred_at"),
}


class BulkWriter:
    """Buffers rows per table and writes them in foreign-key order; hands out ids."""

    def __init__(self, session: Session):
        self.conn = session.connection()
        self.pg = self.conn.dialect.name == "postgresql"
        self.rows: dict[str, list[tuple]] = {t: [] for t in COLUMNS}
        self.counts: dict[str, int] = dict.fromkeys(COLUMNS, 0)
        self.next_id: dict[str, int] = {}
        self.first_id: dict[str, int] = {}
        self.seconds = 0.0  # time spent writing
        self.fk_checks = True
        if self.pg:
            # we assign ids ourselves: keep other writers out until commit, then move sequences
            self.conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            self.conn.exec_driver_sql(
                f"LOCK TABLE {', '.join(COLUMNS)} IN SHARE ROW EXCLUSIVE MODE")
            # The rows are consistent by construction (and the SQLite run checks every foreign
            # key), so skip the per-row foreign-key triggers where the role may (superusers):
            # half the COPY time at 100k members. Other roles keep the checks.
            if self.conn.exec_driver_sql("SELECT current_setting('is_superuser')").scalar() == "on":
                self.conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
                self.fk_checks = False
            for table in COLUMNS:
                self.next_id[table] = self.conn.exec_driver_sql(
                    f"SELECT nextval(pg_get_serial_sequence('{table}', 'id'))").scalar_one()
        else:  # SQLite: the transaction began IMMEDIATE, so no one else writes meanwhile
            for table in COLUMNS:
                self.next_id[table] = (self.conn.exec_driver_sql(
                    f'SELECT COALESCE(MAX(id), 0) FROM "{table}"').scalar_one() + 1)
        self.first_id = dict(self.next_id)

    def new_id(self, table: str) -> int:
        value = self.next_id[table]
        self.next_id[table] = value + 1
        return value

    def flush(self) -> None:
        started = perf_counter()
        for table, columns in COLUMNS.items():
            rows = self.rows[table]
            if not rows:
                continue
            if self.pg:
                cursor = self.conn.connection.driver_connection.cursor()
                with cursor.copy(f'COPY "{table}" ({", ".join(columns)}) FROM STDIN') as copy:
                    for row in rows:
                        copy.write_row(row)
                cursor.close()
            else:
                self.conn.execute(insert(metadata.tables[table]),
                                  [dict(zip(columns, row, strict=True)) for row in rows])
            self.counts[table] += len(rows)
            rows.clear()
        self.seconds += perf_counter() - started

    def finish(self) -> None:
        self.flush()
        if self.pg:
            for table in COLUMNS:
                last = max(self.next_id[table] - 1, self.first_id[table])
                self.conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {last})")
