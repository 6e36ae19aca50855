"""Conflict-of-interest walls (Brewer-Nash) between competing clients.

Clients belong to conflict classes (a client may be in several). A person who has seen data of
client A ("touched" A) may never be shown data of another client B that shares a class with A,
unless an operator overrides the wall for that person and B, with a reason.

assignable(L, B) iff no client A != B that L touched shares a class with B (or an override).

The check and the record of the touch happen in one transaction that holds the person's lock
(``users.lock``: a row lock on PostgreSQL, the single write lock on SQLite), so two simultaneous
requests by one person for two competitors cannot both pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, select

from labelvault.audit import log as audit_log
from labelvault.domain.access import Actor
from labelvault.errors import Conflict, ConflictOfInterest, InvalidInput, NotFound, PermissionDenied, QueueRefused
from labelvault.storage.models import (
    Client,
    ClientConflictClass,
    ConflictClass,
    PersonTouch,
    Project,
    Task,
    WallOverride,
)
from labelvault.storage.scope import Read, Unscoped
from labelvault.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory

_touches = PersonTouch.__table__
# Every lease asks this twice (eligibility, then grant): a prebuilt Core read of an install-level table.
_TOUCHED = Unscoped(
    select(_touches.c.via)
    .where(_touches.c.user_id == bindparam("user_id"), _touches.c.client_id == bindparam("client_id"))
)
# A person's first grant of a client asks these two (then the touch is recorded and _TOUCHED answers),
# built once: an ORM query with its aliases made on every call cost 3 ms (compiled again each time).
_mine, _theirs = ClientConflictClass.__table__.alias("mine"), ClientConflictClass.__table__.alias("theirs")
_COMPETITOR_TOUCHED = Unscoped(  # a client the person touched that shares a conflict class with this one
    select(_touches.c.client_id)
    .join(_theirs, _theirs.c.client_id == _touches.c.client_id)
    .join(_mine, _mine.c.class_id == _theirs.c.class_id)
    .where(_touches.c.user_id == bindparam("user_id"), _mine.c.client_id == bindparam("client_id"),
           _touches.c.client_id != bindparam("client_id"))
    .limit(1)
)
_overrides = WallOverride.__table__
_OVERRIDDEN = Unscoped(
    select(_overrides.c.id)
    .where(_overrides.c.user_id == bindparam("user_id"), _overrides.c.client_id == bindparam("client_id"))
)


def _touches_seen(uow: UnitOfWork) -> set[tuple[int, int]]:
    """(person, client) touches seen in this unit of work: a touch is never taken back within one,
    and a lease asks twice, at the eligibility check and at the grant."""
    known: set[tuple[int, int]] = uow.info.setdefault("touched", set())
    return known


def _touched(uow: UnitOfWork, user_id: int, client_id: int) -> bool:
    known = _touches_seen(uow)
    if (user_id, client_id) in known:
        return True
    if uow.sql.run(*_touched_read(user_id, client_id)).first() is None:
        return False
    known.add((user_id, client_id))
    return True


def _touched_read(user_id: int, client_id: int) -> Read:
    return _TOUCHED, {"user_id": user_id, "client_id": client_id}


def may_see(uow: UnitOfWork, user_id: int, client_id: int) -> bool:
    """assignable(L, B): touched B already, or touched no competitor of B, or an operator override."""
    if _touched(uow, user_id, client_id):
        return True
    person_and_client = {"user_id": user_id, "client_id": client_id}
    if uow.sql.run(_COMPETITOR_TOUCHED, person_and_client).first() is None:
        return True
    return uow.sql.run(_OVERRIDDEN, person_and_client).first() is not None


def check_and_record(uow: UnitOfWork, user_id: int, client_id: int, via: str) -> None:
    """Refuse a grant across a wall, else record the touch. The caller holds ``users.lock``."""
    if _touched(uow, user_id, client_id):
        return  # seen before: nothing to check or record
    if not may_see(uow, user_id, client_id):
        raise ConflictOfInterest("conflict of interest: you have worked for a competitor of this client")
    uow.session.add(PersonTouch(user_id=user_id, client_id=client_id, via=via))
    uow.session.flush()


def queue_wall_check(uow: UnitOfWork, actor: Actor, project: Project) -> None:
    """Queue eligibility hook: refuse before a task is chosen, with the reason the labeler sees."""
    if not may_see(uow, actor.user_id, project.client_id):
        raise QueueRefused("conflict_of_interest",
                           "conflict of interest: you have worked for a competitor of this client")


def queue_wall_reads(uow: UnitOfWork, actor: Actor, _project_id: int) -> list[Read]:
    """What ``queue_wall_check`` reads first, for the queue to fetch ahead (``QueueHooks``)."""
    return wall_reads(uow, actor.user_id)


def wall_reads(uow: UnitOfWork, user_id: int) -> list[Read]:
    """What ``check_and_record`` and ``may_see`` read first for this person in the unit of work's
    client, for ``ScopedSql.prefetch`` (nothing once the touch is known)."""
    if (user_id, uow.client_id) in _touches_seen(uow):
        return []
    return [_touched_read(user_id, uow.client_id)]


def queue_wall_record(uow: UnitOfWork, actor: Actor, project: Project, _task: Task) -> None:
    check_and_record(uow, actor.user_id, project.client_id, "label")


@dataclass(frozen=True, slots=True)
class ConflictClassInfo:
    id: int
    name: str
    description: str
    client_ids: list[int]


@dataclass(frozen=True, slots=True)
class TouchInfo:
    client_id: int
    first_at: datetime
    via: str


def _operator(actor: Actor) -> None:
    if not actor.is_operator:
        raise PermissionDenied("conflict walls are managed by operators")


class WallService:
    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self.uow_factory = uow_factory

    def create_class(self, actor: Actor, name: str, description: str = "") -> ConflictClassInfo:
        _operator(actor)
        if not name.strip():
            raise InvalidInput("a conflict class needs a name", details={"field": "name"})
        with self.uow_factory.system(write=True) as uow:
            if uow.session.scalar(select(ConflictClass).where(ConflictClass.name == name)) is not None:
                raise Conflict(f"conflict class {name!r} exists already")
            row = ConflictClass(name=name, description=description)
            uow.session.add(row)
            uow.flush()
            audit_log.append(uow, "wall.class_created", actor=actor, object_kind="conflict_class", object_id=row.id)
            uow.commit()
            return ConflictClassInfo(row.id, row.name, row.description, [])

    def _class(self, uow: UnitOfWork, name: str) -> ConflictClass:
        row = uow.session.scalar(select(ConflictClass).where(ConflictClass.name == name))
        if row is None:
            raise NotFound(f"conflict class {name!r} not found")
        return row

    def add_client(self, actor: Actor, class_name: str, client_id: int) -> None:
        _operator(actor)
        with self.uow_factory.system(write=True) as uow:
            row = self._class(uow, class_name)
            if uow.session.get(Client, client_id) is None:
                raise NotFound(f"client {client_id} not found")
            if uow.session.get(ClientConflictClass, (client_id, row.id)) is None:
                uow.session.add(ClientConflictClass(client_id=client_id, class_id=row.id))
                audit_log.append(uow, "wall.client_added", actor=actor, client_id=client_id,
                                 object_kind="conflict_class", object_id=row.id)
            uow.commit()

    def remove_client(self, actor: Actor, class_name: str, client_id: int) -> None:
        _operator(actor)
        with self.uow_factory.system(write=True) as uow:
            row = self._class(uow, class_name)
            uow.session.execute(delete(ClientConflictClass).where(
                ClientConflictClass.client_id == client_id, ClientConflictClass.class_id == row.id))
            audit_log.append(uow, "wall.client_removed", actor=actor, client_id=client_id,
                             object_kind="conflict_class", object_id=row.id)
            uow.commit()

    def list_classes(self, actor: Actor) -> list[ConflictClassInfo]:
        _operator(actor)
        with self.uow_factory.system() as uow:
            classes = uow.session.scalars(select(ConflictClass).order_by(ConflictClass.name)).all()
            members = uow.session.execute(select(ClientConflictClass.class_id, ClientConflictClass.client_id)).all()
            return [ConflictClassInfo(c.id, c.name, c.description,
                                      sorted(cid for klass, cid in members if klass == c.id)) for c in classes]

    def override(self, actor: Actor, username: str, client_id: int, reason: str) -> None:
        """Let one person work for one client despite a wall. Needs an operator and a reason."""
        _operator(actor)
        if len(reason.strip()) < 10:
            raise InvalidInput("an override needs a reason (at least 10 characters)", details={"field": "reason"})
        with self.uow_factory.system(write=True) as uow:
            user = uow.users.by_username(username)
            if user is None:
                raise NotFound(f"user {username!r} not found")
            if uow.session.get(Client, client_id) is None:
                raise NotFound(f"client {client_id} not found")
            existing = uow.session.scalar(select(WallOverride).where(
                WallOverride.user_id == user.id, WallOverride.client_id == client_id))
            if existing is None:
                uow.session.add(WallOverride(user_id=user.id, client_id=client_id, operator_id=actor.user_id,
                                             reason=reason.strip()))
                audit_log.append(uow, "wall.override", actor=actor, client_id=client_id, object_kind="user",
                                 object_id=user.id, details={"reason": reason.strip()})
            uow.commit()

    def touches(self, actor: Actor, username: str) -> list[TouchInfo]:
        _operator(actor)
        with self.uow_factory.system() as uow:
            user = uow.users.by_username(username)
            if user is None:
                raise NotFound(f"user {username!r} not found")
            rows = uow.session.scalars(select(PersonTouch).where(PersonTouch.user_id == user.id)
                                       .order_by(PersonTouch.first_at)).all()
            return [TouchInfo(t.client_id, t.first_at, t.via) for t in rows]
