"""A client's audit trail (JSONL) and the signed checkpoints of the log."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from labelvault.api.deps import ActorDep, ServicesDep

router = APIRouter(tags=["audit"])


class CheckpointRead(BaseModel):
    size: int
    created_at: datetime
    text: str


class CheckpointsRead(BaseModel):
    public_key_pem: str
    checkpoints: list[CheckpointRead]


@router.get("/clients/{client_id}/audit", response_class=StreamingResponse)
def client_trail(client_id: int, actor: ActorDep, services: ServicesDep) -> StreamingResponse:
    """Every audit entry about this client, one JSON object per line, as hashed into the log."""
    lines = services.trails.trail(actor, client_id)
    return StreamingResponse(lines, media_type="application/x-ndjson",
                             headers={"Content-Disposition": f'attachment; filename="audit-client-{client_id}.jsonl"'})


@router.get("/clients/{client_id}/audit/checkpoints", response_model=CheckpointsRead)
def checkpoints(client_id: int, actor: ActorDep, services: ServicesDep) -> CheckpointsRead:
    """Signed tree heads (keep copies outside: `labelvault audit verify --checkpoint` checks them)."""
    items, key = services.trails.checkpoints(actor, client_id)
    return CheckpointsRead(public_key_pem=key,
                           checkpoints=[CheckpointRead.model_validate(c, from_attributes=True) for c in items])
