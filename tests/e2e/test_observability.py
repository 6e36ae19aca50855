"""Health, readiness, metrics and structured logs that never carry client content."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import opentelemetry._logs._internal as otel_logs
import opentelemetry.metrics._internal as otel_metrics
import pytest
from fastapi.testclient import TestClient
from opentelemetry import _logs, metrics, trace
from opentelemetry.trace import INVALID_SPAN, Span

from labelvault.api.app import create_app
from labelvault.bootstrap import Services
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


class _RecordingOtel(trace.TracerProvider, metrics.MeterProvider, _logs.LoggerProvider):
    """A configured OpenTelemetry provider of all three signals (as an SDK or an agent would install
    one) that writes down whatever is asked of it instead of exporting it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def get_tracer(self, name, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.calls.append(f"tracer {name}")
        return _RecordingTracer(self.calls)

    def get_meter(self, name, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.calls.append(f"meter {name}")
        return metrics.NoOpMeter(name)

    def get_logger(self, name, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.calls.append(f"logger {name}")
        return _logs.NoOpLogger(name)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        # add_span_processor, add_metric_reader, ...: what automatic setup hands exporters to.
        def record(*args: object, **kwargs: object) -> None:
            self.calls.append(name)
        return record


class _RecordingTracer(trace.Tracer):
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def start_span(self, name, *args, **kwargs) -> Span:  # type: ignore[no-untyped-def]
        self.calls.append(f"span {name}")
        return INVALID_SPAN

    @contextmanager
    def start_as_current_span(self, name, *args, **kwargs) -> Iterator[Span]:  # type: ignore[no-untyped-def]
        self.calls.append(f"span {name}")
        yield INVALID_SPAN


def test_fastapi_sends_no_opentelemetry_even_with_providers_and_auto_configure_set(
    services: Services, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing leaves: FastAPI's native telemetry stays off, whatever the process has configured."""
    recorder = _RecordingOtel()
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", recorder)
    monkeypatch.setattr(otel_metrics, "_METER_PROVIDER", recorder)
    monkeypatch.setattr(otel_logs, "_LOGGER_PROVIDER", recorder)
    monkeypatch.setenv("FASTAPI_OTEL_AUTO_CONFIGURE", "true")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")  # the discard port, never reached
    assert trace.get_tracer_provider() is recorder and metrics.get_meter_provider() is recorder
    caplog.set_level(logging.DEBUG, logger="fastapi")
    with TestClient(create_app(services)) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/api/me").status_code == 401
        assert client.get("/api/projects/not-a-number").status_code in (401, 404, 422)
    assert recorder.calls == []
    assert not [r for r in caplog.records if r.name.startswith("fastapi")]
