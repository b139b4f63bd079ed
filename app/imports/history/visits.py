"""visits.csv: who came in when — millions of rows, streamed twice, never held in memory.

The check pass parses each row (member by the chosen reference or by card, the instant with its
offset or in the club's time zone), finds the membership it falls in, and appends the good rows
to a spool file (member key, membership, UTC instant). A visit outside every membership of its
member is a *warning*: it is imported (a day pass, a trial, a gap in the old data — it still
happened) without a membership. Visits later than now (an export taken during the day) are
skipped with one warning giving their number, or (`future_visits="refuse"`) each is an error.

The write pass streams the spool into a temporary staging table (PostgreSQL: `COPY`; SQLite:
batched inserts) and moves each chunk with one `INSERT … SELECT DISTINCT … WHERE NOT EXISTS`:
a member cannot enter twice at the same instant, so (member, instant) is the visit's identity —
a duplicate row in the file, or a visit imported by an earlier run, is not inserted again.
The device column is read and checked against the club's devices, but not stored: the visits
table records who came and when; devices belong to the live access log.
"""
import re
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text

from app.clubs.models import Device
from app.core.sql import is_postgres
from app.imports.csvfile import CsvFile, Problem, parse_datetime
from app.imports.history.common import Columns, Context
from app.imports.history.memberships import MEMBER_OR_CARD, member_fields
from app.imports.history.report import MAX_PROBLEMS_PER_FILE, FileReport

KIND = "visits"
FIELDS: dict[str, tuple[str, ...]] = {
    "occurred_at": ("timestamp", "time", "datetime", "date_time", "visited_at", "visit_time",
                    "checked_in_at", "check_in", "checkin", "entry", "entered_at", "zeitpunkt",
                    "zeit", "datum_uhrzeit", "eintritt", "besuch"),
    "device": ("door", "turnstile", "terminal", "reader", "geraet", "eingang"),
    "visit_id": ("id", "old_id", "external_id"),
}
REQUIRED = ("occurred_at",)
CHUNK = 500_000  # staged rows moved into visits at a time
STAGE = "history_visits_stage"
NULL = "\\N"  # COPY's text format
# club-local "2024-03-05 18:05[:00]": read directly, its offset cached per local hour (zones
# change offset on the hour; within an hour ZoneInfo gives every minute the same offset)
_LOCAL = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(?::\d\d)?")


def _fields(reference: str) -> dict[str, tuple[str, ...]]:
    return {**member_fields(reference), **FIELDS}


# long: the per-row loop of the largest import file (millions of visits): lookups are hoisted into
# locals and the row is checked inline, because a call per row and column doubles its time
def check(ctx: Context, csv: CsvFile, report: FileReport) -> None:
    cols = Columns(csv, _fields(ctx.options.reference), REQUIRED, report,
                   one_of=MEMBER_OR_CARD, mapping=ctx.options.mapping.get(KIND))
    if report.file_errors:
        return
    ctx.book.load(ctx.session, ctx.club_id)
    member_h, card_h = cols.header.get("member"), cols.header.get("card")
    at_h, device_h = cols.header["occurred_at"], cols.header.get("device")
    member_col, card_col = cols.name("member"), cols.name("card")
    at_col, device_col = cols.name("occurred_at"), cols.name("device")
    devices = ({" ".join(n.casefold().split()) for n in ctx.session.scalars(
        select(Device.name).where(Device.club_id == ctx.club_id))} if device_h else set())
    resolve, resolve_card, zone = ctx.refs.resolve, ctx.refs.resolve_card, ctx.zone
    now_utc = ctx.now.astimezone(UTC).replace(tzinfo=None)
    offsets: dict[str, timedelta] = {}  # "YYYY-MM-DD HH" (club time) → its UTC offset
    day_first = ctx.options.day_first
    entries, by_member = ctx.book.entries, ctx.book.by_member
    name, rejected = csv.name, report.rejected
    # closed by the write, or by the service when there is none
    spool = tempfile.TemporaryFile("w+", encoding="ascii", newline="\n")  # noqa: SIM115
    ctx.state["visits_spool"] = spool
    out: list[str] = []
    rows = warnings = future = 0
    months: Counter = Counter()  # yyyymm (club time) → visits, for the check report
    refuse_future = ctx.options.future_visits == "refuse"
    read_problems: list[Problem] = []

    def warn(number: int, column: str, message: str, value: str) -> None:
        if len(report.problems) < MAX_PROBLEMS_PER_FILE:
            report.add(Problem(name, number, column, message, value, "warning"))
        else:
            report.problems_total += 1
            report.warnings += 1

    for row in csv.rows(read_problems):
        rows += 1
        values = row.values
        errors = None
        key = 0
        ref = values.get(member_h, "") if member_h else ""
        try:
            if ref:
                key = resolve(ref)
            elif card_h and (code := values.get(card_h, "")):
                key = resolve_card(code)
            else:
                errors = [Problem(name, row.number, member_col if member_h else card_col,
                                  "member reference is required")]
        except ValueError as exc:
            errors = [Problem(name, row.number, member_col if ref else card_col, str(exc),
                              ref or values.get(card_h, ""))]
        raw_at = values.get(at_h, "")
        local = utc = None
        if _LOCAL.fullmatch(raw_at):  # the common case, without parse_datetime's generality
            try:
                local = datetime.fromisoformat(raw_at)
            except ValueError:  # 30 February: parse_datetime below says what is wrong
                local = None
            else:
                offset = offsets.get(raw_at[:13])
                if offset is None:
                    offset = offsets[raw_at[:13]] = zone.utcoffset(local.replace(minute=0,
                                                                                 second=0))
                utc = local - offset
        if local is None:
            try:
                at = parse_datetime(raw_at, zone, day_first=day_first)
            except ValueError as exc:
                errors = (errors or []) + [Problem(name, row.number, at_col, str(exc), raw_at)]
            else:
                if at is None:
                    errors = (errors or []) + [Problem(name, row.number, at_col,
                                                       "the time of the visit is required")]
                else:
                    local = at.astimezone(zone).replace(tzinfo=None)
                    utc = at.astimezone(UTC).replace(tzinfo=None)
        if utc is not None and utc > now_utc:
            if refuse_future:
                errors = (errors or []) + [Problem(name, row.number, at_col,
                                                   "a visit cannot be in the future", raw_at)]
            elif not errors:
                future += 1
                continue
        if errors:
            for problem in errors:
                report.reject(problem)
            continue
        if device_h and (device := values.get(device_h, "")) and \
                " ".join(device.casefold().split()) not in devices:
            warn(row.number, device_col, "no device of this name in the club (the visit is "
                 "imported; devices are not stored for imported visits)", device)
        months[local.year * 100 + local.month] += 1
        day = local.toordinal()
        best = -1
        for index in by_member.get(key, ()):
            e = entries[index]
            if e.last is not None and e.start <= day <= e.last and (
                    best < 0 or e.start > entries[best].start):
                best = index
        if best < 0:
            warnings += 1
            warn(row.number, at_col, "outside every membership of this member (imported "
                 "without a membership)", raw_at)
        out.append(f"{key},{best},{utc.isoformat(' ', 'microseconds')}\n")
        if len(out) >= 20_000:
            spool.write("".join(out))
            out.clear()
            ctx.tick("checking", csv)
    spool.write("".join(out))
    for problem in read_problems:
        report.reject(problem)
    report.rows = rows + len(read_problems)
    report.new = rows - len(rejected) - future
    report.skipped = future
    for key, count in months.items():
        ctx.state["figures"].visits[f"{key // 100:04d}-{key % 100:02d}"] += count
    if future:
        report.add(Problem(name, None, at_col, f"{future} visits are later than now "
                           f"({ctx.now.astimezone(zone):%Y-%m-%d %H:%M} club time) — an export "
                           "taken today? They are skipped (refuse them instead with "
                           "--refuse-future, API future_visits=refuse)", severity="warning"))
    ctx.state["visits_outside"] = warnings
    ctx.tick("checking", csv)


def _stage_sql(pg: bool) -> list[str]:
    if pg:
        return [f"DROP TABLE IF EXISTS {STAGE}",
                (f"CREATE TEMPORARY TABLE {STAGE} (member_id BIGINT NOT NULL, "
                 "membership_id BIGINT, occurred_at TIMESTAMPTZ NOT NULL) ON COMMIT DROP")]
    return [f"DROP TABLE IF EXISTS temp.{STAGE}",
            (f"CREATE TEMPORARY TABLE {STAGE} (member_id INTEGER NOT NULL, "
             "membership_id INTEGER, occurred_at DATETIME NOT NULL)")]


def _move(ctx: Context, pg: bool) -> int:
    """Staged rows → visits (new ones only); the stage is emptied. Returns rows inserted."""
    conn = ctx.session.connection()
    if pg:
        # probe the (member_id, occurred_at) index for each staged row: the planner, blind to
        # the rows this transaction added, would otherwise sort the whole visits table per chunk
        for setting in ("enable_hashjoin = off", "enable_mergejoin = off", "work_mem = '64MB'"):
            conn.exec_driver_sql(f"SET LOCAL {setting}")
        conn.exec_driver_sql(f"ANALYZE {STAGE}")
    result = conn.execute(text(
        f"INSERT INTO visits (club_id, member_id, membership_id, occurred_at) "
        f"SELECT DISTINCT {int(ctx.club_id)}, s.member_id, s.membership_id, s.occurred_at "
        f"FROM {STAGE} s WHERE NOT EXISTS (SELECT 1 FROM visits v "
        "WHERE v.member_id = s.member_id AND v.occurred_at = s.occurred_at) "
        # in index order: the member index and the members' key checks are read in sequence
        "ORDER BY s.member_id, s.occurred_at"))
    if pg:
        for setting in ("enable_hashjoin", "enable_mergejoin", "work_mem"):
            conn.exec_driver_sql(f"RESET {setting}")
    conn.exec_driver_sql(f"TRUNCATE {STAGE}" if pg else f"DELETE FROM {STAGE}")
    return result.rowcount


def write(ctx: Context, csv: CsvFile, report: FileReport) -> None:
    spool = ctx.state.pop("visits_spool", None)
    if spool is None:
        return
    try:
        _write(ctx, csv, report, spool)
    finally:
        spool.close()


def _write(ctx: Context, csv: CsvFile, report: FileReport, spool) -> None:
    pg = is_postgres(ctx.session)
    conn = ctx.session.connection()
    for statement in _stage_sql(pg):
        conn.exec_driver_sql(statement)
    real, entries = ctx.refs.real, ctx.book.entries
    total = max(report.new, 1)
    spool.seek(0)
    staged = created = 0
    buffer: list = []
    dbapi = conn.connection.dbapi_connection if pg else None

    def flush() -> None:
        if not buffer:
            return
        if pg:
            with dbapi.cursor() as cursor, cursor.copy(
                    f"COPY {STAGE} (member_id, membership_id, occurred_at) FROM STDIN") as copy:
                copy.write("".join(buffer))
        else:
            conn.exec_driver_sql(f"INSERT INTO {STAGE} VALUES (?, ?, ?)", buffer)
        buffer.clear()

    for line in spool:
        key, entry, at = line.rstrip("\n").split(",")
        member_id = int(key)
        if member_id < 0:
            member_id = real(member_id)
            if member_id is None:  # its member was not imported (skip_bad)
                continue
        index = int(entry)
        membership_id = entries[index].id if index >= 0 else None
        if pg:
            buffer.append(f"{member_id}\t{membership_id or NULL}\t{at}+00\n")
        else:
            buffer.append((member_id, membership_id, at))
        staged += 1
        if len(buffer) >= 50_000:
            flush()
        if staged % CHUNK == 0:
            flush()
            created += _move(ctx, pg)
            if ctx.progress:
                ctx.progress("importing", csv.name, int(csv.size * staged / total) if csv.size
                             else staged, csv.size)
    flush()
    created += _move(ctx, pg)
    if not pg:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{STAGE}")
    report.created += created
    report.existing += staged - created
    if ctx.progress:
        ctx.progress("importing", csv.name, csv.size or staged, csv.size)
