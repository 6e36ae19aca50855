"""Webhooks through the HTTP API, sent by the dispatcher thread that a server process runs."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook

from labelvault.server import build_app, run_background_work
from tests.conftest import World
from tests.e2e.conftest import Api, create_project
from tests.integration.test_webhooks import Receiver, receiver, with_webhooks

__all__ = ["receiver"]  # the fixture, shared with the integration tests


@pytest.fixture
def served(world: World) -> Iterator[Api]:
    """The app with its background dispatcher running, as `labelvault serve` starts it."""
    services = with_webhooks(world, webhook_poll_seconds=0.05)
    app = build_app(services)
    run_background_work(app, services)
    hooked = World(services, world.operator, world.client_a, world.client_b, world.tokens, world.actors)
    with TestClient(app) as client:
        yield Api(client, hooked)
    services.close()


def test_a_manager_adds_a_webhook_and_the_server_delivers_signed_events(served: Api, receiver: Receiver) -> None:
    world = served.world
    project = create_project(served, "manager_a", world.client_a, slug="hooked")
    pid = project["id"]
    created = served.post("manager_a", f"/api/projects/{pid}/webhooks",
                          json={"url": receiver.url, "events": ["task.completed", "project.completed"]})
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    assert secret.startswith("whsec_")
    listed = served.get("manager_a", f"/api/projects/{pid}/webhooks").json()
    assert [w["id"] for w in listed] == [created.json()["id"]] and "secret" not in listed[0]

    world.services.imports.import_rows(world.operator, world.client_a, pid, [{"data": {"text": "one"}}])
    labeling = world.services.labeling
    labeler = world.actors["labeler_a"]
    task = labeling.next_task(labeler, world.client_a, pid)
    labeling.submit(labeler, world.client_a, pid, task.task_id, {"sentiment": "neutral"})

    deadline = time.monotonic() + 20
    while len(receiver.requests) < 2:
        assert time.monotonic() < deadline, "the server's dispatcher sent nothing"
        time.sleep(0.05)
    for received in receiver.requests:
        Webhook(secret).verify(received.body, received.headers)
    # The receiver has a request before the server has read its response and marked it delivered.
    log = served.get("manager_a", f"/api/projects/{pid}/webhook-deliveries").json()
    while {d["status"] for d in log["items"]} != {"delivered"} and time.monotonic() < deadline:
        time.sleep(0.05)
        log = served.get("manager_a", f"/api/projects/{pid}/webhook-deliveries").json()
    assert log["total"] == 2 and {d["status"] for d in log["items"]} == {"delivered"}
    assert {d["event_type"] for d in log["items"]} == {"task.completed", "project.completed"}
    assert log["items"][0]["log"][0]["status_code"] == 200

    retried = served.post("manager_a", f"/api/projects/{pid}/webhook-deliveries/{log['items'][0]['id']}/retry")
    assert retried.status_code == 200 and retried.json()["status"] == "pending"
    paused = served.patch("manager_a", f"/api/projects/{pid}/webhooks/{created.json()['id']}", json={"active": False})
    assert paused.status_code == 200 and paused.json()["active"] is False
    assert served.delete("manager_a", f"/api/projects/{pid}/webhooks/{created.json()['id']}").status_code == 204
    assert served.get("manager_a", f"/api/projects/{pid}/webhooks").json() == []


def test_webhook_routes_are_for_managers_and_hide_other_clients_projects(served: Api, receiver: Receiver) -> None:
    world = served.world
    pid = create_project(served, "manager_a", world.client_a, slug="guarded")["id"]
    body = {"url": receiver.url, "events": ["task.completed"]}
    assert served.post("labeler_a", f"/api/projects/{pid}/webhooks", json=body).status_code == 403
    for path in ("webhooks", "webhook-deliveries"):
        response = served.get("manager_b", f"/api/projects/{pid}/{path}")
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert served.post("manager_b", f"/api/projects/{pid}/webhooks", json=body).status_code == 404
    refused = served.post("manager_a", f"/api/projects/{pid}/webhooks",
                          json={"url": "http://example.com/hook", "events": ["task.completed"]})
    assert refused.status_code == 400 and "allow-list" in refused.json()["error"]["message"]
    unknown = served.post("manager_a", f"/api/projects/{pid}/webhooks", json={**body, "events": ["task.deleted"]})
    assert unknown.status_code == 400
