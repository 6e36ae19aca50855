"""SQLAlchemy models. Every table holding client data mixes in ``ClientOwned``.

Client content (payloads, suggestions, metadata, answer values) is stored as AES-GCM
ciphertext in ``LargeBinary`` columns; ids, states, counts and timestamps stay in clear so that
the queue and reports can query them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Select,
    Sequence,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    cast,
    false,
    func,
    select,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, column_property, mapped_column

# SQLite only gives autoincrementing row ids to INTEGER PRIMARY KEY columns.
Id = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: SQLite has no time zones, PostgreSQL does."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], object] | None:
        if dialect.name == "sqlite":
            return _sqlite_utc_text
        return super().bind_processor(dialect)


def _sqlite_utc_text(value: datetime | None) -> str | None:
    """What ``process_bind_param`` and SQLite's DATETIME give together (its storage format
    "YYYY-MM-DD HH:MM:SS.ffffff", microseconds always written), in one step: a queue step writes
    eight times, and the two steps and the format's dictionary cost 2 to 3 µs a time."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:-6]  # without its "+00:00"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ClientOwned:
    """Marker: rows of this table belong to one client and are only reachable in its scope."""

    client_id: Mapped[int] = mapped_column(Id, ForeignKey("clients.id", ondelete="CASCADE"), index=True)


class Client(Base):
    __tablename__ = "clients"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    is_operator: Mapped[bool] = mapped_column(Boolean, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    user_id: Mapped[int] = mapped_column(Id, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # The first characters of the token, shown in listings so people can tell tokens apart.
    display_prefix: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Space-separated: read, label, manage. A token can do no more than its user's roles allow.
    scopes: Mapped[str] = mapped_column(String(100), default="read label manage", server_default="read label manage")


class Membership(ClientOwned, Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("client_id", "user_id", "role", name="uq_memberships_client_user_role"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    user_id: Mapped[int] = mapped_column(Id, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DataKey(ClientOwned, Base):
    """A client's data key, wrapped by the client's key-encryption key (which lives outside the DB)."""

    __tablename__ = "data_keys"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Project(ClientOwned, Base):
    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("client_id", "slug", name="uq_projects_client_slug"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    schema_json: Mapped[str] = mapped_column(Text)
    overlap: Mapped[int] = mapped_column(Integer, default=1)
    lease_seconds: Mapped[int] = mapped_column(Integer, default=600)
    status: Mapped[str] = mapped_column(String(20), default="active")
    # Review: none, sample (review_sample_rate of completed tasks), all, or disagreement.
    review_policy: Mapped[str] = mapped_column(String(20), default="none")
    review_sample_rate: Mapped[float] = mapped_column(Float, default=0.0)
    # Money in integer minor units of the client's currency: never floats.
    pay_on: Mapped[str] = mapped_column(String(10), default="submit")  # submit | accept
    rate_per_answer: Mapped[int] = mapped_column(BigInteger, default=0)
    rate_per_review: Mapped[int] = mapped_column(BigInteger, default=0)
    question_rates_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    budget_cap: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    if TYPE_CHECKING:
        spent: int  # the ledger total: the sum of the project's ProjectSpend stripes (mapped below)
        currency: str  # the client's (mapped below)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Quality (quality/): gold injection, qualification, suspension, adaptive overlap (min k = overlap).
    gold_rate: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    show_gold_feedback: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    qualification_required: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    qualification_pass_mark: Mapped[float] = mapped_column(Float, default=0.8, server_default="0.8")
    required_skills_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    suspension_threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    suspension_min_answers: Mapped[int] = mapped_column(Integer, default=10, server_default="10")
    max_overlap: Mapped[int | None] = mapped_column(Integer, nullable=True)
    confidence_threshold: Mapped[float] = mapped_column(Float, default=0.7, server_default="0.7")
    # Bumped whenever answers or gold change: cached quality results older than it are stale.
    quality_version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Changes whenever a task of the project gains a free slot or moves in the queue order (a
    # trigger on tasks) and when tasks are added (their writers: TaskRepository.queued); see
    # migration e1a7c3b9d5f2 and storage/queue_cursors.py. A new project starts at a random value:
    # SQLite hands out a deleted project's id again, and a labeler's remembered place in the old
    # project must not pass for one in the new (their epochs would otherwise both count from 0).
    queue_epoch: Mapped[int] = mapped_column(BigInteger, default=lambda: secrets.randbits(62), server_default="0")
    # Webhooks (workflow/webhooks.py): the event types that the project's active endpoints want,
    # space-separated, kept with every endpoint change; the queue reads it from the row it already
    # loaded, so a project without webhooks costs no query.
    webhook_events: Mapped[str] = mapped_column(String(200), default="", server_default="")


# Schema objects of one database only (migration e1a7c3b9d5f2), left out of alembic's comparison of
# the models with the other (storage/migrations/env.py): the queue's index on each, and on PostgreSQL
# the generated columns that its index holds, which the model leaves out so that nothing else
# reads or writes them.
ONE_DATABASE_ONLY = {"ix_tasks_queue": "sqlite", "ix_tasks_queue_rank": "postgresql",
                     "ix_tasks_review_seq": "sqlite"}
NOT_IN_THE_MODEL = frozenset({("tasks", "queue_rank_priority"), ("tasks", "queue_rank_uncertainty")})


class Task(ClientOwned, Base):
    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("project_id", "external_id", name="uq_tasks_project_external_id"),
        # The queue reads only tasks that still have a free slot, best first. PostgreSQL's index
        # has the same order in one direction (-priority, -uncertainty: generated columns that only
        # the queue reads, left out of the model), so that a labeler's walk can start after a
        # position (one row comparison); SQLite uses no index for those (migration e1a7c3b9d5f2).
        Index(
            "ix_tasks_queue", "project_id", text("priority DESC"), text("uncertainty DESC"), "id",
            sqlite_where=text("open_slots > 0"),
        ).ddl_if(dialect="sqlite"),
        Index(
            "ix_tasks_queue_rank", "project_id", text("queue_rank_priority"), text("queue_rank_uncertainty"), "id",
            postgresql_where=text("open_slots > 0"),
        ).ddl_if(dialect="postgresql"),
        # The project's tasks; with the client id, which the scope adds to every query, a count of
        # a project's tasks reads the index alone (migration c7e9a1b3d5f7).
        Index("ix_tasks_project_client", "project_id", "client_id"),
    )
    # Ids are allocated before insert (see ids.py) because ciphertexts are bound to them.
    id: Mapped[int] = mapped_column(Id, Sequence("tasks_id_seq"), primary_key=True)
    project_id: Mapped[int] = mapped_column(Id, ForeignKey("projects.id", ondelete="CASCADE"))
    external_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    uncertainty: Mapped[float] = mapped_column(Float, default=0.0)
    # Answers wanted for this task (the project's overlap unless overridden at import).
    required_answers: Mapped[int] = mapped_column(Integer)
    answer_count: Mapped[int] = mapped_column(Integer, default=0)
    # required_answers - answer_count - open leases; kept up to date so the queue needs one index.
    open_slots: Mapped[int] = mapped_column(Integer)
    # none: not (yet) for review; pending: in the reviewer queue; done: reviewed or not sampled.
    review_state: Mapped[str] = mapped_column(String(10), default="none")
    # When the task last became pending, as a number that only grows (PostgreSQL: the id of the
    # transaction that made it pending; SQLite: the project's highest + 1): the reviewer queue's
    # order, so that tasks joining it land behind every reviewer's place (review_cursors).
    review_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    data_key_id: Mapped[int] = mapped_column(Id, ForeignKey("data_keys.id"))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    metadata_blob: Mapped[bytes | None] = mapped_column("metadata", LargeBinary, nullable=True)
    suggestions: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Gold (honeypot) task: a known answer, sealed under the task's key ("task.gold"). Gold tasks
    # want no answers of their own (required_answers 0), so the regular queue never picks them.
    is_gold: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    in_qualification: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    gold_answer: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class Lease(ClientOwned, Base):
    __tablename__ = "leases"
    __table_args__ = (UniqueConstraint("task_id", "user_id", name="uq_leases_task_user"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    project_id: Mapped[int] = mapped_column(Id, ForeignKey("projects.id", ondelete="CASCADE"))
    task_id: Mapped[int] = mapped_column(Id, ForeignKey("tasks.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(Id, ForeignKey("users.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


Index("ix_leases_user_project", Lease.user_id, Lease.project_id)
Index("ix_leases_project", Lease.project_id)


class Answer(ClientOwned, Base):
    __tablename__ = "answers"
    __table_args__ = (
        UniqueConstraint("task_id", "user_id", name="uq_answers_task_user"),
        UniqueConstraint("user_id", "idempotency_key", name="uq_answers_user_idempotency_key"),
        # As tasks' (migration c7e9a1b3d5f7): a count of a project's answers from the index alone.
        Index("ix_answers_project_client", "project_id", "client_id"),
    )
    id: Mapped[int] = mapped_column(Id, Sequence("answers_id_seq"), primary_key=True)
    project_id: Mapped[int] = mapped_column(Id, ForeignKey("projects.id", ondelete="CASCADE"))
    task_id: Mapped[int] = mapped_column(Id, ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(Id, ForeignKey("users.id"))
    data_key_id: Mapped[int] = mapped_column(Id, ForeignKey("data_keys.id"))
    value: Mapped[bytes] = mapped_column(LargeBinary)
    idempotency_key: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # submitted -> accepted | rejected | corrected (a reviewer's correction replaced it)
    status: Mapped[str] = mapped_column(String(20), default="submitted")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    time_spent_ms: Mapped[int] = mapped_column(Integer)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The reviewer's reason, sealed: it may quote the task.
    review_note: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class Skip(ClientOwned, Base):
    __tablename__ = "skips"
    __table_args__ = (UniqueConstraint("task_id", "user_id", name="uq_skips_task_user"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    project_id: Mapped[int] = mapped_column(Id, ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[int] = mapped_column(Id, ForeignKey("tasks.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(Id, ForeignKey("users.id"))
    # The labeler's reason, sealed ("skip.reason", the skip's id): their words may quote the task.
    data_key_id: Mapped[int | None] = mapped_column(Id, ForeignKey("data_keys.id"), nullable=True)
    sealed_reason: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # Reasons written before they were sealed, in the clear until ``labelvault upgrade`` seals them
    # (bootstrap.migrate; migration f2b4d6e8a0c1): empty on every row written since.
    legacy_reason: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ReviewLease(ClientOwned, Base):
    """A reviewer's hold on a task awaiting review (one reviewer per task at a time)."""

    __tablename__ = "review_leases"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    project_id: Mapped[int] = mapped_column(Id, ForeignKey("projects.id", ondelete="CASCADE"))
    task_id: Mapped[int] = mapped_column(Id, ForeignKey("tasks.id", ondelete="CASCADE"), unique=True)
    user_id: Mapped[int] = mapped_column(Id, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class Review(ClientOwned, Base):
    """A reviewer's decision on a task: accept, reject (some answers) or correct."""

    __tablename__ = "reviews"
    id: Mapped[int] = mapped_column(Id, Sequence("reviews_id_seq"), primary_key=True)
    project_id: Mapped[int] = mapped_column(Id, ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[int] = mapped_column(Id, ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    reviewer_id: Mapped[int] = mapped_column(Id, ForeignKey("users.id"))
    decision: Mapped[str] = mapped_column(String(10))
    data_key_id: Mapped[int] = mapped_column(Id, ForeignKey("data_keys.id"))
    # The corrected answer (decision "correct"), sealed; final for the task.
    corrected_value: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    reason: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    time_spent_ms: Mapped[int] = mapped_column(Integer)


class LedgerEntry(ClientOwned, Base):
    """Append-only money events in integer minor units; a reversal is a new negative entry."""

    __tablename__ = "ledger_entries"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    project_id: Mapped[int] = mapped_column(Id, ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(Id, ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # answer | review | bonus | reversal
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    answer_id: Mapped[int | None] = mapped_column(Id, nullable=True, index=True)
    review_id: Mapped[int | None] = mapped_column(Id, nullable=True)
    task_id: Mapped[int | None] = mapped_column(Id, nullable=True)
    # The note (a manager's words on a bonus, which may quote the work), sealed ("ledger.note", the
    # entry's id) under ``data_key_id``; notes written before they were sealed stay in ``legacy_note``
    # until ``bootstrap.migrate`` seals them.
    data_key_id: Mapped[int | None] = mapped_column(Id, ForeignKey("data_keys.id"), nullable=True)
    sealed_note: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    legacy_note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class ProjectSpend(ClientOwned, Base):
    """The project's ledger total in a few stripes, kept with each ledger append.

    One total per project would be a row that every paid act of every labeler locks until its
    commit: on PostgreSQL, where transactions run side by side, the one place they all queue. An
    act adds to the stripe of the person it pays (``stripe_of``), so labelers rarely share one; the
    budget check reads the sum of the stripes (``Project.spent``).
    """

    __tablename__ = "project_spend"
    project_id: Mapped[int] = mapped_column(Id, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    stripe: Mapped[int] = mapped_column(Integer, primary_key=True)
    amount: Mapped[int] = mapped_column(BigInteger, default=0)


SPEND_STRIPES = 16


def stripe_of(user_id: int) -> int:
    return user_id % SPEND_STRIPES


def spend_total() -> Select[tuple[int]]:
    """The sum of a project's stripes, correlated to ``projects.id`` (an integer on both databases:
    PostgreSQL's sum of bigints is a numeric)."""
    table = ProjectSpend.__table__
    return select(cast(func.coalesce(func.sum(table.c.amount), 0), BigInteger)).where(
        table.c.project_id == Project.__table__.c.id
    )


# What the project has spent, read with the project (read-only).
Project.spent = column_property(spend_total().correlate_except(ProjectSpend).scalar_subquery())
Project.currency = column_property(
    select(Client.currency).where(Client.id == Project.client_id).correlate_except(Client).scalar_subquery()
)


# The reviewer queue: pending tasks in the order they became pending (migration b6d8f0a2c4e7).
Index("ix_tasks_review_pending", Task.project_id, Task.review_seq, Task.id,
      sqlite_where=text("review_state = 'pending'"), postgresql_where=text("review_state = 'pending'"))
# SQLite's source of the next review_seq (the project's highest, pending or not, so it never goes down).
Index("ix_tasks_review_seq", Task.project_id, Task.review_seq).ddl_if(dialect="sqlite")
Index("ix_answers_user_created", Answer.user_id, Answer.created_at)


# --- Conflict-of-interest walls (Brewer-Nash). Install-level tables: the wall must see across clients.


class ConflictClass(Base):
    __tablename__ = "conflict_classes"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ClientConflictClass(Base):
    __tablename__ = "client_conflict_classes"
    client_id: Mapped[int] = mapped_column(Id, ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True)
    class_id: Mapped[int] = mapped_column(Id, ForeignKey("conflict_classes.id", ondelete="CASCADE"), primary_key=True)


class PersonTouch(Base):
    """A person has seen data of a client. Kept after the client leaves: what was seen stays seen."""

    __tablename__ = "person_touches"
    user_id: Mapped[int] = mapped_column(Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    client_id: Mapped[int] = mapped_column(Id, primary_key=True)  # no FK on purpose, see docstring
    first_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    via: Mapped[str] = mapped_column(String(30))


class WallOverride(Base):
    __tablename__ = "wall_overrides"
    __table_args__ = (UniqueConstraint("user_id", "client_id", name="uq_wall_overrides_user_client"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    user_id: Mapped[int] = mapped_column(Id, ForeignKey("users.id", ondelete="CASCADE"))
    client_id: Mapped[int] = mapped_column(Id, ForeignKey("clients.id", ondelete="CASCADE"))
    operator_id: Mapped[int] = mapped_column(Id, ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LoginFailure(Base):
    """Failed logins, in the database so every server process counts them together."""

    __tablename__ = "login_failures"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), index=True)
    address: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


# --- Audit log: append-only leaves of a Merkle tree (RFC 9162). Never client content in clear.


class AuditEntry(Base):
    __tablename__ = "audit_entries"
    seq: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor_id: Mapped[int | None] = mapped_column(Id, nullable=True, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(60))
    client_id: Mapped[int | None] = mapped_column(Id, nullable=True, index=True)
    object_kind: Mapped[str] = mapped_column(String(40), default="")
    object_id: Mapped[str] = mapped_column(String(100), default="")
    outcome: Mapped[str] = mapped_column(String(20))
    # The exact bytes hashed into the leaf (canonical JSON of all the fields above and details).
    entry: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary)
    # Tree root after this entry (the "running root"): lets verify name the first bad entry.
    root: Mapped[bytes] = mapped_column(LargeBinary)


class AuditPending(Base):
    """Entries recorded by their acts' transactions on PostgreSQL, not yet numbered into the log.

    There every transaction runs beside the others, and numbering an entry means holding the
    log's head until the commit: all of them would queue on that row. So an act's transaction only
    inserts here, and one sequencer at a time numbers the pending rows into ``audit_entries`` in
    batches (audit/log.py). ``fields`` is the entry's canonical bytes with seq 0.
    """

    __tablename__ = "audit_pending"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor_id: Mapped[int | None] = mapped_column(Id, nullable=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(60))
    client_id: Mapped[int | None] = mapped_column(Id, nullable=True)
    object_kind: Mapped[str] = mapped_column(String(40), default="")
    object_id: Mapped[str] = mapped_column(String(100), default="")
    outcome: Mapped[str] = mapped_column(String(20))
    fields: Mapped[bytes] = mapped_column(LargeBinary)


class AuditHead(Base):
    """The one row holding the log's size and Merkle frontier; appenders lock it (one at a time)."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    frontier: Mapped[bytes] = mapped_column(LargeBinary, default=b"")


class AuditCheckpoint(Base):
    __tablename__ = "audit_checkpoints"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    tree_size: Mapped[int] = mapped_column(BigInteger)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary)
    signed_note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# --- Quality: gold scores, suspensions, qualifications, skills and cached results (quality/).


class GoldScore(ClientOwned, Base):
    """Credit (0..1) of one answer to one question of a gold task, scored when it was submitted."""

    __tablename__ = "gold_scores"
    __table_args__ = (UniqueConstraint("answer_id", "question", name="uq_gold_scores_answer_question"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    project_id: Mapped[int] = mapped_column(Id, ForeignKey("projects.id", ondelete="CASCADE"))
    task_id: Mapped[int] = mapped_column(Id, ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    answer_id: Mapped[int] = mapped_column(Id, ForeignKey("answers.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(Id, ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(20))  # honeypot | qualification
    question: Mapped[str] = mapped_column(String(200))
    credit: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


Index("ix_gold_scores_project_user", GoldScore.project_id, GoldScore.user_id, GoldScore.created_at)


class Suspension(ClientOwned, Base):
    """A labeler suspended from a project (gold accuracy confidently below the threshold)."""

    __tablename__ = "suspensions"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    project_id: Mapped[int] = mapped_column(Id, ForeignKey("projects.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(Id, ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(String(500))
    n: Mapped[int] = mapped_column(Integer, default=0)
    accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    upper: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lifted_by: Mapped[int | None] = mapped_column(Id, ForeignKey("users.id"), nullable=True)


Index("ix_suspensions_project_user", Suspension.project_id, Suspension.user_id)


class QualificationResult(ClientOwned, Base):
    """A labeler's qualification for a project: the test's score, or a manager's grant."""

    __tablename__ = "qualification_results"
    __table_args__ = (UniqueConstraint("project_id", "user_id", name="uq_qualification_results_project_user"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    project_id: Mapped[int] = mapped_column(Id, ForeignKey("projects.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(Id, ForeignKey("users.id"))
    passed: Mapped[bool] = mapped_column(Boolean)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    n: Mapped[int] = mapped_column(Integer, default=0)
    granted_by: Mapped[int | None] = mapped_column(Id, ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LabelerSkill(ClientOwned, Base):
    """A skill tag (``lang:de``, ``phd:chemistry``) a manager gave a member of the client."""

    __tablename__ = "labeler_skills"
    __table_args__ = (UniqueConstraint("client_id", "user_id", "skill", name="uq_labeler_skills_client_user_skill"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    user_id: Mapped[int] = mapped_column(Id, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    skill: Mapped[str] = mapped_column(String(100))
    granted_by: Mapped[int | None] = mapped_column(Id, ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class QualityCache(ClientOwned, Base):
    """Computed quality results of a project, sealed ("quality.<kind>", object id = project id).

    ``version`` names the state of answers and gold they were computed from; another version is stale.
    """

    __tablename__ = "quality_cache"
    __table_args__ = (UniqueConstraint("project_id", "kind", name="uq_quality_cache_project_kind"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    project_id: Mapped[int] = mapped_column(Id, ForeignKey("projects.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    version: Mapped[str] = mapped_column(String(100))
    data_key_id: Mapped[int] = mapped_column(Id, ForeignKey("data_keys.id"))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# --- Web sessions: in the database, so every server process sees every session.


class WebSession(Base):
    """A browser session. The cookie holds a random id; only its SHA-256 is stored."""

    __tablename__ = "web_sessions"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(Id, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # Sent in forms and the X-CSRF-Token header; compared in constant time.
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class StoredFile(ClientOwned, Base):
    """An uploaded file (e.g. an image for box questions); its bytes, sealed, live in the file store."""

    __tablename__ = "stored_files"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[int] = mapped_column(Id, ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    data_key_id: Mapped[int] = mapped_column(Id, ForeignKey("data_keys.id"))
    # The name is client content too (it may say what the picture is): sealed like the bytes.
    name_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    ciphertext_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# --- Single sign-on: identities at an OpenID provider, and logins on their way through it.


class UserIdentity(Base):
    """A person's account at an OpenID provider: found by (issuer, subject), never by e-mail."""

    __tablename__ = "user_identities"
    __table_args__ = (UniqueConstraint("issuer", "subject", name="uq_user_identities_issuer_subject"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    user_id: Mapped[int] = mapped_column(Id, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    issuer: Mapped[str] = mapped_column(String(500))
    subject: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class PendingSsoLogin(Base):
    """A login sent to the provider and not back yet: its state (hashed), nonce and PKCE verifier.

    In the database, so the callback may reach any server process; taken (deleted) by the
    callback, so a state works once."""

    __tablename__ = "pending_sso_logins"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    nonce: Mapped[str] = mapped_column(String(100))
    code_verifier: Mapped[str] = mapped_column(String(128))
    next_path: Mapped[str] = mapped_column(String(2000), default="/")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


# --- Model-assisted labeling: a project's predictor, and which model version scored each task.


class ProjectPredictor(ClientOwned, Base):
    """The model that suggests answers for a project's tasks (workflow/predictions.py).

    ``kind`` is ``entry_point`` (``target`` names an installed entry point of the group
    ``labelvault.predictors`` or a ``module:function``) or ``http`` (``target`` is a URL on an allowed
    host). ``auth_secret`` names a secret held by the install's settings, never the secret itself."""

    __tablename__ = "project_predictors"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    project_id: Mapped[int] = mapped_column(Id, ForeignKey("projects.id", ondelete="CASCADE"), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    target: Mapped[str] = mapped_column(String(2000))
    question: Mapped[str] = mapped_column(String(200))
    model_name: Mapped[str] = mapped_column(String(100))
    model_version: Mapped[str] = mapped_column(String(100))
    batch_size: Mapped[int] = mapped_column(Integer, default=64)
    timeout_seconds: Mapped[float] = mapped_column(Float, default=30.0)
    auth_header: Mapped[str | None] = mapped_column(String(100), nullable=True)
    auth_secret: Mapped[str | None] = mapped_column(String(100), nullable=True)
    options_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TaskPrediction(ClientOwned, Base):
    """The model version whose suggestion a task holds: the runner asks only for tasks without one
    of the current version, so a run is resumable and running it again costs nothing."""

    __tablename__ = "task_predictions"
    task_id: Mapped[int] = mapped_column(Id, ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True,
                                         autoincrement=False)
    project_id: Mapped[int] = mapped_column(Id, ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    model_version: Mapped[str] = mapped_column(String(100))
    predicted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# --- Webhooks (workflow/webhooks.py): endpoints, the outbox of deliveries, and the attempt log.


class WebhookEndpoint(ClientOwned, Base):
    """A URL of a project's client that is told of events, signed with a secret we generated."""

    __tablename__ = "webhook_endpoints"
    # Allocated before insert (ids.py): the secret's ciphertext is bound to it.
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    project_id: Mapped[int] = mapped_column(Id, ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[str] = mapped_column(String(200))  # space-separated event types
    data_key_id: Mapped[int] = mapped_column(Id, ForeignKey("data_keys.id"))
    secret: Mapped[bytes] = mapped_column(LargeBinary)  # sealed ("webhook.secret")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookDelivery(ClientOwned, Base):
    """One event for one endpoint: written in the transaction of the act (an outbox), then sent.

    pending -> sending (claimed until ``next_attempt_at``) -> delivered | pending (retry) | failed.
    The body holds ids, counts and times only, never client content, so it is stored in clear.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # An event recorded outside the act's transaction (budget reached) is recorded once.
        UniqueConstraint("endpoint_id", "dedupe_key", name="uq_webhook_deliveries_endpoint_dedupe"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    project_id: Mapped[int] = mapped_column(Id, ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    endpoint_id: Mapped[int] = mapped_column(Id, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True)
    message_id: Mapped[str] = mapped_column(String(40))  # webhook-id: the same on every attempt
    event_type: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str] = mapped_column(String(500), default="")


# The dispatcher's one read: what is due now.
Index("ix_webhook_deliveries_due", WebhookDelivery.status, WebhookDelivery.next_attempt_at)


class WebhookAttempt(ClientOwned, Base):
    """The delivery log: one row per HTTP attempt."""

    __tablename__ = "webhook_attempts"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        Id, ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    duration_ms: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str] = mapped_column(String(500), default="")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


# Every table mixing in ClientOwned; keep this last so it sees them all.
CLIENT_OWNED_TABLES: tuple[str, ...] = tuple(
    mapper.class_.__tablename__ for mapper in Base.registry.mappers if issubclass(mapper.class_, ClientOwned)
)
