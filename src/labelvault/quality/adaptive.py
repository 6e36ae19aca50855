"""Adaptive overlap: more answers only where the answers so far do not agree.

A project with ``max_overlap`` set starts each task at its ``overlap`` (the minimum k). When a task
has all its answers, the queue's ``on_complete`` hook (:func:`extend_overlap_when_unsure`) computes
the task's confidence (the least confident question's, ``quality/consensus.py``); below the
project's ``confidence_threshold`` the task wants one more answer, up to ``max_overlap``. Each extra
answer completes the task again and asks again. Gold tasks are never extended.

:func:`overlap_savings` reports what this saved against asking every task for ``max_overlap``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from labelvault.domain.schema import ProjectSchema
from labelvault.quality.consensus import task_confidence
from labelvault.quality.scoring import question_paths
from labelvault.storage.models import Project
from labelvault.storage.unit_of_work import UnitOfWork
from labelvault.workflow.completion import CompletedTask
from labelvault.workflow.content import open_answer_values, open_task_content
from labelvault.workflow.projects import schema_of

_NEEDS_PAYLOAD = frozenset({"span"})


def _needs_payload(schema: ProjectSchema) -> bool:
    return any(question.type in _NEEDS_PAYLOAD for _, question in question_paths(schema))


def extend_overlap_when_unsure(uow: UnitOfWork, project: Project, task: CompletedTask) -> None:
    """``on_complete`` hook: one more answer for a task whose confidence is below the threshold."""
    if project.max_overlap is None or task.is_gold or task.required_answers >= project.max_overlap:
        return
    schema = schema_of(project)
    values = open_answer_values(uow, list(uow.answers.counted_for_task(task.id)))
    payload = open_task_content(uow, task)[0] if _needs_payload(schema) else None
    confidence = task_confidence(list(question_paths(schema)), values, payload)
    if confidence is None or confidence >= project.confidence_threshold:
        return
    # The submit transaction holds the task's row (it just counted the answer).
    counts = uow.tasks.adjust_slots(task.id, open_slots=+1, required=+1)
    task.open_slots, task.required_answers = counts.open_slots, counts.required_answers


@dataclass(frozen=True, slots=True)
class OverlapSavings:
    """Answers used by adaptive overlap against a fixed ``max_overlap`` on the completed tasks."""

    min_overlap: int
    max_overlap: int | None
    confidence_threshold: float
    tasks: int
    completed_tasks: int
    extended_tasks: int
    answers_used: int
    answers_at_max: int | None
    answers_saved: int | None
    saved_share: float | None
    tasks_by_k: dict[int, int]


def overlap_savings(project: Project, tasks: Sequence[tuple[int, int]]) -> OverlapSavings:
    """``tasks`` are (required answers, answers counted) of the project's regular tasks."""
    completed = [(k, n) for k, n in tasks if n >= k > 0]
    used = sum(n for _, n in completed)
    at_max = len(completed) * project.max_overlap if project.max_overlap is not None else None
    by_k: dict[int, int] = {}
    for k, _ in completed:
        by_k[k] = by_k.get(k, 0) + 1
    saved = at_max - used if at_max is not None else None
    return OverlapSavings(
        min_overlap=project.overlap,
        max_overlap=project.max_overlap,
        confidence_threshold=project.confidence_threshold,
        tasks=len(tasks),
        completed_tasks=len(completed),
        extended_tasks=sum(1 for k, _ in tasks if k > project.overlap),
        answers_used=used,
        answers_at_max=at_max,
        answers_saved=saved,
        saved_share=(saved / at_max) if saved is not None and at_max else None,
        tasks_by_k=dict(sorted(by_k.items())),
    )


__all__ = ["OverlapSavings", "extend_overlap_when_unsure", "overlap_savings"]
