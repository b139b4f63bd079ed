"""Per-member membership facts, kept between daily runs (`retention_member_facts`).

What the stage statement needs from a member's memberships and freezes — started or not, the
start of a tenure begun in the look-back window, the current membership (the started one that
ends last), the freeze covering the day, the last freeze end — changes only on a few days: a
membership starts, is sold, cancelled or changed; a freeze starts, ends or changes; a tenure
start leaves the look-back window. So each member's facts are stored with the day they were
computed and the first day they can change (`valid_until`; `known_next_at` for a membership
sold for a later start, which becomes known at its sale instant), and recomputed only when

- triggers on `memberships` and `freezes` (migration 0014_retention_state) bumped the
  member's `seq` since (any writer: services, imports, merges, SQL), or
- the day is not in [`computed_on`, `valid_until`) (a day boundary passed, or a run for an
  earlier day), or
- the club's facts were built under other settings (`retention_state.facts_key`: the grace
  days and the tenure look-back window), or never: then all of the club's are rebuilt.

The expressions are those of `stages._statement`'s "mm" and "fz" subqueries, evaluated for the
day of the run, over all of the member's memberships (so the next change day sees the ones not
known yet). `refresh` runs first in the daily run; the stage statement then joins one row per
member instead of reducing every membership and freeze.
"""
from datetime import date, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    Date,
    Integer,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
)
from sqlalchemy.orm import Session

from app.clubs.schemas import ClubSettings
from app.core.sql import (
    add_days,
    days_between,
    in_list,
    insert_for,
    is_postgres,
    least,
    local_day_start,
)
from app.core.types import BigId, UTCDateTime
from app.memberships.models import Freeze, Membership
from app.retention.models import MemberFacts, RetentionState

EPOCH = date(1900, 1, 1)  # day numbers for packed keys (as in stages.py)
ID_SPAN = 2**40
DAY_SPAN = 2**20
LISTED_MAX = 5000  # more stale members than this: one statement planned for many
FAR = date(9999, 12, 31)  # valid_until when nothing ahead can change the facts
TENURE_MARGIN = 30  # as stages.TENURE_MARGIN
WINDOW_DAYS = 84  # as stages.WINDOW_DAYS


def tenure_window(s: ClubSettings) -> int:
    """How far back (days) a tenure start is looked up (stages: `tenure_window_from`)."""
    return max(s.establishing_days, WINDOW_DAYS) + TENURE_MARGIN


def facts_key(s: ClubSettings) -> str:
    return f"g{s.grace_days}w{tenure_window(s)}"


def _stale(d, known_until):
    """A member's stored facts do not hold for the day: changed since, or out of their days."""
    t = MemberFacts.__table__
    return or_(t.c.computed_seq.is_(None), t.c.computed_seq != t.c.seq, t.c.computed_on > d,
               t.c.valid_until <= d, t.c.known_next_at < known_until)


# long: one SQL statement (the facts of a set of members, set-based), built once per dialect
# and mode; its parts mirror stages._statement's "mm" and "fz" and are commented in order
@lru_cache(maxsize=8)
def _recompute(postgres: bool, full: bool, listed: bool = False):
    """INSERT … SELECT … ON CONFLICT DO UPDATE of the facts of the stale members (`listed`:
    those of the id list `ids`, so the plan is made for a few members), or (`full`) INSERT of
    every member of the club with a membership, as of the day `d`."""
    m, f, t = Membership.__table__, Freeze.__table__, MemberFacts.__table__
    P = bindparam
    d = P("d", type_=Date())
    club_id = P("club_id", type_=BigId)
    known_until = P("known_until", type_=UTCDateTime())
    window_from = P("window_from", type_=Date())
    far = literal(FAR, Date())
    epoch = literal(EPOCH, Date())

    # the members to compute (`full`: every member with a membership, found by the GROUP BY
    # below), with the seq their facts are computed under
    todo = None
    if not full:
        which = (in_list(t.c.member_id, "ids", postgres) if listed
                 else _stale(d, known_until))
        todo = select(t.c.member_id, t.c.seq).where(t.c.club_id == club_id, which).cte("todo")

    def only_todo(query, member_id):
        return query if todo is None else query.join(todo, todo.c.member_id == member_id)

    # memberships: known on d (started, or sold by then), not cancelled before their start;
    # cancelled ones end the day before
    known = or_(m.c.start_date <= d, m.c.created_at < known_until)
    gone = and_(m.c.cancelled_on.is_not(None), m.c.cancelled_on <= d)
    kept = and_(known, not_(and_(gone, m.c.cancelled_on <= m.c.start_date)))
    used = and_(kept, m.c.start_date <= d)
    eff_end = case((and_(gone, m.c.cancelled_on <= m.c.end_date),
                    add_days(m.c.cancelled_on, -1)), else_=m.c.end_date)
    end_days = days_between(eff_end, epoch)
    start_days = days_between(m.c.start_date, epoch)
    q = m.alias("q")
    q_gone = and_(q.c.cancelled_on.is_not(None), q.c.cancelled_on <= d)
    q_end = case((and_(q_gone, q.c.cancelled_on <= q.c.end_date),
                  add_days(q.c.cancelled_on, -1)), else_=q.c.end_date)
    continues = exists(select(q.c.id).where(
        # (the range first, so one index range scan serves it rather than two OR-ed ones)
        q.c.member_id == m.c.member_id, q.c.start_date <= m.c.start_date,
        or_(q.c.start_date < m.c.start_date,
            and_(q.c.start_date == m.c.start_date, q.c.id < m.c.id)),
        not_(and_(q_gone, q.c.cancelled_on <= q.c.start_date)),
        add_days(q_end, P("grace_plus", type_=Integer())) >= m.c.start_date))
    # the first day after d on which this membership changes the facts: it starts (and is
    # known), its cancellation takes effect, or its start leaves the tenure look-back window
    changes = least(func.coalesce(case((m.c.start_date > d, m.c.start_date)), far),
                    func.coalesce(case((m.c.cancelled_on > d, m.c.cancelled_on)), far),
                    func.coalesce(case((m.c.start_date > window_from,
                                        add_days(m.c.start_date, P("window", type_=Integer())))),
                                  far))
    mm = (select(m.c.member_id,
                 func.max(case((used, 1))).label("started"),
                 func.max(case((and_(used, m.c.start_date > window_from),
                                case((~continues, m.c.start_date))))).label("tenure_start"),
                 func.max(case((used, eff_end))).label("top_end"),
                 func.max(case((used, end_days * literal(ID_SPAN, BigInteger()) + m.c.id)))
                 .label("key_id"),
                 func.max(case((used, end_days * literal(DAY_SPAN, BigInteger()) + start_days)))
                 .label("key_start"),
                 func.max(case((kept, start_days))).label("latest_start_days"),
                 func.min(changes).label("next_day"),
                 func.min(case((not_(known), m.c.created_at))).label("known_next_at"))
          .select_from(m))
    mm = (only_todo(mm, m.c.member_id)
          .where(m.c.club_id == club_id).group_by(m.c.member_id).subquery("mm"))

    # freezes of memberships not cancelled by their start: the one covering d, the last end
    # before d; they change the facts when one starts or ends
    fm = m.alias("fm")
    counted = and_(f.c.start_date <= d,
                   or_(fm.c.cancelled_on.is_(None), fm.c.cancelled_on > f.c.start_date))
    covering = and_(counted, f.c.end_date >= d)
    fchanges = least(func.coalesce(case((f.c.start_date > d, f.c.start_date)), far),
                     func.coalesce(case((f.c.end_date >= d, add_days(f.c.end_date, 1))), far))
    fz = (select(fm.c.member_id,
                 func.max(case((covering, f.c.id))).label("freeze_id"),
                 func.max(case((covering, f.c.start_date))).label("freeze_start"),
                 func.max(case((and_(counted, f.c.end_date < d), f.c.end_date)))
                 .label("freeze_end"),
                 func.min(fchanges).label("next_day"))
          .join_from(f, fm, fm.c.id == f.c.membership_id))
    fz = (only_todo(fz, fm.c.member_id)
          .where(f.c.club_id == club_id).group_by(fm.c.member_id).subquery("fz"))

    top = m.alias("top")
    top_id = mm.c.key_id % literal(ID_SPAN, BigInteger())
    # `full`: the members are those of the GROUP BY, their rows new (seq 0)
    base = mm if todo is None else todo
    seq = literal(0, BigInteger()) if todo is None else todo.c.seq
    values = (select(club_id, base.c.member_id, seq, seq, d,
                     least(func.coalesce(mm.c.next_day, far), func.coalesce(fz.c.next_day, far)),
                     mm.c.known_next_at, mm.c.started, mm.c.tenure_start, mm.c.top_end, top_id,
                     # by primary key, one look-up per member (a join would hash them all)
                     select(top.c.plan_id).where(top.c.id == top_id).scalar_subquery(),
                     mm.c.key_start, mm.c.latest_start_days, fz.c.freeze_id,
                     fz.c.freeze_start, fz.c.freeze_end)
              .select_from(base))
    if todo is not None:
        values = values.outerjoin(mm, mm.c.member_id == todo.c.member_id)
    values = (values.outerjoin(fz, fz.c.member_id == base.c.member_id)
              # SQLite: an INSERT … SELECT with ON CONFLICT needs a WHERE in its SELECT
              .where(base.c.member_id.is_not(None)))
    columns = ["club_id", "member_id", "seq", "computed_seq", "computed_on", "valid_until",
               "known_next_at", "started", "tenure_start", "top_end", "top_id", "top_plan_id",
               "key_start", "latest_start_days", "freeze_id", "freeze_start", "freeze_end"]
    if full:  # the club's rows were deleted first: a plain INSERT (no speculative insertion)
        return t.insert().from_select(columns, values)
    stmt = insert_for(postgres, t).from_select(columns, values)
    # seq stays: a trigger that bumped it meanwhile leaves the row stale for the next run
    return stmt.on_conflict_do_update(
        index_elements=[t.c.club_id, t.c.member_id],
        set_={c: stmt.excluded[c] for c in columns[3:]})


def refresh(session: Session, *, club_id: int, as_of: date, settings: ClubSettings,
            zone: ZoneInfo) -> bool:
    """Bring the club's member facts to `as_of` (see the module docstring); True when all of
    the club's were rebuilt."""
    state = session.scalar(select(RetentionState).where(RetentionState.club_id == club_id))
    if state is None:
        state = RetentionState(club_id=club_id, visits_counted_until=None)
        session.add(state)
    key = facts_key(settings)
    full = state.facts_key != key
    if full:
        session.execute(delete(MemberFacts).where(MemberFacts.club_id == club_id))
        state.facts_key = key
    session.flush()
    window = tenure_window(settings)
    params = {"club_id": club_id, "d": as_of,
              "known_until": local_day_start(zone, as_of + timedelta(days=1)),
              "window_from": as_of - timedelta(days=window), "window": window,
              "grace_plus": settings.grace_days + 1}
    pg = is_postgres(session)
    if full:
        session.execute(_recompute(pg, True), params)
        return True
    # the stale members first (a scan of the club's rows): for the usual few, the statement is
    # then planned for the id list (index look-ups), not for as many as the table holds
    t = MemberFacts.__table__
    ids = list(session.scalars(select(t.c.member_id).where(
        t.c.club_id == club_id, _stale(bindparam("d", type_=Date()),
                                       bindparam("known_until", type_=UTCDateTime()))),
        params))
    if not ids:
        return False
    listed = len(ids) <= LISTED_MAX
    session.execute(_recompute(pg, False, listed), {**params, "ids": ids} if listed else params)
    return False
