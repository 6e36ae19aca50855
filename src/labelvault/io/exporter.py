"""Exporting a project: raw, aggregated, or in a training format, streamed (docs/exports.md).

    export = exports.export(actor, client_id, project_id, format="dpo",
                            options=ExportOptions(question="better"))  # access and choices checked now
    for chunk in export.chunks:                                       # then bytes, one batch at a time
        out.write(chunk)

The raw ``jsonl`` format has one line per task::

    {"id", "external_id", "priority", "data", "metadata", "suggestions",
     "answers": [{"id", "labeler_id", "labeler", "value", "status", "started_at",
                  "submitted_at", "time_spent_ms"}], "created_at"}

Tasks are read in batches by id (keyset pagination), each batch in its own short read unit of
work: an export never holds a write lock, nor a connection while the receiver is slow, and a
member whose role is withdrawn mid-export stops getting batches. The decrypted JSON of payloads
and answers is spliced into the output as it is (``orjson.Fragment``), never parsed again.

The other formats are built in their own modules from the same batches: ``parquet`` from the
JSONL chunks, the aggregated tables (``tabular.py``) from the project's cached aggregation, and
the training formats (``training.py``, ``vision.py``, ``spans.py``) from each task's final answer
(``final.py``). Which question a format reads and which field gives the prompt are settled here,
before the stream starts (``targets.py``), so a wrong choice is an error, not a broken download.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select, type_coerce
from sqlalchemy.types import NullType

from labelvault.audit import log as audit_log
from labelvault.audit.log import AuditService
from labelvault.crypto.keyring import DataCipher
from labelvault.domain.access import Actor, ProjectPolicy
from labelvault.domain.schema import ProjectSchema
from labelvault.errors import CryptoError, InvalidInput, NotFound
from labelvault.io.final import FinalTask, stream_final
from labelvault.io.formats import EXPORT_FORMATS, FORMATS
from labelvault.io.packaging import lazy as _lazy
from labelvault.io.packaging import once as _once
from labelvault.io.packaging import write_hf_dataset, zipped
from labelvault.io.spans import conll_chunks, spacy_docbin
from labelvault.io.tabular import (
    aggregated_rows,
    aggregated_schema,
    csv_chunks,
    parquet_chunks,
    raw_rows,
    raw_schema,
)
from labelvault.io.targets import pick_prompt_field, pick_question
from labelvault.io.training import DPO_FORMS, dpo_lines, prompt_reader, sft_lines
from labelvault.io.vision import FileOpener, coco_chunks, write_yolo
from labelvault.storage.models import Answer, Task, User
from labelvault.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory
from labelvault.workflow.access import access_in
from labelvault.workflow.auditing import recording_denials
from labelvault.workflow.files import FileService
from labelvault.workflow.projects import load_project, schema_of
from labelvault.workflow.walls import check_and_record

BATCH_SIZE = 5000
_EMPTY_LIST = orjson.Fragment(b"[]")

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class ExportStream:
    """An export whose access was checked; ``chunks`` yields the file's bytes batch by batch.

    A directory format (``hf-dataset``, ``yolo``) has ``directory``: it writes the directory at a
    path (which must not exist) and returns the tasks written; ``chunks`` is then a zip of it."""

    filename: str
    media_type: str
    tasks: int  # tasks in the project when the export was asked for (for progress bars)
    chunks: Iterator[bytes]
    directory: Callable[[Path], int] | None = None


@dataclass(frozen=True, slots=True)
class ExportOptions:
    """Choices of the training formats (``docs/exports.md``)."""

    question: str | None = None  # the question a format reads, when the project has several that fit
    dpo_form: str | None = None  # "string" or "chat"; default: chat when the prompt is a chat field
    prompt_field: str | None = None  # dpo and sft: the field giving the prompt
    lang: str = "en"  # spacy: the language whose tokenizer splits the text


def _check_format(value: str) -> str:
    fmt = value.strip().lower()
    if fmt not in EXPORT_FORMATS:
        raise InvalidInput(
            f"unknown export format {value!r}; expected one of {', '.join(EXPORT_FORMATS)}",
            details={"field": "format"},
        )
    return fmt


def _require(module: str, fmt: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise InvalidInput(f"the {fmt} format needs the {module} package on the server: pip install 'labelvault[ml]'",
                           details={"field": "format"})


@dataclass(frozen=True, slots=True)
class _Plan:
    """What an export reads, settled before the first byte (so a bad choice is a clear error)."""

    schema: ProjectSchema
    path: str | None = None
    question: Any = None
    prompt: Callable[[dict[str, Any]], Any] | None = None
    form: str = "chat"


def _plan(schema: ProjectSchema, fmt: str, options: ExportOptions) -> _Plan:
    spec = FORMATS[fmt]
    if not spec.question_types:
        if options.question is not None:
            raise InvalidInput(f"the {fmt} format holds every question; question applies to the training formats "
                               f"({', '.join(f.name for f in FORMATS.values() if f.question_types)})",
                               details={"field": "question"})
        if fmt == "hf-dataset":
            _require("datasets", fmt)
        return _Plan(schema)
    path, question = pick_question(schema, fmt, spec.question_types, options.question)
    if fmt == "spacy":
        _require("spacy", fmt)
    if fmt not in ("dpo", "sft"):
        return _Plan(schema, path, question)
    exclude = question.field if fmt == "dpo" else None
    field = pick_prompt_field(schema, fmt, options.prompt_field, exclude=exclude)
    kind = schema.field(field).kind
    form = options.dpo_form or ("chat" if kind == "chat" or fmt == "sft" else "string")
    if form not in DPO_FORMS:
        raise InvalidInput(f"unknown DPO form {form!r}; expected string or chat", details={"field": "dpo_form"})
    if fmt == "sft":
        form = "chat"
    if form == "string" and kind == "chat":
        raise InvalidInput(f"the prompt field {field!r} is a chat: use the chat form of dpo",
                           details={"field": "dpo_form"})
    return _Plan(schema, path, question, prompt_reader(field, kind, form), form)


class ExportService:
    """Exports are witnessed: ``project.exported`` is appended to the audit log when an export is
    granted (a short write transaction before the stream starts); a refused one as denied."""

    def __init__(
        self, uow_factory: UnitOfWorkFactory, *, batch_size: int = BATCH_SIZE, audit: AuditService | None = None,
        files: FileService | None = None,
    ) -> None:
        self.uow_factory = uow_factory
        self.batch_size = batch_size
        self.audit = audit
        self.files = files  # stored images (file:<id>) for coco sizes and yolo image files

    def export(
        self,
        actor: Actor,
        client_id: int,
        project_id: int,
        *,
        format: str = "jsonl",
        progress: Progress | None = None,
        for_offboarding: bool = False,
        options: ExportOptions | None = None,
    ) -> ExportStream:
        """Check access and the format's choices now; return the stream. ``progress`` gets the
        tasks read so far.

        An export shows the client's data to the person who asks: the conflict wall is checked and
        the touch recorded, as for a lease. Not for an offboarding, whose export is handed to the
        client itself (and which is audited as such)."""
        fmt = _check_format(format)
        options = options or ExportOptions()
        if fmt == "aggregated-jsonl":  # one aggregated answer per task with its confidence (quality/reports.py)
            from labelvault.quality.reports import aggregated_export

            found = aggregated_export(self.uow_factory, actor, client_id, project_id, progress)
            return ExportStream(filename=found.filename, media_type=found.media_type, tasks=found.tasks,
                                chunks=found.chunks)
        spec = FORMATS[fmt]
        with (
            recording_denials(self.audit, actor, client_id, "project.export", "project", project_id),
            self.uow_factory.for_client(client_id, write=True) as uow,
        ):
            ProjectPolicy.export(access_in(uow, actor))
            project = load_project(uow, project_id)
            plan = _plan(schema_of(project), fmt, options)
            if not for_offboarding:
                uow.users.lock(actor.user_id)
                check_and_record(uow, actor.user_id, client_id, "export")
            total = uow.tasks.count(project_id)
            suffix = f"-{plan.path}" if plan.path and options.question else ""
            filename = f"{project.slug}-{project.id}{suffix}.{spec.extension}"
            if spec.directory:
                filename += ".zip"
            details: dict[str, Any] = {"format": fmt, "tasks": total}
            if plan.path:
                details["question"] = plan.path
            audit_log.append(uow, "project.exported", actor=actor, client_id=client_id, object_kind="project",
                             object_id=project_id, details=details)
            uow.commit()
        directory = None
        if fmt == "jsonl":
            chunks = self._jsonl(actor, client_id, project_id, progress)
        elif fmt == "parquet":
            rows = (raw_rows(plan.schema, chunk) for chunk in self._jsonl(actor, client_id, project_id, progress))
            chunks = parquet_chunks(raw_schema(plan.schema), rows)
        elif fmt in ("aggregated-parquet", "csv", "hf-dataset"):
            from labelvault.quality.reports import QualityService

            aggregates = QualityService(self.uow_factory).aggregates_for_export(actor, client_id, project_id)
            batches = self._final(actor, client_id, project_id, plan, progress)
            rows = (aggregated_rows(plan.schema, batch, aggregates) for batch in batches)
            if fmt == "csv":
                chunks = csv_chunks(plan.schema, rows)
            elif fmt == "aggregated-parquet":
                chunks = parquet_chunks(aggregated_schema(plan.schema), rows)
            else:
                schema = aggregated_schema(plan.schema)
                directory = _once(lambda target: write_hf_dataset(parquet_chunks(schema, rows), target, total))
        elif fmt == "dpo":
            chunks = dpo_lines(self._final(actor, client_id, project_id, plan, progress), plan.question,
                               plan.prompt, plan.form)  # type: ignore[arg-type]
        elif fmt == "sft":
            chunks = sft_lines(self._final(actor, client_id, project_id, plan, progress), plan.prompt)  # type: ignore[arg-type]
        elif fmt == "coco":
            chunks = coco_chunks(self._final(actor, client_id, project_id, plan, progress), plan.question,
                                 self._file_opener(actor, client_id, project_id))
        elif fmt == "conll":
            chunks = conll_chunks(self._final(actor, client_id, project_id, plan, progress), plan.question)
        elif fmt == "spacy":
            batches = self._final(actor, client_id, project_id, plan, progress)
            chunks = _lazy(lambda: spacy_docbin(batches, plan.question, options.lang))
        else:  # yolo
            batches = self._final(actor, client_id, project_id, plan, progress)
            opener = self._file_opener(actor, client_id, project_id)
            directory = _once(lambda target: write_yolo(batches, plan.question, target, opener))
        if directory is not None:
            chunks = zipped(directory)
        return ExportStream(filename=filename, media_type=spec.media_type, tasks=total, chunks=chunks,
                            directory=directory)

    def _file_opener(self, actor: Actor, client_id: int, project_id: int) -> FileOpener | None:
        """Opens the project's stored files one by one, each in a short read unit of work that asks
        the export policy again (the export as a whole was granted and audited)."""
        files = self.files
        if files is None:
            return None

        def open_file(file_id: str) -> tuple[str, bytes] | None:
            with self.uow_factory.for_client(client_id) as uow:
                ProjectPolicy.export(access_in(uow, actor))
                try:
                    return files.open_in(uow, project_id, file_id)
                except (NotFound, CryptoError):
                    return None  # a missing or unreadable blob: the image is left as a reference

        return open_file

    def _final(self, actor: Actor, client_id: int, project_id: int, plan: _Plan,
               progress: Progress | None) -> Iterator[list[FinalTask]]:
        return stream_final(self.uow_factory, actor, client_id, project_id, plan.path, plan.question,
                            batch_size=self.batch_size, progress=progress)

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
        # Through the scoped session like every query (so the client filter is the one mechanism's),
        # but with the columns' type processing switched off: converting a timezone-aware datetime
        # per row cost more than the decryption. ``utc`` below converts each distinct value once.
        session = uow.session
        tasks = session.execute(
            select(
                Task.id, Task.external_id, Task.priority, Task.data_key_id, Task.payload,
                Task.metadata_blob, Task.suggestions, _raw(Task.created_at),
            )
            .where(Task.project_id == project_id, Task.id > after)
            .order_by(Task.id)
            .limit(self.batch_size)
        ).all()
        if not tasks:
            return b"", 0, after
        first, last = tasks[0][0], tasks[-1][0]
        answers = session.execute(
            select(
                Answer.id, Answer.task_id, Answer.user_id, User.username, Answer.data_key_id, Answer.value,
                Answer.status, _raw(Answer.started_at), _raw(Answer.created_at), Answer.time_spent_ms,
            )
            .join(User, User.id == Answer.user_id)
            .where(Answer.project_id == project_id, Answer.task_id >= first, Answer.task_id <= last)
            .order_by(Answer.task_id, Answer.id)
        ).all()

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


def _raw(column: Any) -> Any:
    """The column without its result processing (naive UTC: a datetime, or text on SQLite)."""
    return type_coerce(column, NullType())


def _open_column(
    cipher: Callable[[int], DataCipher], kind: str, items: list[tuple[int, int, bytes]]
) -> list[bytes]:
    """Open (object id, key id, blob) triples; one batch call when all share a key (the usual case)."""
    key_ids = {key_id for _, key_id, _ in items}
    if len(key_ids) == 1:
        return cipher(key_ids.pop()).open_many(kind, [(object_id, blob) for object_id, _, blob in items])
    return [cipher(key_id).open(kind, object_id, blob) for object_id, key_id, blob in items]

