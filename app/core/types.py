"""Column types shared by every domain: ids, money and UTC instants."""
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from sqlalchemy import BigInteger, DateTime, Integer, Numeric
from sqlalchemy.types import TypeDecorator

BigId = BigInteger().with_variant(Integer(), "sqlite")
Money = Numeric(12, 2)
MAX_ID = 2**63 - 1


class UTCDateTime(TypeDecorator):
    """An aware UTC instant; stored naive-UTC on SQLite, timestamptz on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware instant is required")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def money(value) -> Decimal:
    return Decimal(value).quantize(Decimal("0.01"))


PositiveId = Annotated[int, "id"]
