"""The labeler's loop: next task, submit, skip."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from labelvault.api.deps import ActorDep, ServicesDep, get_actor, get_services, run_queue_step
from labelvault.api.routes.projects import ProjectRefDep, project_ref
from labelvault.api.schemas import (
    AnswerReceipt,
    AnswerReceiptAndNext,
    AnswerSubmit,
    LeasedTaskRead,
    NextTaskError,
    SkipCreate,
)
from labelvault.domain.access import Actor
from labelvault.errors import InvalidInput, LabelVaultError
from labelvault.workflow.labeling import LabelingService, LeasedTask, SubmittedAnswer

router = APIRouter(tags=["labeling"])


# Next and submit are most of a server's requests. They take the request itself instead of FastAPI
# dependencies and return ready JSON: that skips the per-request dependency resolution and response
# validation (about half of what a request cost the web stack), while the checks stay the same ones:
# the same actor lookup, the same Pydantic models, the same errors (the OpenAPI document still
# describes the body, the header and the response).
_ANSWER_SUBMIT_DOC: dict[str, Any] = {
    "parameters": [
        {"name": "Idempotency-Key", "in": "header", "required": False,
         "schema": {"type": "string", "maxLength": 100}},
        {"name": "next", "in": "query", "required": False, "schema": {"type": "boolean", "default": False},
         "description": "Also lease the caller's next task, answered as next_task (or next_error: what "
                        "tasks/next would have answered instead), in the same request."},
    ],
    "requestBody": {"required": True, "content": {"application/json": {"schema": AnswerSubmit.model_json_schema()}}},
}


def _json(model: BaseModel) -> Response:
    return Response(model.model_dump_json(), media_type="application/json")


@router.post("/projects/{project_id}/tasks/next", response_model=LeasedTaskRead)
async def next_task(project_id: Annotated[int, Path(ge=1)], request: Request) -> Response:
    """Lease the next task for the caller (the same one again while a lease is open)."""
    services = get_services(request)
    actor = await get_actor(request, services)
    ref = await project_ref(services, project_id)
    leased = await run_queue_step(services, services.labeling.next_task, actor, ref.client_id, ref.project_id)
    return _json(_leased_read(leased))


def _leased_read(leased: LeasedTask) -> LeasedTaskRead:
    return LeasedTaskRead(
        task_id=leased.task_id, project_id=leased.project_id, data=leased.payload,
        suggestions=leased.suggestions, lease_started_at=leased.lease_started_at,
        lease_expires_at=leased.lease_expires_at,
    )


def _submit_then_next(
    labeling: LabelingService, actor: Actor, client_id: int, project_id: int, task_id: int,
    answer: dict[str, Any], idempotency_key: str | None,
) -> tuple[SubmittedAnswer, LeasedTask | LabelVaultError]:
    receipt = labeling.submit(actor, client_id, project_id, task_id, answer, idempotency_key=idempotency_key)
    try:
        return receipt, labeling.next_task(actor, client_id, project_id)
    except LabelVaultError as refused:
        return receipt, refused


_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


@router.post("/projects/{project_id}/tasks/{task_id}/answers", response_model=AnswerReceipt | AnswerReceiptAndNext,
             openapi_extra=_ANSWER_SUBMIT_DOC)
async def submit_answer(project_id: Annotated[int, Path(ge=1)], task_id: int, request: Request) -> Response:
    """Submit an answer. Repeating a request with the same idempotency key returns the first result.

    With ``?next=true`` the caller's next task is leased in the same request once the answer is
    stored (a labeler's loop then costs one request per task instead of two): it comes as
    ``next_task``, or, where ``tasks/next`` would have answered with an error (the queue has
    nothing left for them, the budget is reached...), that error as ``next_error``; the answer is
    stored either way. A repeated submit with ``next`` answers the first receipt and the lease the
    caller holds by then, as ``tasks/next`` does."""
    services = get_services(request)
    actor = await get_actor(request, services)
    flag = request.query_params.get("next", "false").lower()
    if flag not in _TRUE and flag not in _FALSE:
        raise InvalidInput("query parameter next must be true or false", details={"field": "next"})
    then_next = flag in _TRUE
    try:
        body = AnswerSubmit.model_validate_json(await request.body())
    except ValidationError as invalid:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in invalid.errors()]) from None
    ref = await project_ref(services, project_id)
    key = body.idempotency_key or request.headers.get("idempotency-key")
    following: LeasedTask | LabelVaultError
    if then_next and services.uow_factory.serialize_writers:
        # SQLite: one step, so both share a write batch and its commit (a step there runs once).
        receipt, following = await run_queue_step(
            services, _submit_then_next, services.labeling, actor, ref.client_id, ref.project_id, task_id,
            body.answer, key,
        )
    else:
        receipt = await run_queue_step(
            services, services.labeling.submit, actor, ref.client_id, ref.project_id, task_id, body.answer,
            idempotency_key=key,
        )
        if not then_next:
            return _json(AnswerReceipt.model_validate(receipt, from_attributes=True))
        # PostgreSQL runs a step again in a thread after a long lock wait: two steps, so a wait in
        # the next never repeats the submit. The answer is stored whatever happens to the next.
        try:
            following = await run_queue_step(
                services, services.labeling.next_task, actor, ref.client_id, ref.project_id)
        except LabelVaultError as refused:
            following = refused
    if isinstance(following, LabelVaultError):
        next_task, next_error = None, NextTaskError(status=following.http_status, **following.to_dict())
    else:
        next_task, next_error = _leased_read(following), None
    return _json(AnswerReceiptAndNext(**asdict(receipt), next_task=next_task, next_error=next_error))


@router.post("/projects/{project_id}/tasks/{task_id}/skip", status_code=status.HTTP_204_NO_CONTENT)
def skip_task(ref: ProjectRefDep, task_id: int, body: SkipCreate, actor: ActorDep, services: ServicesDep) -> None:
    services.labeling.skip(actor, ref.client_id, ref.project_id, task_id, body.reason)
