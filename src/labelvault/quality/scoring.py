"""Scoring one answer against a gold answer, question by question: a credit in [0, 1] each.

Pure functions on normalized answer documents (see ``domain/answers.py``); no database. Rubric
criteria are questions of their own, named by their path (``"quality.clarity"``).

===============  ==========================================================================
question type    credit of the labeler's value against the gold value
===============  ==========================================================================
``label``        1 if equal, else 0
``multi_label``  Jaccard index of the two sets (both empty: 1)
``rating``       ``1 - |value - gold| / (max - min)``: near misses earn part of the credit
``ranking``      share of candidate pairs put in the same order (Kendall's concordance)
``preference``   1 if the same choice (``a``, ``b`` or ``tie``), else 0; strength is ignored
``span``         F1 of labelled characters (both empty: 1)
``bbox``         F1 of boxes matched one-to-one with the same label at IoU >= 0.5 (both empty: 1)
``text``         not scored: free text has no single right answer
===============  ==========================================================================

A question the gold answer leaves out is not scored; one the labeler leaves out scores 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import combinations
from typing import Any, Final

import numpy as np

from labelvault.domain.schema import ProjectSchema
from labelvault.quality.aggregation import box_iou

BOX_IOU: Final = 0.5
UNSCORED_TYPES: Final = frozenset({"text"})


def question_paths(schema: ProjectSchema) -> Iterator[tuple[str, Any]]:
    """Every answerable leaf question with its path (rubric criteria as ``rubric.criterion``)."""
    yield from schema.iter_questions()


def value_at(answer: dict[str, Any] | None, path: str) -> Any:
    """The value of ``path`` in an answer document, or None when it was not answered."""
    if answer is None:
        return None
    head, _, rest = path.partition(".")
    value = answer.get(head)
    if rest:
        return value.get(rest) if isinstance(value, dict) else None
    return value


def _label(question: Any, gold: Any, value: Any) -> float:
    return float(value == gold)


def _multi_label(question: Any, gold: Any, value: Any) -> float:
    g, v = set(gold), set(value)
    union = g | v
    return 1.0 if not union else len(g & v) / len(union)


def _rating(question: Any, gold: Any, value: Any) -> float:
    span = question.max - question.min
    return 1.0 - abs(float(value) - float(gold)) / span if span else float(value == gold)


def _ranking(question: Any, gold: Any, value: Any) -> float:
    if list(gold) == list(value):
        return 1.0
    if sorted(gold) != sorted(value):
        return 0.0
    position = {candidate: rank for rank, candidate in enumerate(value)}
    pairs = list(combinations(gold, 2))  # gold order: the first of each pair is the better one
    if not pairs:
        return 1.0
    return sum(position[a] < position[b] for a, b in pairs) / len(pairs)


def _preference(question: Any, gold: Any, value: Any) -> float:
    return float(isinstance(value, dict) and isinstance(gold, dict) and value.get("choice") == gold.get("choice"))


def _labelled_chars(spans: list[dict[str, Any]]) -> set[tuple[int, str]]:
    return {(i, span["label"]) for span in spans for i in range(span["start"], span["end"])}


def _span(question: Any, gold: Any, value: Any) -> float:
    g, v = _labelled_chars(gold), _labelled_chars(value)
    if not g and not v:
        return 1.0
    return 2.0 * len(g & v) / (len(g) + len(v))


def _corners(boxes: list[dict[str, Any]]) -> np.ndarray:
    return np.array([[b["x"], b["y"], b["x"] + b["w"], b["y"] + b["h"]] for b in boxes], dtype=np.float64)


def box_f1(gold: list[dict[str, Any]], value: list[dict[str, Any]]) -> float:
    """F1 of boxes matched one-to-one with the same label at IoU >= 0.5 (both empty: 1)."""
    if not gold and not value:
        return 1.0
    if not gold or not value:
        return 0.0
    iou = box_iou(_corners(gold), _corners(value))
    same = np.array([[g["label"] == v["label"] for v in value] for g in gold])
    score = np.where(same & (iou >= BOX_IOU), iou, 0.0)
    from scipy.optimize import linear_sum_assignment  # imported here: SciPy is a fifth of every CLI command's start-up

    rows, cols = linear_sum_assignment(score, maximize=True)
    matches = int((score[rows, cols] > 0).sum())
    return 2.0 * matches / (len(gold) + len(value))


def _bbox(question: Any, gold: Any, value: Any) -> float:
    return box_f1(gold, value)


_CREDIT = {
    "label": _label,
    "multi_label": _multi_label,
    "rating": _rating,
    "ranking": _ranking,
    "preference": _preference,
    "span": _span,
    "bbox": _bbox,
}


def credit(question: Any, gold: Any, value: Any) -> float | None:
    """Credit of ``value`` against ``gold`` for one (leaf) question; None when it is not scored."""
    if gold is None or question.type in UNSCORED_TYPES:
        return None
    if value is None:
        return 0.0
    return float(min(1.0, max(0.0, _CREDIT[question.type](question, gold, value))))


def score_answer(schema: ProjectSchema, gold: dict[str, Any], answer: dict[str, Any]) -> dict[str, float]:
    """Credit per scored question path of one answer against the gold answer."""
    scores: dict[str, float] = {}
    for path, question in question_paths(schema):
        result = credit(question, value_at(gold, path), value_at(answer, path))
        if result is not None:
            scores[path] = result
    return scores


__all__ = ["BOX_IOU", "UNSCORED_TYPES", "box_f1", "credit", "question_paths", "score_answer", "value_at"]
