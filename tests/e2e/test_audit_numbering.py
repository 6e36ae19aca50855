"""A server process numbers the audit entries of its requests into the log by itself.

On PostgreSQL a request only writes its entry as pending (audit/log.py); the server's sequencer
thread numbers it. On SQLite the request numbers it itself. Either way, a moment after the answer
is acknowledged its entry is in the Merkle log, with nobody calling a checkpoint or a verify.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import World, owner_url
from tests.e2e.server_process import ServerProcess
from tests.integration.queue_helpers import make_project


@pytest.fixture
def server(world: World, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(world.services.settings, tmp_path / "server.log").start()
    yield process
    process.stop()


def test_the_entry_of_an_acknowledged_answer_is_numbered_without_being_asked(
    world: World, server: ServerProcess
) -> None:
    project_id = make_project(world, "numbered", tasks=2)
    headers = {"Authorization": f"Bearer {world.tokens['labeler_a']}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
        task_id = http.post(f"/api/projects/{project_id}/tasks/next").json()["task_id"]
        answer = http.post(f"/api/projects/{project_id}/tasks/{task_id}/answers",
                           json={"answer": {"sentiment": "positive"}})
        assert answer.status_code == 200
    answer_id = str(answer.json()["answer_id"])

    engine = create_engine(owner_url(world.services.settings))
    try:
        deadline = time.monotonic() + 20
        while True:
            with engine.connect() as connection:
                numbered = connection.execute(text(
                    "SELECT seq FROM audit_entries WHERE action = 'answer.submitted' AND object_id = :a"
                ), {"a": answer_id}).all()
                pending = connection.execute(text("SELECT count(*) FROM audit_pending")).scalar()
            if (numbered and pending == 0) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        engine.dispose()
    assert len(numbered) == 1 and pending == 0
