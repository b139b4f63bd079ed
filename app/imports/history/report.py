"""What a history import found and did: per file counts, problems with file/row/column."""
from dataclasses import dataclass, field

from app.imports.csvfile import Problem

MAX_PROBLEMS_PER_FILE = 1000  # kept in detail per file; beyond that only counted


@dataclass
class FileReport:
    """One file: rows read, rows with errors (not imported), warnings, and what was (or would
    be) created versus already there from an earlier run."""

    file: str
    kind: str
    rows: int = 0
    errors: int = 0
    warnings: int = 0
    new: int = 0
    existing: int = 0
    created: int = 0
    skipped: int = 0
    """rows left out without an error (visits later than now, a same-day export)."""
    rejects: str | None = None
    seconds: float = 0.0
    check_seconds: float = 0.0
    columns: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    problems_total: int = 0
    rejected: dict[int, str] = field(default_factory=dict)
    """row number → its problems, for the rows not imported (kept for the rejects file)."""

    def add(self, problem: Problem) -> None:
        self.problems_total += 1
        if problem.severity == "warning":
            self.warnings += 1
        if len(self.problems) < MAX_PROBLEMS_PER_FILE:
            self.problems.append(problem)

    def reject(self, problem: Problem) -> None:
        """An error on a row: the row is not imported."""
        self.add(problem)
        if problem.row is None:
            return
        if problem.row in self.rejected:
            self.rejected[problem.row] += "; " + _short(problem)
        else:
            self.errors += 1
            self.rejected[problem.row] = _short(problem)

    @property
    def file_errors(self) -> list[Problem]:
        return [p for p in self.problems if p.row is None and p.severity == "error"]

    def as_dict(self) -> dict:
        return {"file": self.file, "kind": self.kind, "rows": self.rows, "errors": self.errors,
                "warnings": self.warnings, "new": self.new, "existing": self.existing,
                "created": self.created, "skipped": self.skipped, "rejects": self.rejects, "columns": self.columns,
                "seconds": round(self.seconds, 2), "check_seconds": round(self.check_seconds, 2),
                "problems_total": self.problems_total}


def _short(problem: Problem) -> str:
    column = f"{problem.column}: " if problem.column else ""
    return column + problem.message


@dataclass
class HistoryReport:
    """The whole import. `written` is true only when the import committed rows."""

    dry_run: bool
    mode: str
    reference: str
    files: dict[str, FileReport] = field(default_factory=dict)
    written: bool = False
    seconds: float = 0.0
    rates: dict[str, float] = field(default_factory=dict)
    """rows per second of the write phase, per kind (memberships, visits)."""
    notes: list[str] = field(default_factory=list)
    figures: dict | None = None
    """The check report: {"files": totals of the files, "club": the club's figures,
    "club_after_import": bool} (see app.imports.history.figures)."""
    comparison: list[tuple[str, str, str]] = field(default_factory=list)
    """(what, the files' figure, the club's) rows, for people."""

    def file(self, name: str, kind: str) -> FileReport:
        if name not in self.files:
            self.files[name] = FileReport(name, kind)
        return self.files[name]

    @property
    def errors(self) -> int:
        return sum(f.errors + len(f.file_errors) for f in self.files.values())

    @property
    def warnings(self) -> int:
        return sum(f.warnings for f in self.files.values())

    @property
    def file_errors(self) -> list[Problem]:
        return [p for f in self.files.values() for p in f.file_errors]

    @property
    def problems(self) -> list[Problem]:
        return [p for f in self.files.values() for p in f.problems]

    @property
    def status(self) -> str:
        if self.file_errors:
            return "failed"
        if self.dry_run:
            return "checked"
        if not self.written:
            return "failed"
        return "imported_with_skips" if self.errors else "imported"

    def summary(self) -> str:
        """A few lines a person reads: per file what happens, then the verdict."""
        done = self.written
        lines = []
        for f in self.files.values():
            made = (f"created {f.created}" if done else f"would create {f.new}")
            if f.kind == "visits" and not done:
                made = f"would import {f.rows - f.errors - f.skipped} (duplicates of visits already in the " \
                       "club are skipped)"
            skipped = f", skipped {f.skipped}" if f.skipped else ""
            lines.append(f"{f.file} ({f.kind}): {f.rows} rows — {made}, already imported "
                         f"{f.existing}, errors {f.errors}, warnings {f.warnings}{skipped}")
        if self.file_errors:
            verdict = "a file cannot be read or lacks a required column — nothing was written"
        elif self.dry_run:
            verdict = (f"dry run: nothing was written; {self.errors} rows with errors, "
                       f"{self.warnings} warnings")
            if self.errors and self.mode == "all_or_nothing":
                verdict += " — fix them, or import with --skip-bad to leave those rows out"
        elif not self.written:
            verdict = (f"nothing was written: {self.errors} rows have errors (all or nothing; "
                       "fix them, or import with --skip-bad)")
        elif self.errors:
            verdict = f"imported; {self.errors} rows with errors were skipped (see the rejects)"
        else:
            verdict = "imported"
        return "\n".join([*lines, verdict])

    def as_dict(self, max_problems: int = MAX_PROBLEMS_PER_FILE) -> dict:
        problems = [p.as_dict() for f in self.files.values() for p in f.problems[:max_problems]]
        return {"status": self.status, "dry_run": self.dry_run, "mode": self.mode,
                "reference": self.reference, "written": self.written,
                "errors": self.errors, "warnings": self.warnings,
                "files": [f.as_dict() for f in self.files.values()],
                "problems": problems,
                "problems_total": sum(f.problems_total for f in self.files.values()),
                "message": self.summary(), "seconds": round(self.seconds, 2),
                "rates": {k: round(v) for k, v in self.rates.items()}, "notes": self.notes,
                "figures": self.figures}
