"""What the history-import API answers."""
from datetime import datetime
from enum import StrEnum
from typing import Any

from app.core.schemas import Out


class Reference(StrEnum):
    external_id = "external_id"
    card = "card"
    email = "email"
    phone = "phone"


class FutureVisits(StrEnum):
    skip = "skip"
    refuse = "refuse"


class HistoryJobRead(Out):
    """An import job: its state, progress while it runs, and its report when done.

    `report` is the import's report: status (checked, imported, imported_with_skips, failed),
    per file counts (rows, errors, warnings, new, existing, created, rejects), problems with
    file/row/column, and a summary `message`. `rejects` names the files of rows not imported
    (GET …/rejects/{name})."""

    id: int
    status: str
    dry_run: bool
    options: dict[str, Any]
    files: list[str]
    progress: dict[str, Any]
    report: dict[str, Any] | None = None
    error: str | None = None
    rejects: list[str]
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
