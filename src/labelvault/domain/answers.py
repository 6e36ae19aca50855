"""Strict answer validation: one answer document ``{question_name: value}`` against a schema.

Each question is compiled once per schema into a small checker closure that either returns
the normalized value or raises ``_Fail(reason)``. The answer document and a rubric's value are
both "groups" (names to values) and go through the same code, so rubric criteria get paths like
``quality.clarity`` in messages. All problems are collected: :class:`AnswerInvalid` carries
every one in ``details`` as ``{"question": path, "message": reason}``.

Booleans never pass as numbers: ``True`` is an ``int`` in Python but not a rating.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from labelvault.domain.schema import (
    BboxQuestion,
    LabelQuestion,
    MultiLabelQuestion,
    PreferenceQuestion,
    ProjectSchema,
    RankingQuestion,
    RatingQuestion,
    RubricQuestion,
    SpanQuestion,
    TextQuestion,
    describe_value,
    format_number,
    json_type,
    quote,
)
from labelvault.errors import AnswerInvalid

__all__ = [
    "BOX_TOLERANCE",
    "PREFERENCE_CHOICES",
    "AnswerValidator",
    "answer_validator",
    "validate_answer",
    "validate_suggestion",
]

# Boxes drawn in the browser come back as floats; allow rounding noise at the image edges.
BOX_TOLERANCE = 1e-9
PREFERENCE_CHOICES = ("a", "b", "tie")

_SPAN_KEYS = frozenset({"start", "end", "label", "text"})
_BOX_KEYS = frozenset({"x", "y", "w", "h", "label"})
_PREFERENCE_KEYS = frozenset({"choice", "strength"})

Payload = dict[str, Any] | None
Checker = Callable[[Any, Payload], Any]


class _Fail(Exception):
    """One question's value is wrong; ``reason`` is shown to people."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _choices(labels: Iterable[str], limit: int = 12) -> str:
    """A quoted list of labels for messages, cut short when a question has very many."""
    labels = list(labels)
    shown = ", ".join(quote(label) for label in labels[:limit])
    return shown if len(labels) <= limit else f"{shown}, … ({len(labels)} labels)"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# --------------------------------------------------------------------------- payload look-ups


def _candidate_count(payload: Payload, field: str) -> int | None:
    """How many candidates the task offers; None when no payload was given (suggestions)."""
    if payload is None:
        return None
    candidates = payload.get(field)
    if not isinstance(candidates, list):
        raise _Fail(f"the task has no candidates in field {quote(field)}")
    return len(candidates)


def _task_text(payload: Payload, field: str) -> str | None:
    if payload is None:
        return None
    text = payload.get(field)
    if not isinstance(text, str):
        raise _Fail(f"the task has no text in field {quote(field)} to mark spans in")
    return text


# --------------------------------------------------------------------------- one checker per type


def _label_checker(question: LabelQuestion) -> Checker:
    labels = frozenset(question.labels)
    expected = _choices(question.labels)

    def check(value: Any, payload: Payload) -> str:
        if not isinstance(value, str):
            raise _Fail(f"expected one of the labels ({expected}), got {describe_value(value)}")
        if value not in labels:
            raise _Fail(f"unknown label {quote(value)}; expected one of {expected}")
        return value

    return check


def _multi_label_checker(question: MultiLabelQuestion) -> Checker:
    order = {label: index for index, label in enumerate(question.labels)}
    expected = _choices(question.labels)
    low, high = question.min_selected, question.max_selected

    def check(value: Any, payload: Payload) -> list[str]:
        if not isinstance(value, list | tuple):
            raise _Fail(f"expected a list of labels, got {describe_value(value)}")
        seen: set[str] = set()
        for item in value:
            if not isinstance(item, str):
                raise _Fail(f"expected labels as text, got {describe_value(item)} in the list")
            if item not in order:
                raise _Fail(f"unknown label {quote(item)}; expected any of {expected}")
            if item in seen:
                raise _Fail(f"label {quote(item)} is selected twice")
            seen.add(item)
        if len(value) < low:
            raise _Fail(f"{_plural(len(value), 'label')} selected, at least {low} required")
        if high is not None and len(value) > high:
            raise _Fail(f"{_plural(len(value), 'label')} selected, at most {high} allowed")
        # Schema order, so equal selections compare equal in agreement and aggregation.
        return sorted(value, key=order.__getitem__)

    return check


def _rating_checker(question: RatingQuestion) -> Checker:
    low, high = question.min, question.max

    def check(value: Any, payload: Payload) -> int:
        if not _is_int(value):
            raise _Fail(f"expected a whole number from {low} to {high}, got {describe_value(value)}")
        if not low <= value <= high:
            raise _Fail(f"rating {value} is outside the scale {low}..{high}")
        return int(value)

    return check


def _ranking_checker(question: RankingQuestion) -> Checker:
    field = question.field

    def check(value: Any, payload: Payload) -> list[int]:
        count = _candidate_count(payload, field)
        if not isinstance(value, list | tuple):
            raise _Fail(f"expected a list of candidate indices, best first, got {describe_value(value)}")
        for item in value:
            if not _is_int(item):
                raise _Fail(
                    f"ranking items must be candidate indices (whole numbers from 0), "
                    f"got {describe_value(item)}"
                )
        total = len(value) if count is None else count
        if sorted(value) != list(range(total)):
            raise _Fail(
                f"ranking is not a permutation of the {_plural(total, 'candidate')} "
                f"({_permutation_problem(value, total)})"
            )
        return [int(item) for item in value]

    return check


def _permutation_problem(value: list[int] | tuple[int, ...], total: int) -> str:
    seen: set[int] = set()
    for item in value:
        if not 0 <= item < total:
            return (
                f"index {item} is out of range 0..{total - 1}" if total else f"index {item} is out of range"
            )
        if item in seen:
            return f"index {item} appears twice"
        seen.add(item)
    return f"{len(value)} ranked"


def _preference_checker(question: PreferenceQuestion) -> Checker:
    field = question.field
    levels = question.strength_levels
    allowed = PREFERENCE_CHOICES if question.allow_tie else PREFERENCE_CHOICES[:2]
    allowed_text = " or ".join(quote(choice) for choice in allowed)

    def check(value: Any, payload: Payload) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _Fail(f"expected a mapping with a choice ({allowed_text}), got {describe_value(value)}")
        unknown = value.keys() - _PREFERENCE_KEYS
        if unknown:
            raise _Fail(f"unknown key {quote(str(min(unknown, key=str)))} (allowed: choice, strength)")
        choice = value.get("choice")
        if choice == "tie" and not question.allow_tie:
            raise _Fail(f"a tie is not allowed for this question; choose {allowed_text}")
        if choice not in allowed:
            raise _Fail(f"choice must be {allowed_text}, got {describe_value(choice)}")
        strength = value.get("strength")
        if levels is None:
            if strength is not None:
                raise _Fail("this question asks for no strength")
        elif choice == "tie":
            if strength is not None:
                raise _Fail("a tie has no strength")
        elif strength is None:
            raise _Fail(f"strength is required (a whole number from 1 to {levels})")
        elif not _is_int(strength) or not 1 <= strength <= levels:
            raise _Fail(f"strength must be a whole number from 1 to {levels}, got {describe_value(strength)}")
        count = _candidate_count(payload, field)
        if count is not None and count < 2:
            raise _Fail(
                f"the task has {_plural(count, 'candidate')} in field {quote(field)}; a preference needs 2"
            )
        return {"choice": choice} if strength is None else {"choice": choice, "strength": int(strength)}

    return check


def _text_checker(question: TextQuestion) -> Checker:
    low, high = question.min_length, question.max_length

    def check(value: Any, payload: Payload) -> str:
        if not isinstance(value, str):
            raise _Fail(f"expected text, got {json_type(value)}")
        length = len(value)
        if length > high:
            raise _Fail(f"text too long: {length} characters, at most {high}")
        if length < low:
            raise _Fail(f"text too short: {length} characters, at least {low}")
        return value

    return check


def _span_checker(question: SpanQuestion) -> Checker:
    field = question.field
    labels = frozenset(question.labels)
    expected = _choices(question.labels)
    allow_overlap = question.allow_overlap

    def check(value: Any, payload: Payload) -> list[dict[str, Any]]:
        if not isinstance(value, list | tuple):
            raise _Fail(f"expected a list of spans, got {describe_value(value)}")
        if not value:
            return []  # "nothing to mark" is an answer
        text = _task_text(payload, field)
        spans: list[tuple[int, int, str, int, str | None]] = []
        for index, item in enumerate(value):
            where = f"span {index}"
            if not isinstance(item, dict):
                raise _Fail(
                    f"{where} must be a mapping with start, end and label, got {describe_value(item)}"
                )
            unknown = item.keys() - _SPAN_KEYS
            if unknown:
                raise _Fail(
                    f"{where} has unknown key {quote(str(min(unknown, key=str)))} "
                    "(allowed: start, end, label, text)"
                )
            for key in ("start", "end"):
                if item.get(key) is None:
                    raise _Fail(f"{where} is missing {quote(key)}")
                if not _is_int(item[key]):
                    raise _Fail(f"{where} {key} must be a whole number, got {describe_value(item[key])}")
            start, end = item["start"], item["end"]
            if start < 0:
                raise _Fail(f"{where} [{start}, {end}) starts before the text (start must be at least 0)")
            if start >= end:
                raise _Fail(f"{where} [{start}, {end}) is empty or reversed (start must be less than end)")
            if text is not None and end > len(text):
                raise _Fail(f"{where} [{start}, {end}) is outside the text of {len(text)} characters")
            label = item.get("label")
            if label is None:
                raise _Fail(f'{where} is missing "label"')
            if not isinstance(label, str) or label not in labels:
                raise _Fail(f"{where} has unknown label {describe_value(label)}; expected one of {expected}")
            given = item.get("text")
            if given is not None:
                if not isinstance(given, str):
                    raise _Fail(f"{where} text must be text, got {json_type(given)}")
                if text is not None and text[start:end] != given:
                    raise _Fail(
                        f"{where} text {quote(given)} does not match the task text at "
                        f"[{start}, {end}): {quote(text[start:end])}"
                    )
            spans.append((start, end, label, index, given))
        spans.sort()
        _check_span_layout(spans, allow_overlap)
        return [
            {"start": start, "end": end, "label": label}
            if given is None
            else {"start": start, "end": end, "label": label, "text": given}
            for start, end, label, _, given in spans
        ]

    return check


def _check_span_layout(spans: list[tuple[int, int, str, int, str | None]], allow_overlap: bool) -> None:
    """Spans are sorted by (start, end, label); refuse overlaps (unless allowed) and duplicates."""
    for previous, current in pairwise(spans):
        p_start, p_end, p_label, p_index, _ = previous
        c_start, c_end, c_label, c_index, _ = current
        first, second = sorted((p_index, c_index))
        if (p_start, p_end, p_label) == (c_start, c_end, c_label):
            raise _Fail(f"span {second} duplicates span {first}")
        if not allow_overlap and c_start < p_end:
            raise _Fail(
                f"span {c_index} [{c_start}, {c_end}) overlaps span {p_index} [{p_start}, {p_end}) "
                "(this question does not allow overlapping spans)"
            )


def _bbox_checker(question: BboxQuestion) -> Checker:
    labels = frozenset(question.labels)
    expected = _choices(question.labels)
    low, high = -BOX_TOLERANCE, 1 + BOX_TOLERANCE

    def check(value: Any, payload: Payload) -> list[dict[str, Any]]:
        if not isinstance(value, list | tuple):
            raise _Fail(f"expected a list of boxes, got {describe_value(value)}")
        boxes: list[dict[str, Any]] = []
        for index, item in enumerate(value):
            where = f"box {index}"
            if not isinstance(item, dict):
                raise _Fail(
                    f"{where} must be a mapping with x, y, w, h and label, got {describe_value(item)}"
                )
            unknown = item.keys() - _BOX_KEYS
            if unknown:
                raise _Fail(
                    f"{where} has unknown key {quote(str(min(unknown, key=str)))} "
                    "(allowed: x, y, w, h, label)"
                )
            for key in ("x", "y", "w", "h"):
                if item.get(key) is None:
                    raise _Fail(f"{where} is missing {quote(key)}")
                if not _is_number(item[key]):
                    raise _Fail(
                        f"{where} {key} must be a number from 0 to 1, got {describe_value(item[key])}"
                    )
            x, y, w, h = (float(item[key]) for key in ("x", "y", "w", "h"))
            for key, number in (("x", x), ("y", y)):
                if not low <= number <= high:
                    sign = "<" if number < 0 else ">"
                    raise _Fail(
                        f"{where} is outside the image: {key} = {format_number(number)} "
                        f"{sign} {0 if number < 0 else 1}"
                    )
            for key, number in (("w", w), ("h", h)):
                if number <= 0:
                    raise _Fail(
                        f"{where} has no area: {key} = {format_number(number)} (must be greater than 0)"
                    )
            if x + w > high:
                raise _Fail(f"{where} is outside the image: x + w = {format_number(x + w)} > 1")
            if y + h > high:
                raise _Fail(f"{where} is outside the image: y + h = {format_number(y + h)} > 1")
            label = item.get("label")
            if label is None:
                raise _Fail(f'{where} is missing "label"')
            if not isinstance(label, str) or label not in labels:
                raise _Fail(f"{where} has unknown label {describe_value(label)}; expected one of {expected}")
            # Clamp the tolerated rounding noise so exports never see -1e-12 or 1.0000000001.
            x, y = min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)
            boxes.append({"x": x, "y": y, "w": min(w, 1.0 - x), "h": min(h, 1.0 - y), "label": label})
        return boxes

    return check


_LEAF_CHECKERS: dict[str, Callable[[Any], Checker]] = {
    "label": _label_checker,
    "multi_label": _multi_label_checker,
    "rating": _rating_checker,
    "ranking": _ranking_checker,
    "preference": _preference_checker,
    "text": _text_checker,
    "span": _span_checker,
    "bbox": _bbox_checker,
}


# --------------------------------------------------------------------------- groups: answers and rubrics


@dataclass(frozen=True, slots=True)
class _Group:
    """Names to values: the answer document itself, or a rubric's criteria."""

    checks: dict[str, Checker | _Group]
    required: tuple[str, ...]
    unknown: Callable[[str], str]  # message for a name the group does not know


def _compile_group(questions: Iterable[Any], unknown: Callable[[str], str]) -> _Group:
    checks: dict[str, Checker | _Group] = {}
    required: list[str] = []
    for question in questions:
        if isinstance(question, RubricQuestion):
            names = _choices(c.name for c in question.criteria)
            rubric = question.name

            def unknown_criterion(name: str, rubric: str = rubric, names: str = names) -> str:
                return f"unknown criterion {quote(name)} in rubric {quote(rubric)}; expected one of {names}"

            checks[question.name] = _compile_group(question.criteria, unknown_criterion)
        else:
            checks[question.name] = _LEAF_CHECKERS[question.type](question)
        if question.required:
            required.append(question.name)
    return _Group(checks=checks, required=tuple(required), unknown=unknown)


def _validate_group(
    group: _Group,
    value: dict[str, Any],
    payload: Payload,
    partial: bool,
    prefix: str,
    problems: list[dict[str, Any]],
) -> dict[str, Any]:
    normalized: dict[str, Any] = {}
    for key, item in value.items():
        path = f"{prefix}{key}"
        check = group.checks.get(key) if isinstance(key, str) else None
        if check is None:
            problems.append({"question": path, "message": group.unknown(str(key))})
            continue
        if item is None:
            continue  # None means "not answered": required questions are caught below
        if isinstance(check, _Group):
            if not isinstance(item, dict):
                got = describe_value(item)
                message = f"expected a mapping of criterion names to values, got {got}"
                problems.append({"question": path, "message": message})
                continue
            normalized[key] = _validate_group(check, item, payload, partial, f"{path}.", problems)
            continue
        try:
            normalized[key] = check(item, payload)
        except _Fail as failure:
            problems.append({"question": path, "message": failure.reason})
    if not partial:
        for name in group.required:
            if value.get(name) is None:
                problems.append({"question": f"{prefix}{name}", "message": "an answer is required"})
    return normalized


# The question types whose checks read the task's data (candidates to rank, text under spans).
PAYLOAD_READING_TYPES = frozenset({"ranking", "preference", "span"})


def _reads_payload(questions: Iterable[Any]) -> bool:
    return any(
        _reads_payload(question.criteria) if isinstance(question, RubricQuestion)
        else question.type in PAYLOAD_READING_TYPES
        for question in questions
    )


class AnswerValidator:
    """A schema's answer checks, compiled once; call it with a task payload and an answer.
    ``reads_payload``: whether any check reads the payload (else the caller may pass None and
    spare itself opening the task)."""

    __slots__ = ("_root", "reads_payload", "schema")

    def __init__(self, schema: ProjectSchema) -> None:
        self.schema = schema
        self.reads_payload = _reads_payload(schema.questions)
        names = _choices(schema.question_names)
        self._root = _compile_group(
            schema.questions, lambda name: f"unknown question {quote(name)}; expected one of {names}"
        )

    def __call__(self, payload: Payload, answer: Any, *, partial: bool = False) -> dict[str, Any]:
        """The normalized answer, or :class:`AnswerInvalid` listing every problem.

        ``payload`` may be None only for suggestions: the checks that need the task's data
        (candidate count, span bounds and text) are then skipped.
        """
        if not isinstance(answer, dict):
            message = f"an answer must be a mapping of question names to values, got {json_type(answer)}"
            raise AnswerInvalid(message, details=[{"question": None, "message": message}])
        problems: list[dict[str, Any]] = []
        normalized = _validate_group(self._root, answer, payload, partial, "", problems)
        if problems:
            raise AnswerInvalid(_summary(problems), details=problems)
        return normalized


def _summary(problems: list[dict[str, Any]], shown: int = 3) -> str:
    head = "; ".join(f"question {quote(p['question'])}: {p['message']}" for p in problems[:shown])
    rest = len(problems) - shown
    return f"{head}; and {rest} more" if rest > 0 else head


def answer_validator(schema: ProjectSchema) -> AnswerValidator:
    """The (cached) compiled answer validator of ``schema``."""
    return schema.memo("answer_validator", AnswerValidator)


def validate_answer(
    schema: ProjectSchema, payload: dict[str, Any], answer: dict[str, Any], *, partial: bool = False
) -> dict[str, Any]:
    """Validate a labeler's answer to one task; returns the normalized answer.

    ``partial=True`` allows leaving required questions out (drafts, suggestions).
    Raises :class:`AnswerInvalid` naming each question and reason.
    """
    return answer_validator(schema)(payload, answer, partial=partial)


def validate_suggestion(
    schema: ProjectSchema, payload: dict[str, Any] | None, suggestion: dict[str, Any]
) -> dict[str, Any]:
    """Validate a model suggestion (pre-annotation): an answer in which nothing is required."""
    return answer_validator(schema)(payload, suggestion, partial=True)
