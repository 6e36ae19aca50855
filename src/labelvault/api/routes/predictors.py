"""A project's predictor: set, read and remove it; run it (suggestions, and the uncertainty order)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from labelvault.api.deps import ActorDep, ServicesDep
from labelvault.api.routes.projects import ProjectRefDep
from labelvault.domain.predictors import MAX_BATCH_SIZE, MAX_TIMEOUT_SECONDS, PredictorConfig
from labelvault.errors import NotFound
from labelvault.workflow.predictions import PredictorInfo

router = APIRouter(tags=["predictors"])


class PredictorUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    kind: Literal["entry_point", "http"]
    target: str = Field(description="entry_point: an installed entry point of labelvault.predictors, or "
                        "module:function (operators only); http: a URL on a host of "
                        "LABELVAULT_PREDICTOR_ALLOWED_HOSTS.")
    question: str = Field(description="The question whose answer the model suggests.")
    model_name: str = Field(default="", description="Written on the suggestions (default: from the target).")
    model_version: str = Field(default="1", description="Bump it after retraining: every open task is re-scored.")
    batch_size: int = Field(default=64, ge=1, le=MAX_BATCH_SIZE)
    timeout_seconds: float = Field(default=30.0, gt=0, le=MAX_TIMEOUT_SECONDS)
    auth_header: str | None = None
    auth_secret: str | None = Field(default=None, description="Name of a secret of LABELVAULT_PREDICTOR_SECRETS.")
    options: dict[str, Any] = Field(default_factory=dict, description="Handed to the predictor as is.")


class PredictorRead(PredictorUpdate):
    project_id: int
    suggestion_model: str
    updated_at: datetime
    pending: int = Field(description="Open tasks without a suggestion of the current model version.")


class PredictionRun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    all: bool = Field(default=False, description="Also re-score tasks that hold the current version's suggestion.")


class PredictionRunRead(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    model: str
    pending: int
    scored: int
    suggestions: int
    batches: int


def predictor_read(info: PredictorInfo) -> PredictorRead:
    c = info.config
    return PredictorRead(
        kind=c.kind, target=c.target, question=c.question, model_name=c.model_name,  # type: ignore[arg-type]
        model_version=c.model_version, batch_size=c.batch_size, timeout_seconds=c.timeout_seconds,
        auth_header=c.auth_header, auth_secret=c.auth_secret, options=c.options, project_id=info.project_id,
        suggestion_model=c.suggestion_model, updated_at=info.updated_at, pending=info.pending,
    )


@router.get("/projects/{project_id}/predictor", response_model=PredictorRead)
def get_predictor(ref: ProjectRefDep, actor: ActorDep, services: ServicesDep) -> PredictorRead:
    info = services.predictions.get(actor, ref.client_id, ref.project_id)
    if info is None:
        raise NotFound(f"project {ref.project_id} has no predictor")
    return predictor_read(info)


@router.put("/projects/{project_id}/predictor", response_model=PredictorRead)
def set_predictor(ref: ProjectRefDep, body: PredictorUpdate, actor: ActorDep, services: ServicesDep) -> PredictorRead:
    config = PredictorConfig(**body.model_dump())
    return predictor_read(services.predictions.configure(actor, ref.client_id, ref.project_id, config))


@router.delete("/projects/{project_id}/predictor", status_code=status.HTTP_204_NO_CONTENT)
def delete_predictor(ref: ProjectRefDep, actor: ActorDep, services: ServicesDep) -> Response:
    services.predictions.clear(actor, ref.client_id, ref.project_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/projects/{project_id}/predictions", response_model=PredictionRunRead)
async def run_predictor(
    ref: ProjectRefDep, actor: ActorDep, services: ServicesDep, body: PredictionRun | None = None
) -> PredictionRunRead:
    """Run the predictor now, in this request (batch by batch; a failure names the batch and keeps
    the batches written before it)."""
    everything = body.all if body is not None else False
    report = await run_in_threadpool(
        lambda: services.predictions.run(actor, ref.client_id, ref.project_id, everything=everything)
    )
    return PredictionRunRead(**report.to_dict())
