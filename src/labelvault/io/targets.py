"""What a training format is made of: the question it reads and the field that gives the prompt.

Checked when the export is asked for, before a byte is streamed, so that a wrong choice is a
clear error (400 on the API, one line on the CLI) rather than a broken download.
"""

from __future__ import annotations

from typing import Any

from labelvault.domain.schema import FieldKind, ProjectSchema
from labelvault.errors import InvalidInput


def _listing(schema: ProjectSchema) -> str:
    return ", ".join(f"{path} ({question.type})" for path, question in schema.iter_questions())


def pick_question(schema: ProjectSchema, fmt: str, types: tuple[str, ...], name: str | None) -> tuple[str, Any]:
    """The (path, question) a format reads: ``name`` if given (a top-level question or a rubric
    criterion as ``rubric.criterion``), else the project's only question of a fitting type."""
    wanted = " or ".join(types)
    fitting = [(path, q) for path, q in schema.iter_questions() if q.type in types]
    if name is not None:
        for path, question in schema.iter_questions():
            if path == name:
                if question.type not in types:
                    raise InvalidInput(
                        f"the {fmt} format needs a {wanted} question; question {name!r} is a {question.type} "
                        f"question", details={"field": "question"})
                return path, question
        raise InvalidInput(f"the project has no question {name!r}; its questions: {_listing(schema)}",
                           details={"field": "question"})
    if not fitting:
        raise InvalidInput(
            f"the {fmt} format needs a {wanted} question, and this project has none; its questions: "
            f"{_listing(schema)}", details={"field": "question"})
    if len(fitting) > 1:
        names = ", ".join(f"{path} ({q.type})" for path, q in fitting)
        raise InvalidInput(f"the project has several {wanted} questions ({names}); choose one with question",
                           details={"field": "question"})
    return fitting[0]


PROMPT_KINDS = (FieldKind.CHAT, FieldKind.TEXT, FieldKind.MARKDOWN)


def pick_prompt_field(schema: ProjectSchema, fmt: str, name: str | None, *, exclude: str | None = None) -> str:
    """The field whose content is the prompt: ``name`` if given, else the first chat field, else the
    first text or markdown field (never ``exclude``, the field holding the candidates)."""
    if name is not None:
        if not schema.has_field(name):
            raise InvalidInput(f"the project has no field {name!r}; its fields: {', '.join(schema.field_names)}",
                               details={"field": "prompt_field"})
        if schema.field(name).kind not in PROMPT_KINDS:
            raise InvalidInput(f"field {name!r} is a {schema.field(name).kind} field; a prompt is a chat, text or "
                               f"markdown field", details={"field": "prompt_field"})
        return name
    for kinds in ((FieldKind.CHAT,), (FieldKind.TEXT, FieldKind.MARKDOWN)):
        for spec in schema.fields_of_kind(*kinds):
            if spec.name != exclude:
                return spec.name
    raise InvalidInput(f"the {fmt} format needs a prompt: a chat, text or markdown field, and this project has none",
                       details={"field": "prompt_field"})


__all__ = ["PROMPT_KINDS", "pick_prompt_field", "pick_question"]
