"""Recording refusals: the act's own transaction rolled back, so the entry needs one of its own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from labelvault.audit.log import AuditService
from labelvault.domain.access import Actor
from labelvault.errors import NotFound, PermissionDenied, QueueRefused


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
