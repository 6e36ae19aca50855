"""Nothing acknowledged is lost when the server dies with SIGKILL in the middle of work."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from tests.conftest import World, owner_url
from tests.e2e.server_process import ServerProcess
from tests.integration.queue_helpers import make_labelers, make_project

LABELERS = 20


def busy_labeler(base: str, token: str, project_id: int, acknowledged: list[int], stop: threading.Event) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=10) as http:
        while not stop.is_set():
            try:
                leased = http.post(f"/api/projects/{project_id}/tasks/next")
                if leased.status_code != 200:
                    return
                task_id = leased.json()["task_id"]
                answer = http.post(f"/api/projects/{project_id}/tasks/{task_id}/answers",
                                   json={"answer": {"sentiment": "positive"}})
                if answer.status_code == 200:
                    acknowledged.append(answer.json()["answer_id"])
            except httpx.HTTPError:
                return  # the server is gone


def test_sigkill_loses_no_acknowledged_answer_and_leaves_no_half_written_state(
    world: World, tmp_path: Path
) -> None:
    project_id = make_project(world, "crash", tasks=2000, overlap=2, lease_seconds=10)
    labelers = make_labelers(world, LABELERS)
    tokens = [world.services.accounts.issue_token(world.operator, "t", for_username=a.username).token
              for a in labelers]
    server = ServerProcess(world.services.settings, tmp_path / "server.log").start()
    acknowledged: list[int] = []
    stop = threading.Event()
    threads = [threading.Thread(target=busy_labeler, args=(server.url, t, project_id, acknowledged, stop))
               for t in tokens]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 200 and time.monotonic() < deadline:
        time.sleep(0.02)
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert len(acknowledged) >= 200

    restarted = ServerProcess(world.services.settings, tmp_path / "server2.log").start()
    try:
        with world.services.uow_factory.for_client(world.client_a) as uow:
            stored = {a.id: a for a in uow.answers.iterate(project_id)}
            tasks = uow.tasks.page(project_id, after_id=0, limit=5000)
            leases = uow.session.execute(text("SELECT task_id FROM leases")).all()
        assert set(acknowledged) <= set(stored), "an acknowledged answer was lost"
        # Every counter agrees with the rows it counts: no half-written transaction survived.
        counted: dict[int, int] = {}
        for answer in stored.values():
            counted[answer.task_id] = counted.get(answer.task_id, 0) + 1
        leased: dict[int, int] = {}
        for (task_id,) in leases:
            leased[task_id] = leased.get(task_id, 0) + 1
        for task in tasks:
            assert task.answer_count == counted.get(task.id, 0)
            assert task.open_slots == task.required_answers - task.answer_count - leased.get(task.id, 0)
        # The audit log is whole: every entry under its hashes, and the head (which a write batch
        # writes at its commit) counts exactly the entries stored.
        report = world.services.audit.verify()
        assert report.ok, report.message
        engine = create_engine(owner_url(world.services.settings))
        with engine.connect() as connection:
            head = connection.execute(text("SELECT size FROM audit_head")).scalar()
            entries = connection.execute(text("SELECT count(*) FROM audit_entries")).scalar()
        engine.dispose()
        assert head == entries == report.size
        # Leases held when the process died expire normally and their tasks return to the queue.
        orphaned = {task_id for (task_id,) in leases}
        if orphaned:
            time.sleep(11)
            fresh = make_labelers(world, 1, prefix="after")[0]
            token = world.services.accounts.issue_token(world.operator, "t", for_username=fresh.username).token
            with httpx.Client(base_url=restarted.url, headers={"Authorization": f"Bearer {token}"}) as http:
                assert http.post(f"/api/projects/{project_id}/tasks/next").status_code == 200
            engine = create_engine(owner_url(world.services.settings))
            with engine.connect() as connection:
                left = connection.execute(text("SELECT count(*) FROM leases WHERE user_id <> :u"),
                                          {"u": fresh.user_id})
                assert left.scalar() == 0, "leases of the dead process did not expire"
            engine.dispose()
    finally:
        restarted.stop()
