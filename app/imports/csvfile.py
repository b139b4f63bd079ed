"""Reading the CSV files clubs bring from spreadsheets and old systems.

One reader for every import (members, plans, memberships, visits, …):

- **Encoding**: a BOM decides (UTF-8, UTF-16); otherwise UTF-8 when the first megabyte decodes,
  else Windows-1252 (what Excel writes on a European Windows machine). A file that turns out to
  be broken later is a file-level problem, not a crash.
- **Separator**: comma, semicolon (Excel in Germany, France, …), tab or pipe — whichever splits
  the header line into the most columns.
- **Headers** are compared normalised ("First Name", "first_name", "FIRST-NAME" are one), and
  matched to the import's fields through synonyms or the user's own mapping.
- Rows stream: nothing holds the whole file, and `position` (bytes read) drives progress bars.

Cell parsers (`parse_date`, `parse_datetime`, `parse_money`, `parse_int`, `parse_bool`) raise
`ValueError` with a message a person understands; the importer turns it into a `Problem` naming
file, row and column.
"""
import codecs
import csv
import io
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import BinaryIO, NamedTuple, Self
from zoneinfo import ZoneInfo

SAMPLE_BYTES = 1 << 20
SEPARATORS = (",", ";", "\t", "|")
MAX_CELL = 10_000
csv.field_size_limit(MAX_CELL * 10)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an import: where (file, row, column), what, and the value seen."""

    file: str
    row: int | None
    column: str | None
    message: str
    value: str | None = None
    severity: str = "error"  # "error": the row cannot be imported; "warning": imported, told

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        where = self.file + (f", row {self.row}" if self.row else "") + (
            f", column {self.column}" if self.column else "")
        seen = f" (found {self.value!r})" if self.value not in (None, "") else ""
        return f"{where}: {self.message}{seen}"


def normalise_header(name: str) -> str:
    """'  First Name ' → 'first_name'; 'E-Mail' → 'e_mail'."""
    return "_".join(re.sub(r"[^0-9a-z]+", " ", name.strip().lstrip("\ufeff").casefold()).split())


class _Counting(io.RawIOBase):
    """A binary stream that counts the bytes read through it (for progress)."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.raw.close()
        super().close()

    def readinto(self, buffer) -> int:
        data = self.raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.count += n
        return n


def detect_encoding(sample: bytes) -> str:
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as error:
        # A multi-byte character cut at the end of the sample is still UTF-8.
        if not (len(sample) == SAMPLE_BYTES and error.start >= len(sample) - 3):
            return "cp1252"
    return "utf-8"


def detect_separator(header_line: str) -> str:
    counts = {sep: next(csv.reader([header_line], delimiter=sep), []).__len__()
              for sep in SEPARATORS}
    best = max(SEPARATORS, key=lambda sep: counts[sep])
    return best if counts[best] > 1 else ","


class CsvRow(NamedTuple):
    """A data row: its line number (header = 1), cells by normalised header, the cells as read."""

    number: int
    values: dict[str, str]
    raw: list[str]


class FileProblem(ValueError):
    """The file as a whole cannot be read (no header, broken encoding)."""


@dataclass
class CsvFile:
    """A CSV file opened for streaming: `headers`, then `rows()` (see `CsvRow`)."""

    name: str
    stream: BinaryIO
    size: int | None = None
    encoding: str = ""
    separator: str = ""
    headers: list[str] = field(default_factory=list)
    original_headers: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._counter = _Counting(self.stream)
        buffered = io.BufferedReader(self._counter, buffer_size=SAMPLE_BYTES)
        sample = buffered.peek(SAMPLE_BYTES)[:SAMPLE_BYTES]
        self.encoding = detect_encoding(sample)
        self._text = io.TextIOWrapper(buffered, encoding=self.encoding, newline="")
        try:
            header_line = self._text.readline()
        except UnicodeDecodeError as error:
            raise FileProblem(f"{self.name}: the file is not readable text ({error.reason})") from None
        if not header_line.strip():
            raise FileProblem(f"{self.name}: the file is empty or its first line is blank; "
                              "the first line must name the columns")
        try:
            self.separator = detect_separator(header_line)
            self.original_headers = [h.strip().lstrip("\ufeff") for h in
                                     next(csv.reader([header_line], delimiter=self.separator))]
        except csv.Error as error:  # e.g. a header cell over the field size limit
            raise FileProblem(f"{self.name}: the first line cannot be read as column names "
                              f"({error}); the first line must name the columns") from None
        self.headers = [normalise_header(h) for h in self.original_headers]
        seen: set[str] = set()
        for original, header in zip(self.original_headers, self.headers, strict=True):
            if header and header in seen:
                raise FileProblem(f"{self.name}: the column {original!r} appears twice")
            seen.add(header)

    @classmethod
    def open(cls, path: str | Path, name: str | None = None) -> "CsvFile":
        path = Path(path)
        return cls(name or path.name, path.open("rb"), size=path.stat().st_size)

    @classmethod
    def from_bytes(cls, data: bytes, name: str) -> "CsvFile":
        return cls(name, io.BytesIO(data), size=len(data))

    @property
    def position(self) -> int:
        """Bytes read so far (a little ahead of the rows yielded: the reader buffers)."""
        return self._counter.count

    def close(self) -> None:
        self._text.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def rows(self, problems: list[Problem] | None = None) -> Iterator["CsvRow"]:
        """Data rows numbered as a spreadsheet shows them (header = row 1; a quoted line break
        stays in its row); blank rows skipped; a row with more cells than headers is a problem
        (appended to `problems`, the row not yielded)."""
        reader = csv.reader(self._text, delimiter=self.separator)
        width = len(self.headers)
        line = 1
        try:
            for cells in reader:
                line += 1
                if not any(c.strip() for c in cells):
                    continue
                if len(cells) > width and any(c.strip() for c in cells[width:]):
                    if problems is not None:
                        problems.append(Problem(self.name, line, None,
                                                f"this row has {len(cells)} cells but the header "
                                                f"names {width} columns"))
                    continue
                yield CsvRow(line, {h: (cells[i].strip() if i < len(cells) else "")
                                    for i, h in enumerate(self.headers) if h}, cells)
        except UnicodeDecodeError as error:
            raise FileProblem(f"{self.name}: unreadable characters after row {line} "
                              f"({error.reason}); save the file as UTF-8 and try again") from None
        except csv.Error as error:
            raise FileProblem(f"{self.name}, row {line + 1}: {error}") from None


def match_columns(headers: list[str], fields: Mapping[str, tuple[str, ...]],
                  mapping: Mapping[str, str] | None = None) -> tuple[dict[str, str], list[str]]:
    """Which file column feeds which field.

    `fields` maps each field to its accepted header names (synonyms, normalised); `mapping` is
    the user's choice field → header and wins. Returns (field → normalised header, the problems:
    a mapped header that is not in the file).
    """
    present = set(headers)
    chosen: dict[str, str] = {}
    errors: list[str] = []
    for target, header in (mapping or {}).items():
        if target not in fields:
            errors.append(f"the mapping names an unknown field {target!r}; fields are "
                          + ", ".join(sorted(fields)))
            continue
        key = normalise_header(header)
        if key not in present:
            errors.append(f"the mapping uses column {header!r} for {target}, but the file has no "
                          "such column")
            continue
        chosen[target] = key
    taken = set(chosen.values())
    for target, synonyms in fields.items():
        if target in chosen or target in (mapping or {}):
            continue
        for name in (target, *synonyms):
            key = normalise_header(name)
            if key in present and key not in taken:
                chosen[target] = key
                taken.add(key)
                break
    return chosen, errors


# --- cells ---------------------------------------------------------------------------------

_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_SLASH_YMD = re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2})")
_DMY = re.compile(r"(\d{1,2})([./-])(\d{1,2})\2(\d{2}|\d{4})")


def _year(text: str) -> int:
    year = int(text)
    if len(text) == 2:
        year += 2000 if year < 70 else 1900
    return year


def parse_date(raw: str, *, day_first: bool = True) -> date | None:
    """'2024-03-05', '2024/03/05', '05.03.2024', '5.3.24', '05/03/2024' (day first unless told).

    Empty → None. Anything else raises ValueError with the formats accepted.
    """
    text = raw.strip()
    if not text:
        return None
    try:
        if m := _ISO_DATE.fullmatch(text) or _SLASH_YMD.fullmatch(text):
            return date(int(m[1]), int(m[2]), int(m[3]))
        if m := _DMY.fullmatch(text):
            first, second, year = int(m[1]), int(m[3]), _year(m[4])
            if day_first or m[2] == ".":  # dotted dates are day first everywhere
                return date(year, second, first)
            return date(year, first, second)
    except ValueError:
        raise ValueError(f"{text!r} is not a real date") from None
    raise ValueError("not a date; write it as 2024-03-31 or 31.03.2024")


_TIME = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?")


def parse_datetime(raw: str, zone: ZoneInfo, *, day_first: bool = True) -> datetime | None:
    """An instant: ISO 8601 with an offset, or a date and time read in the club's zone."""
    text = raw.strip()
    if not text:
        return None
    iso = text.replace(" ", "T", 1) if _ISO_DATE.match(text) else None
    if iso:
        try:
            value = datetime.fromisoformat(iso)
        except ValueError:
            value = None
        if value is not None:
            return value if value.tzinfo else value.replace(tzinfo=zone)
    parts = text.replace("T", " ").split()
    if len(parts) == 2 and (m := _TIME.fullmatch(parts[1])):
        day = parse_date(parts[0], day_first=day_first)
        try:
            at = time(int(m[1]), int(m[2]), int(m[3] or 0))
        except ValueError:
            raise ValueError(f"{parts[1]!r} is not a time of day") from None
        return datetime.combine(day, at, tzinfo=zone)
    raise ValueError("not a date and time; write it as 2024-03-31 18:05 (club time) or "
                     "2024-03-31T18:05:00+02:00")


_MONEY_JUNK = re.compile(r"[€$£\s]|EUR|USD|GBP|CHF", re.IGNORECASE)


def parse_money(raw: str) -> Decimal | None:
    """'49.90', '49,90', '1.234,56', '1,234.56', '€ 49', '49.90 EUR' → Decimal (2 places)."""
    text = _MONEY_JUNK.sub("", raw.strip())
    if not text:
        return None
    if "," in text and "." in text:
        if text.rfind(",") > text.rfind("."):
            text = text.replace(".", "").replace(",", ".")
        else:
            text = text.replace(",", "")
    elif "," in text:
        head, _, tail = text.rpartition(",")
        if len(tail) == 3 and head:  # "1,234": a thousands separator
            text = text.replace(",", "")
        else:  # "49,90": a decimal comma
            text = f"{head.replace(',', '')}.{tail}"
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError("not an amount of money; write it as 49.90") from None
    if not value.is_finite() or abs(value) >= Decimal(10_000_000_000):
        raise ValueError("not a plausible amount of money")
    if value != value.quantize(Decimal("0.01")):
        raise ValueError("has more than two decimal places")
    return value.quantize(Decimal("0.01"))


def parse_int(raw: str, *, minimum: int | None = None, maximum: int | None = None) -> int | None:
    text = raw.strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValueError("not a whole number") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ValueError(f"must be at most {maximum}")
    return value


_TRUE = {"1", "y", "yes", "true", "t", "x", "ja", "j", "oui", "si", "sí", "да"}
_FALSE = {"0", "n", "no", "false", "f", "nein", "non", "нет", "-"}


def parse_bool(raw: str) -> bool | None:
    text = raw.strip().casefold()
    if not text:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("not yes or no; write yes/no, true/false or 1/0")


def limited_text(limit: int) -> Callable[[str], str]:
    """A parser for free text of at most `limit` characters (NUL refused)."""
    def check(text: str) -> str:
        if len(text) > limit:
            raise ValueError(f"at most {limit} characters (this is {len(text)})")
        if "\x00" in text:
            raise ValueError("text must not contain NUL characters")
        return text
    return check


def write_rejects(path: str | Path, original_headers: list[str],
                  rows: list[tuple[list[str], str]]) -> None:
    """The skipped rows, as the user gave them plus a `problem` column, ready to fix and re-import."""
    with Path(path).open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow([*original_headers, "problem"])
        for cells, problem in rows:
            writer.writerow([*cells, problem])
