"""The whole loop over real HTTP against a real server process: import, next, answer, export."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import OPERATOR_PASSWORD, World
from tests.e2e.server_process import ServerProcess

SCHEMA = {
    "fields": [{"name": "text", "kind": "text"}],
    "questions": [{"name": "topic", "type": "label", "labels": ["sports", "politics", "science"]}],
}


@pytest.fixture
def server(world: World, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(world.services.settings, tmp_path / "server.log").start()
    yield process
    process.stop()


def test_import_label_and_export_over_http(world: World, server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        token = http.post("/api/auth/token", json={"username": "operator", "password": OPERATOR_PASSWORD}).json()
        admin = {"Authorization": f"Bearer {token['token']}"}
        project = http.post(f"/api/clients/{world.client_a}/projects", headers=admin,
                            json={"slug": "news", "name": "News", "schema": SCHEMA, "overlap": 1})
        assert project.status_code == 201, project.text
        pid = project.json()["id"]

        lines = "".join(json.dumps({"external_id": f"n{i}", "data": {"text": f"story {i}"}}) + "\n" for i in range(5))
        imported = http.post(f"/api/projects/{pid}/imports", headers={**admin, "content-type": "application/x-ndjson"},
                             content=lines.encode())
        assert imported.status_code == 201, imported.text
        assert imported.json()["created"] == 5
        again = http.post(f"/api/projects/{pid}/imports", headers={**admin, "content-type": "application/x-ndjson"},
                          content=lines.encode())
        assert again.json()["created"] == 0 and again.json()["already_present"] == 5

        labeler = {"Authorization": f"Bearer {world.tokens['labeler_a']}"}
        answered = {}
        for _ in range(5):
            task = http.post(f"/api/projects/{pid}/tasks/next", headers=labeler).json()
            receipt = http.post(f"/api/projects/{pid}/tasks/{task['task_id']}/answers", headers=labeler,
                                json={"answer": {"topic": "science"}, "idempotency_key": f"k{task['task_id']}"})
            assert receipt.status_code == 200, receipt.text
            answered[task["task_id"]] = receipt.json()["answer_id"]
        done = http.post(f"/api/projects/{pid}/tasks/next", headers=labeler)
        assert done.status_code == 409 and done.json()["error"]["details"]["reason"] == "no_tasks"

        export = http.get(f"/api/projects/{pid}/export", headers=admin, params={"format": "jsonl"})
        assert export.status_code == 200
        rows = [json.loads(line) for line in export.text.splitlines()]
        assert sorted(r["external_id"] for r in rows) == [f"n{i}" for i in range(5)]
        for row in rows:
            (answer,) = row["answers"]
            assert answer["value"] == {"topic": "science"}
            assert answer["labeler"] == "labeler_a"
            assert answer["id"] == answered[row["id"]]
            assert answer["time_spent_ms"] >= 0
        docs = http.get("/api/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
