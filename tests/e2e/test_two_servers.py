"""Several stateless server processes over one database behave as one install: on PostgreSQL, and
on a SQLite file, whose writers take turns through its writer lock (storage/writer_lock.py)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.conftest import World, owner_url
from tests.e2e.server_process import ServerProcess
from tests.e2e.test_queue_concurrency import labeler_loop, overleased_tasks
from tests.integration.queue_helpers import make_labelers, make_project

LABELERS = 100
TASKS = 60
OVERLAP = 3


def work_the_queue(urls: list[str], tokens: list[str], project_id: int, acknowledged: list[tuple[int, int]],
                   failures: list[str]) -> None:
    """Each labeler (one token) loops next and submit against its server until no task is left."""
    threads = [threading.Thread(target=labeler_loop, args=(url, token, project_id, acknowledged, failures))
               for url, token in zip(urls, tokens, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)


def test_two_servers_share_the_queue_without_losing_or_doubling_anything(world: World, tmp_path: Path) -> None:
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
        work_the_queue([servers[i % 2].url for i in range(len(tokens))], tokens, project_id, acknowledged, failures)
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


def test_the_login_limit_counts_failures_made_on_either_server(world: World, tmp_path: Path) -> None:
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


def test_serve_with_two_workers_answers_every_labeler_once(world: World, tmp_path: Path) -> None:
    """`labelvault serve --workers 2`: two processes behind one port, on either database."""
    project_id = make_project(world, "workers", tasks=20, overlap=OVERLAP)
    labelers = make_labelers(world, 10)
    tokens = [world.services.accounts.issue_token(world.operator, "t", for_username=a.username).token for a in labelers]
    server = ServerProcess(world.services.settings, tmp_path / "server.log", workers=2).start()
    try:
        acknowledged: list[tuple[int, int]] = []
        failures: list[str] = []
        work_the_queue([server.url] * len(tokens), tokens, project_id, acknowledged, failures)
        # The second worker may still be importing when the first has served everything (a slow
        # machine, CI): wait for it to say it started, for a while.
        deadline = time.monotonic() + 60
        while True:
            workers = [line for line in server.log_path.read_text().splitlines() if "Started server process" in line]
            if len(workers) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        server.stop()
    assert failures == []
    assert len(workers) == 2
    with world.services.uow_factory.for_client(world.client_a) as uow:
        answers = list(uow.answers.iterate(project_id))
    assert Counter(a.task_id for a in answers) == {task_id: OVERLAP for task_id in {a.task_id for a in answers}}
    assert len({a.task_id for a in answers}) == 20
    assert sorted(answer_id for _, answer_id in acknowledged) == sorted(a.id for a in answers)
