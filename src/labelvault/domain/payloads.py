"""Task payloads: check one task's data against the fields of a project schema.

This runs on every imported row (the import target is 50,000 rows/s all included), so the
checks are hand-written and compiled once per schema: :class:`PayloadValidator` turns the
schema into a flat tuple of ``(name, required, check)`` and ``__call__`` is a single loop with
no allocation on the happy path. Unknown payload keys are kept: templates and exports may use
them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labelvault.domain.schema import (
    FieldKind,
    PreferenceQuestion,
    ProjectSchema,
    describe_value,
    json_type,
    quote,
)
from labelvault.errors import PayloadInvalid

__all__ = [
    "CHAT_ROLES",
    "PayloadValidator",
    "candidate_ids",
    "candidate_texts",
    "normalize_candidates",
    "payload_validator",
    "validate_payload",
    "validate_suggestion_values",
]

CHAT_ROLES = frozenset({"system", "user", "assistant", "tool"})
_ROLES_TEXT = "system, user, assistant, tool"

# A check returns None when the value is fine, else the reason in words (without the field name).
Check = Callable[[Any], str | None]


def _check_text(value: Any) -> str | None:
    if isinstance(value, str):
        return None
    return f"expected text, got {json_type(value)}"


def _check_image(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"expected an image URL, path or file: reference, got {json_type(value)}"
    if not value.strip():
        return "expected an image URL, path or file: reference, got empty text"
    return None


def _check_chat(value: Any) -> str | None:
    if not isinstance(value, list):
        return f"expected a chat (a list of messages), got {json_type(value)}"
    if not value:
        return "expected a chat with at least 1 message, got an empty list"
    for index, message in enumerate(value):
        if not isinstance(message, dict):
            return f"message {index} must be a mapping with role and content, got {json_type(message)}"
        role = message.get("role")
        if role not in CHAT_ROLES:
            if role is None:
                return f"message {index} has no role (expected one of {_ROLES_TEXT})"
            return f"message {index} has role {describe_value(role)}; expected one of {_ROLES_TEXT}"
        content = message.get("content")
        if not isinstance(content, str):
            if content is None:
                return f"message {index} has no content"
            return f"message {index} content must be text, got {json_type(content)}"
    return None


def _candidates_check(min_items: int) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, list):
            return f"expected candidates (a list), got {json_type(value)}"
        if len(value) < min_items:
            return f"expected at least {min_items} candidate{'s' if min_items != 1 else ''}, got {len(value)}"
        ids: set[str] | None = None
        for index, candidate in enumerate(value):
            if isinstance(candidate, str):
                continue
            if not isinstance(candidate, dict):
                return f"candidate {index} must be text or a mapping with text, got {json_type(candidate)}"
            text = candidate.get("text")
            if not isinstance(text, str):
                if text is None:
                    return f"candidate {index} has no text"
                return f"candidate {index} text must be text, got {json_type(text)}"
            candidate_id = candidate.get("id")
            if candidate_id is not None:
                if not isinstance(candidate_id, str):
                    return f"candidate {index} id must be text, got {json_type(candidate_id)}"
                if ids is None:
                    ids = set()
                elif candidate_id in ids:
                    # Exports (DPO pairs, rankings) refer to candidates by id.
                    return f"candidate ids must be unique ({quote(candidate_id)} appears twice)"
                ids.add(candidate_id)
            model = candidate.get("model")
            if model is not None and not isinstance(model, str):
                return f"candidate {index} model must be text, got {json_type(model)}"
        return None

    return check


_CHECKS: dict[FieldKind, Check] = {
    FieldKind.TEXT: _check_text,
    FieldKind.MARKDOWN: _check_text,
    FieldKind.IMAGE: _check_image,
    FieldKind.CHAT: _check_chat,
}


def _preference_fields(schema: ProjectSchema) -> set[str]:
    """Candidate fields that a preference question compares (they need an A and a B)."""
    return {
        question.field for _, question in schema.iter_questions() if isinstance(question, PreferenceQuestion)
    }


class PayloadValidator:
    """A schema's payload checks, compiled once; call it on each row."""

    __slots__ = ("_checks", "schema")

    def __init__(self, schema: ProjectSchema) -> None:
        self.schema = schema
        compared = _preference_fields(schema)
        checks: list[tuple[str, bool, Check]] = []
        for spec in schema.fields:
            if spec.kind is FieldKind.CANDIDATES:
                check = _candidates_check(2 if spec.name in compared else 1)
            else:
                check = _CHECKS[spec.kind]
            checks.append((spec.name, spec.required, check))
        self._checks = tuple(checks)

    def __call__(self, payload: Any) -> dict[str, Any]:
        """Return ``payload`` itself (not a copy) if it fits; raise :class:`PayloadInvalid` if not.

        A value of ``None`` counts as absent (CSV and Parquet rows spell "missing" that way).
        """
        if not isinstance(payload, dict):
            message = f"a task payload must be a mapping of field names to values, got {json_type(payload)}"
            raise PayloadInvalid(message, details=[{"field": None, "message": message}])
        problems: list[dict[str, Any]] | None = None
        for name, required, check in self._checks:
            value = payload.get(name)
            if value is None:
                if not required:
                    continue
                reason = "is required but missing"
                message = f"field {quote(name)} {reason}"
            else:
                reason = check(value)
                if reason is None:
                    continue
                message = f"field {quote(name)}: {reason}"
            if problems is None:
                problems = []
            problems.append({"field": name, "message": message})
        if problems is not None:
            raise PayloadInvalid(_summary([p["message"] for p in problems]), details=problems)
        return payload


def _summary(messages: list[str], shown: int = 3) -> str:
    if len(messages) == 1:
        return messages[0]
    head = "; ".join(messages[:shown])
    rest = len(messages) - shown
    return f"{head}; and {rest} more" if rest > 0 else head


def payload_validator(schema: ProjectSchema) -> PayloadValidator:
    """The (cached) compiled payload validator of ``schema``."""
    return schema.memo("payload_validator", PayloadValidator)


def validate_payload(schema: ProjectSchema, payload: dict[str, Any]) -> dict[str, Any]:
    """Check one task's data against the schema's fields; returns the payload unchanged."""
    return payload_validator(schema)(payload)


def validate_suggestion_values(
    schema: ProjectSchema, answer: dict[str, Any], payload: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Validate a model suggestion (pre-annotation): an answer where nothing is required.

    With ``payload`` the checks that depend on the task (candidate count, span bounds) run
    too; without it they are skipped. Raises :class:`~labelvault.errors.AnswerInvalid`.
    """
    # Imported here: answers is the heavier module and payload checks should not need it.
    from labelvault.domain.answers import answer_validator

    return answer_validator(schema)(payload, answer, partial=True)


# --------------------------------------------------------------------------- candidate helpers


def candidate_ids(value: list[Any]) -> list[str]:
    """Stable ids of a (validated) candidates value: the given ``id``, else the position as text."""
    return [
        candidate["id"]
        if isinstance(candidate, dict) and isinstance(candidate.get("id"), str)
        else str(index)
        for index, candidate in enumerate(value)
    ]


def candidate_texts(value: list[Any]) -> list[str]:
    """The texts of a (validated) candidates value, in order."""
    return [candidate if isinstance(candidate, str) else candidate["text"] for candidate in value]


def normalize_candidates(value: list[Any]) -> list[dict[str, Any]]:
    """Candidates as ``{"id", "text", "model"}`` dicts (``model`` None when not given)."""
    ids = candidate_ids(value)
    return [
        {"id": ids[index], "text": candidate, "model": None}
        if isinstance(candidate, str)
        else {"id": ids[index], "text": candidate["text"], "model": candidate.get("model")}
        for index, candidate in enumerate(value)
    ]
