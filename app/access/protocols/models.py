from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, IdMixin, TimestampMixin
from app.core.types import BigId


class DeviceCommand(IdMixin, Base):
    """A command queued for a device that polls for them (ZKTeco `getrequest`).

    `status`: queued → sent (delivered by a poll) → confirmed (`Return=0`) or failed (the return
    code kept). A newer command for the same device and PIN deletes a queued, undelivered older
    one, so only the latest state of a member travels to the device.
    """

    __tablename__ = "device_commands"
    __table_args__ = (
        Index("ix_device_commands_device_status", "device_id", "status", "id"),
        Index("ix_device_commands_device_pin", "device_id", "pin", "id"),
    )

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"),
                                         index=True)
    device_id: Mapped[int] = mapped_column(BigId, ForeignKey("devices.id", ondelete="CASCADE"))
    pin: Mapped[str] = mapped_column(String(32))
    command: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="queued")
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    confirmed_at: Mapped[datetime | None]
    return_code: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class DeviceProtocolSettings(IdMixin, TimestampMixin, Base):
    """Per-device options of the protocol adapters (a device without a row uses the defaults).

    `allowed_networks`: source addresses the device may call from (CIDR strings). Hikvision and
    IronLogic: empty means any (they also send their key). ZKTeco, which sends nothing but its
    serial number: empty means none — a ZKTeco device is answered only once a manager approved
    it (`approved_at`) and only from these networks. `seen_addresses`, `first_seen_at` and
    `last_seen_at` are what a ZKTeco device waiting for approval (quarantined) was seen calling
    from, so the manager can confirm it is the real device. `open_door_seconds`: answer a granted
    ZKTeco background verification with `CONTROL DEVICE` (open door 1 that long) for panels that
    do not open by themselves on `AUTH=SUCCEED`.
    """

    __tablename__ = "device_protocol_settings"

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"),
                                         index=True)
    device_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("devices.id", ondelete="CASCADE"), unique=True)
    allowed_networks: Mapped[list] = mapped_column(JSON, default=list)
    open_door_seconds: Mapped[int | None] = mapped_column(Integer)
    approved_at: Mapped[datetime | None]
    approved_by: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    seen_addresses: Mapped[list] = mapped_column(JSON, default=list)
    first_seen_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]
