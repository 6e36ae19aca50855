"""The events a project's webhooks can send (what each carries: ``workflow.webhooks``)."""

from __future__ import annotations

TASK_COMPLETED = "task.completed"
PROJECT_COMPLETED = "project.completed"
ANSWER_REJECTED = "answer.rejected"
BUDGET_REACHED = "budget.reached"
EVENT_TYPES = (TASK_COMPLETED, PROJECT_COMPLETED, ANSWER_REJECTED, BUDGET_REACHED)
