"""Health, readiness, metrics and structured logs that never carry client content."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.conftest import World
from tests.e2e.conftest import Api, create_project
from tests.e2e.server_process import ServerProcess

MARKER = "LOG-MARKER-c0ffee"


def test_readyz_reports_each_check(api: Api) -> None:
    response = api.client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"ready": True, "checks": {"database": "ok", "migrations": "ok", "keyring": "ok"}}
    assert api.client.get("/healthz").json() == {"status": "ok"}


def test_metrics_need_an_allowed_address_or_an_operator_token(api: Api) -> None:
    assert api.client.get("/metrics").status_code == 401  # the test client has no IP address
    assert api.get("labeler_a", "/metrics").status_code == 403
    project = create_project(api, "manager_a", api.world.client_a, "metered")
    api.world.services.imports.import_rows(api.world.operator, api.world.client_a, project["id"],
                                           [{"data": {"text": "x"}}] * 3)
    body = api.get("operator", "/metrics").text
    assert "labelvault_request_seconds_bucket" in body
    assert f'labelvault_queue_open_slots{{project_id="{project["id"]}"}} 3.0' in body
    assert "acme" not in body and "Acme" not in body  # ids only, never client names


def test_every_response_has_a_request_id(api: Api) -> None:
    response = api.get("operator", "/api/me")
    assert len(response.headers["x-request-id"]) == 32
    chosen = api.client.get("/api/me", headers={**api.as_("operator"), "X-Request-ID": "trace-42"})
    assert chosen.headers["x-request-id"] == "trace-42"


def test_logs_are_json_lines_with_request_ids_and_no_client_content(world: World, tmp_path: Path) -> None:
    server = ServerProcess(world.services.settings, tmp_path / "server.log").start()
    try:
        services = world.services
        project = services.projects.create(world.operator, world.client_a, slug="logged", name="l",
                                           schema={"fields": [{"name": "text", "kind": "text"}],
                                                   "questions": [{"name": "note", "type": "text"}]})
        services.imports.import_rows(world.operator, world.client_a, project.id,
                                     [{"data": {"text": f"{MARKER} {i}"}} for i in range(3)])
        labeler = {"Authorization": f"Bearer {world.tokens['labeler_a']}"}
        with httpx.Client(base_url=server.url, timeout=30) as http:
            task = http.post(f"/api/projects/{project.id}/tasks/next", headers=labeler).json()
            assert MARKER in task["data"]["text"]
            ok = http.post(f"/api/projects/{project.id}/tasks/{task['task_id']}/answers", headers=labeler,
                           json={"answer": {"note": f"{MARKER} answer"}})
            assert ok.status_code == 200
            bad = http.post(f"/api/projects/{project.id}/tasks/{task['task_id']}/answers", headers=labeler,
                            json={"answer": {"nope": MARKER}})
            assert bad.status_code in (400, 409)
            http.post("/api/auth/token", json={"username": "labeler_a", "password": MARKER})
            http.get(f"/api/projects/999999?q={MARKER}", headers={"Authorization": f"Bearer {MARKER}"})
            request_id = http.get("/api/me", headers=labeler).headers["x-request-id"]
    finally:
        server.stop()
    text = (tmp_path / "server.log").read_text()
    assert MARKER not in text
    assert world.tokens["labeler_a"] not in text
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("message") == "request"]
    assert len(requests) >= 6
    assert any(line["request_id"] == request_id and line["route"] == "/api/me" for line in requests)
    assert {"method", "route", "status", "duration_ms", "level", "time"} <= set(requests[0])
    assert any(line["route"] == "/api/projects/{project_id}/tasks/{task_id}/answers" for line in requests)
