"""The consensus of one task's answers to one question, with a confidence in [0, 1].

Pure functions on normalized answer values (``domain/answers.py``), one task at a time: adaptive
overlap asks them when a task completes, and the project-wide aggregation (``quality/compute.py``)
uses them for the question types it does not vectorise. Confidence means, per type:

===============  ==========================================================================
``label``        the winning label's share of the votes
``multi_label``  the least certain label's agreement, ``min_l max(share_l, 1 - share_l)``
``rating``       ``1 - mean |rating - median| / (max - min)``; the value is the median
``ranking``      mean over candidate pairs of the majority order's share
``preference``   the winning side's share of the votes, a tie counting half to each side
``span``         mean vote share of the merged spans (no span: share of empty answers)
``bbox``         mean of (share of raters drawing the box x share agreeing on its label)
``text``         none: free text is taken from the review or the first accepted answer
===============  ==========================================================================
"""

from __future__ import annotations

from collections import Counter
from itertools import combinations
from statistics import median
from typing import Any

import numpy as np

from labelvault.quality.aggregation import consolidate_boxes, consolidate_spans
from labelvault.quality.scoring import value_at

Consensus = dict[str, Any]


def _label(question: Any, values: list[Any], payload: dict[str, Any] | None) -> Consensus:
    counts = Counter(values)
    order = {label: i for i, label in enumerate(question.labels)}
    best = min(counts, key=lambda label: (-counts[label], order.get(label, len(order))))
    return {"value": best, "confidence": counts[best] / len(values), "votes": dict(counts)}


def _multi_label(question: Any, values: list[Any], payload: dict[str, Any] | None) -> Consensus:
    n = len(values)
    share = {label: sum(label in v for v in values) / n for label in question.labels}
    chosen = [label for label in question.labels if share[label] > 0.5]
    confidence = min(max(s, 1.0 - s) for s in share.values()) if share else 1.0
    return {"value": chosen, "confidence": confidence, "share": share}


def _rating(question: Any, values: list[Any], payload: dict[str, Any] | None) -> Consensus:
    ratings = [float(v) for v in values]
    mid = median(ratings)
    span = question.max - question.min
    spread = sum(abs(r - mid) for r in ratings) / len(ratings)
    return {
        "value": mid,
        "confidence": 1.0 - spread / span if span else 1.0,
        "mean": sum(ratings) / len(ratings),
        "std": float(np.std(ratings, ddof=1)) if len(ratings) > 1 else None,
    }


def _ranking(question: Any, values: list[Any], payload: dict[str, Any] | None) -> Consensus:
    candidates = sorted({c for ranking in values for c in ranking})
    positions = [{c: i for i, c in enumerate(ranking)} for ranking in values]
    wins = Counter({c: 0 for c in candidates})  # pairwise wins give the order (Copeland/Borda)
    shares = []
    for a, b in combinations(candidates, 2):
        both = [p for p in positions if a in p and b in p]
        if not both:
            continue
        a_first = sum(p[a] < p[b] for p in both) / len(both)
        shares.append(max(a_first, 1.0 - a_first))
        wins[a] += a_first
        wins[b] += 1.0 - a_first
    order = sorted(candidates, key=lambda c: (-wins[c], c))
    return {"value": order, "confidence": float(np.mean(shares)) if shares else 1.0}


def _preference(question: Any, values: list[Any], payload: dict[str, Any] | None) -> Consensus:
    choices = [v.get("choice") for v in values]
    a_share = (choices.count("a") + 0.5 * choices.count("tie")) / len(choices)
    choice = "a" if a_share > 0.5 else "b" if a_share < 0.5 else "tie"
    return {"value": {"choice": choice}, "confidence": max(a_share, 1.0 - a_share), "a_share": a_share}


def _span(question: Any, values: list[Any], payload: dict[str, Any] | None) -> Consensus:
    text = (payload or {}).get(question.field)
    length = len(text) if isinstance(text, str) else max((s["end"] for v in values for s in v), default=0)
    answers = [[(s["start"], s["end"], s["label"]) for s in v] for v in values]
    spans = consolidate_spans(length, answers)
    merged = [{"start": s.start, "end": s.end, "label": s.label, "confidence": s.confidence} for s in spans]
    empty_share = sum(not v for v in values) / len(values)
    confidence = float(np.mean([s.confidence for s in spans])) if merged else empty_share
    return {"value": merged, "confidence": confidence}


def _bbox(question: Any, values: list[Any], payload: dict[str, Any] | None) -> Consensus:
    answers = [[(b["x"], b["y"], b["x"] + b["w"], b["y"] + b["h"], b["label"]) for b in v] for v in values]
    boxes = consolidate_boxes(answers, min_share=0.5)
    merged = [
        {"x": b.x_min, "y": b.y_min, "w": b.x_max - b.x_min, "h": b.y_max - b.y_min, "label": b.label,
         "confidence": b.confidence, "label_confidence": b.label_confidence, "n": b.n_raters}
        for b in boxes
    ]
    empty_share = sum(not v for v in values) / len(values)
    confidence = float(np.mean([b.confidence * b.label_confidence for b in boxes])) if merged else empty_share
    return {"value": merged, "confidence": confidence}


_CONSENSUS = {
    "label": _label,
    "multi_label": _multi_label,
    "rating": _rating,
    "ranking": _ranking,
    "preference": _preference,
    "span": _span,
    "bbox": _bbox,
}


def consensus(question: Any, values: list[Any], payload: dict[str, Any] | None = None) -> Consensus | None:
    """The consensus of the given answers (None values dropped) to one leaf question, with its
    ``confidence`` and ``n``; None when nobody answered it or the type has no vote (text)."""
    given = [v for v in values if v is not None]
    build = _CONSENSUS.get(question.type)
    if not given or build is None:
        return None
    result = build(question, given, payload)
    result["n"] = len(given)
    result["method"] = "vote"
    return result


def task_confidence(questions: list[tuple[str, Any]], answers: list[dict[str, Any]],
                    payload: dict[str, Any] | None = None) -> float | None:
    """The least confident question's confidence over a task's answers (None: nothing to judge)."""
    confidences = []
    for path, question in questions:
        result = consensus(question, [value_at(a, path) for a in answers], payload)
        if result is not None:
            confidences.append(float(result["confidence"]))
    return min(confidences) if confidences else None


__all__ = ["Consensus", "consensus", "task_confidence"]
