"""Café and bar: products, the stock ledger and stock on hand.

Stock is never edited: every change is a `StockMovement` (receipt, sale, return, write-off,
stocktake adjustment) written in the same transaction as one guarded UPDATE of the product's
`StockLevel` row (`on_hand = on_hand - :n WHERE on_hand >= :n`). The level row also holds the
weighted average cost, which only receipts and returns change.
"""
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, IdMixin, TimestampMixin
from app.core.types import BigId, Money

# Unit costs keep 4 decimals: a bottle bought at 12.99 per 24-pack costs 0.5413, and rounding
# that to cents at every receipt would drift the average cost and every margin built on it.
UnitCost = Numeric(12, 4)


class Product(IdMixin, TimestampMixin, Base):
    """Something the bar sells: a shake, water, a bar, a supplement (one club's catalogue)."""

    __tablename__ = "products"
    __table_args__ = (
        UniqueConstraint("club_id", "sku"),
        Index("ix_products_club_category", "club_id", "category"),
    )

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    sku: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(120))
    category: Mapped[str] = mapped_column(String(50))
    unit: Mapped[str] = mapped_column(String(20), default="pcs")
    sale_price: Mapped[Decimal] = mapped_column(Money)
    reorder_level: Mapped[int] = mapped_column(Integer, default=0)
    reorder_quantity: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class StockLevel(IdMixin, Base):
    """Stock on hand and weighted average cost of one product (one row per product).

    Changed only by single guarded UPDATEs in the transaction that writes the movement.
    `reorder_alerted` is set when a low-stock task was raised and cleared when stock is
    replenished above the reorder level, so each shortage raises one task.
    """

    __tablename__ = "stock_levels"
    __table_args__ = (
        UniqueConstraint("product_id"),
        CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
        Index("ix_stock_levels_club", "club_id"),
    )

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(BigId, ForeignKey("products.id", ondelete="CASCADE"))
    on_hand: Mapped[int] = mapped_column(Integer, default=0)
    avg_cost: Mapped[Decimal] = mapped_column(UnitCost, default=Decimal(0))
    reorder_alerted: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime]


class StockMovement(IdMixin, Base):
    """One line of the stock ledger.

    `quantity` is the signed change of stock on hand; `unit_cost` the cost per unit at the time
    (the receipt's price, or the average cost for sales, write-offs and adjustments, the
    original sale's cost for returns); `cost_value` = quantity × unit_cost in cents, signed
    like quantity. Sales and returns also carry the selling price and the `revenue` they
    brought (sale +, return −), so margins are exact later without re-pricing anything.
    """

    __tablename__ = "stock_movements"
    __table_args__ = (
        Index("ix_stock_movements_club_kind_created", "club_id", "kind", "created_at"),
        Index("ix_stock_movements_product_created", "product_id", "created_at"),
    )

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(BigId, ForeignKey("products.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(12))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_cost: Mapped[Decimal] = mapped_column(UnitCost)
    cost_value: Mapped[Decimal] = mapped_column(Money)
    unit_price: Mapped[Decimal | None] = mapped_column(Money)
    revenue: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    on_hand_after: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(20))
    counted: Mapped[int | None] = mapped_column(Integer)
    supplier: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)
    sale_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("sales.id", ondelete="SET NULL"), index=True)
    staff_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]
