"""Repositories: the queries of each aggregate. They never commit (the unit of work does) and
never filter by client themselves (the scoped session does, see scope.py).

The queue's statements (leases, slots, answers, data keys, roles) run on every next and submit:
they are prebuilt Core statements (``scoped(...)`` at import, ``self.sql.run`` per call), about
ten times cheaper per execution than ORM ones, and return rows whose attributes are the columns.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from sqlalchemy import (
    BigInteger,
    Float,
    Row,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from labelvault.storage.models import (
    Answer,
    ApiToken,
    Client,
    DataKey,
    GoldScore,
    LabelerSkill,
    Lease,
    LedgerEntry,
    LoginFailure,
    Membership,
    Project,
    ProjectSpend,
    QualificationResult,
    QualityCache,
    Review,
    ReviewLease,
    Skip,
    Suspension,
    Task,
    User,
    WebSession,
    spend_total,
    stripe_of,
    utcnow,
)
from labelvault.storage.queue_cursors import QueuePosition, ReviewPosition
from labelvault.storage.scope import Read, Scoped, ScopedSql, Unscoped, in_scope, scoped

_tasks = Task.__table__
_leases = Lease.__table__
_answers = Answer.__table__
_skips = Skip.__table__
_memberships = Membership.__table__
_data_keys = DataKey.__table__
_projects = Project.__table__
_suspensions = Suspension.__table__
_users = User.__table__


def _seen_by_user(table: Any) -> Any:
    """The user answered, skipped or holds the task (a correlated subquery, in the client's scope)."""
    return exists().where(table.c.task_id == _tasks.c.id, table.c.user_id == bindparam("user_id"), in_scope(table))


def _unseen(*, fenced: bool = False) -> list[Any]:
    """Not seen by the user. ``fenced`` (PostgreSQL): OFFSET 0 keeps each check a subquery that
    probes its unique (task, user) index once per task walked. Without it PostgreSQL may turn the
    checks into joins planned from the tables' statistics, and a plan made while they said
    "answers is empty" (a new project) reads all the user's answers for every task walked: kept as
    the statement's generic plan, it made every next slower as the labeler worked."""
    if not fenced:
        return [~_seen_by_user(t) for t in (_answers, _skips, _leases)]
    return [
        ~select(literal_column("1"))
        .where(t.c.task_id == _tasks.c.id, t.c.user_id == bindparam("user_id"), in_scope(t))
        .offset(literal_column("0"))
        .exists()
        for t in (_answers, _skips, _leases)
    ]


# "open_slots > 0" as a literal, not a bound parameter: only then can PostgreSQL prove that the
# partial queue index (WHERE open_slots > 0) applies to a generic plan. The statements are prepared
# on each connection (pg_direct.py), PostgreSQL may switch a prepared statement to a generic plan
# after 5 runs, and a generic plan of "open_slots > $2" scans and sorts every task of the project
# (seconds at 1M tasks) instead of reading one index entry.
def _in_queue() -> tuple[Any, ...]:
    return _tasks.c.project_id == bindparam("project_id"), _tasks.c.open_slots > literal_column("0")


def _position_parameters(prefix: str = "") -> tuple[Any, ...]:
    return (bindparam(f"{prefix}priority", type_=BigInteger()), bindparam(f"{prefix}uncertainty", type_=Float()),
            bindparam(f"{prefix}id", type_=_tasks.c.id.type))


def _sqlite_next_task(*after: Any) -> Scoped:
    """The first task with a free slot that the user has not seen, in queue order (from the start,
    or within the range ``after``)."""
    query = (
        select(_tasks)
        .where(*_in_queue(), *after, *_unseen())
        .order_by(_tasks.c.priority.desc(), _tasks.c.uncertainty.desc(), _tasks.c.id)
        .limit(1)
    )
    return scoped(query)


def _sqlite_ranges_from() -> tuple[Scoped, ...]:
    """The queue after a position (queue_cursors.py) as three ranges, to be read in turn: the rest
    of its priority and uncertainty by id, the rest of its priority by uncertainty, the lower
    priorities. SQLite uses no index for a row comparison; each range is one of ix_tasks_queue."""
    priority, uncertainty, task_id = _position_parameters()
    return (
        _sqlite_next_task(_tasks.c.priority == priority, _tasks.c.uncertainty == uncertainty, _tasks.c.id >= task_id),
        _sqlite_next_task(_tasks.c.priority == priority, _tasks.c.uncertainty < uncertainty),
        _sqlite_next_task(_tasks.c.priority < priority),
    )


def _postgresql_next_task(*, wait: bool = False) -> Scoped:
    """The first unseen task with a free slot from a position that no other transaction holds
    (FOR UPDATE SKIP LOCKED), and the first unseen one whether held or not: the position the
    labeler's next walk may start from. A walk must not pass over a task only because it was held
    for a moment (being leased or answered by someone else): it may still want this labeler's
    answer. The held one's place is read first (``first_unseen``), and the locking read starts
    there; usually both stop at the same task. The index holds the order in one direction
    (ix_tasks_queue_rank on generated columns -priority, -uncertainty, left out of the model), so
    "from a position" is one row comparison on it.

    LIMIT 1 literal: with a bound LIMIT PostgreSQL cannot cost a generic plan for one row and plans
    the statement afresh at every run (1.4 ms of its CPU, more than the run). One generic plan fits
    every labeler now that a walk starts where their last one ended.

    ``wait``: the same pick, waiting for a task another transaction holds instead of skipping it
    (then looking at it as that transaction left it): the last walk before "no tasks left", so that
    a task held for a moment by someone else is not taken for a full one."""
    rank = (literal_column("tasks.queue_rank_priority", BigInteger()),
            literal_column("tasks.queue_rank_uncertainty", Float()), _tasks.c.id)
    first_unseen = (
        select(rank[0].label("rank_priority"), rank[1].label("rank_uncertainty"), rank[2].label("rank_id"))
        .where(*_in_queue(), in_scope(_tasks), tuple_(*rank) >= tuple_(*_position_parameters("rank_")),
               *_unseen(fenced=True))
        .order_by(*rank)
        .limit(literal_column("1"))
        .cte("first_unseen")
    )
    resume = [select(column).scalar_subquery() for column in first_unseen.c]
    query = (
        select(_tasks, *[value.label(column.name) for value, column in zip(resume, first_unseen.c, strict=True)])
        .where(*_in_queue(), tuple_(*rank) >= tuple_(*resume), *_unseen(fenced=True))
        .order_by(*rank)
        .limit(literal_column("1"))
        .with_for_update(skip_locked=not wait, of=_tasks)
    )
    return scoped(query)


_SQLITE_NEXT_TASK = _sqlite_next_task()
_SQLITE_RANGES_FROM = _sqlite_ranges_from()
_POSTGRESQL_NEXT_TASK = _postgresql_next_task()
_POSTGRESQL_NEXT_TASK_WAITING = _postgresql_next_task(wait=True)
# The start of PostgreSQL's order, as -priority (of a 32-bit integer), -uncertainty, id.
_QUEUE_START = {"rank_priority": -(2**31), "rank_uncertainty": float("-inf"), "rank_id": 0}
_TASK_ROW = scoped(select(_tasks).where(_tasks.c.id == bindparam("task_id")))
# The same, its row locked until the transaction ends (PostgreSQL; SQLite's writer holds the file).
_TASK_ROW_LOCKED = scoped(select(_tasks).where(_tasks.c.id == bindparam("task_id")).with_for_update(of=_tasks))
_MOVE_SLOTS_STATEMENT = (
    update(_tasks)
    .where(_tasks.c.id == bindparam("task_id"))
    .values(open_slots=_tasks.c.open_slots + bindparam("open_delta"),
            answer_count=_tasks.c.answer_count + bindparam("answer_delta"),
            required_answers=_tasks.c.required_answers + bindparam("required_delta"))
)
_MOVE_SLOTS = scoped(_MOVE_SLOTS_STATEMENT)
_ADJUST_SLOTS = scoped(
    _MOVE_SLOTS_STATEMENT.returning(_tasks.c.open_slots, _tasks.c.answer_count, _tasks.c.required_answers)
)
# A submit's lease taken and its slot counted as the answer, in one statement (PostgreSQL: a
# data-modifying CTE; SQLite has none, and runs _LEASE_TAKE and _ADJUST_SLOTS in turn).
_taken_lease = (
    delete(_leases)
    .where(_leases.c.task_id == bindparam("task_id"), _leases.c.user_id == bindparam("user_id"), in_scope(_leases))
    .returning(_leases.c.started_at)
    .cte("taken")
)
_TAKE_INTO_ANSWER = scoped(
    update(_tasks)
    .where(_tasks.c.id == bindparam("task_id"), exists(select(_taken_lease.c.started_at)))
    .values(answer_count=_tasks.c.answer_count + 1)
    .returning(select(_taken_lease.c.started_at).scalar_subquery().label("started_at"),
               _tasks.c.open_slots, _tasks.c.answer_count, _tasks.c.required_answers)
)
_LEASE_OPEN_FOR = scoped(
    select(_leases)
    .where(_leases.c.user_id == bindparam("user_id"), _leases.c.project_id == bindparam("project_id"),
           _leases.c.expires_at > bindparam("now", type_=_leases.c.expires_at.type))
    .order_by(_leases.c.id)
    .limit(1)
)
_LEASE_TAKE = scoped(
    delete(_leases).where(_leases.c.task_id == bindparam("task_id"), _leases.c.user_id == bindparam("user_id"))
    .returning(*_leases.c)
)
_LEASES_EXPIRED = scoped(
    select(_leases)
    .where(_leases.c.expires_at <= bindparam("now", type_=_leases.c.expires_at.type))
    .order_by(_leases.c.expires_at)
    .limit(bindparam("limit"))
)
_LEASE_DELETE = scoped(delete(_leases).where(_leases.c.id == bindparam("lease_id")))
_LEASES_OF_USER = scoped(select(_leases).where(_leases.c.user_id == bindparam("user_id")).order_by(_leases.c.id))
_LEASES_IN_PROJECT = scoped(
    select(func.count()).select_from(_leases).where(_leases.c.project_id == bindparam("project_id"))
)
_LEASE_INSERT = scoped(insert(_leases))
_ANSWER_BY_KEY = scoped(
    select(_answers.c.id, _answers.c.task_id, _answers.c.created_at, _answers.c.time_spent_ms).where(
        _answers.c.user_id == bindparam("user_id"), _answers.c.idempotency_key == bindparam("key")
    )
)
_ANSWER_EXISTS = scoped(
    select(_answers.c.id).where(_answers.c.task_id == bindparam("task_id"), _answers.c.user_id == bindparam("user_id"))
)
_ANSWER_INSERT = scoped(insert(_answers))
# A restored answer's review (offboarding bundles): when, and the reviewer's note sealed under its new id.
_RESTORE_ANSWER_REVIEW = scoped(
    update(_answers).where(_answers.c.id == bindparam("answer_id"))
    .values(reviewed_at=bindparam("at", type_=_answers.c.reviewed_at.type),
            review_note=bindparam("note", type_=_answers.c.review_note.type))
)
_SKIP_EXISTS = scoped(
    select(_skips.c.id).where(_skips.c.task_id == bindparam("task_id"), _skips.c.user_id == bindparam("user_id"))
)
_ROLES_OF = scoped(select(_memberships.c.role).where(_memberships.c.user_id == bindparam("user_id")))
_DATA_KEY = scoped(select(_data_keys).where(_data_keys.c.id == bindparam("key_id")))
_ACTIVE_DATA_KEY = scoped(
    select(_data_keys).where(_data_keys.c.active.is_(True)).order_by(_data_keys.c.id.desc()).limit(1)
)
_project_spend = ProjectSpend.__table__
_clients = Client.__table__
_spent = spend_total().where(in_scope(_project_spend)).scalar_subquery().label("spent")
# The client's active data key (as _ACTIVE_DATA_KEY), read with the settings: nearly every next and
# submit then opens and seals with it, and need not read its row again (DataKeyRepository).
_active_key = select(_data_keys).where(_data_keys.c.active.is_(True), in_scope(_data_keys)).order_by(
    _data_keys.c.id.desc()).limit(1).subquery()
_active_key_id = select(_active_key.c.id).scalar_subquery().label("active_key_id")
_active_wrapped_key = select(_active_key.c.wrapped_key).scalar_subquery().label("active_wrapped_key")
# The queue reads the settings, the spend so far (the sum of the stripes), the client's currency,
# its active data key and the caller's roles in the client in one statement.
_project_settings = (
    select(_projects, _spent, _clients.c.currency, _active_key_id, _active_wrapped_key)
    .join(_clients, _clients.c.id == _projects.c.client_id)
    .where(_projects.c.id == bindparam("project_id"))
)


# For a next: the project's open leases, counted only under a budget cap (the budget check's first
# look, labeling.check_budget; both databases evaluate a CASE branch's subquery only when taken).
_open_leases = case(
    (_projects.c.budget_cap.is_(None), None),
    else_=select(func.count()).select_from(_leases)
    .where(_leases.c.project_id == _projects.c.id, in_scope(_leases)).scalar_subquery(),
).label("open_leases")


def _with_roles(aggregate: Any, *extra: Any) -> Scoped:
    return scoped(_project_settings.add_columns(
        select(aggregate)
        .where(_memberships.c.user_id == bindparam("user_id"), in_scope(_memberships))
        .scalar_subquery()
        .label("roles"),
        *extra,
    ))


# The separator written into the SQL (func.aggregate_strings binds it in a way prepared plans do not take).
_ROLES_AGGREGATE = {
    "sqlite": func.group_concat(_memberships.c.role, literal_column("','")),
    "postgresql": func.string_agg(_memberships.c.role, literal_column("','")),
}
_PROJECT_ROW_WITH_ROLES = {dialect: _with_roles(aggregate) for dialect, aggregate in _ROLES_AGGREGATE.items()}
_PROJECT_ROW_FOR_NEXT = {dialect: _with_roles(aggregate, _open_leases)
                         for dialect, aggregate in _ROLES_AGGREGATE.items()}
# Near a budget cap the nexts of a project take turns on its row (see labeling.check_budget); NO KEY
# UPDATE, so that inserts referencing the project (their foreign-key checks) do not wait for it.
_LOCK_PROJECT = scoped(select(_projects.c.id).where(_projects.c.id == bindparam("project_id"))
                       .with_for_update(key_share=True))
_PROJECT_SPENT = scoped(select(_spent).select_from(_projects).where(_projects.c.id == bindparam("project_id")))
# A new queue epoch for the project (migration e1a7c3b9d5f2 and queue_cursors.py), as its trigger on
# tasks sets it: on PostgreSQL the writing transaction's id, written once per transaction.
_NEW_QUEUE_EPOCH = {
    "sqlite": scoped(update(_projects).where(_projects.c.id == bindparam("project_id"))
                     .values(queue_epoch=_projects.c.queue_epoch + 1)),
    "postgresql": scoped(update(_projects)
                         .where(_projects.c.id == bindparam("project_id"),
                                _projects.c.queue_epoch != func.txid_current())
                         .values(queue_epoch=func.txid_current())),
}
_BUMP_QUALITY_VERSION = scoped(
    update(_projects)
    .where(_projects.c.id == bindparam("project_id"))
    .values(quality_version=_projects.c.quality_version + 1)
)
_SET_REVIEW_STATE = scoped(
    update(_tasks).where(_tasks.c.id == bindparam("task_id")).values(review_state=bindparam("state"))
)
# A task joins the review queue at its end (review_seq, see ReviewRepository.next_for): on PostgreSQL
# numbered by its transaction's id, which the reviewers' places never pass while it runs; on SQLite,
# whose writers take turns, by the project's highest number + 1 (ix_tasks_review_seq).
_numbered = _tasks.alias("numbered")
_MARK_PENDING = {
    "sqlite": scoped(update(_tasks).where(_tasks.c.id == bindparam("task_id")).values(
        review_state="pending",
        review_seq=select(func.coalesce(func.max(_numbered.c.review_seq), 0) + 1)
        .where(_numbered.c.project_id == bindparam("project_id"), in_scope(_numbered))
        .scalar_subquery())),
    "postgresql": scoped(update(_tasks).where(_tasks.c.id == bindparam("task_id"))
                         .values(review_state="pending", review_seq=func.txid_current())),
}
_ACCEPT_SUBMITTED = scoped(
    update(_answers)
    .where(_answers.c.task_id == bindparam("task_id"), _answers.c.status == "submitted")
    .values(status="accepted", reviewed_at=bindparam("reviewed_at", type_=_answers.c.reviewed_at.type))
)
_ANSWERS_IN_PROJECT = scoped(
    select(func.count()).select_from(_answers).where(_answers.c.project_id == bindparam("project_id"))
)
_ACTIVE_SUSPENSION = scoped(
    select(_suspensions.c.id)
    .where(_suspensions.c.project_id == bindparam("project_id"), _suspensions.c.user_id == bindparam("user_id"),
           _suspensions.c.lifted_at.is_(None))
    .order_by(_suspensions.c.id.desc())
    .limit(1)
)
_ledger = LedgerEntry.__table__
_LEDGER_INSERT = scoped(insert(_ledger))


def _add_to_stripe(insert_for_dialect: Any) -> Scoped:
    statement = insert_for_dialect(_project_spend)
    return scoped(statement.on_conflict_do_update(
        index_elements=[_project_spend.c.project_id, _project_spend.c.stripe],
        set_={"amount": _project_spend.c.amount + statement.excluded.amount},
    ))


_ADD_SPENT = {"sqlite": _add_to_stripe(sqlite_insert), "postgresql": _add_to_stripe(postgresql_insert)}
_CURRENCY = Unscoped(select(_clients.c.currency).where(_clients.c.id == bindparam("client_id")))
_tokens = ApiToken.__table__
# Every API request whose token is not in the process's short cache: the token and its owner at once.
_TOKEN_OWNER = Unscoped(
    select(_tokens.c.id, _tokens.c.scopes, _tokens.c.revoked_at, _users.c.id.label("user_id"),
           _users.c.username, _users.c.is_operator, _users.c.is_active)
    .join(_users, _users.c.id == _tokens.c.user_id)
    .where(_tokens.c.token_hash == bindparam("token_hash"))
)
_LOCK_USER = Unscoped(select(_users.c.id).where(_users.c.id == bindparam("user_id")).with_for_update())

# --- The reviewer queue (ReviewRepository): pending tasks in (review_seq, id) order, the oldest in
# the queue first, from ix_tasks_review_pending.
_review_leases = ReviewLease.__table__
_reviews = Review.__table__
_review_order = (_tasks.c.review_seq, _tasks.c.id)


def _review_pending_from(dialect: str) -> tuple[Any, ...]:
    """Pending tasks of the project from a place (from_seq, from_id). PostgreSQL answers the row
    comparison with one index range; SQLite reads the range from from_seq and filters the rest
    of its own number (one task, but every task pending before migration b6d8f0a2c4e7 has 0)."""
    seq, task_id = bindparam("from_seq", type_=BigInteger()), bindparam("from_id", type_=_tasks.c.id.type)
    after = (tuple_(*_review_order) >= tuple_(seq, task_id),) if dialect == "postgresql" else (
        _tasks.c.review_seq >= seq, or_(_tasks.c.review_seq > seq, _tasks.c.id >= task_id))
    # A literal 'pending', as for the queue's open_slots: a generic plan then proves the partial index.
    return (_tasks.c.project_id == bindparam("project_id"), _tasks.c.review_state == literal_column("'pending'"),
            *after)


# Fenced with OFFSET 0 (see _unseen): a probe of uq_answers_task_user per task walked.
_not_answered_by_reviewer = ~(select(literal_column("1"))
                              .where(_answers.c.task_id == _tasks.c.id, _answers.c.user_id == bindparam("user_id"),
                                     in_scope(_answers))
                              .offset(literal_column("0")).exists())
_not_held = ~(select(literal_column("1"))
              .where(_review_leases.c.task_id == _tasks.c.id,
                     _review_leases.c.expires_at > bindparam("now", type_=_review_leases.c.expires_at.type),
                     in_scope(_review_leases))
              .exists())


def _review_pick(dialect: str) -> Scoped:
    """The oldest pending task from a place that nobody holds and the reviewer did not answer (on
    PostgreSQL locked, skipping what another transaction holds)."""
    query = (select(_tasks).where(*_review_pending_from(dialect), _not_held, _not_answered_by_reviewer)
             .order_by(*_review_order).limit(literal_column("1")))
    if dialect == "postgresql":
        query = query.with_for_update(skip_locked=True, of=_tasks)
    return scoped(query)


def _review_place(dialect: str) -> Scoped:
    """Where the reviewer's next walk may start: the first pending task from a place that they did
    not answer, held or not (``first_seq``, ``first_id``: None if there is none), and the number
    below which every task that is pending or will be is in sight (``in_sight_below``): on
    PostgreSQL the oldest transaction still running when the statement's snapshot was taken (a
    task it makes pending is not seen yet), on SQLite the project's highest number + 1."""
    first = (select(*_review_order).where(*_review_pending_from(dialect), _not_answered_by_reviewer,
                                          in_scope(_tasks))
             .order_by(*_review_order).limit(literal_column("1")).subquery("first_unanswered"))
    if dialect == "postgresql":
        in_sight: Any = func.txid_snapshot_xmin(func.txid_current_snapshot())
    else:
        in_sight = (select(func.coalesce(func.max(_numbered.c.review_seq), 0) + 1)
                    .where(_numbered.c.project_id == bindparam("project_id"), in_scope(_numbered))
                    .scalar_subquery())
    return scoped(select(select(first.c.review_seq).scalar_subquery().label("first_seq"),
                         select(first.c.id).scalar_subquery().label("first_id"),
                         in_sight.label("in_sight_below")))


_REVIEW_PICK = {dialect: _review_pick(dialect) for dialect in ("sqlite", "postgresql")}
_REVIEW_PLACE = {dialect: _review_place(dialect) for dialect in ("sqlite", "postgresql")}
_REVIEW_START = ReviewPosition(-(2**62), 0)
_REVIEW_LEASE_OF_REVIEWER = scoped(
    select(_review_leases)
    .where(_review_leases.c.user_id == bindparam("user_id"), _review_leases.c.project_id == bindparam("project_id"),
           _review_leases.c.expires_at > bindparam("now", type_=_review_leases.c.expires_at.type))
    .order_by(_review_leases.c.id)
    .limit(1)
)
_REVIEW_LEASE_ON = scoped(select(_review_leases).where(_review_leases.c.task_id == bindparam("task_id")))
_REVIEW_LEASE_DROP = scoped(delete(_review_leases).where(_review_leases.c.task_id == bindparam("task_id")))
_REVIEW_LEASE_INSERT = scoped(insert(_review_leases))
_REVIEW_LEASES_OF_USER_DROP = scoped(delete(_review_leases).where(_review_leases.c.user_id == bindparam("user_id")))
_REVIEW_INSERT = scoped(insert(_reviews))
# The answers a reviewer decides on, with their labelers' names (users is no client's table).
_ANSWERS_FOR_REVIEW = scoped(
    select(_answers.c.id, _answers.c.task_id, _answers.c.user_id, _answers.c.data_key_id, _answers.c.value,
           _answers.c.status, _answers.c.created_at, _answers.c.time_spent_ms, _users.c.username)
    .join(_users, _users.c.id == _answers.c.user_id)
    .where(_answers.c.task_id == bindparam("task_id"), _answers.c.status != "rejected")
    .order_by(_answers.c.id)
)
_SET_COUNTED_STATUS = scoped(
    update(_answers)
    .where(_answers.c.task_id == bindparam("task_id"), _answers.c.status != "rejected")
    .values(status=bindparam("status"), reviewed_at=bindparam("reviewed_at", type_=_answers.c.reviewed_at.type))
)
_REJECT_ANSWER = scoped(
    update(_answers)
    .where(_answers.c.id == bindparam("answer_id"))
    .values(status="rejected", reviewed_at=bindparam("reviewed_at", type_=_answers.c.reviewed_at.type),
            review_note=bindparam("review_note"))
)


def _review_walk(project_id: int, reviewer_id: int, start: ReviewPosition | None) -> dict[str, Any]:
    start = start or _REVIEW_START
    return {"project_id": project_id, "user_id": reviewer_id, "from_seq": start.review_seq, "from_id": start.task_id}


class SessionOwner(Protocol):
    """What a repository is made from (a unit of work): its statement runner now, and its ORM
    session only when a method needs one (a unit of work of a write batch makes it on first use)."""

    @property
    def sql(self) -> ScopedSql: ...

    @property
    def session(self) -> Session: ...


class _Repository:
    def __init__(self, owner: Session | SessionOwner) -> None:
        if isinstance(owner, Session):
            self._session: Session | None = owner
            self._owner: SessionOwner | None = None
            self.sql = ScopedSql.of(owner)
        else:
            self._session = None
            self._owner = owner
            self.sql = owner.sql

    @property
    def session(self) -> Session:
        session = self._session
        if session is None:
            session = self._session = self._owner.session  # type: ignore[union-attr]
        return session

    def add(self, obj: Any) -> Any:
        self.session.add(obj)
        self.session.flush()
        return obj


class ClientRepository(_Repository):
    def get(self, client_id: int) -> Client | None:
        return self.session.get(Client, client_id)

    def ids(self) -> list[int]:
        return list(self.session.scalars(select(Client.id).order_by(Client.id)))

    def by_slug(self, slug: str) -> Client | None:
        return self.session.scalar(select(Client).where(Client.slug == slug))

    def list(self, *, offset: int = 0, limit: int = 100) -> Sequence[Client]:
        return self.session.scalars(select(Client).order_by(Client.id).offset(offset).limit(limit)).all()

    def count(self) -> int:
        return self.session.scalar(select(func.count()).select_from(Client)) or 0


class UserRepository(_Repository):
    def get(self, user_id: int) -> User | None:
        return self.session.get(User, user_id)

    def by_username(self, username: str) -> User | None:
        return self.session.scalar(select(User).where(User.username == username))

    def usernames(self, user_ids: set[int]) -> dict[int, str]:
        if not user_ids:
            return {}
        rows = self.session.execute(select(User.id, User.username).where(User.id.in_(user_ids)))
        return {user_id: username for user_id, username in rows}

    def list(self, *, offset: int = 0, limit: int = 100) -> Sequence[User]:
        return self.session.scalars(select(User).order_by(User.id).offset(offset).limit(limit)).all()

    def count(self) -> int:
        return self.session.scalar(select(func.count()).select_from(User)) or 0

    def first_operator(self) -> User | None:
        query = select(User).where(User.is_operator.is_(True), User.is_active.is_(True)).order_by(User.id)
        return self.session.scalar(query.limit(1))

    def lock(self, user_id: int) -> None:
        """Serialise one person's queue steps (check-then-act) across transactions and servers.

        PostgreSQL: a row lock on the user until commit. SQLite needs none: writers hold the
        database's single write lock (BEGIN IMMEDIATE) for the whole transaction. Nothing reads
        the row: the statement goes with the transaction's next one, which runs once it holds the
        lock (a deferred statement, see ``ScopedSql.run``).
        """
        if self.sql.dialect_name == "postgresql":
            self.sql.run(*self.lock_read(user_id), defer=True)

    @staticmethod
    def lock_read(user_id: int) -> Read:
        """``lock``'s statement, for ``ScopedSql.prefetch`` (a row lock runs again harmlessly)."""
        return _LOCK_USER, {"user_id": user_id}

    def operators_exist(self) -> bool:
        return bool(self.session.scalar(select(exists().where(User.is_operator.is_(True)))))


class TokenRepository(_Repository):
    def owner_by_hash(self, token_hash: str) -> Row[Any] | None:
        """(token id, scopes, revoked_at, user_id, username, is_operator, is_active), one prepared read."""
        return self.sql.run(_TOKEN_OWNER, {"token_hash": token_hash}).first()

    def get(self, token_id: int) -> ApiToken | None:
        return self.session.get(ApiToken, token_id)

    def of_user(self, user_id: int, *, offset: int = 0, limit: int = 100) -> Sequence[ApiToken]:
        query = select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)
        return self.session.scalars(query.offset(offset).limit(limit)).all()

    def count_of_user(self, user_id: int) -> int:
        query = select(func.count()).select_from(ApiToken).where(ApiToken.user_id == user_id)
        return self.session.scalar(query) or 0


class MembershipRepository(_Repository):
    def roles_of(self, user_id: int) -> set[str]:
        return set(self.sql.run(_ROLES_OF, {"user_id": user_id}).scalars())

    def of_user(self, user_id: int) -> Sequence[Membership]:
        """Every membership of a user; across clients only in an all-clients unit of work."""
        query = select(Membership).where(Membership.user_id == user_id).order_by(Membership.client_id)
        return self.session.scalars(query).all()

    def find(self, user_id: int, role: str) -> Membership | None:
        return self.session.scalar(
            select(Membership).where(Membership.user_id == user_id, Membership.role == role)
        )

    def list(self, *, offset: int = 0, limit: int = 100) -> Sequence[Membership]:
        query = select(Membership).order_by(Membership.id).offset(offset).limit(limit)
        return self.session.scalars(query).all()

    def remove(self, membership: Membership) -> None:
        self.session.delete(membership)
        self.session.flush()


class _TakenLease(NamedTuple):
    started_at: datetime
    open_slots: int
    answer_count: int
    required_answers: int


class ActiveKey(NamedTuple):
    """The columns of a data key that the cipher needs."""

    id: int
    wrapped_key: bytes


class DataKeyRepository(_Repository):
    """A client's data keys (wrapped). Rows read are remembered for the unit of work (or, in a write
    batch, for the batch's units of work of the same client: ``remember_in``): a submit seals the
    answer with the active key and opens the task with its own key, most often the same row. Keys
    are only ever added (``add`` forgets what was remembered)."""

    _ACTIVE = "active"

    def __init__(self, owner: Session | SessionOwner) -> None:
        super().__init__(owner)
        self._read: dict[int | str, Row[Any] | ActiveKey] = {}

    def remember_in(self, shared: dict[int | str, Row[Any] | ActiveKey]) -> None:
        self._read = shared

    def remember_active(self, key: ActiveKey) -> None:
        """The active key as read with other rows (the project's settings): its row need not be read."""
        self._read[key.id] = self._read[self._ACTIVE] = key

    def get(self, key_id: int) -> Row[Any] | ActiveKey | None:
        if (key := self._read.get(key_id)) is not None:
            return key
        key = self.sql.run(_DATA_KEY, {"key_id": key_id}).first()
        if key is not None:
            self._read[key_id] = key
        return key

    def active(self) -> Row[Any] | ActiveKey | None:
        if (key := self._read.get(self._ACTIVE)) is not None:
            return key
        key = self.sql.run(_ACTIVE_DATA_KEY).first()
        if key is not None:
            self._read[key.id] = self._read[self._ACTIVE] = key
        return key

    def add(self, obj: Any) -> Any:
        self._read.clear()
        return super().add(obj)


class ProjectRepository(_Repository):
    def get(self, project_id: int) -> Project | None:
        return self.session.get(Project, project_id)

    def lock_and_read_spent(self, project_id: int) -> int:
        """Take the project's row (PostgreSQL; SQLite's writers take turns anyway) until the commit,
        then read what it has spent, as committed by the transactions that held it before."""
        self.sql.run(_LOCK_PROJECT, {"project_id": project_id})
        return int(self.sql.run(_PROJECT_SPENT, {"project_id": project_id}).scalar_one())

    def row_with_roles(self, project_id: int, user_id: int, *, open_leases: bool = False) -> Row[Any] | None:
        """The project's columns, read-only (the queue reads settings; it changes nothing on the row),
        with ``spent``, the client's ``currency``, its active data key (``active_key_id``,
        ``active_wrapped_key``) and ``roles``: the user's roles in the client, comma-separated (or None).
        With ``open_leases`` (a next) also the project's open leases, counted under a budget cap
        (None without one)."""
        return self.sql.run(*self.row_with_roles_read(project_id, user_id, open_leases=open_leases)).first()

    def row_with_roles_read(self, project_id: int, user_id: int, *, open_leases: bool = False) -> Read:
        statements = _PROJECT_ROW_FOR_NEXT if open_leases else _PROJECT_ROW_WITH_ROLES
        return statements[self.sql.dialect_name], {"project_id": project_id, "user_id": user_id}

    def by_slug(self, slug: str) -> Project | None:
        return self.session.scalar(select(Project).where(Project.slug == slug))

    def in_client_by_slug(self, client_id: int, slug: str) -> Project | None:
        """For the all-clients directory lookup; in a client scope, by_slug is enough."""
        return self.session.scalar(select(Project).where(Project.client_id == client_id, Project.slug == slug))

    def list(self, *, offset: int = 0, limit: int = 100) -> Sequence[Project]:
        query = select(Project).order_by(Project.id).offset(offset).limit(limit)
        return self.session.scalars(query).all()

    def count(self) -> int:
        return self.session.scalar(select(func.count()).select_from(Project)) or 0


# What a task is waiting for, derived from its counters: one definition, for the state a listing
# shows and the filter it takes. Gold tasks are checks, not work; a task awaiting review has all its
# answers; "open" wants answers (leased or not); "complete" has them (reviewed, or not sampled).
TASK_STATES = ("open", "in_review", "complete", "gold")
task_state_expression = case(
    (Task.is_gold.is_(True), literal_column("'gold'")),
    (Task.review_state == literal_column("'pending'"), literal_column("'in_review'")),
    (Task.answer_count < Task.required_answers, literal_column("'open'")),
    else_=literal_column("'complete'"),
)


def _task_filters(project_id: int, state: str | None, external_id: str | None) -> list[Any]:
    filters: list[Any] = [Task.project_id == project_id]
    if state is not None:
        filters.append(task_state_expression == state)
    if external_id is not None:
        filters.append(Task.external_id == external_id)
    return filters


class TaskRepository(_Repository):
    def get(self, task_id: int) -> Task | None:
        return self.session.get(Task, task_id)

    def row(self, task_id: int) -> Row[Any] | None:
        """The task's columns, read-only (``get`` for an object to change)."""
        return self.sql.run(*self.row_read(task_id)).first()

    @staticmethod
    def row_read(task_id: int) -> Read:
        return _TASK_ROW, {"task_id": task_id}

    def row_locked(self, task_id: int) -> Row[Any] | None:
        """The task's columns, its row locked (``FOR UPDATE``) until the transaction ends: on
        PostgreSQL a transaction that locked it first (the reviewer queue's pick) is waited for."""
        return self.sql.run(*self.row_locked_read(task_id)).first()

    @staticmethod
    def row_locked_read(task_id: int) -> Read:
        return _TASK_ROW_LOCKED, {"task_id": task_id}

    def existing_external_ids(self, project_id: int, external_ids: list[str]) -> set[str]:
        if not external_ids:
            return set()
        query = select(Task.external_id).where(
            Task.project_id == project_id, Task.external_id.in_(external_ids)
        )
        return set(self.session.scalars(query))

    def count(self, project_id: int, *, state: str | None = None, external_id: str | None = None) -> int:
        query = select(func.count()).select_from(Task).where(*_task_filters(project_id, state, external_id))
        return self.session.scalar(query) or 0

    def page(self, project_id: int, *, after_id: int, limit: int) -> Sequence[Task]:
        query = (
            select(Task)
            .where(Task.project_id == project_id, Task.id > after_id)
            .order_by(Task.id)
            .limit(limit)
        )
        return self.session.scalars(query).all()

    def list(self, project_id: int, *, offset: int, limit: int) -> Sequence[Task]:
        query = select(Task).where(Task.project_id == project_id).order_by(Task.id).offset(offset).limit(limit)
        return self.session.scalars(query).all()

    def list_with_states(
        self, project_id: int, *, offset: int, limit: int, state: str | None = None, external_id: str | None = None,
        after_id: int = 0,
    ) -> Sequence[Row[tuple[Task, str]]]:
        """(task, its state) in id order after ``after_id``, of one state or external id when asked
        (see ``TASK_STATES``)."""
        query = (
            select(Task, task_state_expression.label("state"))
            .where(*_task_filters(project_id, state, external_id), Task.id > after_id)
            .order_by(Task.id)
            .offset(offset)
            .limit(limit)
        )
        return self.session.execute(query).all()

    def state_of(self, task_id: int) -> str | None:
        return self.session.scalar(select(task_state_expression).where(Task.id == task_id))

    def set_priority(self, task_ids: Sequence[int], priority: int) -> int:
        """A new priority for these tasks; how many changed. (A trigger on ``tasks`` moves the
        project's queue epoch, so labelers' walks start again from the top: queue_cursors.py.)"""
        if not task_ids:
            return 0
        result = self.session.execute(
            update(Task).where(Task.id.in_(task_ids), Task.priority != priority).values(priority=priority)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)

    def want_more_answers(self, task_ids: Sequence[int], more: int) -> int:
        """These tasks want ``more`` answers each (new free slots); one awaiting review goes back to
        the labelers first (its reviewer's hold is dropped: it will be complete again, and reviewed
        then by the project's policy). A trigger moves the queue epoch (slots given). How many."""
        if not task_ids:
            return 0
        result = self.session.execute(
            update(Task).where(Task.id.in_(task_ids)).values(
                required_answers=Task.required_answers + more, open_slots=Task.open_slots + more,
                review_state=case((Task.review_state == "pending", "none"), else_=Task.review_state),
            ).execution_options(synchronize_session=False)
        )
        self.session.execute(delete(ReviewLease).where(ReviewLease.task_id.in_(task_ids))
                             .execution_options(synchronize_session=False))
        return int(result.rowcount or 0)

    def counts_of(self, task_ids: Sequence[int]) -> Sequence[Row[Any]]:
        """(id, external_id, required_answers, is_gold) of these tasks, in id order."""
        query = (select(Task.id, Task.external_id, Task.required_answers, Task.is_gold)
                 .where(Task.id.in_(task_ids)).order_by(Task.id))
        return self.session.execute(query).all()

    def answered_among(self, task_ids: Sequence[int]) -> list[tuple[int, str | None]]:
        """(id, external id) of those tasks that have an answer (of any status). On PostgreSQL
        their leases' rows and then their own are locked until the transaction ends, in the order a
        submit takes them (it turns its lease into the answer, then counts it on the task): so no
        answer arrives between this look and a removal, and the two never wait for each other."""
        if not task_ids:
            return []
        if self.sql.dialect_name == "postgresql":
            self.session.execute(
                select(Lease.id).where(Lease.task_id.in_(task_ids)).order_by(Lease.id).with_for_update())
            self.session.execute(select(Task.id).where(Task.id.in_(task_ids)).order_by(Task.id).with_for_update())
        answered = (
            select(Task.id, Task.external_id)
            .where(Task.id.in_(task_ids), exists().where(Answer.task_id == Task.id))
            .order_by(Task.id)
        )
        return [(task_id, external_id) for task_id, external_id in self.session.execute(answered)]

    def remove(self, task_ids: Sequence[int]) -> int:
        """Delete these tasks; their leases, skips and model-version marks go with them (the
        foreign keys cascade). Callers make sure none has answers (``answered_among``)."""
        if not task_ids:
            return 0
        result = self.session.execute(
            delete(Task).where(Task.id.in_(task_ids)).execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)

    def ids_by_external_id(self, project_id: int, external_ids: Sequence[str]) -> dict[str, int]:
        if not external_ids:
            return {}
        query = select(Task.external_id, Task.id).where(
            Task.project_id == project_id, Task.external_id.in_(external_ids)
        )
        return {external_id: task_id for external_id, task_id in self.session.execute(query)}

    def ids_in_project(self, project_id: int, task_ids: Sequence[int]) -> set[int]:
        if not task_ids:
            return set()
        query = select(Task.id).where(Task.project_id == project_id, Task.id.in_(task_ids))
        return set(self.session.scalars(query))

    def next_for(
        self, project_id: int, user_id: int, start: QueuePosition | None = None
    ) -> tuple[Row[Any] | None, QueuePosition | None]:
        """The best task with a free slot that this user has not answered, skipped or leased, looked
        for from ``start`` (see queue_cursors.py; None: from the beginning); and the position that
        the user's next walk may start from (None: no unseen task with a free slot is left).

        Nothing found from ``start`` is checked from the beginning: "no tasks left" never rests on
        a position, only on the whole queue; nor, on PostgreSQL, on tasks skipped because another
        transaction held them for a moment: the last walk waits for those."""
        found = self._walk(project_id, user_id, start)
        if found[0] is None and start is not None:
            found = self._walk(project_id, user_id, None)
        if found[0] is None and self.sql.dialect_name == "postgresql":
            found = self._walk(project_id, user_id, None, wait=True)
        return found

    def _walk(
        self, project_id: int, user_id: int, start: QueuePosition | None, *, wait: bool = False
    ) -> tuple[Row[Any] | None, QueuePosition | None]:
        parameters: dict[str, Any] = {"project_id": project_id, "user_id": user_id}
        if self.sql.dialect_name == "postgresql":
            if start is None:
                parameters.update(_QUEUE_START)
            else:
                parameters.update(rank_priority=-start.priority, rank_uncertainty=-start.uncertainty,
                                  rank_id=start.task_id)
            task = self.sql.run(_POSTGRESQL_NEXT_TASK_WAITING if wait else _POSTGRESQL_NEXT_TASK, parameters).first()
            if task is None:
                return None, None
            return task, QueuePosition(-task.rank_priority, -task.rank_uncertainty, task.rank_id)
        if start is None:
            ranges: tuple[Scoped, ...] = (_SQLITE_NEXT_TASK,)
        else:
            ranges = _SQLITE_RANGES_FROM
            parameters.update(priority=start.priority, uncertainty=start.uncertainty, id=start.task_id)
        for statement in ranges:
            task = self.sql.run(statement, parameters).first()
            if task is not None:
                return task, QueuePosition(task.priority, task.uncertainty, task.id)
        return None, None

    def queued(self, project_id: int) -> None:
        """New tasks were added to the project's queue: labelers' walks start from the beginning
        again (queue_cursors.py). Writers of new tasks call it; changes to tasks need not (a trigger
        on tasks moves the epoch)."""
        statement = _NEW_QUEUE_EPOCH[self.sql.dialect_name]
        self.sql.run(statement, {"project_id": project_id}, defer=True)

    def adjust_slots(self, task_id: int, *, open_slots: int = 0, answers: int = 0, required: int = 0) -> Row[Any]:
        """Move the task's counters; returns (open_slots, answer_count, required_answers) after."""
        parameters = {"task_id": task_id, "open_delta": open_slots, "answer_delta": answers,
                      "required_delta": required}
        return self.sql.run(_ADJUST_SLOTS, parameters).one()

    def move_slots(self, task_id: int, *, open_slots: int = 0, answers: int = 0) -> None:
        """Move the task's counters, reading nothing back (a deferred write: see ``ScopedSql.run``)."""
        parameters = {"task_id": task_id, "open_delta": open_slots, "answer_delta": answers, "required_delta": 0}
        self.sql.run(_MOVE_SLOTS, parameters, defer=True)

    def set_review_state(self, task_id: int, state: str, *, project_id: int | None = None) -> None:
        """A deferred write. ``pending`` (with the task's ``project_id``) puts the task at the end of
        the review queue (``review_seq``)."""
        if state == "pending":
            if project_id is None:
                raise ValueError("a task joins the review queue of its project: project_id is needed")
            statement = _MARK_PENDING[self.sql.dialect_name]
            self.sql.run(statement, {"task_id": task_id, "project_id": project_id}, defer=True)
            return
        self.sql.run(_SET_REVIEW_STATE, {"task_id": task_id, "state": state}, defer=True)

    def progress(self, project_id: int) -> tuple[int, int, int]:
        """(tasks, answers needed in all, answers given), gold tasks left out: they are checks, not work."""
        row = self.session.execute(
            select(func.count(), func.coalesce(func.sum(Task.required_answers), 0),
                   func.coalesce(func.sum(Task.answer_count), 0))
            .where(Task.project_id == project_id, Task.is_gold.is_(False))
        ).one()
        return int(row[0]), int(row[1]), int(row[2])


class LeaseRepository(_Repository):
    def open_for(self, user_id: int, project_id: int, now: datetime) -> Row[Any] | None:
        return self.sql.run(*self.open_for_read(user_id, project_id, now)).first()

    @staticmethod
    def open_for_read(user_id: int, project_id: int, now: datetime) -> Read:
        return _LEASE_OPEN_FOR, {"user_id": user_id, "project_id": project_id, "now": now}

    def take_into_answer(self, task_id: int, user_id: int) -> Any:
        """Take the person's lease on the task (``take``) and count its slot as their answer: the
        lease's ``started_at`` and the task's ``open_slots``, ``answer_count`` and
        ``required_answers`` after; None (nothing changed) if they hold no lease on it."""
        if self.sql.dialect_name == "postgresql":
            return self.sql.run(_TAKE_INTO_ANSWER, {"task_id": task_id, "user_id": user_id}).first()
        lease = self.take(task_id, user_id)
        if lease is None:
            return None
        counts = self.sql.run(_ADJUST_SLOTS, {"task_id": task_id, "open_delta": 0, "answer_delta": 1,
                                              "required_delta": 0}).one()
        return _TakenLease(lease.started_at, counts.open_slots, counts.answer_count, counts.required_answers)

    def take(self, task_id: int, user_id: int) -> Row[Any] | None:
        """Delete the person's lease on the task and return it; None if they hold none (or another
        transaction removed it first, so its slot moves once). One statement for a read and a delete:
        a submit or skip refused later rolls back and the lease is there again."""
        return self.sql.run(_LEASE_TAKE, {"task_id": task_id, "user_id": user_id}).first()

    def expired(self, now: datetime, limit: int) -> Sequence[Row[Any]]:
        return self.sql.run(*self.expired_read(now, limit)).all()

    @staticmethod
    def expired_read(now: datetime, limit: int) -> Read:
        return _LEASES_EXPIRED, {"now": now, "limit": limit}

    def remove(self, lease: Any) -> bool:
        """Delete the lease; False if another transaction removed it first (so slots move once)."""
        return bool(self.sql.run(_LEASE_DELETE, {"lease_id": lease.id}).rowcount)

    def of_user(self, user_id: int) -> Sequence[Row[Any]]:
        """Every lease the person holds in the scope's client, expired ones too."""
        return self.sql.run(_LEASES_OF_USER, {"user_id": user_id}).all()

    def on_task(self, task_id: int) -> Sequence[Lease]:
        """The leases held on the task (expired ones too, until collected), oldest first."""
        return self.session.scalars(select(Lease).where(Lease.task_id == task_id).order_by(Lease.id)).all()

    def count_in_project(self, project_id: int) -> int:
        return int(self.sql.run(_LEASES_IN_PROJECT, {"project_id": project_id}).scalar_one())

    def insert(self, **values: Any) -> None:
        self.sql.run(_LEASE_INSERT, values, defer=True)


class AnswerRepository(_Repository):
    def by_idempotency_key(self, user_id: int, key: str) -> Row[Any] | None:
        """(id, task_id, created_at, time_spent_ms) of the user's answer sent with this key."""
        return self.sql.run(*self.by_idempotency_key_read(user_id, key)).first()

    @staticmethod
    def by_idempotency_key_read(user_id: int, key: str) -> Read:
        return _ANSWER_BY_KEY, {"user_id": user_id, "key": key}

    def exists_for(self, task_id: int, user_id: int) -> bool:
        return self.sql.run(_ANSWER_EXISTS, {"task_id": task_id, "user_id": user_id}).first() is not None

    def accept_submitted(self, task_id: int, reviewed_at: datetime) -> None:
        """Every answer of the task still ``submitted`` becomes ``accepted``."""
        self.sql.run(_ACCEPT_SUBMITTED, {"task_id": task_id, "reviewed_at": reviewed_at}, defer=True)

    def restore_reviews(self, reviews: list[dict[str, Any]]) -> None:
        """Restored answers' reviews, each ``{"answer_id", "at", "note"}`` (the note sealed), in one
        executemany."""
        if reviews:
            self.sql.run(_RESTORE_ANSWER_REVIEW, reviews)

    def insert(self, **values: Any) -> None:
        """A new answer row (its id allocated before, as its ciphertext is bound to it). A deferred
        write (see ``ScopedSql.run``): a duplicate's IntegrityError may come from the commit."""
        self.sql.run(_ANSWER_INSERT, values, defer=True)

    def counted_for_task(self, task_id: int) -> Sequence[Answer]:
        """Answers that count towards the task (rejected ones do not)."""
        query = select(Answer).where(Answer.task_id == task_id, Answer.status != "rejected").order_by(Answer.id)
        return self.session.scalars(query).all()

    def set_status(self, answer_ids: list[int], status: str, *, reviewed_at: datetime | None = None) -> None:
        if answer_ids:
            values: dict[str, Any] = {"status": status}
            if reviewed_at is not None:
                values["reviewed_at"] = reviewed_at
            self.session.execute(update(Answer).where(Answer.id.in_(answer_ids)).values(**values))

    def of_task(self, task_id: int) -> Sequence[Answer]:
        """Every answer the task got, rejected ones too, in the order they came."""
        return self.session.scalars(select(Answer).where(Answer.task_id == task_id).order_by(Answer.id)).all()

    def for_tasks(self, task_ids: list[int]) -> Sequence[Answer]:
        if not task_ids:
            return []
        query = select(Answer).where(Answer.task_id.in_(task_ids)).order_by(Answer.task_id, Answer.id)
        return self.session.scalars(query).all()

    def iterate(self, project_id: int, batch: int = 1000) -> Iterator[Answer]:
        last = 0
        while True:
            rows = self.session.scalars(
                select(Answer)
                .where(and_(Answer.project_id == project_id, Answer.id > last))
                .order_by(Answer.id)
                .limit(batch)
            ).all()
            if not rows:
                return
            yield from rows
            last = rows[-1].id


class LedgerRepository(_Repository):
    """The append-only money ledger and the project's running total (moved in one transaction)."""

    def append(self, *, project_id: int, amount: int, currency: str, **entry: Any) -> None:
        """The entry only: the caller adds ``amount`` to the project's total in the same transaction.
        Every column with a Python-side default is given a value (``legacy_note``, ``created_at``):
        an INSERT that leaves one out cannot run as a prepared statement (prepared.py)."""
        self.sql.run(_LEDGER_INSERT, {"project_id": project_id, "amount": amount, "currency": currency,
                                      "created_at": utcnow(), "legacy_note": "", **entry}, defer=True)

    def add_to_spent(self, project_id: int, user_id: int, amount: int) -> None:
        """Add to the project's total, in the stripe of the person paid (see ``ProjectSpend``)."""
        statement = _ADD_SPENT[self.sql.dialect_name]
        self.sql.run(statement, {"project_id": project_id, "stripe": stripe_of(user_id), "amount": amount}, defer=True)

    def currency_of(self, client_id: int) -> str:
        return str(self.sql.run(_CURRENCY, {"client_id": client_id}).scalar() or "USD")


class SkipRepository(_Repository):
    def exists_for(self, task_id: int, user_id: int) -> bool:
        return self.sql.run(_SKIP_EXISTS, {"task_id": task_id, "user_id": user_id}).first() is not None

    def of_task(self, task_id: int) -> Sequence[Skip]:
        return self.session.scalars(select(Skip).where(Skip.task_id == task_id).order_by(Skip.id)).all()


class ReviewRepository(_Repository):
    """The reviewer queue, its leases and the decisions. The queue's statements are prebuilt and
    run prepared; the ``*_read`` methods give them to ``ScopedSql.prefetch``."""

    def _dialect(self) -> str:
        return self.sql.dialect_name

    def next_for(self, project_id: int, reviewer_id: int, now: datetime,
                 start: ReviewPosition | None = None) -> tuple[Row[Any] | None, ReviewPosition]:
        """The oldest task in the review queue that nobody holds and the reviewer did not answer,
        looked for from ``start`` (None: the queue's start; see queue_cursors.py), and the place the
        reviewer's next walk may start from. Before ``start`` every task that is or will be
        pending is one the reviewer answered; the place returned keeps that true: it is the first
        pending task they did not answer (held or not: a lease may expire), and never past a task
        that may still join the queue unseen (``_review_place``). So a reviewer who answered many
        tasks awaiting review walks past them once, not at every next."""
        dialect = self._dialect()
        place = self.sql.run(*self.place_read(project_id, reviewer_id, start)).one()
        task = self.sql.run(*self.pick_read(project_id, reviewer_id, now, start)).first()
        in_sight = ReviewPosition(place.in_sight_below, 0)
        if place.first_seq is None:
            return task, in_sight
        first = ReviewPosition(place.first_seq, place.first_id)
        return task, min(first, in_sight) if dialect == "postgresql" else first

    def place_read(self, project_id: int, reviewer_id: int, start: ReviewPosition | None) -> Read:
        return _REVIEW_PLACE[self._dialect()], _review_walk(project_id, reviewer_id, start)

    def pick_read(self, project_id: int, reviewer_id: int, now: datetime, start: ReviewPosition | None) -> Read:
        """The pick's statement (a row lock on PostgreSQL: fetched ahead, and dropped unused, it
        only keeps a task from other reviewers until this transaction ends)."""
        return _REVIEW_PICK[self._dialect()], {**_review_walk(project_id, reviewer_id, start), "now": now}

    def lease_of_reviewer(self, reviewer_id: int, project_id: int, now: datetime) -> Row[Any] | None:
        return self.sql.run(*self.lease_of_reviewer_read(reviewer_id, project_id, now)).first()

    @staticmethod
    def lease_of_reviewer_read(reviewer_id: int, project_id: int, now: datetime) -> Read:
        return _REVIEW_LEASE_OF_REVIEWER, {"user_id": reviewer_id, "project_id": project_id, "now": now}

    def lease_on(self, task_id: int) -> Row[Any] | None:
        return self.sql.run(*self.lease_on_read(task_id)).first()

    @staticmethod
    def lease_on_read(task_id: int) -> Read:
        return _REVIEW_LEASE_ON, {"task_id": task_id}

    def take_over(self, **lease: Any) -> None:
        """Lease the task to the reviewer, in place of any lease on it (an expired one: the pick
        passes held tasks). Deferred writes."""
        self.sql.run(_REVIEW_LEASE_DROP, {"task_id": lease["task_id"]}, defer=True)
        self.sql.run(_REVIEW_LEASE_INSERT, lease, defer=True)

    def drop_lease_on(self, task_id: int) -> None:
        self.sql.run(_REVIEW_LEASE_DROP, {"task_id": task_id}, defer=True)

    def drop_leases_of(self, reviewer_id: int) -> int:
        """Drop every review lease the person holds in the scope's client; how many there were."""
        return self.sql.run(_REVIEW_LEASES_OF_USER_DROP, {"user_id": reviewer_id}).rowcount

    def answers(self, task_id: int) -> Sequence[Row[Any]]:
        """The answers that count towards the task (not rejected), with their labelers' ``username``."""
        return self.sql.run(*self.answers_read(task_id)).all()

    @staticmethod
    def answers_read(task_id: int) -> Read:
        return _ANSWERS_FOR_REVIEW, {"task_id": task_id}

    def set_counted_status(self, task_id: int, status: str, reviewed_at: datetime) -> None:
        """Every answer of the task that counts (not rejected) gets ``status``. A deferred write."""
        self.sql.run(_SET_COUNTED_STATUS, {"task_id": task_id, "status": status, "reviewed_at": reviewed_at},
                     defer=True)

    def reject_answer(self, answer_id: int, reviewed_at: datetime, review_note: bytes) -> None:
        self.sql.run(_REJECT_ANSWER, {"answer_id": answer_id, "reviewed_at": reviewed_at,
                                      "review_note": review_note}, defer=True)

    def insert(self, **review: Any) -> None:
        """A decision's row (its id allocated before: its sealed reason is bound to it). Deferred."""
        self.sql.run(_REVIEW_INSERT, review, defer=True)

    def pending_count(self, project_id: int) -> int:
        # A literal 'pending', so that SQLite proves the partial ix_tasks_review_pending applies.
        query = select(func.count()).select_from(Task).where(
            Task.project_id == project_id, Task.review_state == literal_column("'pending'")
        )
        return self.session.scalar(query) or 0

    def of_task(self, task_id: int) -> Sequence[Review]:
        return self.session.scalars(select(Review).where(Review.task_id == task_id).order_by(Review.id)).all()

    def rejected_answers_of(self, user_id: int, project_id: int, *, offset: int, limit: int) -> Sequence[Answer]:
        query = (
            select(Answer)
            .where(Answer.user_id == user_id, Answer.project_id == project_id, Answer.status == "rejected")
            .order_by(Answer.reviewed_at.desc(), Answer.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return self.session.scalars(query).all()


class GoldRepository(_Repository):
    """Gold tasks of a project and the scores of answers to them (quality/gold.py)."""

    def _unseen_by(self, user_id: int) -> list[Any]:
        return [~exists().where(model.task_id == Task.id, model.user_id == user_id) for model in (Answer, Skip, Lease)]

    def next_for(self, project_id: int, user_id: int, *, qualification: bool) -> Task | None:
        """A gold task this user has not answered, skipped or leased: the test in order, honeypots at random."""
        query = select(Task).where(
            Task.project_id == project_id, Task.is_gold.is_(True), Task.in_qualification.is_(qualification),
            *self._unseen_by(user_id),
        )
        query = query.order_by(Task.id) if qualification else query.order_by(func.random())
        return self.session.scalar(query.limit(1))

    def test_progress(self, project_id: int, user_id: int) -> tuple[int, int]:
        """(tasks in the qualification test, of which this user answered or skipped)."""
        seen = or_(
            exists().where(Answer.task_id == Task.id, Answer.user_id == user_id),
            exists().where(Skip.task_id == Task.id, Skip.user_id == user_id),
        )
        test = and_(Task.project_id == project_id, Task.is_gold.is_(True), Task.in_qualification.is_(True))
        total = self.session.scalar(select(func.count()).select_from(Task).where(test)) or 0
        done = self.session.scalar(select(func.count()).select_from(Task).where(test, seen)) or 0
        return int(total), int(done)

    def tasks(self, project_id: int, *, offset: int = 0, limit: int = 100) -> Sequence[Task]:
        query = select(Task).where(Task.project_id == project_id, Task.is_gold.is_(True)).order_by(Task.id)
        return self.session.scalars(query.offset(offset).limit(limit)).all()

    def count(self, project_id: int) -> int:
        query = select(func.count()).select_from(Task).where(Task.project_id == project_id, Task.is_gold.is_(True))
        return self.session.scalar(query) or 0

    def add_scores(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.session.execute(insert(GoldScore), rows)

    def answer_credits(
        self, project_id: int, *, user_id: int | None = None, kind: str | None = None, since: datetime | None = None
    ) -> list[tuple[int, int, float]]:
        """(user id, answer id, mean credit over the answer's scored questions), oldest first."""
        query = select(GoldScore.user_id, GoldScore.answer_id, func.avg(GoldScore.credit)).where(
            GoldScore.project_id == project_id
        )
        if user_id is not None:
            query = query.where(GoldScore.user_id == user_id)
        if kind is not None:
            query = query.where(GoldScore.kind == kind)
        if since is not None:
            query = query.where(GoldScore.created_at > since)
        query = query.group_by(GoldScore.user_id, GoldScore.answer_id).order_by(GoldScore.answer_id)
        return [(int(u), int(a), float(c)) for u, a, c in self.session.execute(query)]

    def scores(self, project_id: int, *, user_id: int | None = None, kind: str | None = None) -> Sequence[GoldScore]:
        query = select(GoldScore).where(GoldScore.project_id == project_id)
        if user_id is not None:
            query = query.where(GoldScore.user_id == user_id)
        if kind is not None:
            query = query.where(GoldScore.kind == kind)
        return self.session.scalars(query.order_by(GoldScore.answer_id, GoldScore.question)).all()


class SuspensionRepository(_Repository):
    def active(self, project_id: int, user_id: int) -> Suspension | None:
        query = select(Suspension).where(
            Suspension.project_id == project_id, Suspension.user_id == user_id, Suspension.lifted_at.is_(None)
        )
        return self.session.scalar(query.order_by(Suspension.id.desc()).limit(1))

    def is_suspended(self, project_id: int, user_id: int) -> bool:
        """The queue's check on every lease (``active`` for the object to lift)."""
        return self.sql.run(*self.is_suspended_read(project_id, user_id)).first() is not None

    @staticmethod
    def is_suspended_read(project_id: int, user_id: int) -> Read:
        return _ACTIVE_SUSPENSION, {"project_id": project_id, "user_id": user_id}

    def last_lifted_at(self, project_id: int, user_id: int) -> datetime | None:
        query = select(func.max(Suspension.lifted_at)).where(
            Suspension.project_id == project_id, Suspension.user_id == user_id
        )
        return self.session.scalar(query)

    def of_project(self, project_id: int, *, active_only: bool = False) -> Sequence[Suspension]:
        query = select(Suspension).where(Suspension.project_id == project_id)
        if active_only:
            query = query.where(Suspension.lifted_at.is_(None))
        return self.session.scalars(query.order_by(Suspension.id)).all()


class QualificationRepository(_Repository):
    """Qualification results per project and the skill tags of a client's members."""

    def result(self, project_id: int, user_id: int) -> QualificationResult | None:
        query = select(QualificationResult).where(
            QualificationResult.project_id == project_id, QualificationResult.user_id == user_id
        )
        return self.session.scalar(query)

    def results(self, project_id: int) -> Sequence[QualificationResult]:
        query = select(QualificationResult).where(QualificationResult.project_id == project_id)
        return self.session.scalars(query.order_by(QualificationResult.user_id)).all()

    def remove_result(self, project_id: int, user_id: int) -> bool:
        result = self.session.execute(
            delete(QualificationResult).where(
                QualificationResult.project_id == project_id, QualificationResult.user_id == user_id
            )
        )
        return bool(result.rowcount)

    def skills_of(self, user_id: int) -> set[str]:
        return set(self.session.scalars(select(LabelerSkill.skill).where(LabelerSkill.user_id == user_id)))

    def skill(self, user_id: int, skill: str) -> LabelerSkill | None:
        query = select(LabelerSkill).where(LabelerSkill.user_id == user_id, LabelerSkill.skill == skill)
        return self.session.scalar(query)

    def remove_skill(self, user_id: int, skill: str) -> bool:
        query = delete(LabelerSkill).where(LabelerSkill.user_id == user_id, LabelerSkill.skill == skill)
        return bool(self.session.execute(query).rowcount)

    def all_skills(self) -> Sequence[tuple[int, str]]:
        query = select(LabelerSkill.user_id, LabelerSkill.skill).order_by(LabelerSkill.user_id, LabelerSkill.skill)
        return [(int(u), str(s)) for u, s in self.session.execute(query)]


class QualityCacheRepository(_Repository):
    def get(self, project_id: int, kind: str) -> QualityCache | None:
        query = select(QualityCache).where(QualityCache.project_id == project_id, QualityCache.kind == kind)
        return self.session.scalar(query)

    def bump_version(self, project_id: int) -> None:
        """Mark cached results of the project stale (gold or imported answers changed)."""
        self.sql.run(_BUMP_QUALITY_VERSION, {"project_id": project_id})

    def answer_count(self, project_id: int) -> int:
        """Answers are never deleted, so their count moves with every submit: part of a result's
        version, read when results are (submits no longer bump a version on the project row)."""
        return int(self.sql.run(_ANSWERS_IN_PROJECT, {"project_id": project_id}).scalar_one())

    def last_review_id(self, project_id: int) -> int:
        """Review decisions change statuses and corrections: they are part of a result's version."""
        return int(self.session.scalar(select(func.max(Review.id)).where(Review.project_id == project_id)) or 0)


class LoginFailureRepository(_Repository):
    def count_for_username(self, username: str, since: datetime) -> int:
        query = select(func.count()).select_from(LoginFailure).where(
            LoginFailure.username == username, LoginFailure.created_at >= since
        )
        return self.session.scalar(query) or 0

    def count_for_address(self, address: str, since: datetime) -> int:
        query = select(func.count()).select_from(LoginFailure).where(
            LoginFailure.address == address, LoginFailure.created_at >= since
        )
        return self.session.scalar(query) or 0

    def clear(self, username: str) -> None:
        self.session.execute(delete(LoginFailure).where(LoginFailure.username == username))


class WebSessionRepository(_Repository):
    def by_hash(self, id_hash: str) -> WebSession | None:
        return self.session.scalar(select(WebSession).where(WebSession.id_hash == id_hash))

    def remove(self, id_hash: str) -> None:
        self.session.execute(delete(WebSession).where(WebSession.id_hash == id_hash))

    def remove_of_user(self, user_id: int, *, keep_hash: str | None = None) -> int:
        """End every session of the person (but the one of ``keep_hash``); how many ended."""
        query = delete(WebSession).where(WebSession.user_id == user_id)
        if keep_hash is not None:
            query = query.where(WebSession.id_hash != keep_hash)
        return self.session.execute(query).rowcount  # type: ignore[attr-defined,no-any-return]

    def remove_expired(self, now: datetime, limit: int = 500) -> None:
        """Bounded clean-up of expired sessions (any process may run it)."""
        expired = select(WebSession.id).where(WebSession.expires_at <= now).limit(limit)
        self.session.execute(delete(WebSession).where(WebSession.id.in_(expired)))

    def touch(self, session_id: int, now: datetime, expires_at: datetime) -> None:
        self.session.execute(
            update(WebSession).where(WebSession.id == session_id).values(last_seen_at=now, expires_at=expires_at)
        )
