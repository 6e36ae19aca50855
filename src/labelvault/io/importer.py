"""Importing tasks: read a file in batches, check each row, seal and insert, in one transaction.

    report = imports.import_file(actor, client_id, project_id, Path("reviews.jsonl"))

The whole import is one unit of work. By default a single bad row rejects the import: the rows
after it are still read (so the error lists every bad row, up to :data:`MAX_REPORTED_ERRORS`)
but nothing more is written, and :class:`~labelvault.errors.ImportInvalid` rolls everything
back. With ``skip_invalid`` the valid rows are written and the bad ones reported.

Importing again is idempotent: a row whose ``external_id`` the project has already is left as
it is (``INSERT ... ON CONFLICT DO NOTHING``) and counted as already present.

Per batch of rows: ids are allocated first (each ciphertext is bound to its task id), the
payloads are serialised with orjson and sealed in one call, and the rows go to the database in
one executemany. No ORM object is built per row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from labelvault.domain.access import Actor, ProjectPolicy
from labelvault.errors import ImportInvalid
from labelvault.io.readers import MappingReader, RecordReader, Unreadable, infer_format, open_reader
from labelvault.io.rows import ParsedRow, RowInvalid, RowParser
from labelvault.storage.ids import allocate_ids
from labelvault.storage.models import Project, Task, utcnow
from labelvault.storage.scope import ScopeViolation
from labelvault.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory
from labelvault.workflow.access import access_in
from labelvault.workflow.projects import load_project, schema_of

BATCH_SIZE = 5000
MAX_REPORTED_ERRORS = 100

Progress = Callable[[int], None]


@dataclass
class ImportReport:
    """What an import did. ``rows_read`` = ``created`` + ``already_present`` + ``invalid``."""

    format: str
    rows_read: int = 0
    created: int = 0
    already_present: int = 0
    invalid: int = 0
    # The first bad rows: {"line" or "row": n, "field": name or None, "message": "line 3: ..."}.
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def errors_omitted(self) -> int:
        return self.invalid - len(self.errors)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "rows_read": self.rows_read,
            "created": self.created,
            "already_present": self.already_present,
            "invalid": self.invalid,
            "errors": self.errors,
            "errors_omitted": self.errors_omitted,
        }


def _json_default(value: Any) -> Any:
    # Parquet hands over Decimals and bytes; everything else orjson knows natively.
    from decimal import Decimal

    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    raise TypeError(f"{type(value).__name__} cannot be stored as JSON")


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_json_default)


class _TaskWriter:
    """Seals a batch of parsed rows and inserts it; returns how many rows were new.

    The rows go to the driver's ``executemany`` as plain tuples: SQLAlchemy's per-row parameter
    processing (type processors and a dict per row) costs more than SQLite's insert itself, and
    the ORM's bulk insert reports no row count. So this is the one place that writes tasks below
    the scoped session; it writes only rows it built itself, for the unit of work's own client
    (checked below), and PostgreSQL's row-level security checks ``client_id`` again underneath.
    """

    # Columns set per row, in order; every other column gets its (one per import) default.
    _ROW_COLUMNS = (
        "id", "external_id", "priority", "uncertainty", "required_answers", "open_slots",
        "payload", "metadata", "suggestions",
    )

    def __init__(self, uow: UnitOfWork, project: Project) -> None:
        self.session = uow.session
        self.client_id = uow.client_id
        if self.session.scope.client_id != self.client_id:  # type: ignore[attr-defined]
            raise ScopeViolation("task rows may only be written in their own client's scope")
        self.key_id, self.cipher = uow.active_cipher()
        dialect = self.session.get_bind().dialect
        constants = {
            "client_id": self.client_id,
            "project_id": project.id,
            "data_key_id": self.key_id,
            "answer_count": 0,
            "created_at": utcnow(),
        }
        table = Task.__table__
        names = list(self._ROW_COLUMNS)
        tail: list[Any] = []
        for column in table.columns:
            if column.key in self._ROW_COLUMNS:
                continue
            if column.key in constants:
                value = constants[column.key]
            elif column.default is not None and getattr(column.default, "is_scalar", False):
                value = column.default.arg  # type: ignore[attr-defined]
            elif column.default is not None and getattr(column.default, "is_callable", False):
                value = column.default.arg(None)  # type: ignore[attr-defined]
            else:
                continue  # nullable, or filled by the database
            processor = column.type.dialect_impl(dialect).bind_processor(dialect)
            tail.append(processor(value) if processor is not None else value)
            names.append(column.name)
        self.constants = tuple(tail)
        mark = "?" if dialect.name == "sqlite" else "%s"
        self.sql = (
            f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join([mark] * len(names))}) "
            "ON CONFLICT (project_id, external_id) DO NOTHING"
        )

    def write(self, rows: list[ParsedRow]) -> int:
        if not rows:
            return 0
        ids = allocate_ids(self.session, Task, len(rows))
        # One row at a time on purpose: orjson keeps a 4 KiB buffer behind every result, so
        # holding a batch of serialised payloads (to seal them in one call) costs more than it saves.
        seal = self.cipher.seal
        tail = self.constants
        params = [
            (
                task_id, row[0], row[1], row[6], row[2], row[2],
                seal("task.payload", task_id, _dumps(row[3])),
                seal("task.metadata", task_id, _dumps(row[4])) if row[4] else None,
                seal("task.suggestions", task_id, _dumps(row[5])) if row[5] else None,
                *tail,
            )
            for task_id, row in zip(ids, rows, strict=True)
        ]
        cursor = self.session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(self.sql, params)
            count = cursor.rowcount
        finally:
            cursor.close()
        return count if count is not None and count >= 0 else len(rows)


class ImportService:
    def __init__(self, uow_factory: UnitOfWorkFactory, *, batch_size: int = BATCH_SIZE) -> None:
        self.uow_factory = uow_factory
        self.batch_size = batch_size

    def authorize(self, actor: Actor, client_id: int, project_id: int) -> None:
        """Fail early (before an upload is received) if the actor may not import here.

        The import itself checks again, inside its own transaction.
        """
        with self.uow_factory.for_client(client_id) as uow:
            ProjectPolicy.import_tasks(access_in(uow, actor))
            load_project(uow, project_id)

    def import_file(
        self,
        actor: Actor,
        client_id: int,
        project_id: int,
        source: Path | str | BinaryIO,
        *,
        format: str | None = None,
        skip_invalid: bool = False,
        mapping: Mapping[str, str] | None = None,
        progress: Progress | None = None,
    ) -> ImportReport:
        """Import a JSONL, CSV or Parquet file (format from the name unless given).

        ``progress`` is called after each batch with the number of rows read so far.
        """
        if isinstance(source, str | Path):
            path = Path(source)
            fmt = infer_format(path.name, explicit=format)
            with path.open("rb") as stream:
                reader = open_reader(fmt, stream, batch_size=self.batch_size)
                return self._run(actor, client_id, project_id, reader, fmt, skip_invalid, mapping, progress)
        fmt = infer_format(str(getattr(source, "name", "") or ""), explicit=format)
        reader = open_reader(fmt, source, batch_size=self.batch_size)
        return self._run(actor, client_id, project_id, reader, fmt, skip_invalid, mapping, progress)

    def import_rows(
        self,
        actor: Actor,
        client_id: int,
        project_id: int,
        rows: Iterable[Mapping[str, Any]],
        *,
        skip_invalid: bool = False,
        mapping: Mapping[str, str] | None = None,
        progress: Progress | None = None,
    ) -> ImportReport:
        """Import rows given in code, in the JSONL row format; errors name the 1-based row."""
        reader = MappingReader(rows, batch_size=self.batch_size)
        return self._run(actor, client_id, project_id, reader, "rows", skip_invalid, mapping, progress)

    def _run(
        self,
        actor: Actor,
        client_id: int,
        project_id: int,
        reader: RecordReader,
        fmt: str,
        skip_invalid: bool,
        mapping: Mapping[str, str] | None,
        progress: Progress | None,
    ) -> ImportReport:
        report = ImportReport(format=fmt)
        unit = reader.unit
        with self.uow_factory.for_client(client_id, write=True) as uow:
            ProjectPolicy.import_tasks(access_in(uow, actor))
            project = load_project(uow, project_id)
            parse = RowParser(
                schema_of(project), default_overlap=project.overlap, mapping=mapping, tabular=reader.tabular
            )
            writer = _TaskWriter(uow, project)
            errors = report.errors

            def reject(position: int, field_name: str | None, message: str) -> None:
                report.invalid += 1
                if len(errors) < MAX_REPORTED_ERRORS:
                    errors.append({unit: position, "field": field_name, "message": f"{unit} {position}: {message}"})

            for batch in reader.batches():
                good: list[ParsedRow] = []
                for position, record in batch:
                    if type(record) is Unreadable:
                        reject(position, None, record.reason)
                        continue
                    try:
                        good.append(parse(record))
                    except RowInvalid as exc:
                        reject(position, exc.field, exc.message)
                report.rows_read += len(batch)
                # Once rejected, only read on (to report every bad row); write nothing more.
                if skip_invalid or not report.invalid:
                    created = writer.write(good)
                    report.created += created
                    report.already_present += len(good) - created
                if progress is not None:
                    progress(report.rows_read)
            if report.invalid and not skip_invalid:
                raise _rejected(report)
            uow.commit()
        return report


def _rejected(report: ImportReport) -> ImportInvalid:
    first = report.errors[0]["message"]
    rows = "1 bad row" if report.invalid == 1 else f"{report.invalid} bad rows"
    message = f"import rejected, nothing was written ({rows}): {first}"
    return ImportInvalid(
        message,
        details={
            "rows_read": report.rows_read,
            "invalid": report.invalid,
            "errors": report.errors,
            "errors_omitted": report.errors_omitted,
        },
    )
