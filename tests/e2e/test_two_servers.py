"""Several stateless server processes over one PostgreSQL database behave as one install."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.conftest import World, owner_url
from tests.e2e.server_process import ServerProcess
from tests.e2e.test_queue_concurrency import labeler_loop, overleased_tasks
from tests.integration.queue_helpers import make_labelers, make_project

LABELERS = 100
TASKS = 60
OVERLAP = 3


@pytest.fixture
def pg_world(world: World) -> World:
    if world.services.engine.dialect.name != "postgresql":
        pytest.skip("several servers share one PostgreSQL database")
    return world


def test_two_servers_share_the_queue_without_losing_or_doubling_anything(pg_world: World, tmp_path: Path) -> None:
    world = pg_world
    project_id = make_project(world, "shared", tasks=TASKS, overlap=OVERLAP)
    labelers = make_labelers(world, LABELERS)
    tokens = [world.services.accounts.issue_token(world.operator, "t", for_username=a.username).token for a in labelers]
    servers = [ServerProcess(world.services.settings, tmp_path / f"server{i}.log").start() for i in range(2)]
    try:
        acknowledged: list[tuple[int, int]] = []
        failures: list[str] = []
        overleased: list[tuple[int, int, int]] = []
        done = threading.Event()
        url = owner_url(world.services.settings)

        def watch() -> None:
            while not done.is_set():
                overleased.extend(overleased_tasks(url, project_id))
                done.wait(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        threads = [threading.Thread(target=labeler_loop,
                                    args=(servers[i % 2].url, token, project_id, acknowledged, failures))
                   for i, token in enumerate(tokens)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        done.set()
        watcher.join()
    finally:
        for server in servers:
            server.stop()
    assert failures == []
    assert overleased == []
    with world.services.uow_factory.for_client(world.client_a) as uow:
        answers = list(uow.answers.iterate(project_id))
    assert set(Counter(a.task_id for a in answers).values()) == {OVERLAP}
    assert len(Counter(a.task_id for a in answers)) == TASKS
    assert len({(a.task_id, a.user_id) for a in answers}) == len(answers)
    assert sorted(answer_id for _, answer_id in acknowledged) == sorted(a.id for a in answers)


def test_the_login_limit_counts_failures_made_on_either_server(pg_world: World, tmp_path: Path) -> None:
    world = pg_world
    world.services.accounts.create_user(world.operator, "roaming", "the-right-password")
    servers = [ServerProcess(world.services.settings, tmp_path / f"s{i}.log").start() for i in range(2)]
    try:
        for attempt in range(5):
            wrong = httpx.post(f"{servers[attempt % 2].url}/api/auth/token",
                               json={"username": "roaming", "password": "wrong-password-x"})
            assert wrong.status_code == 401
        right = httpx.post(f"{servers[1].url}/api/auth/token",
                           json={"username": "roaming", "password": "the-right-password"})
        assert right.status_code == 429
        assert right.json()["error"]["code"] == "login_throttled"
    finally:
        for server in servers:
            server.stop()
