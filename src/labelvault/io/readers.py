"""Readers: JSONL, CSV and Parquet files as batches of raw records, in constant memory.

A reader turns a byte stream into ``(position, record)`` pairs, one at a time. ``position`` is the
1-based line (JSONL) or data row (CSV, Parquet, rows given in code) that error messages name;
``record`` is a dict straight from the file, or a :class:`Unreadable` when the line itself is
broken (bad JSON, wrong number of CSV values). Readers know nothing of schemas: turning a
record into a task is :mod:`labelvault.io.rows`.

Memory: JSONL and CSV hold one record at a time; Parquet reads record batches of ``batch_size``
rows (pyarrow keeps the column chunks of the current row group in memory as well). Records are
handed on one by one so that each is checked, sealed and dropped while it is young: a batch of
parsed rows kept alive is what makes Python's garbage collector expensive.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, BinaryIO, Protocol

import orjson

from labelvault.errors import ImportInvalid, InvalidInput

FORMATS = ("jsonl", "csv", "parquet")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_MEDIA_TYPES = {
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/json-lines": "jsonl",
    "application/x-jsonlines": "jsonl",
    "text/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
}
_BOM = b"\xef\xbb\xbf"
_CSV_FIELD_LIMIT = 1 << 30  # the csv module's default (128 KiB) is too small for chats

@dataclass(frozen=True, slots=True)
class Unreadable:
    """A line or row that could not even be read as a record; ``reason`` says why."""

    reason: str


class RecordReader(Protocol):
    unit: str  # "line" or "row": how error messages name a position
    tabular: bool  # True when values may be text that stands for numbers or JSON (CSV, Parquet)

    def rows(self) -> Iterator[tuple[int, Any]]: ...


def check_format(value: str) -> str:
    fmt = value.strip().lower().lstrip(".")
    if fmt == "ndjson":
        fmt = "jsonl"
    if fmt not in FORMATS:
        raise InvalidInput(
            f"unknown import format {value!r}; expected one of {', '.join(FORMATS)}", details={"field": "format"}
        )
    return fmt


def infer_format(name: str | None, *, explicit: str | None = None, media_type: str | None = None) -> str:
    """The format to read: the explicit one, else from the file name, else from a media type."""
    if explicit:
        return check_format(explicit)
    if name:
        suffix = PurePath(name).suffix.lower()
        if suffix in _EXTENSIONS:
            return _EXTENSIONS[suffix]
    if media_type:
        found = _MEDIA_TYPES.get(media_type.split(";", 1)[0].strip().lower())
        if found:
            return found
    what = f"file {name!r}" if name else "the upload"
    raise InvalidInput(
        f"cannot tell the format of {what}; name it .jsonl, .csv or .parquet or pass the format "
        f"({', '.join(FORMATS)})",
        details={"field": "format"},
    )


def open_reader(fmt: str, stream: BinaryIO, *, batch_size: int) -> RecordReader:
    if fmt == "jsonl":
        return JsonlReader(stream)
    if fmt == "csv":
        return CsvReader(stream)
    if fmt == "parquet":
        return ParquetReader(stream, batch_size=batch_size)
    raise InvalidInput(f"unknown import format {fmt!r}", details={"field": "format"})


def _json_problem(exc: orjson.JSONDecodeError) -> str:
    # orjson says "line 1 column 5 (char 4)" of the one line it saw: the column is what helps.
    message = exc.msg if hasattr(exc, "msg") else str(exc)
    return f"not valid JSON ({message} at column {exc.pos + 1})"


class JsonlReader:
    """One JSON object per line; blank lines are skipped but counted."""

    unit = "line"
    tabular = False

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def rows(self) -> Iterator[tuple[int, Any]]:
        loads = orjson.loads
        for number, line in enumerate(self.stream, 1):
            if number == 1 and line.startswith(_BOM):
                line = line[len(_BOM) :]
            try:
                record = loads(line)
            except orjson.JSONDecodeError as exc:
                if not line.strip():
                    continue
                record = Unreadable(_json_problem(exc))
            yield number, record


class CsvReader:
    """A header row, then one task per row. Empty cells mean "missing"."""

    unit = "row"
    tabular = True

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        if csv.field_size_limit() < _CSV_FIELD_LIMIT:
            csv.field_size_limit(_CSV_FIELD_LIMIT)

    def rows(self) -> Iterator[tuple[int, Any]]:
        text = io.TextIOWrapper(self.stream, encoding="utf-8-sig", newline="")  # type: ignore[arg-type]
        number = 0
        try:
            reader = csv.reader(text)
            try:
                header = next(reader, None)
            except csv.Error as exc:
                raise ImportInvalid(f"header: not valid CSV ({exc})") from None
            if header is None:
                return
            columns = _check_header(header)
            width = len(columns)
            while True:
                try:
                    values = next(reader, None)
                except csv.Error as exc:
                    number += 1
                    yield number, Unreadable(f"not valid CSV ({exc})")
                    continue
                if values is None:
                    return
                if not values:
                    continue  # a blank line
                number += 1
                if len(values) != width:
                    yield number, Unreadable(f"has {len(values)} values but the header has {width} columns")
                else:
                    yield number, {c: v for c, v in zip(columns, values, strict=True) if v != ""}
        except UnicodeDecodeError as exc:
            raise ImportInvalid(f"row {number + 1}: the file is not UTF-8 text ({exc.reason})") from None
        finally:
            text.detach()  # the caller owns the byte stream: do not close it with the wrapper


def _check_header(header: list[str]) -> list[str]:
    columns = [name.strip() for name in header]
    seen: set[str] = set()
    for index, name in enumerate(columns, 1):
        if not name:
            raise ImportInvalid(f"header: column {index} has no name")
        if name in seen:
            raise ImportInvalid(f'header: column "{name}" appears twice')
        seen.add(name)
    return columns


class ParquetReader:
    """Columns as in CSV; struct and list columns arrive as mappings and lists."""

    unit = "row"
    tabular = True

    def __init__(self, stream: BinaryIO, *, batch_size: int) -> None:
        self.stream = stream
        self.batch_size = batch_size

    def rows(self) -> Iterator[tuple[int, Any]]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(self.stream)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise ImportInvalid(f"not a readable Parquet file ({exc})") from None
        number = 0
        try:
            for record_batch in parquet.iter_batches(batch_size=self.batch_size):
                for record in record_batch.to_pylist():
                    number += 1
                    yield number, {k: v for k, v in record.items() if v is not None}
        except (pa.ArrowException, OSError) as exc:
            raise ImportInvalid(f"row {number + 1}: the Parquet file cannot be read ({exc})") from None
        finally:
            parquet.close()


class MappingReader:
    """Rows given in code (tests, the demo seeder, the SDK): already records."""

    unit = "row"
    tabular = False

    def __init__(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self.records = rows

    def rows(self) -> Iterator[tuple[int, Any]]:
        return enumerate(self.records, 1)
