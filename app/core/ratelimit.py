"""Requests counted per key and fixed time window in the database, so a limit holds across
worker processes: the website form, the device endpoints, the member app's sign-in and
cancellation pages (and anything else that must slow a caller down) count here.

`RateLimited` is the 429 a caller over a limit gets (with the seconds to wait);
`client_network` is the network a client address is counted as."""
import ipaddress
import math
from datetime import UTC, datetime, timedelta

from sqlalchemy import Index, Integer, String, UniqueConstraint, delete
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.core.db import Base, IdMixin
from app.core.errors import DomainError
from app.core.sql import dialect_insert

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class RateLimitBucket(IdMixin, Base):
    """Requests counted per key and fixed time window, shared by every worker process.

    `bucket` names what is limited ("website-ip:<sha256 of the address>", "website-key:<id>");
    a window's row is created by the first request and incremented by one atomic upsert.
    `expires_at` is the end of the window: rows whose window has ended are deleted (every
    bucket's, in one statement) whenever a new window starts, so many addresses cannot grow the
    table without bound.
    """

    __tablename__ = "rate_limit_buckets"
    __table_args__ = (UniqueConstraint("bucket", "window_start"),
                      Index("ix_rate_limit_buckets_expires_at", "expires_at"))

    bucket: Mapped[str] = mapped_column(String(100))
    window_start: Mapped[datetime]
    expires_at: Mapped[datetime]
    hits: Mapped[int] = mapped_column(Integer, default=0)


def hit(session: Session, *, bucket: str, window: timedelta, now: datetime) -> tuple[int, int]:
    """Count one request in `bucket`'s current window: (requests so far, seconds left)."""
    elapsed = (now - _EPOCH) // window
    start = _EPOCH + elapsed * window
    table = RateLimitBucket.__table__
    stmt = dialect_insert(session, table).values(bucket=bucket, window_start=start,
                                                 expires_at=start + window, hits=1)
    stmt = stmt.on_conflict_do_update(index_elements=["bucket", "window_start"],
                                      set_={"hits": table.c.hits + 1}).returning(table.c.hits)
    hits = session.execute(stmt).scalar_one()
    if hits == 1:  # a new window: forget every window that has ended, of any bucket
        expire(session, now=now)
    left = math.ceil((start + window - now).total_seconds())
    return hits, max(left, 1)


def expire(session: Session, *, now: datetime) -> int:
    """Delete the counts of windows that have ended (one set-based statement); how many."""
    table = RateLimitBucket.__table__
    return session.execute(delete(table).where(table.c.expires_at <= now)).rowcount


class RateLimited(DomainError):
    """429 with the seconds to wait (rendered with a Retry-After header)."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = retry_after


def client_network(address: str | None) -> str:
    """The network a client address is counted as: IPv4 by the /32, IPv6 by its /64 (one
    customer's allocation, so rotating addresses inside it does not give fresh counters)."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network((ip, 64), strict=False))
    return str(ip)
