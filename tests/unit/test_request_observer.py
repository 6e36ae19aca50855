"""RequestObserver around a bare ASGI app: request ids, the request's log line, the latency histogram."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from labelvault import logs, monitoring
from labelvault.api import observability
from labelvault.api.observability import RequestObserver
from tests.event_loops import run_on_a_new_loop

ROUTE = "/api/projects/{project_id}/observed"


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.request_ids: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.request_ids.append(logs.request_id.get())


@pytest.fixture
def captured() -> Iterator[Captured]:
    handler = Captured()
    logger = logging.getLogger("labelvault.http")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield handler
    logger.setLevel(level)
    logger.removeHandler(handler)


def app_answering(status: int | None, route: str = ROUTE):  # type: ignore[no-untyped-def]
    async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        scope["route"] = SimpleNamespace(path=route)
        if status is None:
            raise RuntimeError("failed before answering")
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})
    return app


def call(app, headers: list[tuple[bytes, bytes]] | None = None, method: str = "GET") -> list[dict]:  # type: ignore[no-untyped-def]
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    async def send(message: dict) -> None:
        sent.append(message)

    async def observed() -> None:
        try:
            await RequestObserver(app)(scope, receive, send)
        finally:
            assert logs.request_id.get() == ""  # reset after the request, even when it failed

    scope = {"type": "http", "method": method, "path": "/x", "headers": headers or []}
    run_on_a_new_loop(observed)
    return sent


def request_id_of(sent: list[dict]) -> str:
    ids = [value for name, value in sent[0]["headers"] if name == b"x-request-id"]
    assert len(ids) == 1
    return ids[0].decode()


def test_a_safe_incoming_request_id_is_echoed_and_logged(captured: Captured) -> None:
    sent = call(app_answering(200), [(b"host", b"h"), (b"x-request-id", b"trace-42.A_b")])
    assert request_id_of(sent) == "trace-42.A_b"
    assert sent[0]["headers"][0] == (b"content-type", b"text/plain")  # the app's headers stay, first
    assert captured.request_ids == ["trace-42.A_b"]


@pytest.mark.parametrize("incoming", [b"", b"has space", b"x" * 65, b"caf\xc3\xa9", b"a/b"])
def test_an_unsafe_or_missing_request_id_is_replaced_by_a_new_uuid4(incoming: bytes) -> None:
    rid = request_id_of(call(app_answering(200), [(b"x-request-id", incoming)]))
    assert len(rid) == 32 and uuid.UUID(rid).version == 4 and uuid.UUID(rid).hex == rid
    assert request_id_of(call(app_answering(200))) != rid


def test_of_two_request_id_headers_the_last_counts() -> None:
    sent = call(app_answering(200), [(b"x-request-id", b"first"), (b"x-request-id", b"second")])
    assert request_id_of(sent) == "second"


def test_one_log_line_per_request_at_error_level_for_5xx(captured: Captured) -> None:
    call(app_answering(201), method="POST")
    call(app_answering(503))
    ok, unavailable = captured.records
    assert (ok.levelno, ok.getMessage(), ok.name) == (logging.INFO, "request", "labelvault.http")
    assert (ok.method, ok.route, ok.status) == ("POST", ROUTE, 201)  # type: ignore[attr-defined]
    assert isinstance(ok.duration_ms, float)  # type: ignore[attr-defined]
    assert (unavailable.levelno, unavailable.status) == (logging.ERROR, 503)  # type: ignore[attr-defined]


def test_an_app_that_fails_before_answering_counts_as_500(captured: Captured) -> None:
    with pytest.raises(RuntimeError):
        call(app_answering(None))
    [failed] = captured.records
    assert (failed.levelno, failed.status) == (logging.ERROR, 500)  # type: ignore[attr-defined]


def samples(method: str, route: str, status: str) -> float:
    value = monitoring.registry.get_sample_value(
        "labelvault_request_seconds_count", {"method": method, "route": route, "status": status})
    return value or 0.0


def test_every_request_is_counted_in_the_histogram_of_its_method_route_and_status() -> None:
    route = f"/api/histogram/{uuid.uuid4().hex}"
    for _ in range(3):
        call(app_answering(200, route))
    call(app_answering(404, route))
    call(app_answering(200, route), method="DELETE")
    assert samples("GET", route, "200") == 3
    assert samples("GET", route, "404") == 1
    assert samples("DELETE", route, "200") == 1


def test_past_the_bound_of_cached_histogram_children_requests_are_still_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(observability, "_CHILDREN", {})
    monkeypatch.setattr(observability, "_CHILDREN_MAX", 1)
    routes = [f"/api/bounded/{uuid.uuid4().hex}" for _ in range(3)]
    for route in routes + routes:
        call(app_answering(200, route))
    assert [samples("GET", route, "200") for route in routes] == [2, 2, 2]
    assert len(observability._CHILDREN) == 1
