"""Model-assisted labeling: a project's predictor suggests answers, and its doubt orders the queue.

    services.predictions.configure(actor, client_id, project_id, PredictorConfig(
        kind="entry_point", target="sentiment-v2", question="sentiment"))
    report = services.predictions.run(actor, client_id, project_id)

The runner asks the predictor about every task that still wants answers and holds no suggestion
of the predictor's current ``model_version`` (``everything=True``: every task that still wants
answers), in batches of ``batch_size``, in id order. Per batch:

1. a short write transaction reads and opens the tasks and appends ``tasks.sent_to_predictor``
   to the audit log (the task ids and where they went): the predictor sees client data, and
   the record is committed before anything leaves;
2. the predictor is called outside any transaction (a slow model holds no database lock);
3. every prediction of the batch is checked (one per task, an answer that fits the question,
   a score from 0 to 1); one bad prediction fails the batch, naming the batch and the task;
4. one write transaction replaces this model's earlier suggestions on each task (other models'
   suggestions stay), sets the task's ``uncertainty`` and records the version that scored it
   (``task_predictions``), with ``suggestions.predicted`` in the audit log.

So a batch is written whole or not at all, a failed run keeps the batches before the failure,
and running again continues where it stopped: the tasks already scored by this version are not
asked again (the run is idempotent). Bumping ``model_version`` re-scores every open task.

Uncertainty is 1 - the best score of the predictor's suggestions for the task (least confidence,
as an import computes it), and orders the queue after explicit priority: the tasks the model is
least sure about are labeled first (uncertainty sampling). With no score, the best score of the
task's other suggestions counts, else 0.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select, text

from labelvault.audit import log as audit_log
from labelvault.audit.log import AuditService
from labelvault.domain.access import Actor
from labelvault.domain.answers import AnswerValidator, answer_validator
from labelvault.domain.predictors import PredictorConfig, PredictorPolicy, check_predictor
from labelvault.errors import AnswerInvalid, Conflict, NotFound, PredictorFailed
from labelvault.io.predictors import PredictorCallPolicy, PredictorClient
from labelvault.storage.models import ProjectPredictor, Task, utcnow
from labelvault.storage.predictions import PredictionRepository, PredictorRepository
from labelvault.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory
from labelvault.workflow.access import access_in
from labelvault.workflow.auditing import recording_denials
from labelvault.workflow.projects import load_project, schema_of

Progress = Callable[[int, int], None]
log = logging.getLogger("labelvault.predictions")
# Advisory lock space of predictor runs (pg_try_advisory_lock(space, project id)).
_ADVISORY_SPACE = 0x4C56
_SUGGESTION_KEYS = frozenset({"answer", "score"})


@dataclass(frozen=True, slots=True)
class PredictorInfo:
    project_id: int
    config: PredictorConfig
    updated_at: datetime
    pending: int  # tasks that still want answers and hold no suggestion of the current version


@dataclass
class PredictionReport:
    model: str
    pending: int = 0  # tasks to score when the run started
    scored: int = 0  # tasks written (with or without a suggestion)
    suggestions: int = 0
    batches: int = 0
    failed_batch: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "pending": self.pending, "scored": self.scored,
                "suggestions": self.suggestions, "batches": self.batches}


@dataclass
class _Batch:
    number: int
    tasks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ids(self) -> list[int]:
        return [task["id"] for task in self.tasks]

    def where(self) -> str:
        ids = self.ids
        return f"batch {self.number} (tasks {ids[0]}-{ids[-1]})" if ids else f"batch {self.number}"


def config_of(row: ProjectPredictor) -> PredictorConfig:
    return PredictorConfig(
        kind=row.kind, target=row.target, question=row.question, model_name=row.model_name,
        model_version=row.model_version, batch_size=row.batch_size, timeout_seconds=row.timeout_seconds,
        auth_header=row.auth_header, auth_secret=row.auth_secret, options=json.loads(row.options_json or "{}"),
    )


def _predictor_of(uow: UnitOfWork, project_id: int) -> ProjectPredictor:
    row = PredictorRepository(uow.session).of_project(project_id)
    if row is None:
        raise NotFound(f"project {project_id} has no predictor; set one first")
    return row


class PredictionService:
    def __init__(
        self, uow_factory: UnitOfWorkFactory, policy: PredictorCallPolicy | None = None,
        audit: AuditService | None = None,
    ) -> None:
        self.uow_factory = uow_factory
        self.policy = policy or PredictorCallPolicy()
        self.audit = audit
        self._local_locks: dict[int, threading.Lock] = {}

    # --- the setting

    def get(self, actor: Actor, client_id: int, project_id: int) -> PredictorInfo | None:
        with self.uow_factory.for_client(client_id) as uow:
            PredictorPolicy.view(access_in(uow, actor))
            load_project(uow, project_id)
            row = PredictorRepository(uow.session).of_project(project_id)
            if row is None:
                return None
            pending = PredictionRepository(uow.session).count_pending(project_id, row.model_version)
            return PredictorInfo(project_id, config_of(row), row.updated_at, pending)

    def configure(self, actor: Actor, client_id: int, project_id: int, config: PredictorConfig) -> PredictorInfo:
        """Set (or replace) the project's predictor. A new ``model_version`` makes every open task stale."""
        with (
            recording_denials(self.audit, actor, client_id, "predictor.set", "project", project_id),
            self.uow_factory.for_client(client_id, write=True) as uow,
        ):
            access = access_in(uow, actor)
            PredictorPolicy.view(access)
            project = load_project(uow, project_id)
            checked = check_predictor(config, schema_of(project))
            PredictorPolicy.configure(access, checked)
            repo = PredictorRepository(uow.session)
            row = repo.of_project(project_id)
            now = utcnow()
            if row is None:
                row = repo.add(ProjectPredictor(project_id=project_id, kind=checked.kind, target=checked.target,
                                                question=checked.question, model_name=checked.model_name,
                                                model_version=checked.model_version, created_at=now))
            row.kind, row.target, row.question = checked.kind, checked.target, checked.question
            row.model_name, row.model_version = checked.model_name, checked.model_version
            row.batch_size, row.timeout_seconds = checked.batch_size, checked.timeout_seconds
            row.auth_header, row.auth_secret = checked.auth_header, checked.auth_secret
            row.options_json = json.dumps(checked.options) if checked.options else None
            row.updated_at = now
            uow.flush()
            # The target is configuration, not client content; the options may name files: keep them out.
            audit_log.append(uow, "predictor.set", actor=actor, client_id=client_id, object_kind="project",
                             object_id=project_id, details={"kind": checked.kind, "target": checked.target,
                                                            "model": checked.suggestion_model})
            pending = PredictionRepository(uow.session).count_pending(project_id, checked.model_version)
            uow.commit()
            return PredictorInfo(project_id, checked, now, pending)

    def clear(self, actor: Actor, client_id: int, project_id: int) -> None:
        """Remove the predictor. Suggestions it wrote stay on the tasks (they are the tasks' content now)."""
        with self.uow_factory.for_client(client_id, write=True) as uow:
            PredictorPolicy.view(access_in(uow, actor))
            load_project(uow, project_id)
            PredictorPolicy.configure(access_in(uow, actor), config_of(_predictor_of(uow, project_id)))
            PredictorRepository(uow.session).remove(_predictor_of(uow, project_id))
            audit_log.append(uow, "predictor.removed", actor=actor, client_id=client_id, object_kind="project",
                             object_id=project_id)
            uow.commit()

    # --- the runner

    @contextmanager
    def exclusive(self, project_id: int) -> Iterator[bool]:
        """Whether this process may run the project's predictor now: a lock per project, held for the
        run (PostgreSQL: a session advisory lock, so across processes; else within this process)."""
        engine = self.uow_factory.engine
        if engine.dialect.name != "postgresql":
            lock = self._local_locks.setdefault(project_id, threading.Lock())
            if not lock.acquire(blocking=False):
                yield False
                return
            try:
                yield True
            finally:
                lock.release()
            return
        with engine.connect() as connection:
            key = {"space": _ADVISORY_SPACE, "project": project_id}
            mine = bool(connection.execute(text("SELECT pg_try_advisory_lock(:space, :project)"), key).scalar())
            connection.commit()
            try:
                yield mine
            finally:
                if mine:
                    connection.execute(text("SELECT pg_advisory_unlock(:space, :project)"), key)
                    connection.commit()

    def run(
        self, actor: Actor, client_id: int, project_id: int, *, everything: bool = False,
        progress: Progress | None = None,
    ) -> PredictionReport:
        """Ask the predictor about the tasks that need it; see the module docstring for the steps.

        ``progress(done, total)`` is called after each batch."""
        with recording_denials(self.audit, actor, client_id, "predictions.run", "project", project_id):
            return self._run(actor, client_id, project_id, everything, progress)

    def run_new_tasks(self, client_id: int, project_id: int) -> PredictionReport:
        """The scheduler's run (``PredictionScheduler``): the tasks that arrived since the last run.

        Nobody asks for it: the manager who set the predictor did, once; so no role is checked, and
        the audit entries name the system as the actor."""
        return self._run(None, client_id, project_id, False, None)

    def projects_with_predictors(self) -> list[tuple[int, int, str]]:
        """(client id, project id, model version) of every predictor, across clients (ids only)."""
        with self.uow_factory.all_clients() as uow:
            rows = uow.session.execute(
                select(ProjectPredictor.client_id, ProjectPredictor.project_id, ProjectPredictor.model_version)
                .order_by(ProjectPredictor.project_id)
            ).all()
        return [(int(c), int(p), str(v)) for c, p, v in rows]

    def pending(self, client_id: int, project_id: int, model_version: str) -> int:
        with self.uow_factory.for_client(client_id) as uow:
            return PredictionRepository(uow.session).count_pending(project_id, model_version)

    def _run(
        self, actor: Actor | None, client_id: int, project_id: int, everything: bool, progress: Progress | None
    ) -> PredictionReport:
        with self.uow_factory.for_client(client_id) as uow:
            _may_run(uow, actor)
            project = load_project(uow, project_id)
            config = config_of(_predictor_of(uow, project_id))
            schema = schema_of(project)
            total = PredictionRepository(uow.session).count_pending(
                project_id, None if everything else config.model_version)
        report = PredictionReport(model=config.suggestion_model, pending=total)
        client = PredictorClient(config, self.policy)
        client.check()  # an unknown entry point or a refused host fails before any data is read
        validate = answer_validator(schema)
        schema_doc = schema.to_dict()
        after = 0
        while True:
            batch = self._read_batch(actor, client_id, project_id, config, everything, after,
                                     report.batches + 1, client.destination)
            if batch is None:
                break
            report.batches += 1
            try:
                predictions = client.predict(batch.tasks, schema_doc)
                checked = _check_batch(batch, predictions, config, validate)
            except PredictorFailed as exc:
                report.failed_batch = batch.number
                raise PredictorFailed(
                    f"{batch.where()}: {exc.message}; nothing of this batch was written "
                    f"({report.scored} tasks of earlier batches were; run again to continue)",
                    details={"batch": batch.number, "task_ids": batch.ids, "written_before": report.scored,
                             **(exc.details if isinstance(exc.details, dict) else {})},
                ) from exc
            written, suggestions = self._write_batch(actor, client_id, project_id, config, checked)
            report.scored += written
            report.suggestions += suggestions
            after = batch.ids[-1]
            if progress is not None:
                progress(report.scored, total)
        return report

    def _read_batch(
        self, actor: Actor | None, client_id: int, project_id: int, config: PredictorConfig, everything: bool,
        after: int, number: int, destination: str,
    ) -> _Batch | None:
        with self.uow_factory.for_client(client_id, write=True) as uow:
            # Asked again per batch: a manager whose role is withdrawn mid-run stops sending data.
            _may_run(uow, actor)
            _check_unchanged(uow, project_id, config)
            repo = PredictionRepository(uow.session)
            ids = repo.pending_ids(project_id, None if everything else config.model_version, after_id=after,
                                   limit=config.batch_size)
            if not ids:
                return None
            batch = _Batch(number)
            for task in repo.tasks(project_id, ids):
                cipher = uow.cipher(task.data_key_id)
                data = orjson.loads(cipher.open("task.payload", task.id, task.payload))
                batch.tasks.append({"id": task.id, "external_id": task.external_id, "data": data})
            audit_log.append(uow, "tasks.sent_to_predictor", actor=actor, client_id=client_id, object_kind="project",
                             object_id=project_id, details={
                                 "kind": config.kind, "to": destination, "model": config.suggestion_model,
                                 "batch": number, "task_ids": batch.ids,
                             })
            uow.commit()
            return batch

    def _write_batch(
        self, actor: Actor | None, client_id: int, project_id: int, config: PredictorConfig,
        checked: dict[int, list[dict[str, Any]]],
    ) -> tuple[int, int]:
        now = utcnow()
        with self.uow_factory.for_client(client_id, write=True) as uow:
            _may_run(uow, actor)
            _check_unchanged(uow, project_id, config)
            repo = PredictionRepository(uow.session)
            tasks = repo.tasks(project_id, list(checked), lock=True)  # a task deleted meanwhile is skipped
            count = 0
            for task in tasks:
                count += _apply(uow, task, config, checked[task.id])
            repo.record(project_id, [task.id for task in tasks], config.model_version, now)
            audit_log.append(uow, "suggestions.predicted", actor=actor, client_id=client_id, object_kind="project",
                             object_id=project_id, details={"model": config.suggestion_model,
                                                            "tasks": len(tasks), "suggestions": count})
            uow.commit()
            return len(tasks), count


def _may_run(uow: UnitOfWork, actor: Actor | None) -> None:
    """A person's run needs the role; the scheduler's (no actor) runs what a manager configured."""
    if actor is not None:
        PredictorPolicy.run(access_in(uow, actor))


class PredictionScheduler:
    """Calls each project's predictor on the tasks it has not scored yet, every ``poll_seconds``,
    from a thread of the server process (``LABELVAULT_PREDICTOR_POLL_SECONDS``; 0 turns it off).

    So new tasks (an import, tasks added through the API) get their suggestions, and the queue
    its uncertainty order, without anyone running ``labelvault predict``. A failing predictor is
    logged and left alone for a while (doubling from one poll to ten minutes), then tried again;
    each run is the same idempotent, batch-by-batch run as ``labelvault predict``. The server runs
    ``run_once`` from a ``PeriodicThread``. Several server processes may each run a scheduler: on
    PostgreSQL a project's run holds an advisory lock, so only one process calls its predictor at a
    time.
    """

    MAX_BACKOFF_SECONDS = 600.0

    def __init__(self, service: PredictionService, poll_seconds: float) -> None:
        self.service = service
        self.poll_seconds = poll_seconds
        self._retry_at: dict[int, tuple[float, float]] = {}  # project id -> (monotonic time, last wait)

    def run_once(self) -> int:
        """One pass over every predictor; returns the number of tasks scored."""
        scored = 0
        now = time.monotonic()
        for client_id, project_id, version in self.service.projects_with_predictors():
            retry = self._retry_at.get(project_id)
            if retry is not None and now < retry[0]:
                continue
            try:
                if not self.service.pending(client_id, project_id, version):
                    continue
                with self.service.exclusive(project_id) as mine:
                    if mine:
                        scored += self.service.run_new_tasks(client_id, project_id).scored
                self._retry_at.pop(project_id, None)
            except Exception as exc:  # any failure of one project's predictor must not stop the others
                wait = min(self.MAX_BACKOFF_SECONDS, max(self.poll_seconds, (retry or (0.0, 0.0))[1] * 2))
                self._retry_at[project_id] = (time.monotonic() + wait, wait)
                log.warning("predictor run failed", extra={"project_id": project_id, "retry_in_s": round(wait, 1),
                                                           "error": type(exc).__name__})
        return scored


def _check_unchanged(uow: UnitOfWork, project_id: int, config: PredictorConfig) -> None:
    row = _predictor_of(uow, project_id)
    if config_of(row) != config:
        raise Conflict("the project's predictor was changed during the run; run it again")


def _is_own(model: Any, config: PredictorConfig) -> bool:
    return isinstance(model, str) and (model == config.model_name or model.startswith(config.model_name + "@"))


def _apply(uow: UnitOfWork, task: Task, config: PredictorConfig, new: list[dict[str, Any]]) -> int:
    """Replace this model's suggestions on the task by ``new``; set the task's uncertainty."""
    cipher = uow.cipher(task.data_key_id)
    old = orjson.loads(cipher.open("task.suggestions", task.id, task.suggestions)) if task.suggestions else []
    kept = [s for s in old if not _is_own(s.get("model"), config)]
    merged = new + kept
    own_scores = [s["score"] for s in new if s.get("score") is not None]
    scores = own_scores or [s["score"] for s in kept if s.get("score") is not None]
    task.suggestions = cipher.seal("task.suggestions", task.id, orjson.dumps(merged)) if merged else None
    task.uncertainty = 1.0 - max(scores) if scores else 0.0
    return len(new)


def _check_batch(
    batch: _Batch, predictions: list[Any], config: PredictorConfig, validate: AnswerValidator
) -> dict[int, list[dict[str, Any]]]:
    """Every prediction of the batch, checked, by task id; the first bad one fails the whole batch."""
    if len(predictions) != len(batch.tasks):
        raise PredictorFailed(
            f"the predictor returned {len(predictions)} predictions for {len(batch.tasks)} tasks "
            "(one per task, in order, None for no suggestion)"
        )
    out: dict[int, list[dict[str, Any]]] = {}
    for task, prediction in zip(batch.tasks, predictions, strict=True):
        task_id = task["id"]
        items = [] if prediction is None else prediction if isinstance(prediction, list) else [prediction]
        suggestions: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            where = f"task {task_id}" + (f", suggestion {index}" if len(items) > 1 else "")
            if not isinstance(item, dict) or "answer" not in item or not set(item) <= _SUGGESTION_KEYS:
                raise PredictorFailed(f"{where}: expected {{\"answer\": ..., \"score\": 0..1}}, got "
                                      f"{type(item).__name__ if not isinstance(item, dict) else sorted(item)}",
                                      details={"task_id": task_id})
            score = item.get("score")
            if score is not None:
                if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
                    raise PredictorFailed(f"{where}: score must be a number from 0 to 1, got {score!r}",
                                          details={"task_id": task_id})
                score = float(score)
            try:
                answer = validate(task["data"], {config.question: item["answer"]}, partial=True)
            except AnswerInvalid as exc:
                raise PredictorFailed(f"{where}: {exc.message}", details={"task_id": task_id}) from None
            suggestions.append({"model": config.suggestion_model, "answer": answer, "score": score})
        suggestions.sort(key=lambda s: -(s["score"] if s["score"] is not None else -1.0))
        out[task_id] = suggestions
    return out
