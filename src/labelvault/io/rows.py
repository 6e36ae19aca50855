"""From a raw record to a task: the row format of imports, checked against a project schema.

A row is ``{"external_id"?, "priority"?, "overlap"?, "data": {field: value}, "metadata"?,
"suggestions"?: [{"model", "answer", "score"?}]}``. Without ``"data"`` the row is *flat*: every
key that is not one of the reserved names above is a field of the task's data (CSV and Parquet
rows are always read this way, unless they have a ``data`` column). In tabular sources (CSV,
Parquet) text may stand for a number (``priority``, ``overlap``) or for JSON (``metadata``,
``suggestions``, ``data`` and chat or candidates fields).

:class:`RowParser` is compiled once per import and runs on every row, so the happy path is a
handful of dict lookups; the payload itself is checked by the domain's compiled validator.
Problems raise :class:`RowInvalid` naming the field, in words a person can act on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from labelvault.domain.answers import answer_validator
from labelvault.domain.payloads import payload_validator
from labelvault.domain.schema import FieldKind, ProjectSchema, describe_value, json_type, quote
from labelvault.errors import AnswerInvalid, InvalidInput, PayloadInvalid

RESERVED = ("external_id", "priority", "overlap", "data", "metadata", "suggestions")
_RESERVED = frozenset(RESERVED)
_SUGGESTION_KEYS = frozenset({"model", "answer", "score"})
MAX_EXTERNAL_ID = 200
MAX_OVERLAP = 100
_INT32 = 2**31


class RowInvalid(Exception):
    """One row does not fit; ``field`` names where (None for the row as a whole)."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


# What RowParser returns, a plain tuple (a NamedTuple costs more than the rest of the check):
# (external_id, priority, required_answers, data, metadata, suggestions, uncertainty).
ParsedRow = tuple[
    str | None, int, int, dict[str, Any], dict[str, Any] | None, list[dict[str, Any]] | None, float
]


def _fail(field: str, reason: str) -> RowInvalid:
    return RowInvalid(field, f"field {quote(field)}: {reason}")


def _from_json_text(value: str, field: str) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise _fail(field, f"not valid JSON ({exc.msg} at character {exc.pos + 1})") from None


def _whole_number(value: Any, field: str, tabular: bool) -> int:
    if type(value) is int:
        return value
    if tabular and isinstance(value, str):
        text = value.strip()
        if text.lstrip("+-").isdigit():
            return int(text)
    elif isinstance(value, float) and value.is_integer():
        return int(value)
    raise _fail(field, f"expected a whole number, got {describe_value(value)}")


def parse_field_map(items: list[str] | tuple[str, ...] | None) -> dict[str, str]:
    """``["review=text", "id=external_id"]`` -> ``{"review": "text", "id": "external_id"}``."""
    mapping: dict[str, str] = {}
    for item in items or ():
        source, sep, target = item.partition("=")
        source, target = source.strip(), target.strip()
        if not sep or not source or not target:
            raise InvalidInput(f"map {item!r} must look like column=field", details={"field": "map"})
        if source in mapping:
            raise InvalidInput(f"map: column {quote(source)} is mapped twice", details={"field": "map"})
        mapping[source] = target
    return mapping


class RowParser:
    """Checks rows against one schema; call it on each raw record."""

    def __init__(
        self,
        schema: ProjectSchema,
        *,
        default_overlap: int,
        mapping: Mapping[str, str] | None = None,
        tabular: bool = False,
    ) -> None:
        self._payload = payload_validator(schema)
        self._answers = answer_validator(schema)
        self._overlap = default_overlap
        self._tabular = tabular
        self._mapping = _check_mapping(schema, mapping or {})
        kinds = (FieldKind.CHAT, FieldKind.CANDIDATES)
        # Fields whose values a tabular source writes as JSON text.
        self._json_fields = tuple(spec.name for spec in schema.fields if spec.kind in kinds) if tabular else ()

    def __call__(self, record: Any) -> ParsedRow:
        if type(record) is not dict:
            if not isinstance(record, Mapping):
                raise RowInvalid(None, f"expected a JSON object with the task's data, got {json_type(record)}")
            record = dict(record)
        mapping = self._mapping
        if mapping:
            record = {mapping.get(key, key): value for key, value in record.items()}
        tabular = self._tabular
        get = record.get

        data = get("data")
        if data is None:
            data = {key: value for key, value in record.items() if key not in _RESERVED}
        else:
            if tabular and isinstance(data, str):
                data = _from_json_text(data, "data")
            if type(data) is not dict:
                raise _fail("data", f"expected a mapping of field names to values, got {json_type(data)}")
            for key in record:
                if key not in _RESERVED:
                    raise _fail(
                        key,
                        "unknown key; a row with data may have external_id, priority, overlap, metadata "
                        "and suggestions besides (put the task's fields into data)",
                    )
            if mapping:
                data = {mapping.get(key, key): value for key, value in data.items()}
        for name in self._json_fields:
            value = data.get(name)
            if type(value) is str:
                data[name] = _from_json_text(value, name)
        try:
            self._payload(data)
        except PayloadInvalid as exc:
            first = exc.details[0] if exc.details else {"field": None}
            raise RowInvalid(first.get("field"), exc.message) from None

        external_id = get("external_id")
        if external_id is not None:
            if type(external_id) is not str:
                if type(external_id) is not int:
                    raise _fail("external_id", f"expected text, got {json_type(external_id)}")
                external_id = str(external_id)
            if not 0 < len(external_id) <= MAX_EXTERNAL_ID:
                raise _fail("external_id", f"must be 1 to {MAX_EXTERNAL_ID} characters long")

        priority = get("priority")
        if priority is None:
            priority = 0
        else:
            priority = _whole_number(priority, "priority", tabular)
            # Symmetric, so that its negation fits too (PostgreSQL's queue index holds -priority).
            if not -_INT32 < priority < _INT32:
                raise _fail("priority", f"must be between {1 - _INT32} and {_INT32 - 1}, got {priority}")

        overlap = get("overlap")
        if overlap is None:
            overlap = self._overlap
        else:
            overlap = _whole_number(overlap, "overlap", tabular)
            if not 1 <= overlap <= MAX_OVERLAP:
                raise _fail("overlap", f"must be between 1 and {MAX_OVERLAP}, got {overlap}")

        metadata = get("metadata")
        if metadata is not None:
            if tabular and isinstance(metadata, str):
                metadata = _from_json_text(metadata, "metadata")
            if type(metadata) is not dict:
                raise _fail("metadata", f"expected a mapping, got {json_type(metadata)}")

        suggestions = get("suggestions")
        uncertainty = 0.0
        if suggestions is not None:
            suggestions, uncertainty = self._suggestions(suggestions, data)

        return (external_id, priority, overlap, data, metadata, suggestions, uncertainty)

    def check_suggestions(self, value: Any, data: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, float]:
        """Check a list of suggestions against a task's data, as an import does; returns (suggestions,
        uncertainty). Also used when suggestions are added to existing tasks (io/suggestions.py)."""
        return self._suggestions(value, data)

    def _suggestions(self, value: Any, data: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, float]:
        if self._tabular and isinstance(value, str):
            value = _from_json_text(value, "suggestions")
        if not isinstance(value, list):
            raise _fail("suggestions", f"expected a list of suggestions, got {json_type(value)}")
        if not value:
            return None, 0.0
        out: list[dict[str, Any]] = []
        best: float | None = None
        for index, item in enumerate(value):
            where = f"suggestions[{index}]"
            if not isinstance(item, dict):
                raise _fail(where, f"expected a mapping with model, answer and score, got {json_type(item)}")
            for key in item:
                if key not in _SUGGESTION_KEYS:
                    raise _fail(where, f"unknown key {quote(str(key))}; a suggestion has model, answer and score")
            model = item.get("model")
            if not isinstance(model, str) or not model:
                got = "missing" if model is None else describe_value(model)
                raise _fail(f"{where}.model", f"expected the model's name as text, got {got}")
            score = item.get("score")
            if score is not None:
                if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
                    raise _fail(f"{where}.score", f"expected a number from 0 to 1, got {describe_value(score)}")
                score = float(score)
                best = score if best is None or score > best else best
            try:
                answer = self._answers(data, item.get("answer"), partial=True)
            except AnswerInvalid as exc:
                raise _fail(f"{where}.answer", exc.message) from None
            out.append({"model": model, "answer": answer, "score": score})
        return out, 0.0 if best is None else 1.0 - best


def _check_mapping(schema: ProjectSchema, mapping: Mapping[str, str]) -> dict[str, str]:
    targets: dict[str, str] = {}
    for source, target in mapping.items():
        if target not in _RESERVED and not schema.has_field(target):
            expected = ", ".join([*schema.field_names, *RESERVED])
            raise InvalidInput(
                f"map: {quote(source)} is mapped to {quote(target)}, which is neither a field of the project "
                f"nor a row key (expected one of {expected})",
                details={"field": "map"},
            )
        if target in targets:
            raise InvalidInput(
                f"map: {quote(targets[target])} and {quote(source)} are both mapped to {quote(target)}",
                details={"field": "map"},
            )
        targets[target] = source
    return {source: target for source, target in mapping.items() if source != target}
