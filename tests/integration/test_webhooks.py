"""Webhooks on real SQLite and PostgreSQL, delivered to a real HTTP receiver on a local socket."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from sqlalchemy import event, select
from standardwebhooks.webhooks import Webhook

from labelvault.bootstrap import Services, build_services
from labelvault.errors import InvalidInput, NotFound, PermissionDenied, QueueRefused
from labelvault.storage.models import Project, Task, WebhookDelivery
from labelvault.storage.unit_of_work import UnitOfWork
from labelvault.workflow.labeling import LabelingService, QueueHooks
from labelvault.workflow.webhooks import WebhookDispatcher, on_task_complete
from tests.conftest import World
from tests.integration.queue_helpers import make_labelers, make_project

ALL_EVENTS = ["task.completed", "project.completed", "answer.rejected", "budget.reached"]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """A local HTTP server that answers with scripted status codes (then 200) and keeps every request."""

    server: ThreadingHTTPServer
    statuses: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        bodies = [orjson.loads(r.body) for r in self.requests]
        return [b for b in bodies if b["type"] == event_type]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            state = holder["r"]
            if state.delay:
                time.sleep(state.delay)
            with state.lock:
                state.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                                               time.monotonic()))
                code = state.statuses.pop(0) if state.statuses else 200
            self.send_response(code)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["r"] = Receiver(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder["r"]
    server.shutdown()
    server.server_close()


def with_webhooks(world: World, **overrides: Any) -> Services:
    settings = world.services.settings.model_copy(update={
        "webhook_allowed_hosts": "127.0.0.1", "webhook_allow_private": True, "webhook_retry_base_seconds": 0.05,
        "webhook_retry_max_seconds": 1.0, "webhook_timeout_seconds": 5.0, **overrides,
    })
    return build_services(settings)


@pytest.fixture
def hooked(world: World) -> Iterator[World]:
    """The world, with services that may send webhooks to 127.0.0.1 and retry quickly."""
    services = with_webhooks(world)
    yield World(services, world.operator, world.client_a, world.client_b, world.tokens, world.actors)
    services.close()


def verify_by_spec(secret: str, received: Received) -> None:
    """The Standard Webhooks signature, computed independently of LabelVault's code."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{received.headers['webhook-id']}.{received.headers['webhook-timestamp']}.".encode() + received.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    versions = dict(s.split(",", 1) for s in received.headers["webhook-signature"].split(" "))
    assert hmac.compare_digest(versions["v1"], expected)
    assert abs(int(received.headers["webhook-timestamp"]) - time.time()) < 300


def drain_until(dispatcher: WebhookDispatcher, done: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "deliveries did not settle in time"
        dispatcher.run_once()
        time.sleep(0.02)


def label_all(world: World, project_id: int, labeler: str = "labeler_a") -> list[int]:
    labeling = world.services.labeling
    actor = world.actors[labeler]
    done = []
    while True:
        try:
            task = labeling.next_task(actor, world.client_a, project_id)
        except QueueRefused:
            return done
        labeling.submit(actor, world.client_a, project_id, task.task_id, {"sentiment": "positive"})
        done.append(task.task_id)


def test_each_event_type_is_delivered_once_with_a_valid_signature(hooked: World, receiver: Receiver) -> None:
    services = hooked.services
    manager = hooked.actors["manager_a"]
    project_id = make_project(hooked, "events", tasks=2, review_policy="all")
    created = services.webhooks.add(manager, hooked.client_a, project_id, receiver.url, ALL_EVENTS)
    budget_project = make_project(hooked, "money", tasks=3, rate_per_answer=100, budget_cap=100)
    budget_hook = services.webhooks.add(manager, hooked.client_a, budget_project, receiver.url, ["budget.reached"])

    tasks = label_all(hooked, project_id)
    assert len(tasks) == 2
    reviewer = hooked.actors["reviewer_a"]
    item = services.reviews.next_item(reviewer, hooked.client_a, project_id)
    services.reviews.decide(reviewer, hooked.client_a, project_id, item.task_id, decision="reject",
                            reason="the text says otherwise")
    assert len(label_all(hooked, budget_project)) == 1  # then the budget refuses...
    for _ in range(3):  # ...every further request, but the crossing is told once
        with pytest.raises(QueueRefused):
            services.labeling.next_task(hooked.actors["labeler_a"], hooked.client_a, budget_project)

    report = services.webhook_dispatcher.drain()
    assert report.delivered == 5 and report.failed == 0 and report.retrying == 0

    assert sorted(t["data"]["task_id"] for t in receiver.of_type("task.completed")) == sorted(tasks)
    [project_done] = receiver.of_type("project.completed")
    assert project_done["data"] == {"project_id": project_id, "task_count": 2, "answer_count": 2}
    [rejected] = receiver.of_type("answer.rejected")
    assert rejected["data"]["task_id"] == item.task_id and rejected["data"]["rejected_count"] == 1
    [budget] = receiver.of_type("budget.reached")
    assert budget["data"] == {"project_id": budget_project, "budget_cap": 100, "spent": 100, "currency": "USD"}
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 5
    for received in receiver.requests:
        body = orjson.loads(received.body)
        secret = budget_hook.secret if body["type"] == "budget.reached" else created.secret
        verify_by_spec(secret, received)
        assert Webhook(secret).verify(received.body, received.headers)["type"] == body["type"]
        assert received.headers["content-type"] == "application/json"
        assert "text number" not in received.body.decode()  # ids and counts, never task content
    assert services.webhook_dispatcher.drain().attempted == 0  # nothing is sent twice

    items, total = services.webhooks.deliveries(manager, hooked.client_a, project_id)
    assert total == 4 and {d.status for d in items} == {"delivered"}
    assert all(len(d.log) == 1 and d.log[0].status_code == 200 for d in items)


def test_a_failing_receiver_is_retried_with_growing_waits_until_it_answers(
    hooked: World, receiver: Receiver
) -> None:
    services = hooked.services
    project_id = make_project(hooked, "retry", tasks=1)
    services.webhooks.add(hooked.operator, hooked.client_a, project_id, receiver.url, ["task.completed"])
    receiver.statuses = [500, 503, 500]
    label_all(hooked, project_id)

    drain_until(services.webhook_dispatcher, lambda: len(receiver.requests) == 4)
    [delivery], _ = services.webhooks.deliveries(hooked.operator, hooked.client_a, project_id)
    assert delivery.status == "delivered" and delivery.attempts == 4
    assert [a.status_code for a in delivery.log] == [500, 503, 500, 200]
    assert [a.error for a in delivery.log] == ["HTTP 500", "HTTP 503", "HTTP 500", ""]
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1  # one message, several attempts
    waits = [b.at - a.at for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
    # 0.05 s doubled each time with +-20% jitter: at least 0.04, 0.08, 0.16 s apart, and growing.
    assert waits[0] >= 0.04 and waits[1] >= 0.08 and waits[2] >= 0.16
    assert waits[2] > waits[0]
    planned = [a.next_attempt_at for a in delivery.log]
    assert planned[-1] is None and all(p is not None for p in planned[:-1])


def test_a_delivery_is_given_up_after_its_attempts_and_can_be_retried_by_hand(
    world: World, receiver: Receiver
) -> None:
    services = with_webhooks(world, webhook_max_attempts=3)
    try:
        hooked = World(services, world.operator, world.client_a, world.client_b, world.tokens, world.actors)
        project_id = make_project(hooked, "giveup", tasks=1)
        services.webhooks.add(world.operator, world.client_a, project_id, receiver.url, ["task.completed"])
        receiver.statuses = [500] * 10
        label_all(hooked, project_id)

        def settled() -> bool:
            items, _ = services.webhooks.deliveries(world.operator, world.client_a, project_id, status="failed")
            return bool(items)

        drain_until(services.webhook_dispatcher, settled)
        time.sleep(0.3)
        assert services.webhook_dispatcher.drain().attempted == 0
        [delivery], _ = services.webhooks.deliveries(world.operator, world.client_a, project_id)
        assert delivery.status == "failed" and delivery.attempts == 3 and len(receiver.requests) == 3
        assert delivery.log[-1].next_attempt_at is None and delivery.next_attempt_at is None

        receiver.statuses = []
        services.webhooks.retry(world.operator, world.client_a, project_id, delivery.id)
        assert services.webhook_dispatcher.drain().delivered == 1
        [delivery], _ = services.webhooks.deliveries(world.operator, world.client_a, project_id)
        assert delivery.status == "delivered" and [a.attempt for a in delivery.log] == [1, 2, 3, 4]
    finally:
        services.close()


def test_a_host_off_the_allow_list_is_refused_when_added_and_when_delivering(
    world: World, hooked: World, receiver: Receiver
) -> None:
    services = hooked.services
    project_id = make_project(hooked, "hosts", tasks=1)
    for url in ("http://example.com/hook", "ftp://127.0.0.1/hook", f"http://localhost:{receiver.url.split(':')[2]}"):
        with pytest.raises(InvalidInput):
            services.webhooks.add(hooked.operator, hooked.client_a, project_id, url, ["task.completed"])
    strict = world.services  # the install's own settings: no webhook host allowed
    with pytest.raises(InvalidInput, match="allow-list"):
        strict.webhooks.add(hooked.operator, hooked.client_a, project_id, receiver.url, ["task.completed"])
    private_refused = with_webhooks(world, webhook_allow_private=False)
    try:
        with pytest.raises(InvalidInput, match="loopback"):
            private_refused.webhooks.add(hooked.operator, hooked.client_a, project_id, receiver.url,
                                         ["task.completed"])
        services.webhooks.add(hooked.operator, hooked.client_a, project_id, receiver.url, ["task.completed"])
        label_all(hooked, project_id)
        # The operator narrowed the settings since: the dispatcher refuses, and does not retry.
        report = private_refused.webhook_dispatcher.drain()
        assert report.failed == 1 and report.delivered == 0
    finally:
        private_refused.close()
    assert receiver.requests == []
    [delivery], _ = services.webhooks.deliveries(hooked.operator, hooked.client_a, project_id)
    assert delivery.status == "failed" and "loopback" in delivery.log[0].error


def test_the_event_of_a_rolled_back_act_is_never_sent(hooked: World, receiver: Receiver) -> None:
    services = hooked.services
    project_id = make_project(hooked, "rollback", tasks=1)
    services.webhooks.add(hooked.operator, hooked.client_a, project_id, receiver.url, ALL_EVENTS)

    def fail_after_webhooks(_uow: UnitOfWork, _project: Project, _task: Task) -> None:
        raise RuntimeError("the act fails after its event was written")

    failing = LabelingService(services.uow_factory, QueueHooks(on_complete=[on_task_complete, fail_after_webhooks]))
    labeler = hooked.actors["labeler_a"]
    task = failing.next_task(labeler, hooked.client_a, project_id)
    with pytest.raises(RuntimeError):
        failing.submit(labeler, hooked.client_a, project_id, task.task_id, {"sentiment": "positive"})
    assert services.webhook_dispatcher.drain().attempted == 0
    assert receiver.requests == []
    with services.uow_factory.for_client(hooked.client_a) as uow:
        assert uow.session.scalars(select(WebhookDelivery)).all() == []


def test_two_dispatchers_never_send_the_same_delivery_twice(world: World, receiver: Receiver) -> None:
    first, second = with_webhooks(world), with_webhooks(world)  # two engines, as two processes
    try:
        hooked = World(first, world.operator, world.client_a, world.client_b, world.tokens, world.actors)
        project_id = make_project(hooked, "race", tasks=24)
        first.webhooks.add(world.operator, world.client_a, project_id, receiver.url, ["task.completed"])
        labelers = make_labelers(hooked, 1)
        for _ in range(24):
            task = first.labeling.next_task(labelers[0], world.client_a, project_id)
            first.labeling.submit(labelers[0], world.client_a, project_id, task.task_id, {"sentiment": "neutral"})
        receiver.delay = 0.01
        reports = []

        def run(services: Services) -> None:
            dispatcher = WebhookDispatcher(services.uow_factory, services.webhooks.config)
            total = 0
            for _ in range(100):
                report = dispatcher.run_once(limit=3)
                total += report.delivered
                if report.attempted == 0:
                    break
            reports.append(total)

        threads = [threading.Thread(target=run, args=(s,)) for s in (first, second, first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        ids = [r.headers["webhook-id"] for r in receiver.requests]
        assert len(ids) == 24 and len(set(ids)) == 24
        assert sum(reports) == 24
    finally:
        first.close()
        second.close()


def test_submit_in_a_project_without_webhooks_sends_no_webhook_query(hooked: World) -> None:
    services = hooked.services
    project_id = make_project(hooked, "quiet", tasks=1)
    statements: list[str] = []

    def keep(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    labeler = hooked.actors["labeler_a"]
    task = services.labeling.next_task(labeler, hooked.client_a, project_id)
    event.listen(services.engine, "before_cursor_execute", keep)
    try:
        services.labeling.submit(labeler, hooked.client_a, project_id, task.task_id, {"sentiment": "positive"})
    finally:
        event.remove(services.engine, "before_cursor_execute", keep)
    tables = ("webhook_endpoints", "webhook_deliveries", "webhook_attempts")
    assert statements and not [s for s in statements if any(t in s.lower() for t in tables)]


def test_webhooks_are_for_managers_and_another_clients_project_is_not_found(
    hooked: World, receiver: Receiver
) -> None:
    services = hooked.services
    project_id = make_project(hooked, "access", tasks=1)
    with pytest.raises(PermissionDenied):
        services.webhooks.add(hooked.actors["labeler_a"], hooked.client_a, project_id, receiver.url,
                              ["task.completed"])
    with pytest.raises(NotFound):
        services.webhooks.list(hooked.actors["manager_b"], hooked.client_a, project_id)
    created = services.webhooks.add(hooked.actors["manager_a"], hooked.client_a, project_id, receiver.url,
                                    ["task.completed", "project.completed"])
    assert created.secret.startswith("whsec_") and len(base64.b64decode(created.secret[6:])) == 32
    with services.uow_factory.for_client(hooked.client_a) as uow:
        stored = uow.session.scalars(select(WebhookDelivery)).all(), uow.projects.get(project_id)
        assert stored[1] is not None and stored[1].webhook_events == "project.completed task.completed"
    [listed] = services.webhooks.list(hooked.actors["manager_a"], hooked.client_a, project_id)
    assert not hasattr(listed, "secret")
    services.webhooks.set_active(hooked.actors["manager_a"], hooked.client_a, project_id, listed.id, False)
    with services.uow_factory.for_client(hooked.client_a) as uow:
        assert uow.projects.get(project_id).webhook_events == ""  # type: ignore[union-attr]
    services.webhooks.remove(hooked.actors["manager_a"], hooked.client_a, project_id, listed.id)
    assert services.webhooks.list(hooked.actors["manager_a"], hooked.client_a, project_id) == []


def test_an_unreachable_receiver_is_a_failed_attempt_with_its_error_and_a_next_attempt(hooked: World) -> None:
    import socket

    with socket.socket() as probe:  # a port that nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    services = hooked.services
    project_id = make_project(hooked, "down", tasks=1)
    services.webhooks.add(hooked.operator, hooked.client_a, project_id, f"http://127.0.0.1:{port}/hook",
                          ["task.completed"])
    label_all(hooked, project_id)
    assert services.webhook_dispatcher.run_once().retrying == 1
    [delivery], _ = services.webhooks.deliveries(hooked.operator, hooked.client_a, project_id)
    assert delivery.status == "pending" and delivery.attempts == 1 and delivery.last_status_code is None
    assert delivery.log[0].error.startswith("ConnectError") and delivery.log[0].next_attempt_at is not None
    assert delivery.next_attempt_at == delivery.log[0].next_attempt_at
