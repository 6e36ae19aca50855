"""Tables of a project: Parquet (raw and aggregated), CSV and a Hugging Face dataset.

Columns are typed from the project schema, so every batch of a project has the same Arrow schema
and the file streams out row group by row group:

* a task's ``data`` is a struct of the schema's fields: ``text``, ``markdown`` and ``image`` as
  strings, ``chat`` as a list of ``{role, content}``, ``candidates`` as a list of ``{id, text,
  model}``; keys outside the schema are kept as JSON text in ``data_extra``;
* ``parquet`` (raw): ``id``, ``external_id``, ``priority``, ``created_at``, ``data``,
  ``data_extra``, ``metadata`` and ``suggestions`` (JSON text) and ``answers``, a list of
  ``{id, labeler_id, labeler, value (JSON text), status, started_at, submitted_at, time_spent_ms}``;
* ``aggregated-parquet`` and ``hf-dataset``: ``id``, ``external_id``, ``gold``, ``data``,
  ``data_extra`` and ``answers``, a struct with one ``{value, confidence, method, n}`` per question
  path, ``value`` typed per question type (see ``VALUE_TYPES``), null where a task has none;
* ``csv``: one row per task, flat: ``id``, ``external_id``, ``gold``, ``data.<field>`` (chats and
  candidates as JSON text), then per question path ``<path>`` (lists, spans and boxes as JSON
  text, a preference as its choice), ``<path>.confidence``, ``<path>.method``, ``<path>.n``.

The aggregated values are the project's aggregation (``quality/compute.py``: Dawid-Skene or a
weighted vote for labels, medians for ratings, Bradley-Terry for rankings, merged spans and boxes,
reviewers' corrections and gold answers first), which is computed over the whole project at once
and cached; the task data around it streams.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from labelvault.domain.payloads import normalize_candidates
from labelvault.domain.schema import ProjectSchema
from labelvault.io.final import FinalTask

_TS = pa.timestamp("us", tz="UTC")
_FIELD_TYPES: dict[str, pa.DataType] = {
    "text": pa.string(),
    "markdown": pa.string(),
    "image": pa.string(),
    "chat": pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])),
    "candidates": pa.list_(pa.struct([("id", pa.string()), ("text", pa.string()), ("model", pa.string())])),
}
VALUE_TYPES: dict[str, pa.DataType] = {
    "label": pa.string(),
    "multi_label": pa.list_(pa.string()),
    "rating": pa.float64(),
    "ranking": pa.list_(pa.int64()),
    "preference": pa.string(),  # the choice: a, b or tie
    "text": pa.string(),
    "span": pa.list_(pa.struct([("start", pa.int64()), ("end", pa.int64()), ("label", pa.string()),
                                ("confidence", pa.float64())])),
    "bbox": pa.list_(pa.struct([("x", pa.float64()), ("y", pa.float64()), ("w", pa.float64()), ("h", pa.float64()),
                                ("label", pa.string()), ("confidence", pa.float64())])),
}
_ANSWER = pa.struct([
    ("id", pa.int64()), ("labeler_id", pa.int64()), ("labeler", pa.string()), ("value", pa.string()),
    ("status", pa.string()), ("started_at", _TS), ("submitted_at", _TS), ("time_spent_ms", pa.int64()),
])


def _data_type(schema: ProjectSchema) -> pa.StructType:
    return pa.struct([(spec.name, _FIELD_TYPES[spec.kind]) for spec in schema.fields])


def _data(schema: ProjectSchema, payload: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    data: dict[str, Any] = {}
    for spec in schema.fields:
        value = payload.get(spec.name)
        if spec.kind == "candidates" and isinstance(value, list):
            value = normalize_candidates(value)
        elif spec.kind == "chat" and isinstance(value, list):
            value = [{"role": m.get("role"), "content": m.get("content")} for m in value]
        data[spec.name] = value
    extra = {k: v for k, v in payload.items() if k not in data}
    return data, orjson.dumps(extra).decode() if extra else None


def raw_schema(schema: ProjectSchema) -> pa.Schema:
    return pa.schema([
        ("id", pa.int64()), ("external_id", pa.string()), ("priority", pa.int64()), ("created_at", _TS),
        ("data", _data_type(schema)), ("data_extra", pa.string()), ("metadata", pa.string()),
        ("suggestions", pa.string()), ("answers", pa.list_(_ANSWER)),
    ])


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def raw_rows(schema: ProjectSchema, jsonl: bytes) -> list[dict[str, Any]]:
    """Rows of the raw table from a chunk of the JSONL export (the one reader of tasks and answers)."""
    rows = []
    for line in jsonl.splitlines():
        task = orjson.loads(line)
        data, extra = _data(schema, task["data"])
        rows.append({
            "id": task["id"], "external_id": task["external_id"], "priority": task["priority"],
            "created_at": _time(task["created_at"]), "data": data, "data_extra": extra,
            "metadata": orjson.dumps(task["metadata"]).decode() if task["metadata"] is not None else None,
            "suggestions": orjson.dumps(task["suggestions"]).decode(),
            "answers": [{**a, "value": orjson.dumps(a["value"]).decode(), "started_at": _time(a["started_at"]),
                         "submitted_at": _time(a["submitted_at"])} for a in task["answers"]],
        })
    return rows


def aggregated_schema(schema: ProjectSchema) -> pa.Schema:
    answers = pa.struct([
        (path, pa.struct([("value", VALUE_TYPES[q.type]), ("confidence", pa.float64()), ("method", pa.string()),
                          ("n", pa.int64())]))
        for path, q in schema.iter_questions()
    ])
    return pa.schema([("id", pa.int64()), ("external_id", pa.string()), ("gold", pa.bool_()),
                      ("data", _data_type(schema)), ("data_extra", pa.string()), ("answers", answers)])


def _value(question: Any, value: Any) -> Any:
    if question.type == "preference" and isinstance(value, dict):
        return value.get("choice")
    return value


def aggregated_rows(schema: ProjectSchema, tasks: list[FinalTask], aggregates: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for task in tasks:
        entry = aggregates.get(str(task.task_id), {})
        given = entry.get("questions", {})
        answers = {}
        for path, question in schema.iter_questions():
            result = given.get(path)
            answers[path] = None if result is None else {
                "value": _value(question, result.get("value")), "confidence": result.get("confidence"),
                "method": result.get("method"), "n": result.get("n"),
            }
        data, extra = _data(schema, task.data)
        rows.append({"id": task.task_id, "external_id": task.external_id, "gold": task.gold, "data": data,
                     "data_extra": extra, "answers": answers})
    return rows


class _Drain(io.RawIOBase):
    """A write-only file whose bytes are taken out after each row group (Parquet written as a stream)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.buffer += view
        self.position += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        out = bytes(self.buffer)
        self.buffer.clear()
        return out


def parquet_chunks(schema: pa.Schema, row_batches: Iterator[list[dict[str, Any]]]) -> Iterator[bytes]:
    """A Parquet file, one row group per batch, each yielded once written."""
    sink = _Drain()
    with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
        for rows in row_batches:
            if rows:
                writer.write_table(pa.Table.from_pylist(rows, schema=schema))
            yield sink.take()
    yield sink.take()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def csv_header(schema: ProjectSchema) -> list[str]:
    header = ["id", "external_id", "gold", *(f"data.{spec.name}" for spec in schema.fields)]
    for path, _ in schema.iter_questions():
        header += [path, f"{path}.confidence", f"{path}.method", f"{path}.n"]
    return header


def csv_chunks(schema: ProjectSchema, row_batches: Iterator[list[dict[str, Any]]]) -> Iterator[bytes]:
    """CSV (RFC 4180, UTF-8) of aggregated rows, one chunk per batch."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(csv_header(schema))
    for rows in row_batches:
        for row in rows:
            cells = [row["id"], row["external_id"] or "", _cell(row["gold"])]
            cells += [_cell(row["data"][spec.name]) for spec in schema.fields]
            for path, _ in schema.iter_questions():
                result = row["answers"][path] or {}
                cells += [_cell(result.get("value")), _cell(result.get("confidence")), _cell(result.get("method")),
                          _cell(result.get("n"))]
            writer.writerow(cells)
        yield text.getvalue().encode("utf-8")
        text.seek(0)
        text.truncate()


__all__ = ["VALUE_TYPES", "aggregated_rows", "aggregated_schema", "csv_chunks", "csv_header", "parquet_chunks",
           "raw_rows", "raw_schema"]
