"""Exporting a project: every task with its data, suggestions and answers, streamed as JSONL.

    export = exports.export(actor, client_id, project_id)   # access is checked here, at once
    for chunk in export.chunks:                              # then bytes, one batch at a time
        out.write(chunk)

One line per task::

    {"id", "external_id", "priority", "data", "metadata", "suggestions",
     "answers": [{"id", "labeler_id", "labeler", "value", "status", "started_at",
                  "submitted_at", "time_spent_ms"}], "created_at"}

Tasks are read in batches by id (keyset pagination), each batch in its own short read unit of
work: an export never holds a write lock, nor a connection while the receiver is slow, and a
member whose role is withdrawn mid-export stops getting batches. The decrypted JSON of payloads
and answers is spliced into the output as it is (``orjson.Fragment``), never parsed again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from labelvault.crypto.keyring import DataCipher
from labelvault.domain.access import Actor, ProjectPolicy
from labelvault.errors import InvalidInput
from labelvault.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory
from labelvault.workflow.access import access_in
from labelvault.workflow.projects import load_project

EXPORT_FORMATS = ("jsonl", "aggregated-jsonl")
BATCH_SIZE = 5000
_EMPTY_LIST = orjson.Fragment(b"[]")

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class ExportStream:
    """An export whose access was checked; ``chunks`` yields the file's bytes batch by batch."""

    filename: str
    media_type: str
    tasks: int  # tasks in the project when the export was asked for (for progress bars)
    chunks: Iterator[bytes]


def _check_format(value: str) -> str:
    fmt = value.strip().lower()
    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(
            f"unknown export format {value!r}; expected one of {', '.join(EXPORT_FORMATS)}",
            details={"field": "format"},
        )
    return fmt


class ExportService:
    def __init__(self, uow_factory: UnitOfWorkFactory, *, batch_size: int = BATCH_SIZE) -> None:
        self.uow_factory = uow_factory
        self.batch_size = batch_size

    def export(
        self,
        actor: Actor,
        client_id: int,
        project_id: int,
        *,
        format: str = "jsonl",
        progress: Progress | None = None,
    ) -> ExportStream:
        """Check access now; return the stream. ``progress`` gets the tasks written so far."""
        fmt = _check_format(format)
        if fmt == "aggregated-jsonl":  # one aggregated answer per task with its confidence (quality/reports.py)
            from labelvault.quality.reports import aggregated_export

            found = aggregated_export(self.uow_factory, actor, client_id, project_id, progress)
            return ExportStream(filename=found.filename, media_type=found.media_type, tasks=found.tasks,
                                chunks=found.chunks)
        with self.uow_factory.for_client(client_id) as uow:
            ProjectPolicy.export(access_in(uow, actor))
            project = load_project(uow, project_id)
            total = uow.tasks.count(project_id)
            filename = f"{project.slug}-{project.id}.{fmt}"
        chunks = self._jsonl(actor, client_id, project_id, progress)
        return ExportStream(filename=filename, media_type="application/x-ndjson", tasks=total, chunks=chunks)

    def _jsonl(self, actor: Actor, client_id: int, project_id: int, progress: Progress | None) -> Iterator[bytes]:
        after = 0
        done = 0
        while True:
            with self.uow_factory.for_client(client_id) as uow:
                ProjectPolicy.export(access_in(uow, actor))
                chunk, count, after = self._batch(uow, project_id, after)
            if not count:
                return
            done += count
            yield chunk
            if progress is not None:
                progress(done)

    def _batch(self, uow: UnitOfWork, project_id: int, after: int) -> tuple[bytes, int, int]:
        # Read through the driver: the ORM's row and type processing (a timezone-aware datetime
        # per row) cost more than the decryption. Below the scoped session, the client filter
        # is explicit here; on PostgreSQL, row-level security applies it again.
        client_id = uow.client_id
        mark = "?" if uow.session.get_bind().dialect.name == "sqlite" else "%s"
        cursor = uow.session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(
                "SELECT id, external_id, priority, data_key_id, payload, metadata, suggestions, created_at "
                f"FROM tasks WHERE client_id = {mark} AND project_id = {mark} AND id > {mark} "
                f"ORDER BY id LIMIT {mark}",
                (client_id, project_id, after, self.batch_size),
            )
            tasks = cursor.fetchall()
            if not tasks:
                return b"", 0, after
            first, last = tasks[0][0], tasks[-1][0]
            cursor.execute(
                "SELECT a.id, a.task_id, a.user_id, u.username, a.data_key_id, a.value, a.status, a.started_at, "
                "a.created_at, a.time_spent_ms FROM answers a JOIN users u ON u.id = a.user_id "
                f"WHERE a.client_id = {mark} AND a.project_id = {mark} AND a.task_id >= {mark} "
                f"AND a.task_id <= {mark} ORDER BY a.task_id, a.id",
                (client_id, project_id, first, last),
            )
            answers = cursor.fetchall()
        finally:
            cursor.close()

        ciphers: dict[int, DataCipher] = {}

        def cipher(key_id: int) -> DataCipher:
            found = ciphers.get(key_id)
            if found is None:
                found = ciphers[key_id] = uow.cipher(key_id)
            return found

        times: dict[Any, datetime] = {}

        def utc(value: Any) -> datetime:
            # Stored as naive UTC (text on SQLite); tasks of one import share one timestamp.
            found = times.get(value)
            if found is None:
                moment = datetime.fromisoformat(value) if isinstance(value, str) else value
                found = times[value] = moment.replace(tzinfo=UTC)
            return found

        Fragment = orjson.Fragment
        by_task: dict[int, list[dict[str, Any]]] = {}
        for answer_id, task_id, user_id, username, key_id, value, status, started, submitted, spent in answers:
            by_task.setdefault(task_id, []).append(
                {
                    "id": answer_id,
                    "labeler_id": user_id,
                    "labeler": username,
                    "value": Fragment(cipher(key_id).open("answer.value", answer_id, value)),
                    "status": status,
                    "started_at": utc(started),
                    "submitted_at": utc(submitted),
                    "time_spent_ms": spent,
                }
            )

        payloads = _open_column(cipher, "task.payload", [(t[0], t[3], t[4]) for t in tasks])
        dumps = orjson.dumps
        newline = orjson.OPT_APPEND_NEWLINE
        no_answers: tuple[()] = ()
        # Appended at once: orjson keeps a 4 KiB buffer behind every result, so a list of a
        # batch's lines would cost far more memory (and time) than the lines themselves.
        out = bytearray()
        for (task_id, external_id, priority, key_id, _, metadata, suggestions, created_at), payload in zip(
            tasks, payloads, strict=True
        ):
            line = {
                "id": task_id,
                "external_id": external_id,
                "priority": priority,
                "data": Fragment(payload),
                "metadata": Fragment(cipher(key_id).open("task.metadata", task_id, metadata)) if metadata else None,
                "suggestions": (
                    Fragment(cipher(key_id).open("task.suggestions", task_id, suggestions))
                    if suggestions
                    else _EMPTY_LIST
                ),
                "answers": by_task.get(task_id, no_answers),
                "created_at": utc(created_at),
            }
            out += dumps(line, option=newline)
        return bytes(out), len(tasks), last


def _open_column(
    cipher: Callable[[int], DataCipher], kind: str, items: list[tuple[int, int, bytes]]
) -> list[bytes]:
    """Open (object id, key id, blob) triples; one batch call when all share a key (the usual case)."""
    key_ids = {key_id for _, key_id, _ in items}
    if len(key_ids) == 1:
        return cipher(key_ids.pop()).open_many(kind, [(object_id, blob) for object_id, _, blob in items])
    return [cipher(key_id).open(kind, object_id, blob) for object_id, key_id, blob in items]

