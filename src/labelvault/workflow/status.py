"""Readiness and install-wide gauges (counts and ids only) for monitoring."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, text

from labelvault.storage.migrate import current_revision, head_revision
from labelvault.storage.models import Answer, Lease, Task
from labelvault.storage.unit_of_work import UnitOfWorkFactory


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    checks: dict[str, str]


@dataclass(frozen=True, slots=True)
class ProjectGauges:
    project_id: int
    open_slots: int
    open_leases: int
    answers: int


class StatusService:
    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self.uow_factory = uow_factory

    def readiness(self) -> Readiness:
        checks: dict[str, str] = {}
        try:
            with self.uow_factory.system() as uow:
                uow.session.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unreachable: {type(exc).__name__}"
        if checks["database"] == "ok":
            current, head = current_revision(self.uow_factory.engine), head_revision()
            checks["migrations"] = "ok" if current == head else f"at {current}, code expects {head}"
        try:
            checks["keyring"] = "ok" if self.uow_factory.keyring.master_key_id else "no master key"
        except Exception as exc:
            checks["keyring"] = f"unavailable: {type(exc).__name__}"
        return Readiness(all(v == "ok" for v in checks.values()), checks)

    def project_gauges(self) -> list[ProjectGauges]:
        """Queue depth, open leases and answers per project id, across clients (ids and counts only)."""
        with self.uow_factory.all_clients() as uow:
            slots = dict(
                uow.session.execute(select(Task.project_id, func.sum(Task.open_slots)).group_by(Task.project_id)).all()
            )
            leases = dict(uow.session.execute(select(Lease.project_id, func.count()).group_by(Lease.project_id)).all())
            answers = dict(
                uow.session.execute(select(Answer.project_id, func.count()).group_by(Answer.project_id)).all()
            )
        return [
            ProjectGauges(pid, int(slots.get(pid) or 0), int(leases.get(pid, 0)), int(answers.get(pid, 0)))
            for pid in sorted(set(slots) | set(leases) | set(answers))
        ]
