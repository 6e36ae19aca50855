"""A client's own audit trail and the log's checkpoints, for its managers and viewers."""

from __future__ import annotations

from collections.abc import Iterator

from labelvault.audit.log import AuditService, CheckpointInfo
from labelvault.domain.access import Actor, ClientPolicy
from labelvault.storage.unit_of_work import UnitOfWorkFactory
from labelvault.workflow.access import access_in


class TrailService:
    def __init__(self, uow_factory: UnitOfWorkFactory, audit: AuditService) -> None:
        self.uow_factory = uow_factory
        self.audit = audit

    def _allow(self, actor: Actor, client_id: int) -> None:
        with self.uow_factory.for_client(client_id) as uow:
            ClientPolicy.view(access_in(uow, actor))

    def trail(self, actor: Actor, client_id: int) -> Iterator[bytes]:
        """Checks access now (so an HTTP error can still be sent), then streams."""
        self._allow(actor, client_id)
        self.audit.record("audit.trail_exported", actor=actor, client_id=client_id, object_kind="client",
                          object_id=client_id)
        return self.audit.trail(client_id)

    def checkpoints(self, actor: Actor, client_id: int) -> tuple[list[CheckpointInfo], str]:
        self._allow(actor, client_id)
        return self.audit.checkpoints(), self.audit.public_key_pem()
