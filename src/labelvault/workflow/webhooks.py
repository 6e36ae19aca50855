"""Webhooks: a project's endpoints are told of events, signed, retried, and every attempt logged.

Events and where they are written (always an outbox row per subscribed endpoint, so a rolled-back
act never sends anything):

- ``task.completed``: in the submit transaction, from a ``QueueHooks.on_complete`` hook;
- ``project.completed``: in the same transaction, when that task was the last one wanting answers;
- ``answer.rejected``: in the review decision's transaction (``ReviewService`` ``on_reject`` hook);
- ``budget.reached``: the queue's refusal rolls its transaction back, so the refusal hook records
  it in a short transaction of its own, once per endpoint and budget cap (a unique key).

Bodies carry ids, counts and times, never client content: the receiver fetches content with its
own token. The hot path stays free: ``Project.webhook_events`` (the union of the event types of
the project's active endpoints) is read from the project row the queue already loaded, so a
project without webhooks costs no query at all.

Delivery follows the Standard Webhooks spec: ``webhook-id`` (the same on every attempt),
``webhook-timestamp`` (seconds) and ``webhook-signature: v1,<base64 HMAC-SHA256 of
id.timestamp.body>`` under the endpoint's ``whsec_`` secret (generated here, shown once, sealed
under the client's data key). A 2xx answer is success; anything else (3xx included) is retried
with exponential backoff and jitter until the attempts or the age run out. Dispatchers claim due
rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the single write lock on SQLite) and mark them as
being sent until a deadline, so any number of processes may run one; a claim abandoned by a crash
becomes due again after the deadline (at-least-once delivery: receivers dedupe by ``webhook-id``).
Outbound requests reuse the URL-import guard: allowed hosts only, resolved once and pinned,
private, loopback and link-local addresses refused unless allowed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import random
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from sqlalchemy import Select, delete, exists, func, select, update
from sqlalchemy.exc import IntegrityError

from labelvault.audit import log as audit_log
from labelvault.domain.access import Actor, ProjectPolicy
from labelvault.domain.webhooks import ANSWER_REJECTED, BUDGET_REACHED, EVENT_TYPES, PROJECT_COMPLETED, TASK_COMPLETED
from labelvault.errors import InvalidInput, LabelVaultError, NotFound, QueueRefused
from labelvault.io.fetch import FetchPolicy, resolve_target
from labelvault.storage.ids import allocate_ids
from labelvault.storage.models import (
    Answer,
    Client,
    Lease,
    Project,
    Task,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    utcnow,
)
from labelvault.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory
from labelvault.workflow.access import access_in
from labelvault.workflow.completion import CompletedTask
from labelvault.workflow.projects import load_project

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
USER_AGENT = "LabelVault-Webhooks/1"
DELIVERY_STATUSES = ("pending", "sending", "delivered", "failed")


@dataclass(frozen=True)
class WebhookConfig:
    """What the bootstrap reads from the settings."""

    policy: FetchPolicy = field(default_factory=FetchPolicy)
    max_attempts: int = 10
    max_age: timedelta = timedelta(days=1)
    retry_base_seconds: float = 30.0
    retry_max_seconds: float = 6 * 3600.0
    timeout_seconds: float = 10.0
    batch_size: int = 20

    @property
    def claim_window(self) -> timedelta:
        # Longer than one request can take, so a live dispatcher records its result before
        # another may take the row over; short enough that a crashed one's rows come back soon.
        return timedelta(seconds=self.timeout_seconds + 30)

    def backoff(self, attempt: int) -> timedelta:
        """Wait after failed attempt ``attempt`` (1-based): doubling from the base, capped, +-20% jitter."""
        delay = min(self.retry_base_seconds * 2 ** (attempt - 1), self.retry_max_seconds)
        return timedelta(seconds=delay * random.uniform(0.8, 1.2))


# --- signing (Standard Webhooks)


def new_secret() -> str:
    return secret_text(secrets.token_bytes(32))


def secret_bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def secret_text(key: bytes) -> str:
    """The secret as it is shown (``secret_bytes`` undone)."""
    return SECRET_PREFIX + base64.b64encode(key).decode()


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` and the base64 HMAC-SHA256 of ``id.timestamp.body``."""
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


# --- checking a target


def check_url(url: str, policy: FetchPolicy) -> tuple[str, str, int]:
    """Refuse a URL that is not http(s) on an allowed host resolving to allowed addresses.

    Returns (host, address, port): the one resolution the request is then pinned to."""
    if len(url) > 2000:
        raise InvalidInput("the webhook URL is longer than 2000 characters", details={"field": "url"})
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(f"refusing webhook URL {url}: only http and https", details={"field": "url"})
    host = (parts.hostname or "").lower()
    if not host or ("*" not in policy.allowed_hosts and host not in policy.allowed_hosts):
        raise InvalidInput(
            f"refusing webhook URL {url}: host {host or '(none)'} is not on the allow-list "
            "(LABELVAULT_WEBHOOK_ALLOWED_HOSTS)",
            details={"field": "url"},
        )
    return resolve_target(url, policy)  # private, loopback, link-local and metadata addresses refused


def _post(url: str, body: bytes, headers: dict[str, str], policy: FetchPolicy, timeout: float) -> int:
    """POST to the checked, pinned address; redirects are not followed (a 3xx is a failure)."""
    host, address, _port = check_url(url, policy)
    parts = urlsplit(url)
    literal = f"[{address}]" if ":" in address else address
    pinned = parts._replace(netloc=literal + (f":{parts.port}" if parts.port else "")).geturl()
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        request = client.build_request(
            "POST", pinned, content=body, headers={**headers, "Host": host}, extensions={"sni_hostname": host}
        )
        response = client.send(request, stream=True)  # the receiver's body is of no interest
        response.close()
        return response.status_code


# --- recording events (inside the act's transaction)


def _events_of(project: Project) -> frozenset[str]:
    return frozenset((project.webhook_events or "").split())


def record(
    uow: UnitOfWork, project: Project, event_type: str, data: dict[str, Any], *, dedupe_key: str | None = None
) -> int:
    """Write one outbox row per active endpoint of the project subscribed to ``event_type``.

    Runs in the caller's transaction: if the act rolls back, so do its events. Returns the rows written."""
    if event_type not in _events_of(project):
        return 0
    endpoints = uow.session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.project_id == project.id, WebhookEndpoint.active.is_(True))
    ).all()
    now = utcnow()
    body = orjson.dumps(
        {"type": event_type, "timestamp": now.isoformat().replace("+00:00", "Z"), "data": data}
    ).decode()
    written = 0
    for endpoint in endpoints:
        if event_type not in endpoint.events.split():
            continue
        uow.session.add(
            WebhookDelivery(
                project_id=project.id, endpoint_id=endpoint.id, message_id="msg_" + secrets.token_urlsafe(18),
                event_type=event_type, body=body, dedupe_key=dedupe_key, status="pending", attempts=0,
                next_attempt_at=now, created_at=now, last_error="",
            )
        )
        written += 1
    return written


def on_task_complete(uow: UnitOfWork, project: Project, task: CompletedTask) -> None:
    """``QueueHooks.on_complete``: task completed, and project completed when it was the last."""
    events = _events_of(project)
    if not events or task.answer_count < task.required_answers:  # an earlier hook may have asked for more
        return
    if TASK_COMPLETED in events:
        record(uow, project, TASK_COMPLETED, {
            "project_id": project.id, "task_id": task.id, "answer_count": task.answer_count,
            "required_answers": task.required_answers,
        })
    if PROJECT_COMPLETED in events:
        # Serialise completions of this project (PostgreSQL, READ COMMITTED): otherwise the last two
        # tasks, completed at once, could each see the other still open and neither would tell.
        uow.session.execute(select(Project.id).where(Project.id == project.id).with_for_update())
        open_task = uow.session.scalar(
            select(Task.id).where(Task.project_id == project.id, Task.open_slots > 0).limit(1)
        )
        held = uow.session.scalar(select(Lease.id).where(Lease.project_id == project.id).limit(1))
        if open_task is None and held is None:
            counts = uow.session.execute(
                select(func.count(), func.coalesce(func.sum(Task.answer_count), 0)).where(
                    Task.project_id == project.id, Task.is_gold.is_(False)
                )
            ).one()
            record(uow, project, PROJECT_COMPLETED, {
                "project_id": project.id, "task_count": int(counts[0]), "answer_count": int(counts[1]),
            })


def on_answers_rejected(uow: UnitOfWork, project: Project, task: Task, answers: list[Answer]) -> None:
    """``ReviewService`` ``on_reject`` hook: answers rejected (the reason is content: not sent)."""
    if ANSWER_REJECTED not in _events_of(project):
        return
    record(uow, project, ANSWER_REJECTED, {
        "project_id": project.id, "task_id": task.id, "answer_ids": [a.id for a in answers],
        "labeler_ids": sorted({a.user_id for a in answers}), "rejected_count": len(answers),
    })


# --- use cases


@dataclass(frozen=True, slots=True)
class WebhookInfo:
    id: int
    project_id: int
    url: str
    events: list[str]
    active: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class WebhookCreated:
    webhook: WebhookInfo
    secret: str  # shown once


@dataclass(frozen=True, slots=True)
class AttemptInfo:
    attempt: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str
    next_attempt_at: datetime | None


@dataclass(frozen=True, slots=True)
class DeliveryInfo:
    id: int
    endpoint_id: int
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
    log: list[AttemptInfo]


def _info(endpoint: WebhookEndpoint) -> WebhookInfo:
    return WebhookInfo(endpoint.id, endpoint.project_id, endpoint.url, endpoint.events.split(), endpoint.active,
                       endpoint.created_at)


def parse_events(events: Iterable[str]) -> list[str]:
    chosen = sorted({e.strip() for e in events if e.strip()})
    unknown = [e for e in chosen if e not in EVENT_TYPES]
    if unknown or not chosen:
        raise InvalidInput(
            f"events must be one or more of {', '.join(EVENT_TYPES)}" + (f" (not {unknown[0]})" if unknown else ""),
            details={"field": "events"},
        )
    return chosen


def refresh_subscriptions(uow: UnitOfWork, project_id: int) -> None:
    """Keep ``Project.webhook_events`` equal to what the active endpoints want."""
    wanted: set[str] = set()
    for events in uow.session.scalars(
        select(WebhookEndpoint.events).where(WebhookEndpoint.project_id == project_id,
                                             WebhookEndpoint.active.is_(True))
    ):
        wanted.update(events.split())
    uow.session.execute(
        update(Project).where(Project.id == project_id).values(webhook_events=" ".join(sorted(wanted)))
    )


def _lock_project(uow: UnitOfWork, project_id: int) -> None:
    # Endpoint changes of one project in turn, so the subscription column never misses one.
    uow.session.execute(select(Project.id).where(Project.id == project_id).with_for_update())


class WebhookService:
    """Managers of a client add, list and remove a project's endpoints and read their delivery log."""

    def __init__(self, uow_factory: UnitOfWorkFactory, config: WebhookConfig) -> None:
        self.uow_factory = uow_factory
        self.config = config
        # (project, cap) whose budget.reached is recorded: spares the refused next requests a
        # write. Only a shortcut: the unique dedupe key is what guarantees "once", across processes.
        self._budget_seen: set[tuple[int, int]] = set()

    def add(
        self, actor: Actor, client_id: int, project_id: int, url: str, events: Iterable[str], *, active: bool = True
    ) -> WebhookCreated:
        chosen = parse_events(events)
        check_url(url, self.config.policy)  # before any transaction: it may resolve a name
        secret = new_secret()
        with self.uow_factory.for_client(client_id, write=True) as uow:
            ProjectPolicy.manage(access_in(uow, actor))
            load_project(uow, project_id)
            _lock_project(uow, project_id)
            endpoint_id = allocate_ids(uow.session, WebhookEndpoint, 1)[0]
            key_id, cipher = uow.active_cipher()
            endpoint = WebhookEndpoint(
                id=endpoint_id, project_id=project_id, url=url, events=" ".join(chosen), data_key_id=key_id,
                secret=cipher.seal("webhook.secret", endpoint_id, secret_bytes(secret)), active=active,
                created_at=utcnow(),
            )
            uow.session.add(endpoint)
            uow.flush()
            refresh_subscriptions(uow, project_id)
            audit_log.append(uow, "webhook.created", actor=actor, client_id=client_id, object_kind="webhook",
                             object_id=endpoint_id, details={"project_id": project_id, "events": chosen})
            uow.commit()
            return WebhookCreated(_info(endpoint), secret)

    def list(self, actor: Actor, client_id: int, project_id: int) -> list[WebhookInfo]:
        with self.uow_factory.for_client(client_id) as uow:
            ProjectPolicy.manage(access_in(uow, actor))
            load_project(uow, project_id)
            rows = uow.session.scalars(
                select(WebhookEndpoint).where(WebhookEndpoint.project_id == project_id).order_by(WebhookEndpoint.id)
            ).all()
            return [_info(e) for e in rows]

    def _endpoint(self, uow: UnitOfWork, project_id: int, webhook_id: int) -> WebhookEndpoint:
        endpoint = uow.session.get(WebhookEndpoint, webhook_id)
        if endpoint is None or endpoint.project_id != project_id:
            raise NotFound(f"webhook {webhook_id} not found")
        return endpoint

    def set_active(self, actor: Actor, client_id: int, project_id: int, webhook_id: int, active: bool) -> WebhookInfo:
        with self.uow_factory.for_client(client_id, write=True) as uow:
            ProjectPolicy.manage(access_in(uow, actor))
            load_project(uow, project_id)
            _lock_project(uow, project_id)
            endpoint = self._endpoint(uow, project_id, webhook_id)
            endpoint.active = active
            uow.flush()
            refresh_subscriptions(uow, project_id)
            audit_log.append(uow, "webhook.activated" if active else "webhook.deactivated", actor=actor,
                             client_id=client_id, object_kind="webhook", object_id=webhook_id,
                             details={"project_id": project_id})
            uow.commit()
            return _info(endpoint)

    def remove(self, actor: Actor, client_id: int, project_id: int, webhook_id: int) -> None:
        """Delete an endpoint with its pending deliveries and its log."""
        with self.uow_factory.for_client(client_id, write=True) as uow:
            ProjectPolicy.manage(access_in(uow, actor))
            load_project(uow, project_id)
            _lock_project(uow, project_id)
            self._endpoint(uow, project_id, webhook_id)
            delivery_ids = select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == webhook_id)
            uow.session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(delivery_ids)))
            uow.session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == webhook_id))
            uow.session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == webhook_id))
            refresh_subscriptions(uow, project_id)
            audit_log.append(uow, "webhook.removed", actor=actor, client_id=client_id, object_kind="webhook",
                             object_id=webhook_id, details={"project_id": project_id})
            uow.commit()

    def deliveries(
        self, actor: Actor, client_id: int, project_id: int, *, webhook_id: int | None = None,
        status: str | None = None, delivery_id: int | None = None, offset: int = 0, limit: int = 100,
    ) -> tuple[list[DeliveryInfo], int]:
        """The delivery log, newest first, each delivery with its attempts."""
        if status is not None and status not in DELIVERY_STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(DELIVERY_STATUSES)}", details={"field": "status"})
        with self.uow_factory.for_client(client_id) as uow:
            ProjectPolicy.manage(access_in(uow, actor))
            load_project(uow, project_id)
            query = select(WebhookDelivery).where(WebhookDelivery.project_id == project_id)
            if webhook_id is not None:
                query = query.where(WebhookDelivery.endpoint_id == webhook_id)
            if status is not None:
                query = query.where(WebhookDelivery.status == status)
            if delivery_id is not None:
                query = query.where(WebhookDelivery.id == delivery_id)
            total = uow.session.scalar(select(func.count()).select_from(query.subquery())) or 0
            rows = uow.session.scalars(query.order_by(WebhookDelivery.id.desc()).offset(offset).limit(limit)).all()
            return _delivery_infos(uow, rows), total

    def retry(self, actor: Actor, client_id: int, project_id: int, delivery_id: int) -> DeliveryInfo:
        """Send a failed (or delivered) delivery again now: one more attempt, then as usual."""
        with self.uow_factory.for_client(client_id, write=True) as uow:
            ProjectPolicy.manage(access_in(uow, actor))
            load_project(uow, project_id)
            row = uow.session.get(WebhookDelivery, delivery_id)
            if row is None or row.project_id != project_id:
                raise NotFound(f"delivery {delivery_id} not found")
            if row.status in ("pending", "sending"):
                raise InvalidInput(f"delivery {delivery_id} is {row.status} already", details={"field": "delivery"})
            row.status = "pending"
            row.next_attempt_at = utcnow()
            audit_log.append(uow, "webhook.retried", actor=actor, client_id=client_id, object_kind="webhook_delivery",
                             object_id=delivery_id, details={"project_id": project_id})
            # As committed: read after the commit, the dispatcher may have taken it up already.
            retried = _delivery_infos(uow, [row])[0]
            uow.commit()
        return retried

    # --- the queue's refusal hook (QueueHooks.on_refused)

    def on_queue_refused(self, _actor: Actor, client_id: int, project_id: int, refusal: QueueRefused) -> None:
        """Record ``budget.reached`` once per crossing (per budget cap), in a transaction of its own."""
        if refusal.reason != "budget_reached":
            return
        try:
            self._record_budget_reached(client_id, project_id)
        except Exception:  # the labeler's answer (the refusal) must not depend on a webhook
            log.exception("recording budget.reached failed", extra={"project_id": project_id})

    def _record_budget_reached(self, client_id: int, project_id: int) -> None:
        with self.uow_factory.for_client(client_id) as uow:
            project = uow.projects.get(project_id)
            if project is None or BUDGET_REACHED not in _events_of(project) or project.budget_cap is None:
                return
            cap = project.budget_cap
        if (project_id, cap) in self._budget_seen:
            return
        key = f"{BUDGET_REACHED}:{cap}"
        try:
            with self.uow_factory.for_client(client_id, write=True) as uow:
                project = load_project(uow, project_id)
                if project.budget_cap != cap:
                    return
                already = uow.session.scalar(
                    select(exists().where(WebhookDelivery.project_id == project_id,
                                          WebhookDelivery.dedupe_key == key))
                )
                if not already:
                    client = uow.session.get(Client, client_id)
                    record(uow, project, BUDGET_REACHED, {
                        "project_id": project_id, "budget_cap": cap, "spent": project.spent,
                        "currency": client.currency if client else "",
                    }, dedupe_key=key)
                    uow.commit()
        except IntegrityError:
            pass  # another process recorded it first
        self._budget_seen.add((project_id, cap))


# --- the dispatcher


@dataclass
class DispatchReport:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0

    @property
    def attempted(self) -> int:
        return self.delivered + self.retrying + self.failed


@dataclass(frozen=True)
class _Claimed:
    id: int
    client_id: int
    endpoint_id: int
    message_id: str
    body: str
    attempt: int
    created_at: datetime


class WebhookDispatcher:
    """Sends due deliveries. Safe to run in several threads and processes at once."""

    def __init__(self, uow_factory: UnitOfWorkFactory, config: WebhookConfig) -> None:
        self.uow_factory = uow_factory
        self.config = config

    def run_once(self, *, limit: int | None = None) -> DispatchReport:
        """Claim what is due now (up to ``limit``, default one batch) and send it."""
        report = DispatchReport()
        for claimed in self._claim(limit or self.config.batch_size):
            self._deliver(claimed, report)
        return report

    def drain(self, *, max_batches: int = 1000) -> DispatchReport:
        """Run batches until nothing is due (the CLI's ``webhook deliver``)."""
        total = DispatchReport()
        for _ in range(max_batches):
            report = self.run_once()
            total.delivered += report.delivered
            total.retrying += report.retrying
            total.failed += report.failed
            if report.attempted == 0:
                break
        return total

    def _due(self, now: datetime) -> Select[tuple[WebhookDelivery]]:
        return select(WebhookDelivery).where(
            WebhookDelivery.status.in_(("pending", "sending")), WebhookDelivery.next_attempt_at <= now
        )

    def _claim(self, limit: int) -> list[_Claimed]:
        now = utcnow()
        # The dispatcher serves every client's endpoints: an all-clients scope, for ids and clear
        # bodies only; each secret is opened below in its own client's scope.
        with self.uow_factory.all_clients() as uow:
            # A cheap read first, so an idle dispatcher never takes SQLite's write lock.
            if not uow.session.scalar(select(self._due(now).exists())):
                return []
        with self.uow_factory.all_clients(write=True) as uow:
            rows = uow.session.scalars(
                self._due(now).order_by(WebhookDelivery.next_attempt_at).limit(limit).with_for_update(skip_locked=True)
            ).all()
            claimed = []
            for row in rows:
                row.status = "sending"
                row.attempts += 1
                row.next_attempt_at = now + self.config.claim_window
                claimed.append(_Claimed(row.id, row.client_id, row.endpoint_id, row.message_id, row.body,
                                        row.attempts, row.created_at))
            uow.commit()
        return claimed

    def _deliver(self, claimed: _Claimed, report: DispatchReport) -> None:
        started = utcnow()
        clock = time.monotonic()
        try:
            status_code, error, permanent = self._attempt(claimed)
        except Exception as exc:  # recorded as a failed attempt, so the row cannot cycle unrecorded
            log.exception("webhook attempt failed unexpectedly", extra={"delivery_id": claimed.id})
            status_code, error, permanent = None, f"internal error: {type(exc).__name__}", False
        duration_ms = int((time.monotonic() - clock) * 1000)
        self._record_result(claimed, started, duration_ms, status_code, error, permanent, report)

    def _attempt(self, claimed: _Claimed) -> tuple[int | None, str, bool]:
        """One signed POST: (status code, error or "", whether retrying is pointless)."""
        with self.uow_factory.for_client(claimed.client_id) as uow:
            endpoint = uow.session.get(WebhookEndpoint, claimed.endpoint_id)
            if endpoint is None or not endpoint.active:
                return None, "the endpoint is inactive", True
            url = endpoint.url
            key = uow.cipher(endpoint.data_key_id).open("webhook.secret", endpoint.id, endpoint.secret)
        timestamp = int(time.time())
        body = claimed.body.encode()
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": claimed.message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(key, claimed.message_id, timestamp, body),
        }
        try:
            status_code = _post(url, body, headers, self.config.policy, self.config.timeout_seconds)
        except InvalidInput as exc:  # the target is no longer allowed: retrying will not help
            return None, exc.message[:500], True
        except httpx.HTTPError as exc:  # timeouts, refused connections, broken responses
            return None, f"{type(exc).__name__}: {exc}"[:500], False
        except LabelVaultError as exc:
            return None, exc.message[:500], False
        return status_code, "" if 200 <= status_code < 300 else f"HTTP {status_code}", False

    def _record_result(
        self, claimed: _Claimed, started: datetime, duration_ms: int, status_code: int | None, error: str,
        permanent: bool, report: DispatchReport,
    ) -> None:
        now = utcnow()
        next_at: datetime | None = None
        if not error:
            outcome = "delivered"
        elif permanent or claimed.attempt >= self.config.max_attempts:
            outcome = "failed"
        else:
            next_at = now + self.config.backoff(claimed.attempt)
            outcome = "failed" if next_at - claimed.created_at > self.config.max_age else "pending"
            if outcome == "failed":
                next_at = None
        with self.uow_factory.for_client(claimed.client_id, write=True) as uow:
            row = uow.session.get(WebhookDelivery, claimed.id)
            if row is None or row.status != "sending" or row.attempts != claimed.attempt:
                return  # removed, or taken over after our claim ran out: theirs is the record
            uow.session.add(WebhookAttempt(
                delivery_id=claimed.id, attempt=claimed.attempt, started_at=started, duration_ms=duration_ms,
                status_code=status_code, error=error[:500], next_attempt_at=next_at,
            ))
            row.status = outcome
            row.last_status_code = status_code
            row.last_error = error[:500]
            if outcome == "delivered":
                row.delivered_at = now
            row.next_attempt_at = next_at or now
            uow.commit()
        if outcome == "delivered":
            report.delivered += 1
        elif outcome == "pending":
            report.retrying += 1
        else:
            report.failed += 1


def _delivery_infos(uow: UnitOfWork, rows: Sequence[WebhookDelivery]) -> list[DeliveryInfo]:
    """The deliveries as the API shows them, each with its attempts (one read for all)."""
    attempts: dict[int, list[AttemptInfo]] = {row.id: [] for row in rows}
    if rows:
        for a in uow.session.scalars(
            select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(list(attempts)))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.attempt)
        ):
            attempts[a.delivery_id].append(
                AttemptInfo(a.attempt, a.started_at, a.duration_ms, a.status_code, a.error, a.next_attempt_at)
            )
    return [
        DeliveryInfo(
            r.id, r.endpoint_id, r.message_id, r.event_type, r.status, r.attempts, r.created_at,
            r.next_attempt_at if r.status in ("pending", "sending") else None, r.delivered_at,
            r.last_status_code, r.last_error, orjson.loads(r.body), attempts[r.id],
        )
        for r in rows
    ]
