"""Recording refusals: the act's own transaction rolled back, so the entry needs one of its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from labelvault.audit import log as audit_log
from labelvault.audit.log import AuditService
from labelvault.domain.access import Actor, ClientAccess, ProjectPolicy
from labelvault.errors import NotFound, PermissionDenied, QueueRefused
from labelvault.storage.unit_of_work import UnitOfWorkFactory
from labelvault.workflow.access import access_in
from labelvault.workflow.projects import load_project
from labelvault.workflow.walls import check_and_record


@contextmanager
def recording_denials(
    audit: AuditService | None, actor: Actor, client_id: int, action: str, object_kind: str, object_id: int | str
) -> Iterator[None]:
    """Record a denied access to client data (policy refusal, foreign object, conflict wall)."""
    try:
        yield
    except (PermissionDenied, NotFound, QueueRefused) as refused:
        reason = refused.reason if isinstance(refused, QueueRefused) else refused.code
        denied = not isinstance(refused, QueueRefused) or reason == "conflict_of_interest"
        if denied and audit is not None:
            audit.record(action, actor=actor, client_id=client_id, object_kind=object_kind, object_id=object_id,
                         outcome="denied", details={"reason": reason})
        raise


def witness_read(
    uow_factory: UnitOfWorkFactory, audit: AuditService | None, actor: Actor, client_id: int,
    project_id: int | None, action: str, details: dict[str, Any], *,
    policy: Callable[[ClientAccess], None] = ProjectPolicy.export, via: str = "export",
) -> None:
    """Policy, wall and audit before a page of a project's sealed content is read (answers, skip
    reasons, ledger notes): a short write of its own (the wall's touch and the audit entry, as an
    export does), so SQLite's write lock is not held while the page is read and opened. A refusal
    is recorded too. ``project_id`` None: a read across the client's projects (the entry names the
    client). ``policy`` is the resource's rule (a manager's export unless said otherwise); ``via``
    is what the wall's touch records."""
    object_kind, object_id = ("client", client_id) if project_id is None else ("project", project_id)
    with (
        recording_denials(audit, actor, client_id, action, object_kind, object_id),
        uow_factory.for_client(client_id, write=True) as uow,
    ):
        policy(access_in(uow, actor))
        if project_id is not None:
            load_project(uow, project_id)
        uow.users.lock(actor.user_id)
        check_and_record(uow, actor.user_id, client_id, via)
        audit_log.append(uow, action, actor=actor, client_id=client_id, object_kind=object_kind,
                         object_id=object_id, details=details)
        uow.commit()
