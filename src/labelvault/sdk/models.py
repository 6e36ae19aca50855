"""Typed values the SDK returns: frozen dataclasses read from the API's JSON."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Self


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class _FromApi:
    """``from_api`` keeps the keys the dataclass names and ignores the rest (newer servers add fields)."""

    _times: tuple[str, ...] = ()

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Self:
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        values = {key: value for key, value in data.items() if key in names}
        for name in cls._times:
            if name in values:
                values[name] = _time(values[name])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Me(_FromApi):
    id: int
    username: str
    is_operator: bool


@dataclass(frozen=True, slots=True)
class ClientInfo(_FromApi):
    id: int
    slug: str
    name: str
    currency: str
    status: str
    created_at: datetime | None = None

    _times = ("created_at",)


@dataclass(frozen=True, slots=True)
class ImportReport(_FromApi):
    """What an import did, summed over its batches. ``rows_read`` = created + already_present + invalid."""

    format: str = "jsonl"
    rows_read: int = 0
    created: int = 0
    already_present: int = 0
    invalid: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    errors_omitted: int = 0
    batches: int = 0

    def plus(self, other: ImportReport, *, offset: int = 0) -> ImportReport:
        """This report followed by another batch's; that batch's row numbers are shifted by ``offset``."""
        shifted = [renumber(e, offset) for e in other.errors]
        return ImportReport(
            format=other.format, rows_read=self.rows_read + other.rows_read, created=self.created + other.created,
            already_present=self.already_present + other.already_present, invalid=self.invalid + other.invalid,
            errors=self.errors + shifted, errors_omitted=self.errors_omitted + other.errors_omitted,
            batches=self.batches + 1,
        )


@dataclass(frozen=True, slots=True)
class SuggestionsReport(_FromApi):
    tasks: int = 0
    suggestions: int = 0


@dataclass(frozen=True, slots=True)
class Answer(_FromApi):
    """One labeler's answer to one task."""

    id: int
    task_id: int
    external_id: str | None
    labeler_id: int
    labeler: str
    value: dict[str, Any]
    status: str
    started_at: datetime | None
    submitted_at: datetime | None
    time_spent_ms: int
    reviewed_at: datetime | None = None

    _times = ("started_at", "submitted_at", "reviewed_at")


@dataclass(frozen=True, slots=True)
class LeasedTask(_FromApi):
    """A task leased to the caller: its data, the models' suggestions and the lease's times."""

    task_id: int
    project_id: int
    data: dict[str, Any]
    suggestions: list[dict[str, Any]]
    lease_started_at: datetime | None
    lease_expires_at: datetime | None

    _times = ("lease_started_at", "lease_expires_at")


@dataclass(frozen=True, slots=True)
class AnswerReceipt(_FromApi):
    """The server's receipt for a submitted answer (``created`` False: the same submit again)."""

    answer_id: int
    task_id: int
    created: bool
    submitted_at: datetime | None
    time_spent_ms: int

    _times = ("submitted_at",)


@dataclass(frozen=True, slots=True)
class SubmittedAndNext:
    """What ``Project.submit_and_next`` got back: the receipt for the answer (stored either way),
    and the caller's next task, or, instead, the error ``next_task()`` would have raised
    (``QueueRefusedError`` with ``reason == "no_tasks"`` when the queue has nothing left)."""

    receipt: AnswerReceipt
    next_task: LeasedTask | None
    next_error: Exception | None


@dataclass(frozen=True, slots=True)
class LabelingReport:
    """What ``Project.label`` did: answers submitted, tasks skipped, and why it stopped
    (``no_tasks``: the queue has nothing left for this labeler; ``limit``: as many as asked)."""

    answered: int
    skipped: int
    stopped: str


@dataclass(frozen=True, slots=True)
class LedgerEntry(_FromApi):
    """A money event of a project: ``amount`` in minor units (cents), negative for a reversal;
    ``note`` is a manager's words on a bonus."""

    id: int
    kind: str
    amount: int
    currency: str
    user_id: int
    username: str
    answer_id: int | None
    review_id: int | None
    task_id: int | None
    note: str
    created_at: datetime | None

    _times = ("created_at",)


@dataclass(frozen=True, slots=True)
class MyLedgerEntry(_FromApi):
    """One of the caller's own money events: ``amount`` in minor units (cents), negative for a
    reversal; ``note`` is the manager's words on a bonus, ``reason`` the reviewer's on a reversal."""

    id: int
    project_id: int
    project: str
    kind: str
    amount: int
    currency: str
    answer_id: int | None
    review_id: int | None
    task_id: int | None
    note: str
    reason: str
    created_at: datetime | None

    _times = ("created_at",)


@dataclass(frozen=True, slots=True)
class Skip(_FromApi):
    """A labeler passed on a task, and said why (``reason`` may be empty)."""

    id: int
    task_id: int
    external_id: str | None
    labeler_id: int
    labeler: str
    reason: str
    skipped_at: datetime | None

    _times = ("skipped_at",)


@dataclass(frozen=True, slots=True)
class TaskSummary(_FromApi):
    """A task's ids and counters, no content. ``state``: open (wants answers), in_review, complete
    or gold (None from older servers, which did not say)."""

    id: int
    external_id: str | None
    priority: int
    required_answers: int
    answer_count: int
    created_at: datetime | None = None
    state: str | None = None

    _times = ("created_at",)


@dataclass(frozen=True, slots=True)
class TaskAnswer(_FromApi):
    """An answer as ``Project.task`` shows it (rejected ones too, with the reviewer's note)."""

    id: int
    labeler_id: int
    labeler: str
    status: str
    value: dict[str, Any]
    started_at: datetime | None
    submitted_at: datetime | None
    time_spent_ms: int
    reviewed_at: datetime | None = None
    review_note: str | None = None

    _times = ("started_at", "submitted_at", "reviewed_at")


@dataclass(frozen=True, slots=True)
class TaskSkip(_FromApi):
    labeler_id: int
    labeler: str
    reason: str
    skipped_at: datetime | None

    _times = ("skipped_at",)


@dataclass(frozen=True, slots=True)
class TaskLease(_FromApi):
    """Someone holds the task: to label it (``purpose`` "label") or to review it ("review")."""

    holder_id: int
    holder: str
    purpose: str
    started_at: datetime | None
    expires_at: datetime | None

    _times = ("started_at", "expires_at")


@dataclass(frozen=True, slots=True)
class TaskReview(_FromApi):
    id: int
    reviewer_id: int
    reviewer: str
    decision: str
    reason: str | None
    corrected_value: dict[str, Any] | None
    decided_at: datetime | None

    _times = ("decided_at",)


@dataclass(frozen=True, slots=True)
class TaskDetail(_FromApi):
    """One task with its content and everything that happened to it (``Project.task``)."""

    id: int
    project_id: int
    external_id: str | None
    state: str
    priority: int
    uncertainty: float
    required_answers: int
    answer_count: int
    open_slots: int
    is_gold: bool
    created_at: datetime | None
    payload: dict[str, Any]
    metadata: dict[str, Any] | None
    suggestions: list[dict[str, Any]]
    gold_answer: dict[str, Any] | None
    answers: list[TaskAnswer]
    skips: list[TaskSkip]
    leases: list[TaskLease]
    reviews: list[TaskReview]

    _times = ("created_at",)
    _nested = {"answers": TaskAnswer, "skips": TaskSkip, "leases": TaskLease, "reviews": TaskReview}

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> TaskDetail:
        nested = {name: [kind.from_api(item) for item in data.get(name, [])] for name, kind in cls._nested.items()}
        return super(TaskDetail, cls).from_api({**data, **nested})


@dataclass(frozen=True, slots=True)
class Progress(_FromApi):
    tasks: int
    answers_needed: int
    answers_given: int

    @property
    def done(self) -> float:
        """Share of the answers needed that were given (1.0 for an empty project)."""
        return self.answers_given / self.answers_needed if self.answers_needed else 1.0


def renumber(error: Mapping[str, Any], offset: int) -> dict[str, Any]:
    """An import error of one batch, as ``row`` n of everything sent (a batch travels as JSONL, whose
    errors name the ``line``; the caller gave rows)."""
    unit = "line" if "line" in error else "row" if "row" in error else None
    if unit is None:
        return dict(error)
    number = int(error[unit])
    message = str(error.get("message", ""))
    prefix = f"{unit} {number}:"
    if message.startswith(prefix):
        message = f"row {number + offset}:{message[len(prefix):]}"
    fixed = {key: value for key, value in error.items() if key != unit}
    return {"row": number + offset, **fixed, "message": message}
