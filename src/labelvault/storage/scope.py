"""The one door to client data: every ORM statement in a session is filtered by its scope.

A session opened for client C sees, updates and deletes only rows of client-owned tables whose
``client_id`` is C, and may only insert rows for C. A session opened without a client sees no
client-owned row at all, unless it was opened explicitly for all clients (operator work such as
offboarding or audit verification). Repositories and use cases therefore cannot forget a filter:
there is no filter to remember. On PostgreSQL, row-level security enforces the same rule below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, false
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from labelvault.storage.models import ClientOwned


class ScopeViolation(RuntimeError):
    """A programming error: code tried to write another client's row."""


@dataclass(frozen=True, slots=True)
class Scope:
    client_id: int | None = None
    all_clients: bool = False

    def __post_init__(self) -> None:
        if self.client_id is not None and self.all_clients:
            raise ValueError("a scope is either one client or all clients")


class ScopedSession(Session):
    """A session that refuses to run without a scope in ``info["scope"]``."""

    @property
    def scope(self) -> Scope:
        scope = self.info.get("scope")
        if not isinstance(scope, Scope):
            raise ScopeViolation("session has no client scope")
        return scope


@event.listens_for(ScopedSession, "do_orm_execute")
def _filter_by_scope(state: ORMExecuteState) -> None:
    scope: Scope = state.session.scope  # type: ignore[attr-defined]
    if scope.all_clients:
        return
    if state.is_insert:
        _check_insert_rows(state, scope)
        return
    if state.is_column_load or state.is_relationship_load:
        return  # the parent statement carried the criteria already
    client_id = scope.client_id
    if client_id is None:
        criteria = with_loader_criteria(ClientOwned, lambda cls: false(), include_aliases=True)
    else:
        criteria = with_loader_criteria(
            ClientOwned, lambda cls: cls.client_id == client_id, include_aliases=True
        )
    state.statement = state.statement.options(criteria)


def _check_insert_rows(state: ORMExecuteState, scope: Scope) -> None:
    mapper = state.bind_mapper
    if mapper is None or not issubclass(mapper.class_, ClientOwned):
        return
    params: Any = state.parameters
    rows = params if isinstance(params, list) else [params] if params else []
    for row in rows:
        if row.get("client_id") != scope.client_id or scope.client_id is None:
            raise ScopeViolation(f"insert into {mapper.local_table.name} outside the client scope")


@event.listens_for(ScopedSession, "before_flush")
def _stamp_new_rows(session: Session, _context: Any, _instances: Any) -> None:
    scope: Scope = session.scope  # type: ignore[attr-defined]
    for obj in session.new:
        if not isinstance(obj, ClientOwned) or scope.all_clients:
            continue
        if scope.client_id is None:
            raise ScopeViolation(f"{type(obj).__name__} created outside a client scope")
        if obj.client_id is None:
            obj.client_id = scope.client_id
        elif obj.client_id != scope.client_id:
            raise ScopeViolation(f"{type(obj).__name__} of another client created in this scope")
    for obj in session.dirty:
        if isinstance(obj, ClientOwned) and not scope.all_clients and obj.client_id != scope.client_id:
            raise ScopeViolation(f"{type(obj).__name__} moved to another client")
