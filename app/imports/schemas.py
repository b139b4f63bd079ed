"""Import API shapes: the report of a member import."""
from enum import StrEnum

from pydantic import Field

from app.core.schemas import Out


class ImportMode(StrEnum):
    all_or_nothing = "all_or_nothing"
    skip_bad = "skip_bad"


class ImportProblem(Out):
    file: str
    row: int | None = Field(description="the spreadsheet's row number (header = 1); null for "
                                        "the file as a whole")
    column: str | None = Field(description="the column as the file names it")
    message: str
    value: str | None = None
    severity: str = Field(description="error (the row is not imported) or warning (told only: "
                                      "a duplicate of an existing member, an ignored column)")


class ImportSummary(Out):
    rows: int
    created: int = Field(description="created, or on a dry run / refused import: would create")
    updated: int
    duplicates: int = Field(description="rows matching an existing member, skipped")
    errors: int = Field(description="rows with errors (not imported)")


class MemberImportRead(Out):
    file: str
    dry_run: bool
    mode: ImportMode
    update_existing: bool
    written: bool = Field(description="whether anything was written")
    summary: ImportSummary
    message: str
    columns: dict[str, str] = Field(description="field → the file's column that feeds it")
    ignored_columns: list[str]
    problems: list[ImportProblem] = Field(description="the first 10,000 problems, in file order")
    problems_total: int
    rejects_csv: str | None = Field(None, description="mode skip_bad: the rows not imported, "
                                                      "as CSV with a `problem` column, to fix "
                                                      "and import again")
