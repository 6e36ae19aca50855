"""The labeler's loop: next task (with a lease), submit an answer, skip.

Queue rules. Each task wants ``required_answers`` answers from distinct labelers; ``open_slots``
counts what is still free (required - counted answers - open leases), so picking a task is one
indexed read in (priority, uncertainty, import order). A labeler never gets a task they answered,
skipped or hold. Leases expire and give their slot back; any request of any server may collect
them. One person's steps are serialised (``users.lock``) so "check, then lease" is atomic per person.

Eligibility is a chain of checks, each refusing with a reason code the labeler sees
(``no_tasks``, ``budget_reached``, ``project_inactive``, and, from other modules through
``QueueHooks``: ``not_qualified``, ``suspended``, ``conflict_of_interest``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.exc import IntegrityError

from labelvault import monitoring
from labelvault.audit import log as audit_log
from labelvault.audit.log import AuditService
from labelvault.crypto.cipher import DataCipher
from labelvault.domain.access import Actor, ProjectPolicy
from labelvault.domain.answers import answer_validator
from labelvault.errors import Conflict, InvalidInput, NotFound, QueueRefused
from labelvault.storage.ids import allocate_ids, one_id_read
from labelvault.storage.models import Answer, Project, Skip, Task, utcnow
from labelvault.storage.scope import Read
from labelvault.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory
from labelvault.workflow import ledger
from labelvault.workflow.auditing import recording_denials
from labelvault.workflow.completion import CompletedTask
from labelvault.workflow.content import open_task_content, open_task_payload
from labelvault.workflow.projects import load_project_settings, schema_of
from labelvault.workflow.review import on_task_complete
from labelvault.workflow.work_time import counted_work_ms

EligibilityCheck = Callable[[UnitOfWork, Actor, Project], None]
# A picker's last argument answers "is regular work left for this labeler?" with the regular pick's
# own walk (done at most once per next, from the labeler's place in the queue).
TaskPicker = Callable[[UnitOfWork, Actor, Project, Callable[[], bool]], Task | None]


@dataclass
class QueueHooks:
    """Extension points for quality (qualification, suspension, gold) and autonomy (walls).

    ``eligibility`` checks raise ``QueueRefused`` with a reason; ``eligibility_reads`` name, in
    the checks' order, the reads the checks will run first (given the project's id), so that a next
    fetches them ahead with its other reads in one round trip (a wrong or missing one costs a round
    trip, never a wrong answer: see ``ScopedSql.prefetch``); ``pickers`` may choose a task
    before the regular order (gold injection), and may ask whether regular work is left (the
    regular pick's walk, which that pick then reuses); ``on_grant`` runs when data is about to be shown;
    ``on_submit`` runs in the submit transaction after the answer is stored (gold scoring);
    ``on_complete`` runs when a task has all its answers, before review is decided, and may add
    required answers (adaptive overlap) by raising ``task.required_answers`` and ``open_slots``.
    All run inside the caller's unit of work and transaction.
    """

    eligibility: list[EligibilityCheck] = field(default_factory=list)
    eligibility_reads: list[Callable[[UnitOfWork, Actor, int], list[Read]]] = field(default_factory=list)
    pickers: list[TaskPicker] = field(default_factory=list)
    on_grant: list[Callable[[UnitOfWork, Actor, Project, Task], None]] = field(default_factory=list)
    on_submit: list[Callable[[UnitOfWork, Actor, Project, Task, int, dict[str, Any]], None]] = field(
        default_factory=list
    )
    on_complete: list[Callable[[UnitOfWork, Project, CompletedTask], None]] = field(default_factory=list)
    # Webhooks (budget.reached): runs after a refusal, once its transaction has rolled back, so a
    # hook that wants to record something opens a transaction of its own.
    on_refused: list[Callable[[Actor, int, int, QueueRefused], None]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LeasedTask:
    task_id: int
    project_id: int
    payload: dict[str, Any]
    suggestions: list[dict[str, Any]]
    lease_started_at: datetime
    lease_expires_at: datetime


@dataclass(frozen=True, slots=True)
class SubmittedAnswer:
    answer_id: int
    task_id: int
    created: bool  # False when an idempotent retry returned the first result
    submitted_at: datetime
    time_spent_ms: int


EXPIRED_PER_CALL = 500


def give_back(uow: UnitOfWork, leases: Iterable[Any]) -> int:
    """End these leases and give their slots back to the queue; how many this transaction ended
    (only the transaction that deleted a lease gives its slot back, so a slot moves once)."""
    returned = 0
    for lease in leases:
        if uow.leases.remove(lease):
            uow.tasks.move_slots(lease.task_id, open_slots=+1)
            returned += 1
    return returned


def expire_leases(uow: UnitOfWork, now: datetime) -> int:
    """Give the slots of expired leases back (bounded work per call; any process may do it).

    In a write batch, once per client: the batch lasts milliseconds, leases minutes."""
    memo = uow.batch_memo
    if memo is not None and ("leases_collected", uow.client_id) in memo:
        return 0
    expired = uow.leases.expired(now, EXPIRED_PER_CALL)
    returned = give_back(uow, expired)
    if returned:
        monitoring.LEASE_EXPIRIES.inc(returned)
    if memo is not None and len(expired) < EXPIRED_PER_CALL:  # none left behind for the next step
        memo["leases_collected", uow.client_id] = True
    return returned


def check_active(_uow: UnitOfWork, _actor: Actor, project: Project) -> None:
    if project.status != "active":
        raise QueueRefused("project_inactive", f"project {project.slug} is {project.status}")


# How many nexts of one project may be between their budget check and their commit at once, unseen
# by each other (PostgreSQL runs them side by side): while the budget has room for that many more
# answers beyond the open leases they cannot overrun it together, and none waits for another.
CONCURRENT_NEXTS = 1000


def check_budget(uow: UnitOfWork, _actor: Actor, project: Project) -> None:
    """Room for the open leases and one more answer, or ``budget_reached``. Near the cap the nexts
    of the project take turns on its row and count again, so that concurrent ones never lease
    beyond the budget together."""
    if project.budget_cap is None:
        return  # no cap: no need to count the open leases
    # Counted with the settings for a next (load_project_settings); a first look, so a count that
    # is a moment old does: near the cap the count below is taken again under the project's lock.
    open_leases = getattr(project, "open_leases", None)
    memo = uow.batch_memo
    if open_leases is not None:
        if memo is not None:
            memo[_OPEN_LEASES, project.id] = open_leases
    elif memo is not None and (_OPEN_LEASES, project.id) in memo:
        open_leases = memo[_OPEN_LEASES, project.id]
    else:
        open_leases = uow.leases.count_in_project(project.id)
    if ledger.budget_left_for(project, open_leases + 1 + CONCURRENT_NEXTS):
        return
    spent = uow.projects.lock_and_read_spent(project.id)
    if not ledger.budget_left_for(project, uow.leases.count_in_project(project.id) + 1, spent=spent):
        raise QueueRefused("budget_reached", f"the budget of project {project.slug} is reached")


# In a write batch, the open leases of a project as first counted in it, plus those its steps have
# given since: an upper bound (leases taken or expired since only lower the true count) that spares
# every next of the batch after the first a count that grows with the labelers at work.
_OPEN_LEASES = "open_leases"


def counted_open_leases(uow: UnitOfWork, project_id: int) -> bool:
    """Whether this write batch knows an upper bound of the project's open leases already."""
    memo = uow.batch_memo
    return memo is not None and (_OPEN_LEASES, project_id) in memo


def _note_lease_given(uow: UnitOfWork, project_id: int) -> None:
    memo = uow.batch_memo
    if memo is not None and (_OPEN_LEASES, project_id) in memo:
        memo[_OPEN_LEASES, project_id] += 1  # an int: replaced, never changed in place


MAX_SKIP_REASON = 500


def sealed_skip(skip_id: int, key: tuple[int, DataCipher], *, project_id: int, task_id: int, user_id: int,
                reason: str, created_at: datetime) -> Skip:
    """A skip row (its id from ``allocate_ids``), its reason sealed under ``key`` (the client's
    active data key and its cipher); nothing sealed for an empty reason."""
    skip = Skip(id=skip_id, project_id=project_id, task_id=task_id, user_id=user_id, created_at=created_at)
    if reason:
        skip.data_key_id, cipher = key
        skip.sealed_reason = cipher.seal("skip.reason", skip_id, reason.encode())
    return skip


def skip_reason(uow: UnitOfWork, skip: Skip) -> str:
    """The reason of a skip: opened, or as written before reasons were sealed."""
    if skip.sealed_reason is None or skip.data_key_id is None:
        return skip.legacy_reason
    return uow.cipher(skip.data_key_id).open("skip.reason", skip.id, skip.sealed_reason).decode()


def _earlier_submit(
    uow: UnitOfWork, actor: Actor, task_id: int, idempotency_key: str | None
) -> SubmittedAnswer | None:
    """The first result of a submit repeated with this key, or None (also without a key);
    Conflict if the key was used for another task."""
    if idempotency_key is None:
        return None
    earlier = uow.answers.by_idempotency_key(actor.user_id, idempotency_key)
    if earlier is None:
        return None
    if earlier.task_id != task_id:
        raise Conflict("idempotency_key was used for another task", details={"field": "idempotency_key"})
    return SubmittedAnswer(earlier.id, task_id, False, earlier.created_at, earlier.time_spent_ms)


class LabelingService:
    def __init__(
        self, uow_factory: UnitOfWorkFactory, hooks: QueueHooks | None = None, audit: AuditService | None = None
    ) -> None:
        self.uow_factory = uow_factory
        self.hooks = hooks or QueueHooks()
        self.audit = audit

    def next_task(self, actor: Actor, client_id: int, project_id: int) -> LeasedTask:
        with recording_denials(self.audit, actor, client_id, "task.lease", "project", project_id):
            try:
                return self._next_task(actor, client_id, project_id)
            except QueueRefused as refusal:
                for refused in self.hooks.on_refused:  # webhooks: budget.reached
                    refused(actor, client_id, project_id, refusal)
                raise

    def _next_task(self, actor: Actor, client_id: int, project_id: int) -> LeasedTask:
        now = utcnow()
        with self.uow_factory.for_client(client_id, write=True) as uow:
            # The reads below, up to the eligibility checks', in one round trip (PostgreSQL).
            count_leases = not counted_open_leases(uow, project_id)  # (a write batch may know them)
            if uow.sql.fetches_ahead:
                uow.sql.prefetch(
                    uow.projects.row_with_roles_read(project_id, actor.user_id, open_leases=count_leases),
                    uow.users.lock_read(actor.user_id),
                    uow.leases.expired_read(now, EXPIRED_PER_CALL),
                    uow.leases.open_for_read(actor.user_id, project_id, now),
                    *(read for reads in self.hooks.eligibility_reads for read in reads(uow, actor, project_id)),
                )
            project, access = load_project_settings(uow, project_id, actor, open_leases=count_leases)
            ProjectPolicy.label(access)
            uow.users.lock(actor.user_id)
            # Slots given back now are not in the epoch read with the settings: walk from the start.
            walk_from_start = expire_leases(uow, now) > 0
            lease = uow.leases.open_for(actor.user_id, project_id, now)
            if lease is not None:
                # No hoarding: whoever holds a lease gets the same task back.
                task = uow.tasks.row(lease.task_id)
                assert task is not None
                started, expires = lease.started_at, lease.expires_at
            else:
                for check in (check_active, *self.hooks.eligibility, check_budget):
                    check(uow, actor, project)
                task = self._pick(uow, actor, project, walk_from_start=walk_from_start)
                if task is None:
                    raise QueueRefused("no_tasks", "no tasks left for you in this project")
                started, expires = now, now + timedelta(seconds=project.lease_seconds)
                uow.leases.insert(
                    project_id=project_id,
                    task_id=task.id,
                    user_id=actor.user_id,
                    started_at=started,
                    expires_at=expires,
                )
                uow.tasks.move_slots(task.id, open_slots=-1)
                _note_lease_given(uow, project_id)
                monitoring.LEASES.labels(str(project_id)).inc()
            for grant in self.hooks.on_grant:
                grant(uow, actor, project, task)
            payload, suggestions = open_task_content(uow, task)
            audit_log.append(
                uow,
                "task.shown",
                actor=actor,
                client_id=client_id,
                object_kind="task",
                object_id=task.id,
                details={"project_id": project_id},
            )
            uow.commit()
        return LeasedTask(task.id, project_id, payload, suggestions, started, expires)

    def _pick(self, uow: UnitOfWork, actor: Actor, project: Project, *, walk_from_start: bool) -> Task | None:
        # The regular pick, once walked. When a picker asked and then chose a gold task instead, the
        # regular one stays locked (PostgreSQL) until this transaction ends: others skip it for a moment.
        walked: list[Task | None] = []

        def regular_task() -> Task | None:
            if not walked:
                walked.append(self._pick_regular(uow, actor, project, walk_from_start=walk_from_start))
            return walked[0]

        for picker in self.hooks.pickers:
            task = picker(uow, actor, project, lambda: regular_task() is not None)
            if task is not None:
                return task
        return regular_task()

    def _pick_regular(self, uow: UnitOfWork, actor: Actor, project: Project, *, walk_from_start: bool) -> Task | None:
        # The walk starts where this labeler's last one ended, while the queue epoch read with the
        # settings says no task before that place got a free slot since (storage/queue_cursors.py).
        cursors = self.uow_factory.queue_cursors
        start = None if walk_from_start else cursors.start(project.id, actor.user_id, project.queue_epoch)
        task, resume = uow.tasks.next_for(project.id, actor.user_id, start)
        if resume is not None:
            cursors.advance(project.id, actor.user_id, project.queue_epoch, resume)
        return task  # a row with the task's columns, read as a Task

    def submit(
        self,
        actor: Actor,
        client_id: int,
        project_id: int,
        task_id: int,
        answer: dict[str, Any],
        *,
        idempotency_key: str | None = None,
    ) -> SubmittedAnswer:
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= 100:
            raise InvalidInput("idempotency_key must be 1 to 100 characters", details={"field": "idempotency_key"})
        try:
            with recording_denials(self.audit, actor, client_id, "answer.submit", "task", task_id):
                return self._submit(actor, client_id, project_id, task_id, answer, idempotency_key)
        except IntegrityError:
            # A concurrent twin of this request won the race, or the key names an answer to another
            # task (the unique key of the answers, met by the insert): answer as the first did.
            if idempotency_key is None:
                raise Conflict(f"task {task_id} was answered by you already") from None
            return self._submit(actor, client_id, project_id, task_id, answer, idempotency_key, key_first=True)

    def _submit(
        self,
        actor: Actor,
        client_id: int,
        project_id: int,
        task_id: int,
        answer: dict[str, Any],
        idempotency_key: str | None,
        *,
        key_first: bool = False,
    ) -> SubmittedAnswer:
        """``key_first``: look the idempotency key up before anything else. Otherwise it is looked
        up only if the caller holds no lease on the task: a repeated submit finds its lease gone
        (its first made it the answer), while a first submit, nearly every one, holds it and is
        spared the read; a key already used for another task then fails the insert (see submit)."""
        now = utcnow()
        with self.uow_factory.for_client(client_id, write=True) as uow:
            # The reads below, up to the new answer's id, in one round trip (PostgreSQL).
            if uow.sql.fetches_ahead:
                uow.sql.prefetch(
                    uow.projects.row_with_roles_read(project_id, actor.user_id),
                    uow.users.lock_read(actor.user_id),
                    *([uow.answers.by_idempotency_key_read(actor.user_id, idempotency_key)]
                      if idempotency_key is not None and key_first else []),
                    uow.tasks.row_read(task_id),
                    one_id_read(uow.sql, Answer),
                )
            project, access = load_project_settings(uow, project_id, actor)
            ProjectPolicy.label(access)
            uow.users.lock(actor.user_id)
            if key_first and (earlier := _earlier_submit(uow, actor, task_id, idempotency_key)) is not None:
                return earlier
            task = uow.tasks.row(task_id)
            if task is None or task.project_id != project_id:
                raise NotFound(f"task {task_id} not found")
            answer_id = allocate_ids(uow.sql, Answer, 1, batch_memo=uow.batch_memo)[0]
            # The lease's slot becomes the answer; both back if this submit is refused (rollback).
            taken = uow.leases.take_into_answer(task_id, actor.user_id)
            # A lease is only ever given for a task the person has not answered, and the submit
            # that answers it deletes it: only without one can there be an earlier answer.
            if taken is None:
                if not key_first and (earlier := _earlier_submit(uow, actor, task_id, idempotency_key)) is not None:
                    return earlier
                if uow.answers.exists_for(task_id, actor.user_id):
                    raise Conflict(f"task {task_id} was answered by you already")
            key_id, cipher = uow.active_cipher()  # read with the settings; most often the task's key too
            validator = answer_validator(schema_of(project))
            # The task is opened only if a check reads it (spans, rankings): most schemas' do not.
            normalized = validator(open_task_payload(uow, task) if validator.reads_payload else None, answer)
            if taken is not None:
                counts, started = taken, taken.started_at
            elif task.open_slots > 0 and not uow.skips.exists_for(task_id, actor.user_id):
                counts = uow.tasks.adjust_slots(task_id, open_slots=-1, answers=+1)  # lease lapsed; a slot is free
                started = now
            else:
                raise Conflict(f"your lease on task {task_id} expired and the task has all its answers")
            spent = counted_work_ms(started, now)
            uow.answers.insert(
                id=answer_id,
                project_id=project_id,
                task_id=task_id,
                user_id=actor.user_id,
                data_key_id=key_id,
                value=cipher.seal("answer.value", answer_id, orjson.dumps(normalized)),
                idempotency_key=idempotency_key,
                status="submitted",
                started_at=started,
                created_at=now,
                time_spent_ms=spent,
            )
            if project.pay_on == "submit":
                ledger.append(
                    uow,
                    project,
                    user_id=actor.user_id,
                    kind="answer",
                    amount=ledger.answer_rate(project, list(normalized)),
                    answer_id=answer_id,
                    task_id=task_id,
                )
            for hook in self.hooks.on_submit:
                hook(uow, actor, project, task, answer_id, normalized)
            if counts.answer_count >= counts.required_answers:  # completion: one submit in k
                completed = CompletedTask(task, counts.open_slots, counts.answer_count, counts.required_answers)
                for complete in self.hooks.on_complete:
                    complete(uow, project, completed)
                if completed.answer_count >= completed.required_answers:  # a hook may have asked for more
                    on_task_complete(uow, project, completed)
            audit_log.append(
                uow,
                "answer.submitted",
                actor=actor,
                client_id=client_id,
                object_kind="answer",
                object_id=answer_id,
                details={"task_id": task_id},
            )
            uow.commit()
        monitoring.ANSWERS.labels(str(project_id)).inc()
        return SubmittedAnswer(answer_id, task_id, True, now, spent)

    def release_leases_of(self, actor: Actor, user_id: int) -> dict[int, int]:
        """Give back every task the person holds, to label or to review, in every client (they were
        deactivated): the tasks go back to their queues now, not when the leases would expire
        (``lease_seconds``, up to a week). One transaction and one audit entry per client that had
        any; returns the number released per client id."""
        with self.uow_factory.system() as uow:
            client_ids = uow.clients.ids()
        released: dict[int, int] = {}
        for client_id in client_ids:
            with self.uow_factory.for_client(client_id, write=True) as uow:
                count = give_back(uow, uow.leases.of_user(user_id)) + uow.reviews.drop_leases_of(user_id)
                if count:
                    audit_log.append(uow, "leases.released", actor=actor, client_id=client_id, object_kind="user",
                                     object_id=user_id, details={"leases": count})
                    uow.commit()
                    released[client_id] = count
        return released

    def skip(self, actor: Actor, client_id: int, project_id: int, task_id: int, reason: str = "") -> None:
        with self.uow_factory.for_client(client_id, write=True) as uow:
            ProjectPolicy.label(load_project_settings(uow, project_id, actor)[1])
            uow.users.lock(actor.user_id)
            task = uow.tasks.row(task_id)
            if task is None or task.project_id != project_id:
                raise NotFound(f"task {task_id} not found")
            if uow.leases.take(task_id, actor.user_id) is None:
                raise Conflict(f"you hold no lease on task {task_id}")
            uow.tasks.move_slots(task_id, open_slots=+1)
            uow.skips.add(sealed_skip(allocate_ids(uow.sql, Skip, 1)[0], uow.active_cipher(),
                                      project_id=project_id, task_id=task_id, user_id=actor.user_id,
                                      reason=reason[:MAX_SKIP_REASON], created_at=utcnow()))
            audit_log.append(
                uow, "task.skipped", actor=actor, client_id=client_id, object_kind="task", object_id=task_id
            )
            uow.commit()
