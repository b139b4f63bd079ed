"""Named source layouts: `fitclub import history DIR --from perfectgym`.

A layout is what a previous system's documented reports look like: the file names its reports
are saved under, and which of their columns feed which field of the history files. It is a
preset mapping: a `--mapping` of the user wins over it, and a column the layout names but the
file lacks is simply not used (a report may be exported with fewer columns). Only what the
source's own documentation states is mapped; docs/import.md names the pages.
"""
from dataclasses import dataclass, field
from pathlib import Path

from app.core.errors import Invalid
from app.imports.csvfile import CsvFile, FileProblem, normalise_header


@dataclass(frozen=True)
class SourceLayout:
    name: str
    title: str
    basis: tuple[str, ...]
    """the public pages the layout is built from"""
    files: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """file kind → the names the source's reports are saved under (as well as fitclub's)"""
    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    """file kind → {field: the report's column}"""


PERFECTGYM = SourceLayout(
    name="perfectgym",
    title="Perfect Gym (PGM) reports",
    basis=("https://help.perfectgym.com/hc/en-001/articles/39319282122769-Report-User-s-cards",
           "https://help.perfectgym.com/hc/en-001/articles/39319285857553-Report-Visits-in-club"),
    files={"members": ("users_cards", "user_s_cards", "user_cards"),
           "visits": ("visits_in_club",)},
    columns={
        # User's cards report: Club, User number, Name, Last name, Gender, Phone, Quantity,
        # Card type
        "members": {"external_id": "User number", "first_name": "Name",
                    "last_name": "Last name", "gender": "Gender", "phone": "Phone"},
        # Visits in club report: Club, User number, Full name, Enter date, Leave date, Length
        # of stay, Access rules, Payment plan
        "visits": {"member": "User number", "occurred_at": "Enter date"},
    },
)

SOURCES: dict[str, SourceLayout] = {layout.name: layout for layout in (PERFECTGYM,)}


def source_layout(name: str | None) -> SourceLayout | None:
    """The layout called `name` (None for none); an unknown name is a clear error."""
    if name is None or not name.strip():
        return None
    layout = SOURCES.get(name.strip().casefold())
    if layout is None:
        raise Invalid(f"unknown source {name!r}; the known sources are "
                      + ", ".join(sorted(SOURCES)), code="unknown_source")
    return layout


def kind_in_layout(layout: SourceLayout | None, stem: str) -> str | None:
    """The file kind a report of the source is saved as ('Visits in club' → visits)."""
    if layout is None:
        return None
    key = normalise_header(stem)
    return next((kind for kind, names in layout.files.items() if key in names), None)


def with_layout(layout: SourceLayout | None, files: dict[str, Path],
                mapping: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """The mapping per file: the layout's columns the file has, then the user's (which win)."""
    if layout is None:
        return mapping
    merged = {kind: dict(fields) for kind, fields in mapping.items()}
    for kind, path in files.items():
        preset = layout.columns.get(kind)
        if not preset:
            continue
        try:
            with CsvFile.open(path) as csv:
                headers = set(csv.headers)
        except FileProblem:
            continue  # the check reports the file
        chosen = {target: column for target, column in preset.items()
                  if normalise_header(column) in headers}
        merged[kind] = {**chosen, **merged.get(kind, {})}
    return merged
