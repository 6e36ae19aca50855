"""What the queue's completion hooks see of a task that has just got all its answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class CompletedTask:
    """A task that has just got all its answers, as the ``on_complete`` hooks see it: its row as this
    submit read it, with its counters as they are after the submit. A hook that asks for more
    answers moves the counters in the database (``uow.tasks.adjust_slots``) and here. (Not the ORM
    object: loading it cost more than the rest of a submit.)"""

    row: Any
    open_slots: int
    answer_count: int
    required_answers: int

    @property
    def id(self) -> int:
        return int(self.row.id)

    def __getattr__(self, name: str) -> Any:  # the row's other columns (is_gold, payload, data_key_id, ...)
        return getattr(self.row, name)
