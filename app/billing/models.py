from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, IdMixin
from app.core.types import BigId, Money


class Sale(IdMixin, Base):
    """One receipt: lines for memberships, PT packages or café products, and its payments."""

    __tablename__ = "sales"
    __table_args__ = (Index("ix_sales_club_created", "club_id", "created_at"),)

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    member_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("members.id", ondelete="SET NULL"), index=True)
    staff_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    total: Mapped[Decimal] = mapped_column(Money)
    note: Mapped[str | None] = mapped_column(Text)
    to_account: Mapped[bool] = mapped_column(Boolean, default=False)
    """Charged to the member's account: the payer's next dues invoice collects it."""
    created_at: Mapped[datetime]


class SaleLine(IdMixin, Base):
    __tablename__ = "sale_lines"

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"), index=True)
    sale_id: Mapped[int] = mapped_column(BigId, ForeignKey("sales.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    item_id: Mapped[int | None] = mapped_column(BigId)
    description: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    unit_price: Mapped[Decimal] = mapped_column(Money)
    amount: Mapped[Decimal] = mapped_column(Money)


class Payment(IdMixin, Base):
    """Money in (positive) or out (a refund, negative) against a sale."""

    __tablename__ = "payments"

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"), index=True)
    sale_id: Mapped[int] = mapped_column(BigId, ForeignKey("sales.id", ondelete="CASCADE"), index=True)
    method: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(10), default="payment")
    amount: Mapped[Decimal] = mapped_column(Money)
    staff_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]
