"""Opening sealed client content of a task inside a client's unit of work."""

from __future__ import annotations

from typing import Any

import orjson

from labelvault.storage.models import Answer, Task
from labelvault.storage.unit_of_work import UnitOfWork


def open_task_content(uow: UnitOfWork, task: Task) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    cipher = uow.cipher(task.data_key_id)
    payload = orjson.loads(cipher.open("task.payload", task.id, task.payload))
    suggestions = orjson.loads(cipher.open("task.suggestions", task.id, task.suggestions)) if task.suggestions else []
    return payload, suggestions


def open_answer_values(uow: UnitOfWork, answers: list[Answer]) -> list[dict[str, Any]]:
    return [orjson.loads(uow.cipher(a.data_key_id).open("answer.value", a.id, a.value)) for a in answers]
