"""Imports by URL: only allowed hosts, no private or metadata addresses, checked redirects, a cap."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from labelvault.errors import InvalidInput, PayloadTooLarge
from labelvault.io.fetch import FetchPolicy, fetch

BODY = b'{"data": {"text": "hello"}}\n' * 100


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        routes = {
            "/tasks.jsonl": (200, {}, BODY),
            "/to-tasks": (302, {"Location": "/tasks.jsonl"}, b""),
            "/to-metadata": (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
            "/to-elsewhere": (302, {"Location": "http://example.invalid/x"}, b""),
            "/loop": (302, {"Location": "/loop"}, b""),
        }
        status, headers, body = routes.get(self.path, (404, {}, b""))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        return


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


LOCAL = FetchPolicy(allowed_hosts=frozenset({"127.0.0.1"}), allow_private=True)


def test_an_allowed_host_is_fetched(server: str) -> None:
    assert b"".join(fetch(f"{server}/tasks.jsonl", LOCAL)) == BODY


def test_a_redirect_within_the_rules_is_followed(server: str) -> None:
    assert b"".join(fetch(f"{server}/to-tasks", LOCAL)) == BODY


def test_loopback_is_refused_unless_allowed(server: str) -> None:
    policy = FetchPolicy(allowed_hosts=frozenset({"127.0.0.1"}))
    with pytest.raises(InvalidInput, match="private, loopback"):
        b"".join(fetch(f"{server}/tasks.jsonl", policy))


def test_a_host_not_on_the_allow_list_is_refused(server: str) -> None:
    with pytest.raises(InvalidInput, match="allow-list"):
        b"".join(fetch(server.replace("127.0.0.1", "localhost") + "/tasks.jsonl", LOCAL))


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1/"])
def test_other_schemes_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput, match="scheme"):
        b"".join(fetch(url, LOCAL))


def test_a_redirect_to_the_metadata_address_is_refused_even_with_private_allowed(server: str) -> None:
    policy = FetchPolicy(allowed_hosts=frozenset({"127.0.0.1", "169.254.169.254"}), allow_private=True)
    with pytest.raises(InvalidInput, match="metadata"):
        b"".join(fetch(f"{server}/to-metadata", policy))


def test_a_redirect_to_a_host_off_the_list_is_refused(server: str) -> None:
    with pytest.raises(InvalidInput, match="allow-list"):
        b"".join(fetch(f"{server}/to-elsewhere", LOCAL))


def test_endless_redirects_stop(server: str) -> None:
    with pytest.raises(InvalidInput, match="redirects"):
        b"".join(fetch(f"{server}/loop", LOCAL))


def test_a_body_over_the_cap_is_refused(server: str) -> None:
    policy = FetchPolicy(allowed_hosts=frozenset({"127.0.0.1"}), allow_private=True, max_bytes=100)
    with pytest.raises(PayloadTooLarge):
        b"".join(fetch(f"{server}/tasks.jsonl", policy))


def test_a_url_import_writes_the_tasks_and_checks_access_first(server: str, world) -> None:  # type: ignore[no-untyped-def]
    from labelvault.errors import PermissionDenied
    from labelvault.io.fetch import UrlImportService
    from tests.integration.queue_helpers import LABEL_SCHEMA

    services = world.services
    project = services.projects.create(world.operator, world.client_a, slug="url", name="u", schema=LABEL_SCHEMA)
    importer = UrlImportService(services.imports, LOCAL)
    report = importer.import_url(world.operator, world.client_a, project.id, f"{server}/tasks.jsonl")
    assert report.created == 100
    with pytest.raises(PermissionDenied):
        importer.import_url(world.actors["labeler_a"], world.client_a, project.id, "http://169.254.169.254/")


def test_the_api_imports_from_an_allowed_url_and_refuses_a_private_one(server: str, world) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from labelvault.api.app import create_app
    from tests.integration.queue_helpers import LABEL_SCHEMA

    services = world.services
    project = services.projects.create(world.operator, world.client_a, slug="api-url", name="u", schema=LABEL_SCHEMA)
    headers = {"Authorization": f"Bearer {world.tokens['manager_a']}"}
    with TestClient(create_app(services)) as client:
        refused = client.post(f"/api/projects/{project.id}/imports/url", headers=headers,
                              json={"url": f"{server}/tasks.jsonl"})
        assert refused.status_code == 400  # the default settings allow no host at all
        assert "allow-list" in refused.json()["error"]["message"]
        services.url_imports.policy = LOCAL
        accepted = client.post(f"/api/projects/{project.id}/imports/url", headers=headers,
                               json={"url": f"{server}/tasks.jsonl"})
        assert accepted.status_code == 201, accepted.text
        assert accepted.json()["created"] == 100
