"""Importing tasks: read a file row by row, check, seal and insert in batches, in one transaction.

    report = imports.import_file(actor, client_id, project_id, Path("reviews.jsonl"))

The whole import is one unit of work. By default a single bad row rejects the import: the rows
after it are still read (so the error lists every bad row, up to :data:`MAX_REPORTED_ERRORS`)
but nothing more is written, and :class:`~labelvault.errors.ImportInvalid` rolls everything
back. With ``skip_invalid`` the valid rows are written and the bad ones reported.

Importing again is idempotent: a row whose ``external_id`` the project has already is left as
it is (``INSERT ... ON CONFLICT DO NOTHING``) and counted as already present.

Each row is checked and sealed as soon as it is read, under a task id taken from a block
allocated beforehand (the ciphertext is bound to it); only its parameter tuple waits for the
batch's ``executemany``. No ORM object and no dict is built per row, and no batch of parsed rows
is kept alive (see docs/benchmarks.md for where the time goes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from labelvault.audit import log as audit_log
from labelvault.audit.log import AuditService
from labelvault.domain.access import Actor, ProjectPolicy
from labelvault.errors import ImportInvalid
from labelvault.io.readers import MappingReader, RecordReader, Unreadable, infer_format, open_reader
from labelvault.io.rows import ParsedRow, RowInvalid, RowParser
from labelvault.storage.ids import allocate_ids
from labelvault.storage.models import Project, Task, utcnow
from labelvault.storage.scope import scoped
from labelvault.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory
from labelvault.workflow.access import access_in
from labelvault.workflow.auditing import recording_denials
from labelvault.workflow.projects import load_project, schema_of

BATCH_SIZE = 5000
# A row whose (project, external id) is there already is left as it is (imports are idempotent).
_INSERT_TASKS_SQLITE = scoped(
    sqlite_insert(Task.__table__).on_conflict_do_nothing(index_elements=["project_id", "external_id"])
)
_INSERT_TASKS_POSTGRESQL = scoped(
    postgresql_insert(Task.__table__).on_conflict_do_nothing(index_elements=["project_id", "external_id"])
)
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
    """Seals parsed rows one by one as they come and inserts them in batches.

    Each row is sealed at once (its ciphertext is bound to its task id, so ids are taken from a
    block allocated beforehand) and only the final parameter tuple is kept until the batch is
    written: parsed rows do not pile up. Blocks grow from 64 ids to the batch size, so a small
    import does not reserve thousands of ids.

    The rows go to the driver's ``executemany`` as plain tuples (``ScopedSql.insert_many``: the
    statement is built by ``scoped()``, and the client id is the unit of work's, never the rows'):
    SQLAlchemy's per-row parameter processing costs more than SQLite's insert itself, and the
    ORM's bulk insert reports no row count (which tells new tasks from existing external ids).
    On PostgreSQL, row-level security checks again.
    """

    def __init__(self, uow: UnitOfWork, project: Project, batch_size: int) -> None:
        self.sql = uow.sql
        self.session = uow.session
        self.tasks = uow.tasks
        self.project_id = project.id
        self.key_id, cipher = uow.active_cipher()
        self.seal = cipher.seal
        self.batch_size = batch_size
        self.created = 0
        self._ids: list[int] = []
        self._used = 0
        self._block = min(64, batch_size)
        self._pending: list[tuple[Any, ...]] = []
        self.dialect = self.session.get_bind().dialect
        self.columns, self.constants = self._constants(project)

    # Columns set per row, in order; every other column gets its value once per import.
    _ROW_COLUMNS = (
        "id", "external_id", "priority", "uncertainty", "required_answers", "open_slots",
        "payload", "metadata", "suggestions",
    )

    def _constants(self, project: Project) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        """The columns of a row (those set per row, then those with one value per import) and the
        values of the latter, converted for the driver once."""
        dialect = self.dialect
        known = {
            "project_id": project.id,
            "data_key_id": self.key_id,
            "answer_count": 0,
            "created_at": utcnow(),
        }
        names = list(self._ROW_COLUMNS)
        constants: list[Any] = []
        for column in Task.__table__.columns:
            if column.key in self._ROW_COLUMNS or column.key == "client_id":
                continue  # the client id is the scope's (insert_many adds it)
            default = column.default
            if column.key in known:
                value = known[column.key]
            elif default is not None and getattr(default, "is_scalar", False):
                value = default.arg  # type: ignore[attr-defined]
            elif default is not None and getattr(default, "is_callable", False):
                value = default.arg(None)  # type: ignore[attr-defined]
            else:
                continue  # nullable, or filled in by the database
            processor = column.type.dialect_impl(dialect).bind_processor(dialect)
            constants.append(processor(value) if processor is not None else value)
            names.append(column.key)
        return tuple(names), tuple(constants)

    def add(self, row: ParsedRow) -> None:
        if self._used == len(self._ids):
            self.flush()
            self._ids = allocate_ids(self.session, Task, self._block)
            self._used = 0
            self._block = min(self._block * 2, self.batch_size)
        task_id = self._ids[self._used]
        self._used += 1
        external_id, priority, required, data, metadata, suggestions, uncertainty = row
        seal = self.seal
        # Serialised and sealed one at a time: orjson keeps a 4 KiB buffer behind every result,
        # so a batch of serialised payloads waiting to be sealed together costs more than it saves.
        self._pending.append(
            (
                task_id, external_id, priority, uncertainty, required, required,
                seal("task.payload", task_id, _dumps(data)),
                seal("task.metadata", task_id, _dumps(metadata)) if metadata else None,
                seal("task.suggestions", task_id, _dumps(suggestions)) if suggestions else None,
                *self.constants,
            )
        )

    def flush(self) -> None:
        """Insert the rows sealed so far; adds the number of new tasks to ``created``."""
        pending = self._pending
        if not pending:
            return
        self._pending = []
        insert = _INSERT_TASKS_POSTGRESQL if self.dialect.name == "postgresql" else _INSERT_TASKS_SQLITE
        inserted = self.sql.insert_many(insert, self.columns, pending)
        if inserted:
            self.tasks.queued(self.project_id)
        self.created += inserted

    def discard(self) -> None:
        self._pending = []


class ImportService:
    """Imports are witnessed: ``tasks.imported`` is appended to the audit log in the import's own
    transaction (with the counts, never content); a refused import is recorded as denied."""

    def __init__(
        self, uow_factory: UnitOfWorkFactory, *, batch_size: int = BATCH_SIZE, audit: AuditService | None = None
    ) -> None:
        self.uow_factory = uow_factory
        self.batch_size = batch_size
        self.audit = audit

    def authorize(self, actor: Actor, client_id: int, project_id: int) -> None:
        """Fail early (before an upload is received) if the actor may not import here.

        The import itself checks again, inside its own transaction.
        """
        with (
            recording_denials(self.audit, actor, client_id, "tasks.import", "project", project_id),
            self.uow_factory.for_client(client_id) as uow,
        ):
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
        reader = MappingReader(rows)
        return self._run(actor, client_id, project_id, reader, "rows", skip_invalid, mapping, progress)

    def _run(self, actor: Actor, client_id: int, project_id: int, *args: Any) -> ImportReport:
        with recording_denials(self.audit, actor, client_id, "tasks.import", "project", project_id):
            return self._import(actor, client_id, project_id, *args)

    def _import(
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
        errors = report.errors
        every = self.batch_size
        with self.uow_factory.for_client(client_id, write=True) as uow:
            ProjectPolicy.import_tasks(access_in(uow, actor))
            project = load_project(uow, project_id)
            parse = RowParser(
                schema_of(project), default_overlap=project.overlap, mapping=mapping, tabular=reader.tabular
            )
            writer = _TaskWriter(uow, project, self.batch_size)
            write = writer.add
            read = valid = invalid = 0
            for position, record in reader.rows():
                read += 1
                try:
                    if type(record) is Unreadable:
                        raise RowInvalid(None, record.reason)
                    row = parse(record)
                except RowInvalid as exc:
                    invalid += 1
                    if len(errors) < MAX_REPORTED_ERRORS:
                        errors.append({unit: position, "field": exc.field, "message": f"{unit} {position}: {exc}"})
                    if not skip_invalid:
                        # Rejected: read on only to report every bad row; write nothing more.
                        writer.discard()
                        write = _ignore
                else:
                    valid += 1
                    write(row)
                if progress is not None and read % every == 0:
                    progress(read)
            report.rows_read, report.invalid = read, invalid
            if invalid and not skip_invalid:
                raise _rejected(report)
            writer.flush()
            report.created = writer.created
            report.already_present = valid - writer.created
            audit_log.append(
                uow, "tasks.imported", actor=actor, client_id=client_id, object_kind="project", object_id=project_id,
                details={
                    "format": fmt, "rows_read": read, "created": report.created,
                    "already_present": report.already_present, "invalid": invalid,
                },
            )
            uow.commit()
        if progress is not None and read % every:
            progress(read)
        return report


def _ignore(_row: ParsedRow) -> None:
    return None


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
