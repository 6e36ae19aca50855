"""The queue under real concurrency: a real server process, real HTTP, 100 labelers at once."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import World, owner_url
from tests.e2e.server_process import ServerProcess
from tests.integration.queue_helpers import make_labelers, make_project

LABELERS = 100
TASKS = 150
OVERLAP = 3


@pytest.fixture
def server(world: World, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(world.services.settings, tmp_path / "server.log").start()
    yield process
    process.stop()


def overleased_tasks(url: str, project_id: int) -> list[tuple[int, int, int]]:
    """Tasks whose open leases plus counted answers exceed what they need, right now."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text(
                "SELECT t.id, t.required_answers,"
                " (SELECT count(*) FROM leases l WHERE l.task_id = t.id)"
                " + (SELECT count(*) FROM answers a WHERE a.task_id = t.id AND a.status <> 'rejected')"
                " FROM tasks t WHERE t.project_id = :p"), {"p": project_id}).all()
        return [(r[0], r[1], r[2]) for r in rows if r[2] > r[1]]
    finally:
        engine.dispose()


def labeler_loop(base: str, token: str, project_id: int, acknowledged: list[tuple[int, int]],
                 failures: list[str]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
        for _ in range(TASKS + 5):
            leased = http.post(f"/api/projects/{project_id}/tasks/next")
            if leased.status_code == 409 and leased.json()["error"]["details"]["reason"] == "no_tasks":
                return
            if leased.status_code != 200:
                failures.append(f"next: {leased.status_code} {leased.text}")
                return
            task_id = leased.json()["task_id"]
            answer = http.post(f"/api/projects/{project_id}/tasks/{task_id}/answers",
                               json={"answer": {"sentiment": "neutral"}, "idempotency_key": f"{task_id}"})
            if answer.status_code != 200:
                failures.append(f"submit: {answer.status_code} {answer.text}")
                return
            acknowledged.append((task_id, answer.json()["answer_id"]))
        failures.append("labeler did not run out of tasks")


def test_a_hundred_concurrent_labelers_give_every_task_exactly_k_distinct_answers(
    world: World, server: ServerProcess
) -> None:
    project_id = make_project(world, "crowd", tasks=TASKS, overlap=OVERLAP)
    labelers = make_labelers(world, LABELERS)
    accounts = world.services.accounts
    tokens = [accounts.issue_token(world.operator, "load", for_username=a.username).token for a in labelers]
    acknowledged: list[tuple[int, int]] = []
    failures: list[str] = []
    overleased: list[tuple[int, int, int]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            overleased.extend(overleased_tasks(owner_url(world.services.settings), project_id))
            done.wait(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=labeler_loop, args=(server.url, t, project_id, acknowledged, failures))
               for t in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    done.set()
    watcher.join()

    assert failures == []
    assert overleased == [], "a task was leased beyond its need"
    with world.services.uow_factory.for_client(world.client_a) as uow:
        answers = list(uow.answers.iterate(project_id))
    per_task = Counter(a.task_id for a in answers)
    assert len(per_task) == TASKS
    assert set(per_task.values()) == {OVERLAP}
    pairs = [(a.task_id, a.user_id) for a in answers]
    assert len(pairs) == len(set(pairs)), "a labeler answered a task twice"
    assert sorted(answer_id for _, answer_id in acknowledged) == sorted(a.id for a in answers)
    assert overleased_tasks(owner_url(world.services.settings), project_id) == []
