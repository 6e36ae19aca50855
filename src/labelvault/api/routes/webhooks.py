"""A project's webhook endpoints and their delivery log (managers; another client's project is 404)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from labelvault.api.deps import ActorDep, PageDep, ServicesDep
from labelvault.api.routes.projects import ProjectRefDep
from labelvault.api.schemas import Page
from labelvault.domain.webhooks import EVENT_TYPES
from labelvault.workflow.webhooks import DeliveryInfo, WebhookInfo

router = APIRouter(tags=["webhooks"])


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="http(s) URL on a host of LABELVAULT_WEBHOOK_ALLOWED_HOSTS.")
    events: list[str] = Field(description=f"Event types to send: any of {', '.join(EVENT_TYPES)}.")
    active: bool = True


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    active: bool


class WebhookRead(BaseModel):
    id: int
    project_id: int
    url: str
    events: list[str]
    active: bool
    created_at: datetime


class WebhookCreatedRead(WebhookRead):
    secret: str = Field(description="The signing secret (whsec_...): shown only in this answer.")


class AttemptRead(BaseModel):
    attempt: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str
    next_attempt_at: datetime | None


class DeliveryRead(BaseModel):
    id: int
    webhook_id: int
    message_id: str
    event_type: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_status_code: int | None
    last_error: str
    body: dict[str, Any]
    log: list[AttemptRead]


def webhook_read(info: WebhookInfo) -> WebhookRead:
    return WebhookRead(id=info.id, project_id=info.project_id, url=info.url, events=info.events, active=info.active,
                       created_at=info.created_at)


def delivery_read(info: DeliveryInfo) -> DeliveryRead:
    return DeliveryRead(
        id=info.id, webhook_id=info.endpoint_id, message_id=info.message_id, event_type=info.event_type,
        status=info.status, attempts=info.attempts, created_at=info.created_at, next_attempt_at=info.next_attempt_at,
        delivered_at=info.delivered_at, last_status_code=info.last_status_code, last_error=info.last_error,
        body=info.body, log=[AttemptRead.model_validate(a, from_attributes=True) for a in info.log],
    )


@router.post("/projects/{project_id}/webhooks", status_code=status.HTTP_201_CREATED,
             response_model=WebhookCreatedRead)
async def add_webhook(
    ref: ProjectRefDep, body: WebhookCreate, actor: ActorDep, services: ServicesDep
) -> WebhookCreatedRead:
    """Add an endpoint; the answer holds its signing secret, which is never shown again."""
    created = await run_in_threadpool(  # resolves the host name: off the event loop
        lambda: services.webhooks.add(actor, ref.client_id, ref.project_id, body.url, body.events,
                                      active=body.active)
    )
    return WebhookCreatedRead(**webhook_read(created.webhook).model_dump(), secret=created.secret)


@router.get("/projects/{project_id}/webhooks", response_model=list[WebhookRead])
def list_webhooks(ref: ProjectRefDep, actor: ActorDep, services: ServicesDep) -> list[WebhookRead]:
    return [webhook_read(w) for w in services.webhooks.list(actor, ref.client_id, ref.project_id)]


@router.patch("/projects/{project_id}/webhooks/{webhook_id}", response_model=WebhookRead)
def update_webhook(
    ref: ProjectRefDep, webhook_id: int, body: WebhookUpdate, actor: ActorDep, services: ServicesDep
) -> WebhookRead:
    """Pause or resume an endpoint (a paused one is sent nothing; its due deliveries fail)."""
    return webhook_read(services.webhooks.set_active(actor, ref.client_id, ref.project_id, webhook_id, body.active))


@router.delete("/projects/{project_id}/webhooks/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_webhook(ref: ProjectRefDep, webhook_id: int, actor: ActorDep, services: ServicesDep) -> Response:
    """Remove an endpoint with its deliveries and their log."""
    services.webhooks.remove(actor, ref.client_id, ref.project_id, webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/projects/{project_id}/webhook-deliveries", response_model=Page[DeliveryRead])
def list_deliveries(
    ref: ProjectRefDep, actor: ActorDep, services: ServicesDep, page: PageDep,
    webhook_id: Annotated[int | None, Query(description="Only this endpoint's deliveries.")] = None,
    status_: Annotated[str | None, Query(alias="status", description="pending, sending, delivered or failed.")] = None,
) -> Page[DeliveryRead]:
    """The delivery log, newest first: each event sent or to send, with every attempt."""
    items, total = services.webhooks.deliveries(actor, ref.client_id, ref.project_id, webhook_id=webhook_id,
                                                status=status_, offset=page.offset, limit=page.limit)
    return Page(items=[delivery_read(d) for d in items], total=total, offset=page.offset, limit=page.limit)


@router.post("/projects/{project_id}/webhook-deliveries/{delivery_id}/retry", response_model=DeliveryRead)
def retry_delivery(ref: ProjectRefDep, delivery_id: int, actor: ActorDep, services: ServicesDep) -> DeliveryRead:
    """Send a failed (or delivered) delivery again, now."""
    return delivery_read(services.webhooks.retry(actor, ref.client_id, ref.project_id, delivery_id))
