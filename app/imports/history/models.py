"""History-import jobs run for the API: state, progress and the final report."""
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, IdMixin
from app.core.types import BigId


class ImportJob(IdMixin, Base):
    """One upload of history files: queued → running → done | failed.

    `runner` names the process running it (host:pid:token); a running job whose process is gone
    is marked failed when someone looks at it. `report` is the import's report (JSON);
    `progress` what the running import last said (phase, file, bytes done and total).
    """

    __tablename__ = "import_jobs"
    __table_args__ = (Index("ix_import_jobs_club_created", "club_id", "created_at"),)

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20), default="history")
    status: Mapped[str] = mapped_column(String(10), default="queued")
    dry_run: Mapped[bool] = mapped_column(Boolean, default=True)
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    files: Mapped[list] = mapped_column(JSON, default=list)
    progress: Mapped[dict] = mapped_column(JSON, default=dict)
    report: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    runner: Mapped[str | None] = mapped_column(String(100))
    staff_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
