"""The final answer of each task to one question, streamed task batch by task batch.

The training formats (DPO, SFT, COCO, YOLO, spaCy, CoNLL) need one answer per task. They read
it here, with the task's data, in batches by task id (keyset pagination, one short read unit of
work per batch), so an export of a million tasks holds one batch in memory, never the project.

The final answer of a task to a question is, in this order:

1. the reviewer's correction (``method: "review"``; the latest correction of the task wins);
2. the known answer of a gold task (``method: "gold"``);
3. the consensus of the answers that count (every answer but rejected ones), computed per task
   exactly as the project-wide aggregation does for these question types (``quality/compute.py``):
   the vote share for ``preference`` (a tie counting half), the pairwise majority for ``ranking``
   (each pair of candidates with the share of answers ordering it so), merged spans and boxes
   (``quality/consensus.py``; unanimous spans or boxes, a single answer included, are taken as they
   are, since the character vote would split overlapping spans), and for ``text`` the first
   accepted answer (free text has no vote).

A task without any of these has no final answer and is left out of the training formats.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import orjson
from sqlalchemy import select

from labelvault.crypto.keyring import DataCipher
from labelvault.domain.access import Actor, ProjectPolicy
from labelvault.quality.consensus import consensus
from labelvault.quality.scoring import value_at
from labelvault.storage.models import Answer, Review, Task
from labelvault.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory
from labelvault.workflow.access import access_in

BATCH_SIZE = 2000


@dataclass(frozen=True, slots=True)
class Final:
    """The final answer of one task to one question."""

    value: Any
    confidence: float
    method: str  # review | gold | vote | unanimous | first_accepted
    n: int  # answers that count
    pairs: list[tuple[int, int, float]] | None = None  # ranking: (chosen, rejected, share), majority pairs


@dataclass(frozen=True, slots=True)
class FinalTask:
    task_id: int
    external_id: str | None
    gold: bool
    data: dict[str, Any]
    final: Final | None


def ranking_pairs(rankings: list[list[int]]) -> list[tuple[int, int, float]]:
    """Candidate pairs ordered by the majority of ``rankings``, with the majority's share.

    Pairs the answers split evenly on are left out, as in the project-wide aggregation."""
    positions = [{c: i for i, c in enumerate(r)} for r in rankings]
    candidates = sorted({c for r in rankings for c in r})
    pairs = []
    for a, b in combinations(candidates, 2):
        both = [p for p in positions if a in p and b in p]
        if not both:
            continue
        share = sum(p[a] < p[b] for p in both) / len(both)
        if share > 0.5:
            pairs.append((a, b, share))
        elif share < 0.5:
            pairs.append((b, a, 1.0 - share))
    return pairs


def _decided(question: Any, value: Any, method: str, n: int) -> Final:
    pairs = None
    if question.type == "ranking":
        pairs = [(a, b, 1.0) for a, b in combinations(value, 2)]
    return Final(value, 1.0, method, n, pairs)


def final_answer(question: Any, path: str, answers: list[tuple[dict[str, Any], str]],
                 payload: dict[str, Any], *, correction: dict[str, Any] | None,
                 gold: dict[str, Any] | None) -> Final | None:
    """The final answer of one task (see the module docstring); ``answers`` are (value, status)
    pairs of the answers that count, in submission order."""
    values = [(value_at(v, path), status) for v, status in answers]
    values = [(v, s) for v, s in values if v is not None]
    corrected = value_at(correction, path)
    if corrected is not None:
        return _decided(question, corrected, "review", len(values))
    known = value_at(gold, path)
    if known is not None:
        return _decided(question, known, "gold", len(values))
    if not values:
        return None
    given = [v for v, _ in values]
    if question.type == "text":
        accepted = [v for v, s in values if s == "accepted"]
        if not accepted:
            return None
        return Final(accepted[0], given.count(accepted[0]) / len(given), "first_accepted", len(given))
    if question.type == "ranking":
        pairs = ranking_pairs(given)
        result = consensus(question, given, payload)
        assert result is not None
        return Final(result["value"], float(result["confidence"]), "vote", len(given), pairs)
    if question.type in ("span", "bbox") and all(v == given[0] for v in given[1:]):
        # Unanimous (a single answer included): taken as it is. The character vote that merges
        # spans gives each character one label, so it would split overlapping spans apart.
        return Final(given[0], 1.0, "unanimous", len(given))
    result = consensus(question, given, payload)
    if result is None:
        return None
    return Final(result["value"], float(result["confidence"]), "vote", len(given))


def stream_final(
    uow_factory: UnitOfWorkFactory, actor: Actor, client_id: int, project_id: int, path: str | None, question: Any,
    *, batch_size: int = BATCH_SIZE, progress: Callable[[int], None] | None = None,
) -> Iterator[list[FinalTask]]:
    """Batches of tasks in id order with their data and final answer to ``path`` (none when
    ``question`` is None: the tabular formats take their answers from the aggregation).

    Each batch is read in its own read unit of work, which asks the export policy again: a member
    whose role is withdrawn mid-export stops getting batches."""
    after = 0
    done = 0
    while True:
        with uow_factory.for_client(client_id) as uow:
            ProjectPolicy.export(access_in(uow, actor))
            batch, after = _batch(uow, project_id, path, question, after, batch_size)
        if not batch:
            return
        done += len(batch)
        yield batch
        if progress is not None:
            progress(done)


def _batch(uow: UnitOfWork, project_id: int, path: str | None, question: Any, after: int,
           batch_size: int) -> tuple[list[FinalTask], int]:
    session = uow.session
    ciphers: dict[int, DataCipher] = {}

    def cipher(key_id: int) -> DataCipher:  # one key lookup and unwrap per batch, not per row
        found = ciphers.get(key_id)
        if found is None:
            found = ciphers[key_id] = uow.cipher(key_id)
        return found

    tasks = session.execute(
        select(Task.id, Task.external_id, Task.is_gold, Task.data_key_id, Task.payload, Task.gold_answer)
        .where(Task.project_id == project_id, Task.id > after)
        .order_by(Task.id)
        .limit(batch_size)
    ).all()
    if not tasks:
        return [], after
    first, last = tasks[0][0], tasks[-1][0]
    answers: dict[int, list[tuple[dict[str, Any], str]]] = {}
    corrections: dict[int, dict[str, Any]] = {}
    if question is not None:
        _answers_of(session, cipher, project_id, first, last, answers, corrections)
    out = []
    for task_id, external_id, is_gold, key_id, payload_blob, gold_blob in tasks:
        opener = cipher(key_id)
        payload = orjson.loads(opener.open("task.payload", task_id, payload_blob))
        final = None
        if question is not None and path is not None:
            gold = orjson.loads(opener.open("task.gold", task_id, gold_blob)) if gold_blob is not None else None
            final = final_answer(question, path, answers.get(task_id, []), payload,
                                 correction=None if is_gold else corrections.get(task_id), gold=gold)
        out.append(FinalTask(task_id, external_id, bool(is_gold), payload, final))
    return out, last


def _answers_of(session: Any, cipher: Callable[[int], DataCipher], project_id: int, first: int, last: int,
                answers: dict[int, list[tuple[dict[str, Any], str]]], corrections: dict[int, dict[str, Any]]) -> None:
    """Fill ``answers`` (those that count, in id order) and ``corrections`` of tasks first..last."""
    for answer_id, task_id, key_id, sealed, status in session.execute(
        select(Answer.id, Answer.task_id, Answer.data_key_id, Answer.value, Answer.status)
        .where(Answer.project_id == project_id, Answer.task_id >= first, Answer.task_id <= last,
               Answer.status != "rejected")
        .order_by(Answer.id)
    ):
        value = orjson.loads(cipher(key_id).open("answer.value", answer_id, sealed))
        answers.setdefault(task_id, []).append((value, status))
    for review_id, task_id, key_id, sealed in session.execute(
        select(Review.id, Review.task_id, Review.data_key_id, Review.corrected_value)
        .where(Review.project_id == project_id, Review.task_id >= first, Review.task_id <= last,
               Review.decision == "correct")
        .order_by(Review.id)
    ):
        if sealed is not None:  # a later correction wins
            corrections[task_id] = orjson.loads(cipher(key_id).open("review.correction", review_id, sealed))


__all__ = ["BATCH_SIZE", "Final", "FinalTask", "final_answer", "ranking_pairs", "stream_final"]
