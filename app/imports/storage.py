"""Files an import keeps between requests: in the database, per club, for a day at most.

Uploads waiting for their import (the member-import page checks a file, then imports the same
bytes; a history job reads its files in a background thread) and the rows an import did not take
(rejects files) are rows of `import_files` with their bytes in `import_file_parts` (see
app.imports.models). Any worker process reads them; another club's file is never found.

Every stored file has an expiry, `MAX_KEEP` (24 hours) at the latest. Expired files are deleted
set-based whenever a file is stored, and by `fitclub import purge`. Erasing a member deletes every
stored file of the club that mentions the person (`erase_mentions`): a person's cells cannot be
cut out of someone's upload, so the whole file goes (upload it again).

Parsing needs a file it can read twice (check, then write): `private_dir()` is a 0700 temporary
directory whose files (0600) are deleted as soon as the import ends.
"""
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from app.core import clock
from app.imports.models import ImportFile, ImportFilePart

PART = 1 << 20  # bytes per import_file_parts row
MAX_KEEP = timedelta(hours=24)
PURGE_BATCH = 5000  # expired files deleted per purge (the next store or purge takes the rest)
UPLOAD = "upload"
REJECTS = "rejects"
USED = "used"  # an upload that was imported: its bytes are gone, its name is remembered


def purge_expired(session: Session, *, now: datetime | None = None) -> int:
    """Delete every stored file whose time is up (all clubs, set-based); files deleted.

    On PostgreSQL the expired rows are taken `FOR UPDATE SKIP LOCKED`: two uploads purging at
    once each delete what the other has not taken, and never wait for or deadlock on it."""
    now = now or clock.now()
    ids = list(session.scalars(select(ImportFile.id).where(ImportFile.expires_at <= now)
                               .order_by(ImportFile.id).limit(PURGE_BATCH)
                               .with_for_update(skip_locked=True)))
    if not ids:
        return 0
    return _delete(session, (ImportFile.id.in_(ids),))


def store(session: Session, *, club_id: int, user_id: int | None, bundle: str, purpose: str,
          name: str, chunks: Iterable[bytes], keep: timedelta = MAX_KEEP,
          job_id: int | None = None) -> ImportFile:
    """Keep a file (replacing one of the same bundle, purpose and name) for `keep` (at most a
    day); expired files of every club are deleted first. Flushes."""
    now = clock.now()
    purge_expired(session, now=now)
    _delete(session, (ImportFile.club_id == club_id, ImportFile.bundle == bundle,
                      ImportFile.purpose == purpose, ImportFile.name == name))
    stored = ImportFile(club_id=club_id, user_id=user_id, job_id=job_id, bundle=bundle,
                        purpose=purpose, name=name[:100], size=0, created_at=now,
                        expires_at=now + min(keep, MAX_KEEP))
    session.add(stored)
    session.flush()
    buffer, seq, size = bytearray(), 0, 0
    for chunk in chunks:
        size += len(chunk)
        buffer += chunk
        while len(buffer) >= PART:
            _part(session, stored.id, seq, bytes(buffer[:PART]))
            del buffer[:PART]
            seq += 1
    if buffer or seq == 0:
        _part(session, stored.id, seq, bytes(buffer))
    stored.size = size
    session.flush()
    return stored


def _part(session: Session, file_id: int, seq: int, data: bytes) -> None:
    session.execute(insert(ImportFilePart).values(file_id=file_id, seq=seq, data=data))


def find(session: Session, *, club_id: int, bundle: str, purpose: str,
         name: str | None = None) -> ImportFile | None:
    """The club's unexpired file (the first by name when `name` is None); None otherwise."""
    query = select(ImportFile).where(
        ImportFile.club_id == club_id, ImportFile.bundle == bundle,
        ImportFile.purpose == purpose, ImportFile.expires_at > clock.now())
    if name is not None:
        query = query.where(ImportFile.name == name)
    return session.scalars(query.order_by(ImportFile.name).limit(1)).first()


def listing(session: Session, *, club_id: int, bundle: str, purpose: str) -> list[ImportFile]:
    """The club's unexpired files of a bundle and purpose, by name."""
    return list(session.scalars(select(ImportFile).where(
        ImportFile.club_id == club_id, ImportFile.bundle == bundle,
        ImportFile.purpose == purpose, ImportFile.expires_at > clock.now())
        .order_by(ImportFile.name)))


def chunks(session: Session, file_id: int) -> Iterator[bytes]:
    """The file's bytes, one part (≤ 1 MB) at a time."""
    parts = session.scalar(select(func.count()).where(ImportFilePart.file_id == file_id)) or 0
    for seq in range(parts):
        yield session.scalar(select(ImportFilePart.data).where(
            ImportFilePart.file_id == file_id, ImportFilePart.seq == seq)) or b""


def read_bytes(session: Session, file_id: int) -> bytes:
    return b"".join(chunks(session, file_id))


def copy_to(session: Session, file_id: int, path: Path) -> None:
    """Write the file's bytes to a new file only this process's user can read (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        for chunk in chunks(session, file_id):
            out.write(chunk)


def discard(session: Session, *, club_id: int, bundle: str, purpose: str | None = None,
            name: str | None = None) -> int:
    """Delete the bundle's files (of one purpose, one name); files deleted."""
    where = [ImportFile.club_id == club_id, ImportFile.bundle == bundle]
    if purpose is not None:
        where.append(ImportFile.purpose == purpose)
    if name is not None:
        where.append(ImportFile.name == name)
    return _delete(session, tuple(where))


def mark_used(session: Session, *, club_id: int, bundle: str) -> None:
    """The bundle's uploads were imported: delete their bytes, remember that they were."""
    where = (ImportFile.club_id == club_id, ImportFile.bundle == bundle,
             ImportFile.purpose == UPLOAD)
    session.execute(delete(ImportFilePart).where(
        ImportFilePart.file_id.in_(select(ImportFile.id).where(*where)))
        .execution_options(synchronize_session=False))
    session.execute(update(ImportFile).where(*where).values(purpose=USED, size=0)
                    .execution_options(synchronize_session=False))


def _delete(session: Session, where: tuple) -> int:
    ids = select(ImportFile.id).where(*where)
    session.execute(delete(ImportFilePart).where(ImportFilePart.file_id.in_(ids))
                    .execution_options(synchronize_session=False))
    return session.execute(delete(ImportFile).where(*where)
                           .execution_options(synchronize_session=False)).rowcount or 0


@contextmanager
def private_dir() -> Iterator[Path]:
    """A temporary directory only this process's user can enter (0700), removed on exit."""
    with tempfile.TemporaryDirectory(prefix="fitclub-import-") as name:
        path = Path(name)
        path.chmod(0o700)
        yield path


# --- erasure ------------------------------------------------------------------------------------

_SEPARATORS = re.compile(r"[\s\-/().]+")


def _compact(text: str) -> str:
    return _SEPARATORS.sub("", text)


def _lines(session: Session, file_id: int) -> Iterator[bytes]:
    rest = b""
    for chunk in chunks(session, file_id):
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


def mentions(session: Session, file_id: int, *, needles: list[str],
             names: list[tuple[str, str]]) -> bool:
    """Does a line of the file hold one of `needles` (an email, a phone number in any spacing,
    "first last"), or both parts of a name as words of their own? Case-insensitive; the line is
    read as UTF-8 and as Windows-1252 (UTF-16 files match on their ASCII text)."""
    folded = [n.casefold() for n in needles if len(n) >= 5]
    compact = [c for c in (_compact(n) for n in folded) if len(c) >= 5]
    words = [tuple(re.compile(rf"(?<!\w){re.escape(part.casefold())}(?!\w)") for part in pair)
             for pair in names if all(pair)]
    for raw in _lines(session, file_id):
        raw = raw.replace(b"\x00", b"")
        for text in {raw.decode("utf-8", "replace").casefold(),
                     raw.decode("cp1252", "replace").casefold()}:
            if any(n in text for n in folded):
                return True
            squeezed = _compact(text)
            if any(c in squeezed for c in compact):
                return True
            if any(all(w.search(text) for w in pair) for pair in words):
                return True
    return False


def erase_mentions(session: Session, *, club_id: int, needles: list[str],
                   names: list[tuple[str, str]]) -> int:
    """Delete every stored import file of the club that mentions the person (see `mentions`),
    and every expired one; files deleted."""
    purge_expired(session)
    hits = [file_id for file_id in session.scalars(
        select(ImportFile.id).where(ImportFile.club_id == club_id).order_by(ImportFile.id))
        if mentions(session, file_id, needles=needles, names=names)]
    if not hits:
        return 0
    return _delete(session, (ImportFile.id.in_(hits),))
