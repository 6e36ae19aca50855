"""Predictors that the tests name as ``module:function`` (the runner imports this module by name).

Each task's text says how sure the model is: "sure 0.95" -> {"answer": "positive", "score": 0.95}.
"""

from __future__ import annotations

from typing import Any

CALLS: list[list[int]] = []  # task ids of each call, for the tests to inspect


def score_of(text: str) -> float:
    return float(text.rsplit(" ", 1)[-1])


def confident(tasks: list[dict[str, Any]], schema: dict[str, Any], *, question: str,
              options: dict[str, Any]) -> list[Any]:
    CALLS.append([task["id"] for task in tasks])
    label = options.get("label", "positive")
    return [{"answer": label, "score": score_of(task["data"]["text"])} for task in tasks]


def broken_on_second_batch(tasks: list[dict[str, Any]], schema: dict[str, Any], *, question: str,
                           options: dict[str, Any]) -> list[Any]:
    """Fine for the first call; then answers a label the question does not have."""
    CALLS.append([task["id"] for task in tasks])
    label = "positive" if len(CALLS) == 1 else "maybe"
    return [{"answer": label, "score": score_of(task["data"]["text"])} for task in tasks]


def raises(tasks: list[dict[str, Any]], schema: dict[str, Any], *, question: str, options: dict[str, Any]) -> list[Any]:
    CALLS.append([task["id"] for task in tasks])
    raise RuntimeError("model weights not found")
