"""History-import fixtures: a club (Berlin), its members by old-system id, and running imports."""
import shutil
import time
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.core.db import transaction
from app.imports.history.common import Options
from app.imports.history.service import find_files, import_history
from app.registry import metadata
from tests.builders import World

DATA = Path(__file__).parent / "data"
AS_OF = date(2026, 6, 15)  # "today" of the example sets


def counts(session) -> dict[str, int]:
    """Rows in every table (the test of "wrote nothing")."""
    return {t.name: session.scalar(select(func.count()).select_from(t))
            for t in metadata.sorted_tables}


def add_members(db, club_id: int, refs: list[str]) -> dict[str, int]:
    """Members with an old-system id and a card CARD<n> each; returns ref → member id."""
    world = World(db)
    return {ref: world.member(club_id, f"First{n}", f"Last{n}", email=f"{ref.lower()}@example.com",
                              card=f"CARD{ref}", external_ref=ref)
            for n, ref in enumerate(refs, 1)}


@pytest.fixture
def club(world):
    return world.club()


@pytest.fixture
def run(db, club):
    """run(directory, **options) → the report; committed unless it is a dry run."""

    def go(directory: Path, club_id: int | None = None, **options):
        files, ignored = find_files(directory)
        with transaction(db.sessionmaker) as s:
            return import_history(s, club_id=club_id or club.id, files=files,
                                  options=Options(**options), ignored=ignored)
    return go


@pytest.fixture
def copy_of(tmp_path):
    """A writable copy of an example set."""

    def make(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(DATA / name, target)
        return target
    return make


URL = "/api/v1/imports/history"


def upload(client, headers, directory, **form):
    """POST every CSV file of `directory` to the history import (form fields as given)."""
    files = [("files", (p.name, p.read_bytes(), "text/csv"))
             for p in sorted(directory.iterdir()) if p.suffix == ".csv"]
    return client.post(URL, files=files, data={k: str(v).lower() if isinstance(v, bool) else v
                                                for k, v in form.items()}, headers=headers)


def wait(client, headers, job_id, seconds=60):
    """Poll the job until it is done or failed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = client.get(f"{URL}/{job_id}", headers=headers).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['status']}")
