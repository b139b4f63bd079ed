"""Custom member fields: the club's own questions about a member, and the answers.

A `CustomField` is defined by an owner or manager (key, label, type, choices, required,
searchable, position). A `CustomFieldValue` holds one member's answer in the typed column that
fits the field's type:

- text and choice → `value_text`, plus `value_folded` (case-folded, byte-wise collation) that
  search reads as an exact or prefix range from the (field_id, value_folded) index;
- number → `value_number` (up to 11 digits before and 4 after the decimal point);
- date → `value_date`; yes/no → `value_bool`.

A field with values is archived, not deleted: it disappears from forms and member pages, and its
values stay in the database.
"""
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, IdMixin, TimestampMixin
from app.core.types import BigId
from app.members.models import SearchString

FIELD_TYPES = ("text", "number", "date", "choice", "yes_no")
MAX_KEY = 40
MAX_LABEL = 100
MAX_TEXT = 500
MAX_CHOICE = 100


class CustomField(IdMixin, TimestampMixin, Base):
    """A field the club added to its member records; `key` is unique in the club and fixed."""

    __tablename__ = "custom_fields"
    __table_args__ = (UniqueConstraint("club_id", "key"),)

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(MAX_KEY))
    label: Mapped[str] = mapped_column(String(MAX_LABEL))
    type: Mapped[str] = mapped_column(String(10))
    choices: Mapped[list[str]] = mapped_column(JSON, default=list)
    required: Mapped[bool] = mapped_column(Boolean, default=False)
    searchable: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)
    archived_at: Mapped[datetime | None]


class CustomFieldValue(IdMixin, TimestampMixin, Base):
    """One member's value of one custom field, in the column of the field's type."""

    __tablename__ = "custom_field_values"
    __table_args__ = (
        UniqueConstraint("member_id", "field_id"),
        Index("ix_custom_field_values_field_folded", "field_id", "value_folded", "member_id"),
        Index("ix_custom_field_values_field_number", "field_id", "value_number"),
        Index("ix_custom_field_values_field_date", "field_id", "value_date"),
        Index("ix_custom_field_values_field_bool", "field_id", "value_bool"),
    )

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"),
                                         index=True)
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id", ondelete="CASCADE"))
    field_id: Mapped[int] = mapped_column(BigId, ForeignKey("custom_fields.id",
                                                            ondelete="CASCADE"))
    value_text: Mapped[str | None] = mapped_column(String(MAX_TEXT))
    value_folded: Mapped[str | None] = mapped_column(SearchString(MAX_TEXT))
    value_number: Mapped[Decimal | None] = mapped_column(Numeric(15, 4))
    value_date: Mapped[date | None] = mapped_column(Date)
    value_bool: Mapped[bool | None] = mapped_column(Boolean)
