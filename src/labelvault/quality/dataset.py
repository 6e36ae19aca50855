"""A project's answers, opened in the client's unit of work, as input for the statistics.

Everything the quality computations need is read here, in one read transaction, in batches by id:
tasks (gold or not, with gold answers and, where a question needs them, payloads), the answers that
count (rejected answers do not), reviewers' corrections, honeypot gold scores, and per labeler their
name, working time and earnings. The result is plain Python and NumPy: the computation that follows
(``quality/compute.py``) runs after the transaction has ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import func, select

from labelvault.domain.schema import ProjectSchema
from labelvault.quality.scoring import question_paths
from labelvault.storage.models import Answer, LedgerEntry, Project, Review, Task, User
from labelvault.storage.unit_of_work import UnitOfWork
from labelvault.workflow.ledger import currency_of
from labelvault.workflow.projects import schema_of

BATCH = 5000
_PAYLOAD_TYPES = frozenset({"span"})


@dataclass
class Dataset:
    """Items are the project's tasks in id order; raters are the labelers who answered, in id order."""

    schema: ProjectSchema
    task_ids: list[int] = field(default_factory=list)
    external_ids: list[str | None] = field(default_factory=list)
    is_gold: list[bool] = field(default_factory=list)
    required: list[int] = field(default_factory=list)
    counted: list[int] = field(default_factory=list)
    gold: dict[int, dict[str, Any]] = field(default_factory=dict)  # item -> gold answer
    payloads: dict[int, dict[str, Any]] = field(default_factory=dict)  # item -> payload (span questions)
    corrections: dict[int, dict[str, Any]] = field(default_factory=dict)  # item -> reviewer's answer
    # One entry per counted answer:
    item: list[int] = field(default_factory=list)
    rater: list[int] = field(default_factory=list)
    value: list[dict[str, Any]] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    time_ms: list[int] = field(default_factory=list)
    # Raters:
    user_ids: list[int] = field(default_factory=list)
    usernames: list[str] = field(default_factory=list)
    earned: list[int] = field(default_factory=list)
    currency: str = "USD"
    # Honeypot gold credits: (rater, question path, credit) and per gold answer (rater, mean credit).
    gold_scores: list[tuple[int, str, float]] = field(default_factory=list)
    gold_answers: list[tuple[int, float]] = field(default_factory=list)

    @property
    def n_items(self) -> int:
        return len(self.task_ids)

    @property
    def n_raters(self) -> int:
        return len(self.user_ids)


def load_dataset(uow: UnitOfWork, project: Project) -> Dataset:
    """Read and open everything the quality statistics of ``project`` need (one read transaction)."""
    schema = schema_of(project)
    data = Dataset(schema=schema)
    needs_payload = any(q.type in _PAYLOAD_TYPES for _, q in question_paths(schema))
    session = uow.session
    index: dict[int, int] = {}
    after = 0
    while True:
        columns = [Task.id, Task.external_id, Task.is_gold, Task.required_answers, Task.answer_count,
                   Task.data_key_id, Task.gold_answer]
        if needs_payload:
            columns.append(Task.payload)
        rows = session.execute(
            select(*columns).where(Task.project_id == project.id, Task.id > after).order_by(Task.id).limit(BATCH)
        ).all()
        if not rows:
            break
        for row in rows:
            item = index[row[0]] = len(data.task_ids)
            data.task_ids.append(row[0])
            data.external_ids.append(row[1])
            data.is_gold.append(bool(row[2]))
            data.required.append(int(row[3]))
            data.counted.append(int(row[4]))
            if row[6] is not None:
                data.gold[item] = orjson.loads(uow.cipher(row[5]).open("task.gold", row[0], row[6]))
            if needs_payload:
                data.payloads[item] = orjson.loads(uow.cipher(row[5]).open("task.payload", row[0], row[7]))
        after = rows[-1][0]

    raters: dict[int, int] = {}
    after = 0
    while True:
        rows = session.execute(
            select(Answer.id, Answer.task_id, Answer.user_id, Answer.data_key_id, Answer.value, Answer.status,
                   Answer.time_spent_ms)
            .where(Answer.project_id == project.id, Answer.id > after, Answer.status != "rejected")
            .order_by(Answer.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        for answer_id, task_id, user_id, key_id, sealed, status, spent in rows:
            if task_id not in index:
                continue
            rater = raters.get(user_id)
            if rater is None:
                rater = raters[user_id] = len(raters)
            data.item.append(index[task_id])
            data.rater.append(rater)
            data.value.append(orjson.loads(uow.cipher(key_id).open("answer.value", answer_id, sealed)))
            data.status.append(status)
            data.time_ms.append(int(spent))
        after = rows[-1][0]

    corrections = session.execute(
        select(Review.id, Review.task_id, Review.data_key_id, Review.corrected_value)
        .where(Review.project_id == project.id, Review.decision == "correct")
        .order_by(Review.id)
    ).all()
    for review_id, task_id, key_id, sealed in corrections:
        if sealed is not None and task_id in index:  # a later correction wins
            opened = uow.cipher(key_id).open("review.correction", review_id, sealed)
            data.corrections[index[task_id]] = orjson.loads(opened)

    for user_id, _, credit in uow.gold.answer_credits(project.id, kind="honeypot"):
        if user_id not in raters:
            raters[user_id] = len(raters)
        data.gold_answers.append((raters[user_id], credit))
    for score in uow.gold.scores(project.id, kind="honeypot"):
        data.gold_scores.append((raters[score.user_id], score.question, score.credit))

    data.user_ids = [0] * len(raters)
    for user_id, rater in raters.items():
        data.user_ids[rater] = user_id
    names = dict(session.execute(select(User.id, User.username).where(User.id.in_(data.user_ids))).all())
    data.usernames = [names.get(u, str(u)) for u in data.user_ids]
    earned = dict(session.execute(
        select(LedgerEntry.user_id, func.sum(LedgerEntry.amount))
        .where(LedgerEntry.project_id == project.id)
        .group_by(LedgerEntry.user_id)
    ).all())
    data.earned = [int(earned.get(u, 0) or 0) for u in data.user_ids]
    data.currency = currency_of(uow, project.client_id)
    return data


__all__ = ["Dataset", "load_dataset"]
