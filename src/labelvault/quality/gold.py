"""Gold (honeypot) tasks: known answers mixed into the queue, labelers scored on them, suspension.

A gold task is a task with a gold answer, sealed like any answer (``"task.gold"``, under the task's
own data key, bound to the task id). It is imported with its gold answer or promoted from a
reviewed task. Gold tasks want no answers of their own (``required_answers`` 0, so ``open_slots``
never rises above 0 and the regular queue never picks them); instead the queue's gold picker
hands one to a labeler with the project's ``gold_rate`` while regular work is left, a gold task
the labeler has not seen, at random. The labeler gets it exactly as any other task.

Each answer to a gold task is scored in its submit transaction (``quality/scoring.py``: a credit
per question), and stored as :class:`~labelvault.storage.models.GoldScore` rows. A labeler whose
honeypot accuracy (the mean credit per gold answer, since their last reinstatement) has an upper
Wilson 95% bound below the project's ``suspension_threshold`` after ``suspension_min_answers`` gold
answers is suspended from the project; the queue then refuses them with reason ``suspended``
until a manager reinstates them. Gold tasks marked for the qualification test are scored the same
way (kind ``qualification``) but do not count towards suspension (see ``quality/qualification.py``).
Labelers may read their own gold results when the project's ``show_gold_feedback`` is on.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import orjson

from labelvault.audit import log as audit_log
from labelvault.domain.access import Actor, ProjectPolicy
from labelvault.domain.answers import validate_answer
from labelvault.domain.schema import ProjectSchema
from labelvault.errors import Conflict, ImportInvalid, InvalidInput, NotFound, PermissionDenied, QueueRefused
from labelvault.io.readers import Unreadable, infer_format, open_reader
from labelvault.io.rows import RowInvalid, RowParser
from labelvault.quality.qualification import settle_test
from labelvault.quality.scores import gold_accuracy
from labelvault.quality.scoring import score_answer, value_at
from labelvault.storage.ids import allocate_ids
from labelvault.storage.models import Answer, Project, Suspension, Task, utcnow
from labelvault.storage.scope import Read
from labelvault.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory
from labelvault.workflow.access import access_in
from labelvault.workflow.content import open_answer_values, open_task_content
from labelvault.workflow.projects import load_project, schema_of

HONEYPOT = "honeypot"
QUALIFICATION = "qualification"
GOLD_KEY = "gold"
MAX_GOLD_ROWS = 100_000
_random = random.SystemRandom()


# ------------------------------------------------------------------------------------------ sealing


def seal_gold(uow: UnitOfWork, task: Task, value: dict[str, Any]) -> bytes:
    return uow.cipher(task.data_key_id).seal("task.gold", task.id, orjson.dumps(value))


def open_gold(uow: UnitOfWork, task: Task) -> dict[str, Any] | None:
    if task.gold_answer is None:
        return None
    return orjson.loads(uow.cipher(task.data_key_id).open("task.gold", task.id, task.gold_answer))  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------------------ queue hooks


def check_suspension(uow: UnitOfWork, actor: Actor, project: Project) -> None:
    """Eligibility: a suspended labeler gets nothing from this project until reinstated."""
    if uow.suspensions.is_suspended(project.id, actor.user_id):
        raise QueueRefused("suspended", f"you are suspended from project {project.slug}: ask a manager")


def suspension_reads(uow: UnitOfWork, actor: Actor, project_id: int) -> list[Read]:
    """What ``check_suspension`` reads, for the queue to fetch ahead (``QueueHooks``)."""
    return [uow.suspensions.is_suspended_read(project_id, actor.user_id)]


def pick_gold_task(
    uow: UnitOfWork, actor: Actor, project: Project, regular_work_left: Callable[[], bool]
) -> Task | None:
    """Picker: a gold task, with the project's gold rate, while regular work is left for the labeler."""
    rate = project.gold_rate
    if rate <= 0.0 or (rate < 1.0 and _random.random() >= rate):
        return None
    if not regular_work_left():
        return None  # honeypots alone are no work: when the regular queue is empty, so is this one
    return uow.gold.next_for(project.id, actor.user_id, qualification=False)


def score_gold_answer(
    uow: UnitOfWork, actor: Actor, project: Project, task: Task, answer_id: int, answer: dict[str, Any]
) -> None:
    """On submit: score an answer to a gold task; suspend, or settle the qualification test, if due."""
    if not task.is_gold:
        return
    gold = open_gold(uow, task)
    if gold is None:
        return
    kind = QUALIFICATION if task.in_qualification else HONEYPOT
    now = utcnow()
    credits = score_answer(schema_of(project), gold, answer)
    uow.gold.add_scores([
        {"client_id": uow.client_id, "project_id": project.id, "task_id": task.id, "answer_id": answer_id,
         "user_id": actor.user_id, "kind": kind, "question": question, "credit": credit, "created_at": now}
        for question, credit in credits.items()
    ])
    if kind == HONEYPOT:
        suspend_if_below(uow, actor, project)
    else:
        settle_test(uow, project, actor.user_id)


# ------------------------------------------------------------------------------------------ accuracy


@dataclass(frozen=True, slots=True)
class Accuracy:
    """Mean credit on gold answers with its Wilson 95% interval (None without gold answers)."""

    n: int
    correct: float
    accuracy: float | None
    lower: float
    upper: float


def accuracy_of(credits: list[float]) -> Accuracy:
    stats = gold_accuracy([0] * len(credits), credits, n_raters=1)
    n = int(stats.n[0])
    return Accuracy(n, float(stats.correct[0]), float(stats.accuracy[0]) if n else None,
                    float(stats.lower[0]), float(stats.upper[0]))


def honeypot_accuracy(uow: UnitOfWork, project_id: int, user_id: int, *, since: datetime | None = None) -> Accuracy:
    rows = uow.gold.answer_credits(project_id, user_id=user_id, kind=HONEYPOT, since=since)
    return accuracy_of([credit for _, _, credit in rows])


def suspend_if_below(uow: UnitOfWork, actor: Actor, project: Project) -> Suspension | None:
    """Suspend the labeler when the upper bound of their honeypot accuracy (counted since their last
    reinstatement) is below the project's threshold after the minimum number of gold answers."""
    threshold = project.suspension_threshold
    if threshold is None or uow.suspensions.active(project.id, actor.user_id) is not None:
        return None
    since = uow.suspensions.last_lifted_at(project.id, actor.user_id)
    stats = honeypot_accuracy(uow, project.id, actor.user_id, since=since)
    if stats.n < project.suspension_min_answers or stats.upper >= threshold:
        return None
    reason = (f"gold accuracy {stats.accuracy:.0%} over {stats.n} gold answers (95% interval up to "
              f"{stats.upper:.0%}) is below the project's threshold of {threshold:.0%}")
    suspension = Suspension(project_id=project.id, user_id=actor.user_id, reason=reason, n=stats.n,
                            accuracy=stats.accuracy, upper=stats.upper)
    uow.session.add(suspension)
    uow.flush()
    audit_log.append(uow, "labeler.suspended", actor=None, client_id=project.client_id, object_kind="user",
                     object_id=actor.user_id, details={"project_id": project.id, "n": stats.n})
    return suspension


# ------------------------------------------------------------------------------------------ use cases


@dataclass
class GoldImportReport:
    rows_read: int = 0
    created: int = 0
    already_present: int = 0
    errors: list[dict[str, Any]] | None = None


@dataclass(frozen=True, slots=True)
class GoldTaskInfo:
    task_id: int
    external_id: str | None
    qualification: bool
    answers: int
    gold: dict[str, Any]


@dataclass(frozen=True, slots=True)
class GoldFeedback:
    task_id: int
    answer_id: int
    question: str
    credit: float
    your_answer: Any
    gold_answer: Any
    submitted_at: datetime


@dataclass(frozen=True, slots=True)
class SuspensionInfo:
    id: int
    user_id: int
    username: str
    reason: str
    n: int
    accuracy: float | None
    upper: float | None
    created_at: datetime
    lifted_at: datetime | None


class _Row(NamedTuple):
    """A row of the task import format as ``RowParser`` returns it (by position)."""

    external_id: str | None
    priority: int
    overlap: int
    data: dict[str, Any]
    metadata: dict[str, Any] | None
    suggestions: list[dict[str, Any]] | None
    uncertainty: float


def _split_gold(record: Any) -> tuple[dict[str, Any], Any]:
    if not isinstance(record, Mapping):
        raise RowInvalid(None, "expected a JSON object with the task's data and its gold answer")
    row = dict(record)
    gold = row.pop(GOLD_KEY, None)
    if isinstance(gold, str):  # CSV and Parquet cells hold JSON text
        try:
            gold = orjson.loads(gold)
        except orjson.JSONDecodeError:
            raise RowInvalid(GOLD_KEY, "field \"gold\": not valid JSON") from None
    return row, gold


def check_gold_answer(schema: ProjectSchema, data: dict[str, Any], gold: Any) -> dict[str, Any]:
    """A gold answer as every gold import takes it (a bundle's import checks its own with this
    before writing anything): an object of question names to values, valid for the schema and the
    task's data (parsed); returns it normalized, or raises RowInvalid naming ``gold``."""
    if not isinstance(gold, dict) or not gold:
        raise RowInvalid(GOLD_KEY, 'field "gold": a gold task needs its answer (question names to values)')
    try:
        return validate_answer(schema, data, gold, partial=True)
    except InvalidInput as exc:
        raise RowInvalid(GOLD_KEY, f"gold: {exc.message}") from None


def _set_gold(task: Task, *, qualification: bool) -> None:
    """Turn a task gold: it wants no answers of its own, so the regular queue never picks it.

    ``open_slots = required - answers - leases``; dropping ``required`` to 0 keeps that true."""
    task.open_slots -= task.required_answers
    task.required_answers = 0
    task.is_gold = True
    task.in_qualification = qualification


class GoldService:
    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self.uow_factory = uow_factory

    # -- adding gold tasks

    def import_rows(
        self, actor: Actor, client_id: int, project_id: int, rows: Iterable[Mapping[str, Any]], *,
        qualification: bool = False,
    ) -> GoldImportReport:
        """Add gold tasks: import rows (the task row format) each with a ``"gold"`` answer.

        One transaction; a bad row rejects all (its errors name the row). Idempotent by
        ``external_id``: a task the project has already is left as it is."""
        return self._run(actor, client_id, project_id, "row", False, enumerate(rows, 1), qualification)

    def import_file(
        self, actor: Actor, client_id: int, project_id: int, source: Path | BinaryIO, *,
        format: str | None = None, qualification: bool = False,
    ) -> GoldImportReport:
        """Add gold tasks from a JSONL, CSV or Parquet file whose rows carry a ``gold`` column."""
        if isinstance(source, Path):
            with source.open("rb") as stream:
                return self.import_file(actor, client_id, project_id, stream, format=format or
                                        infer_format(source.name), qualification=qualification)
        fmt = infer_format(str(getattr(source, "name", "") or ""), explicit=format)
        reader = open_reader(fmt, source, batch_size=1000)
        return self._run(actor, client_id, project_id, reader.unit, reader.tabular, reader.rows(), qualification)

    def _run(
        self, actor: Actor, client_id: int, project_id: int, unit: str, tabular: bool,
        records: Iterable[tuple[int, Any]], qualification: bool,
    ) -> GoldImportReport:
        report = GoldImportReport(errors=[])
        with self.uow_factory.for_client(client_id, write=True) as uow:
            ProjectPolicy.import_tasks(access_in(uow, actor))
            project = load_project(uow, project_id)
            schema = schema_of(project)
            parse = RowParser(schema, default_overlap=project.overlap, tabular=tabular)
            parsed = []
            for position, record in records:
                report.rows_read += 1
                if report.rows_read > MAX_GOLD_ROWS:
                    raise InvalidInput(f"at most {MAX_GOLD_ROWS} gold tasks per import")
                try:
                    if type(record) is Unreadable:
                        raise RowInvalid(None, record.reason)
                    row, gold = _split_gold(record)
                    task_row = _Row(*parse(row))
                    parsed.append((task_row, check_gold_answer(schema, task_row.data, gold)))
                except RowInvalid as exc:
                    report.errors.append({unit: position, "field": exc.field,
                                          "message": f"{unit} {position}: {exc.message}"})
            if report.errors:
                raise ImportInvalid(f"gold import rejected, nothing was written: {report.errors[0]['message']}",
                                    details={"errors": report.errors[:100], "invalid": len(report.errors)})
            existing = uow.tasks.existing_external_ids(project_id, [r.external_id for r, _ in parsed if r.external_id])
            new = [(r, v) for r, v in parsed if r.external_id is None or r.external_id not in existing]
            seen: set[str] = set()
            fresh = []
            for r, v in new:  # the same external id twice in one file: the first one counts
                if r.external_id is not None:
                    if r.external_id in seen:
                        continue
                    seen.add(r.external_id)
                fresh.append((r, v))
            report.already_present = len(parsed) - len(fresh)
            ids = allocate_ids(uow.sql, Task, len(fresh))
            key_id, cipher = uow.active_cipher()
            for task_id, (r, value) in zip(ids, fresh, strict=True):
                uow.session.add(Task(
                    id=task_id, project_id=project_id, external_id=r.external_id, priority=r.priority,
                    uncertainty=r.uncertainty, required_answers=0, open_slots=0, answer_count=0,
                    data_key_id=key_id, payload=cipher.seal("task.payload", task_id, orjson.dumps(r.data)),
                    metadata_blob=(cipher.seal("task.metadata", task_id, orjson.dumps(r.metadata))
                                   if r.metadata else None),
                    suggestions=(cipher.seal("task.suggestions", task_id, orjson.dumps(r.suggestions))
                                 if r.suggestions else None),
                    is_gold=True, in_qualification=qualification,
                    gold_answer=cipher.seal("task.gold", task_id, orjson.dumps(value)),
                ))
            uow.flush()
            report.created = len(fresh)
            uow.quality_cache.bump_version(project_id)
            audit_log.append(uow, "gold.imported", actor=actor, client_id=client_id, object_kind="project",
                             object_id=project_id, details={"created": report.created, "qualification": qualification})
            uow.commit()
        report.errors = None
        return report

    def promote(
        self, actor: Actor, client_id: int, project_id: int, task_id: int, *,
        answer: dict[str, Any] | None = None, qualification: bool = False,
    ) -> GoldTaskInfo:
        """Make a reviewed task gold. The gold answer is ``answer`` if given, else the reviewer's
        correction, else the accepted answers when they all agree. Answers given before the task was
        gold are not scored."""
        with self.uow_factory.for_client(client_id, write=True) as uow:
            ProjectPolicy.manage(access_in(uow, actor))
            project = load_project(uow, project_id)
            task = uow.tasks.get(task_id)
            if task is None or task.project_id != project_id:
                raise NotFound(f"task {task_id} not found")
            if task.is_gold:
                raise Conflict(f"task {task_id} is gold already")
            payload, _ = open_task_content(uow, task)
            if answer is not None:
                value = validate_answer(schema_of(project), payload, answer, partial=True)
            else:
                value = self._reviewed_answer(uow, task)
            _set_gold(task, qualification=qualification)
            task.gold_answer = seal_gold(uow, task, value)
            uow.quality_cache.bump_version(project_id)
            audit_log.append(uow, "gold.promoted", actor=actor, client_id=client_id, object_kind="task",
                             object_id=task_id, details={"qualification": qualification})
            uow.commit()
            return GoldTaskInfo(task.id, task.external_id, qualification, task.answer_count, value)

    @staticmethod
    def _reviewed_answer(uow: UnitOfWork, task: Task) -> dict[str, Any]:
        corrections = [r for r in uow.reviews.of_task(task.id) if r.decision == "correct" and r.corrected_value]
        if corrections:
            last = corrections[-1]
            sealed = uow.cipher(last.data_key_id).open("review.correction", last.id, last.corrected_value or b"")
            return orjson.loads(sealed)  # type: ignore[no-any-return]
        accepted = [a for a in uow.answers.counted_for_task(task.id) if a.status == "accepted"]
        values = open_answer_values(uow, accepted)
        distinct = {orjson.dumps(v, option=orjson.OPT_SORT_KEYS) for v in values}
        if len(distinct) != 1 or task.review_state != "done":
            raise InvalidInput(
                f"task {task.id} has no reviewed answer to promote (no correction, and its accepted answers "
                "are missing or differ): give the gold answer", details={"field": "answer"},
            )
        return values[0]

    def set_answer(self, actor: Actor, client_id: int, project_id: int, task_id: int, answer: dict[str, Any]) -> None:
        """Replace the gold answer of a gold task (scores already given stay as they were)."""
        with self.uow_factory.for_client(client_id, write=True) as uow:
            ProjectPolicy.manage(access_in(uow, actor))
            project = load_project(uow, project_id)
            task = self._gold_task(uow, project_id, task_id)
            payload, _ = open_task_content(uow, task)
            task.gold_answer = seal_gold(uow, task, validate_answer(schema_of(project), payload, answer, partial=True))
            uow.quality_cache.bump_version(project_id)
            audit_log.append(uow, "gold.changed", actor=actor, client_id=client_id, object_kind="task",
                             object_id=task_id)
            uow.commit()

    def demote(self, actor: Actor, client_id: int, project_id: int, task_id: int) -> None:
        """A gold task becomes a regular task again, wanting the project's overlap of answers."""
        with self.uow_factory.for_client(client_id, write=True) as uow:
            ProjectPolicy.manage(access_in(uow, actor))
            project = load_project(uow, project_id)
            task = self._gold_task(uow, project_id, task_id)
            task.is_gold = False
            task.in_qualification = False
            task.gold_answer = None
            task.required_answers = project.overlap
            task.open_slots += project.overlap
            uow.quality_cache.bump_version(project_id)
            audit_log.append(uow, "gold.removed", actor=actor, client_id=client_id, object_kind="task",
                             object_id=task_id)
            uow.commit()

    @staticmethod
    def _gold_task(uow: UnitOfWork, project_id: int, task_id: int) -> Task:
        task = uow.tasks.get(task_id)
        if task is None or task.project_id != project_id:
            raise NotFound(f"task {task_id} not found")
        if not task.is_gold:
            raise Conflict(f"task {task_id} is not a gold task")
        return task

    def list(
        self, actor: Actor, client_id: int, project_id: int, *, offset: int = 0, limit: int = 100
    ) -> tuple[list[GoldTaskInfo], int]:
        with self.uow_factory.for_client(client_id) as uow:
            ProjectPolicy.manage(access_in(uow, actor))
            load_project(uow, project_id)
            tasks = uow.gold.tasks(project_id, offset=offset, limit=limit)
            items = [GoldTaskInfo(t.id, t.external_id, t.in_qualification, t.answer_count, open_gold(uow, t) or {})
                     for t in tasks]
            return items, uow.gold.count(project_id)

    # -- the labeler's side

    def feedback(
        self, actor: Actor, client_id: int, project_id: int, *, offset: int = 0, limit: int = 100
    ) -> list[GoldFeedback]:
        """The caller's own gold results, newest first, if the project shows gold feedback."""
        with self.uow_factory.for_client(client_id) as uow:
            if not access_in(uow, actor).is_member:
                raise NotFound("project not found")
            project = load_project(uow, project_id)
            if not project.show_gold_feedback:
                raise PermissionDenied("this project does not show gold feedback")
            scores = list(reversed(uow.gold.scores(project_id, user_id=actor.user_id)))[offset: offset + limit]
            answers = {a.id: a for a in uow.session.query(Answer).filter(Answer.id.in_({s.answer_id for s in scores}))}
            tasks = {t.id: t for t in uow.session.query(Task).filter(Task.id.in_({s.task_id for s in scores}))}
            out = []
            opened: dict[int, tuple[dict[str, Any], dict[str, Any] | None]] = {}
            for score in scores:
                if score.answer_id not in opened:
                    mine = open_answer_values(uow, [answers[score.answer_id]])[0]
                    opened[score.answer_id] = (mine, open_gold(uow, tasks[score.task_id]))
                mine, gold = opened[score.answer_id]
                out.append(GoldFeedback(score.task_id, score.answer_id, score.question, score.credit,
                                        value_at(mine, score.question), value_at(gold, score.question),
                                        answers[score.answer_id].created_at))
            return out

    # -- suspensions

    def suspensions(
        self, actor: Actor, client_id: int, project_id: int, *, active_only: bool = False
    ) -> list[SuspensionInfo]:
        with self.uow_factory.for_client(client_id) as uow:
            ProjectPolicy.manage(access_in(uow, actor))
            load_project(uow, project_id)
            rows = uow.suspensions.of_project(project_id, active_only=active_only)
            names = {u: uow.users.get(u).username for u in {r.user_id for r in rows}}  # type: ignore[union-attr]
            return [SuspensionInfo(r.id, r.user_id, names[r.user_id], r.reason, r.n, r.accuracy, r.upper,
                                   r.created_at, r.lifted_at) for r in rows]

    def reinstate(self, actor: Actor, client_id: int, project_id: int, username: str) -> SuspensionInfo:
        """Lift a labeler's suspension; their gold accuracy counts afresh from now on."""
        with self.uow_factory.for_client(client_id, write=True) as uow:
            ProjectPolicy.manage(access_in(uow, actor))
            load_project(uow, project_id)
            user = uow.users.by_username(username)
            suspension = uow.suspensions.active(project_id, user.id) if user is not None else None
            if user is None or suspension is None:
                raise NotFound(f"{username!r} is not suspended from this project")
            suspension.lifted_at = utcnow()
            suspension.lifted_by = actor.user_id
            audit_log.append(uow, "labeler.reinstated", actor=actor, client_id=client_id, object_kind="user",
                             object_id=user.id, details={"project_id": project_id})
            uow.commit()
            return SuspensionInfo(suspension.id, user.id, user.username, suspension.reason, suspension.n,
                                  suspension.accuracy, suspension.upper, suspension.created_at, suspension.lifted_at)


__all__ = [
    "HONEYPOT",
    "QUALIFICATION",
    "Accuracy",
    "GoldFeedback",
    "GoldImportReport",
    "GoldService",
    "GoldTaskInfo",
    "SuspensionInfo",
    "check_suspension",
    "honeypot_accuracy",
    "open_gold",
    "pick_gold_task",
    "score_gold_answer",
    "seal_gold",
    "suspend_if_below",
]
