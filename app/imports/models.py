"""Files an import keeps between requests, in the database (any worker can read them).

A stored file is a row of `import_files` (whose club, whose upload, what it is, when it expires)
and its bytes in `import_file_parts`, 1 MB a row, so neither writing nor reading one needs it
whole in memory. Nothing of an import is kept on the server's disk.
"""
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, IdMixin
from app.core.types import BigId


class ImportFile(IdMixin, Base):
    """One kept file: an upload waiting for its import, or the rows an import did not take.

    `bundle` groups the files of one upload (the member-import page's token, a history job's
    random token); `purpose` is "upload" or "rejects". It is deleted at `expires_at` at the
    latest (see app.imports.storage)."""

    __tablename__ = "import_files"
    __table_args__ = (
        UniqueConstraint("bundle", "purpose", "name"),
        Index("ix_import_files_club_bundle", "club_id", "bundle"),
        Index("ix_import_files_expires_at", "expires_at"),
    )

    club_id: Mapped[int] = mapped_column(BigId, ForeignKey("clubs.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"))
    job_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("import_jobs.id", ondelete="CASCADE"))
    bundle: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigId, default=0)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class ImportFilePart(IdMixin, Base):
    """Up to 1 MB of a stored file's bytes; `seq` orders them."""

    __tablename__ = "import_file_parts"
    __table_args__ = (UniqueConstraint("file_id", "seq"),)

    file_id: Mapped[int] = mapped_column(BigId, ForeignKey("import_files.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
