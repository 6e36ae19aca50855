"""Labeling over the API: next with a lease, validated submit with idempotency, skip."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import pytest
from sqlalchemy import bindparam, create_engine, select

from labelvault.api.deps import run_queue_step
from labelvault.errors import DatabaseBusy
from labelvault.storage.models import Answer, Lease, Task
from labelvault.storage.scope import scoped
from tests.conftest import owner_url
from tests.e2e.conftest import Api, create_project
from tests.event_loops import run_on_a_new_loop

_leases = Lease.__table__
_LEASES_OF_PROJECT = scoped(select(_leases.c.task_id).where(_leases.c.project_id == bindparam("project_id")))
_ANSWERS_OF_TASK = scoped(select(Answer.__table__.c.id).where(Answer.__table__.c.task_id == bindparam("task_id")))


def import_texts(api: Api, project: dict, texts: list[str]) -> None:
    world = api.world
    rows = [{"external_id": f"t{i}", "data": {"text": t}} for i, t in enumerate(texts)]
    report = world.services.imports.import_rows(world.operator, project["client_id"], project["id"], rows)
    assert report.created == len(texts)


@pytest.fixture
def project(api: Api) -> dict:
    project = create_project(api, "manager_a", api.world.client_a, overlap=1)
    import_texts(api, project, ["I love it", "It broke on day one", "It is a box"])
    return project


def test_next_leases_a_task_and_returns_its_data(api: Api, project: dict) -> None:
    response = api.post("labeler_a", f"/api/projects/{project['id']}/tasks/next")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["data"]["text"] == "I love it"
    assert body["lease_expires_at"] > body["lease_started_at"]


def test_asking_again_returns_the_same_open_lease(api: Api, project: dict) -> None:
    first = api.post("labeler_a", f"/api/projects/{project['id']}/tasks/next").json()
    second = api.post("labeler_a", f"/api/projects/{project['id']}/tasks/next").json()
    assert first["task_id"] == second["task_id"]


def test_submit_is_validated_and_names_the_question(api: Api, project: dict) -> None:
    task = api.post("labeler_a", f"/api/projects/{project['id']}/tasks/next").json()
    response = api.post("labeler_a", f"/api/projects/{project['id']}/tasks/{task['task_id']}/answers",
                        json={"answer": {"sentiment": "ecstatic"}})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "answer_invalid"
    assert "sentiment" in error["message"]
    # The refused submit changed nothing: the same lease is still held, and a valid answer takes it.
    again = api.post("labeler_a", f"/api/projects/{project['id']}/tasks/next").json()
    assert (again["task_id"], again["lease_started_at"]) == (task["task_id"], task["lease_started_at"])
    answered = api.post("labeler_a", f"/api/projects/{project['id']}/tasks/{task['task_id']}/answers",
                        json={"answer": {"sentiment": "positive"}})
    assert answered.status_code == 200 and answered.json()["created"] is True


def test_a_repeated_submit_with_the_same_key_returns_the_first_result(api: Api, project: dict) -> None:
    pid = project["id"]
    task = api.post("labeler_a", f"/api/projects/{pid}/tasks/next").json()
    url = f"/api/projects/{pid}/tasks/{task['task_id']}/answers"
    body = {"answer": {"sentiment": "positive"}, "idempotency_key": "k-1"}
    first = api.post("labeler_a", url, json=body)
    again = api.post("labeler_a", url, json=body)
    assert first.status_code == again.status_code == 200
    assert first.json()["answer_id"] == again.json()["answer_id"]
    assert first.json()["created"] is True and again.json()["created"] is False
    progress = api.get("manager_a", f"/api/projects/{pid}/progress").json()
    assert progress["answers_given"] == 1


def test_a_key_used_for_another_task_is_refused_and_changes_nothing(api: Api, project: dict) -> None:
    pid = project["id"]
    first = api.post("labeler_a", f"/api/projects/{pid}/tasks/next").json()
    body = {"answer": {"sentiment": "positive"}, "idempotency_key": "k-reused"}
    assert api.post("labeler_a", f"/api/projects/{pid}/tasks/{first['task_id']}/answers", json=body).status_code == 200
    second = api.post("labeler_a", f"/api/projects/{pid}/tasks/next").json()
    assert second["task_id"] != first["task_id"]
    refused = api.post("labeler_a", f"/api/projects/{pid}/tasks/{second['task_id']}/answers", json=body)
    assert refused.status_code == 409
    assert refused.json()["error"]["details"] == {"field": "idempotency_key"}
    # Nothing of the refused submit stayed: the lease is still held, and a new key answers the task.
    again = api.post("labeler_a", f"/api/projects/{pid}/tasks/next").json()
    assert (again["task_id"], again["lease_started_at"]) == (second["task_id"], second["lease_started_at"])
    answered = api.post("labeler_a", f"/api/projects/{pid}/tasks/{second['task_id']}/answers",
                        json={"answer": {"sentiment": "negative"}, "idempotency_key": "k-new"})
    assert answered.status_code == 200 and answered.json()["created"] is True
    assert api.get("manager_a", f"/api/projects/{pid}/progress").json()["answers_given"] == 2


def test_the_idempotency_key_header_works_too(api: Api, project: dict) -> None:
    pid = project["id"]
    task = api.post("labeler_a", f"/api/projects/{pid}/tasks/next").json()
    url = f"/api/projects/{pid}/tasks/{task['task_id']}/answers"
    headers = {"Idempotency-Key": "h-1"}
    first = api.post("labeler_a", url, json={"answer": {"sentiment": "negative"}}, headers=headers)
    again = api.post("labeler_a", url, json={"answer": {"sentiment": "negative"}}, headers=headers)
    assert first.json()["answer_id"] == again.json()["answer_id"]


def test_a_labeler_works_through_the_queue_and_is_told_when_it_is_empty(api: Api, project: dict) -> None:
    pid = project["id"]
    seen = []
    for _ in range(3):
        task = api.post("labeler_a", f"/api/projects/{pid}/tasks/next").json()
        seen.append(task["task_id"])
        receipt = api.post("labeler_a", f"/api/projects/{pid}/tasks/{task['task_id']}/answers",
                           json={"answer": {"sentiment": "neutral"}})
        assert receipt.status_code == 200, receipt.text
    assert len(set(seen)) == 3
    empty = api.post("labeler_a", f"/api/projects/{pid}/tasks/next")
    assert empty.status_code == 409
    assert empty.json()["error"]["details"]["reason"] == "no_tasks"


def test_a_skipped_task_is_not_offered_again_to_that_labeler(api: Api, project: dict) -> None:
    pid = project["id"]
    task = api.post("labeler_a", f"/api/projects/{pid}/tasks/next").json()
    skipped = api.post("labeler_a", f"/api/projects/{pid}/tasks/{task['task_id']}/skip", json={"reason": "unclear"})
    assert skipped.status_code == 204
    following = api.post("labeler_a", f"/api/projects/{pid}/tasks/next").json()
    assert following["task_id"] != task["task_id"]


def test_answering_a_task_twice_is_a_conflict(api: Api, project: dict) -> None:
    pid = project["id"]
    task = api.post("labeler_a", f"/api/projects/{pid}/tasks/next").json()
    url = f"/api/projects/{pid}/tasks/{task['task_id']}/answers"
    assert api.post("labeler_a", url, json={"answer": {"sentiment": "positive"}}).status_code == 200
    assert api.post("labeler_a", url, json={"answer": {"sentiment": "positive"}}).status_code == 409


def test_overlap_gives_each_task_to_distinct_labelers(api: Api) -> None:
    world = api.world
    project = create_project(api, "manager_a", world.client_a, "double", overlap=2)
    import_texts(api, project, ["only one"])
    world.services.accounts.grant_role(world.operator, world.client_a, "reviewer_a", "labeler")
    pid = project["id"]
    for who in ("labeler_a", "reviewer_a"):
        task = api.post(who, f"/api/projects/{pid}/tasks/next").json()
        assert api.post(who, f"/api/projects/{pid}/tasks/{task['task_id']}/answers",
                        json={"answer": {"sentiment": "neutral"}}).status_code == 200
    assert api.post("labeler_a", f"/api/projects/{pid}/tasks/next").status_code == 409


def test_a_submit_with_next_brings_the_next_task_and_at_the_end_says_why_there_is_none(
    api: Api, project: dict
) -> None:
    pid = project["id"]
    task = api.post("labeler_a", f"/api/projects/{pid}/tasks/next").json()
    answered = []
    for _ in range(3):
        response = api.post("labeler_a", f"/api/projects/{pid}/tasks/{task['task_id']}/answers?next=true",
                            json={"answer": {"sentiment": "neutral"}})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["task_id"] == task["task_id"] and body["created"] is True
        answered.append(body["task_id"])
        if len(answered) < 3:
            assert body["next_error"] is None
            task = body["next_task"]
            assert task["task_id"] not in answered and task["data"]["text"]
            # The task came leased: a separate next returns the very same lease.
            again = api.post("labeler_a", f"/api/projects/{pid}/tasks/next").json()
            assert (again["task_id"], again["lease_started_at"]) == (task["task_id"], task["lease_started_at"])
    assert body["next_task"] is None
    assert body["next_error"]["status"] == 409 and body["next_error"]["code"] == "queue_refused"
    assert body["next_error"]["details"]["reason"] == "no_tasks"
    assert api.get("manager_a", f"/api/projects/{pid}/progress").json()["answers_given"] == 3


def test_the_answer_is_stored_when_the_next_task_is_refused_for_the_budget(api: Api) -> None:
    project = create_project(api, "manager_a", api.world.client_a, "paid")
    assert api.patch("manager_a", f"/api/projects/{project['id']}",
                     json={"rate_per_answer": 100, "budget_cap": 100}).status_code == 200
    import_texts(api, project, ["one", "two"])
    pid = project["id"]
    task = api.post("labeler_a", f"/api/projects/{pid}/tasks/next").json()
    response = api.post("labeler_a", f"/api/projects/{pid}/tasks/{task['task_id']}/answers?next=1",
                        json={"answer": {"sentiment": "positive"}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_task"] is None and body["next_error"]["details"]["reason"] == "budget_reached"
    assert api.get("manager_a", f"/api/projects/{pid}/progress").json()["answers_given"] == 1


def test_a_repeated_submit_with_next_answers_the_first_receipt_and_the_lease_held(api: Api, project: dict) -> None:
    pid = project["id"]
    task = api.post("labeler_a", f"/api/projects/{pid}/tasks/next").json()
    url = f"/api/projects/{pid}/tasks/{task['task_id']}/answers?next=true"
    body = {"answer": {"sentiment": "positive"}, "idempotency_key": "k-next"}
    first, again = api.post("labeler_a", url, json=body).json(), api.post("labeler_a", url, json=body).json()
    assert first["answer_id"] == again["answer_id"] and (first["created"], again["created"]) == (True, False)
    assert first["next_task"]["task_id"] == again["next_task"]["task_id"] != task["task_id"]
    assert api.get("manager_a", f"/api/projects/{pid}/progress").json()["answers_given"] == 1


def test_a_submit_refused_with_next_leases_nothing_and_a_bad_next_value_stores_nothing(
    api: Api, project: dict
) -> None:
    pid = project["id"]
    task = api.post("labeler_a", f"/api/projects/{pid}/tasks/next").json()
    url = f"/api/projects/{pid}/tasks/{task['task_id']}/answers"
    invalid = api.post("labeler_a", f"{url}?next=true", json={"answer": {"sentiment": "ecstatic"}})
    assert invalid.status_code == 400 and invalid.json()["error"]["code"] == "answer_invalid"
    bad_flag = api.post("labeler_a", f"{url}?next=maybe", json={"answer": {"sentiment": "positive"}})
    assert bad_flag.status_code == 400
    assert bad_flag.json()["error"]["details"]["field"] == "next"
    # Neither stored an answer nor leased another task: the first lease is the one still held.
    assert api.get("manager_a", f"/api/projects/{pid}/progress").json()["answers_given"] == 0
    with api.world.services.uow_factory.for_client(project["client_id"]) as uow:
        assert [row.task_id for row in uow.sql.run(_LEASES_OF_PROJECT, {"project_id": pid})] == [task["task_id"]]


# The queue gateway (api/queue_gateway.py) answers next and submit before FastAPI's router; these
# check that it answers as the regular path does, and leaves to FastAPI what it does not match.


def test_submit_with_a_malformed_body_names_the_field_as_every_route_does(api: Api, project: dict) -> None:
    task = api.post("labeler_a", f"/api/projects/{project['id']}/tasks/next").json()
    response = api.post("labeler_a", f"/api/projects/{project['id']}/tasks/{task['task_id']}/answers",
                        json={"answers": {"sentiment": "positive"}})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert {detail["field"] for detail in error["details"]} >= {"answer"}  # the missing field is named
    assert response.headers["x-request-id"]


def test_queue_refusals_and_missing_auth_have_the_api_error_body(api: Api, project: dict) -> None:
    missing = api.client.post(f"/api/projects/{project['id']}/tasks/next")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "not_authenticated"
    unknown = api.post("labeler_a", "/api/projects/999999/tasks/next")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"
    unknown_task = api.post("labeler_a", f"/api/projects/{project['id']}/tasks/999999/answers",
                            json={"answer": {"sentiment": "positive"}})
    assert unknown_task.status_code == 404
    assert "999999" in unknown_task.json()["error"]["message"]


def test_ids_the_gateway_does_not_take_go_to_the_regular_routes(api: Api, project: dict) -> None:
    zero = api.post("labeler_a", "/api/projects/0/tasks/next")
    assert zero.status_code == 400  # FastAPI's validation: project_id >= 1
    assert zero.json()["error"]["details"][0]["field"] == "project_id"
    padded = api.post("labeler_a", f"/api/projects/0{project['id']}/tasks/next")
    assert padded.status_code == 200  # FastAPI reads "07" as 7
    assert padded.json()["project_id"] == project["id"]
    wrong_method = api.get("labeler_a", f"/api/projects/{project['id']}/tasks/next")
    assert wrong_method.status_code == 405


def test_a_queue_step_runs_on_the_event_loop_after_waiting_for_other_writers_without_blocking_it(
    api: Api,
) -> None:
    services = api.world.services
    factory = services.uow_factory

    async def thread_of_step() -> int:
        return await run_queue_step(services, threading.get_ident)

    ran_in, loop_thread = run_on_a_new_loop(thread_of_step)
    assert ran_in == loop_thread
    if not factory.serialize_writers:
        return  # PostgreSQL: no process-wide write lock (its row locks: the next test)

    async def step_while_another_writer_holds_the_lock() -> tuple[int, list[str]]:
        held, events = threading.Event(), []

        def other_writer() -> None:  # an import, a background thread: another writer of the process
            with factory.for_client(api.world.client_a, write=True):
                held.set()
                time.sleep(0.3)
                events.append("other writer done")

        threading.Thread(target=other_writer).start()
        await asyncio.to_thread(held.wait)
        step = asyncio.ensure_future(thread_of_step())
        await asyncio.sleep(0.05)
        events.append("loop free" if not step.done() else "step ran under the lock")  # the loop runs on
        ran_in = await step
        events.append("step done")
        return ran_in, events

    (ran_in, events), loop_thread = run_on_a_new_loop(step_while_another_writer_holds_the_lock)
    assert ran_in == loop_thread
    assert events == ["loop free", "other writer done", "step done"]


def test_a_postgresql_step_waiting_long_for_a_row_lock_runs_again_in_a_thread_and_the_loop_runs_on(
    api: Api, project: dict
) -> None:
    services = api.world.services
    if services.uow_factory.serialize_writers:
        pytest.skip("SQLite: writers take turns on the database's writer lock (the tests around this one)")
    world = api.world
    labeler = world.actors["labeler_a"]
    leased = services.labeling.next_task(labeler, project["client_id"], project["id"])
    task_row = select(Task.__table__.c.id).where(Task.__table__.c.id == leased.task_id).with_for_update()
    held, release = threading.Event(), threading.Event()

    def administrator() -> None:  # a long transaction of another connection holds the task's row
        engine = create_engine(owner_url(services.settings))
        try:
            with engine.connect() as connection, connection.begin():
                connection.execute(task_row)
                held.set()
                release.wait(timeout=10)
        finally:
            engine.dispose()

    holder = threading.Thread(target=administrator)
    holder.start()
    assert held.wait(timeout=10)

    def submit() -> tuple[int, int]:
        receipt = services.labeling.submit(labeler, project["client_id"], project["id"], leased.task_id,
                                           {"sentiment": "positive"})
        return receipt.answer_id, threading.get_ident()

    async def submit_while_the_row_is_held() -> tuple[tuple[int, int], list[str]]:
        events: list[str] = []
        step = asyncio.ensure_future(run_queue_step(services, submit))
        await asyncio.sleep(0.5)  # several times the short lock wait: the step has moved to a thread
        events.append("loop free" if not step.done() else "step done under the lock")
        release.set()
        result = await step
        events.append("step done")
        return result, events

    try:
        ((answer_id, ran_in), events), loop_thread = run_on_a_new_loop(submit_while_the_row_is_held)
    finally:
        release.set()
        holder.join(timeout=10)
    assert events == ["loop free", "step done"]
    assert ran_in != loop_thread  # ran again, in the thread pool, after the short wait gave up
    with services.uow_factory.for_client(project["client_id"]) as uow:
        answers = uow.sql.run(_ANSWERS_OF_TASK, {"task_id": leased.task_id}).scalars()
    assert answers == [answer_id]  # once: the first try wrote nothing


def test_a_queue_step_gives_up_with_conflict_when_another_writer_holds_the_lock_too_long(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = api.world.services.uow_factory
    if not factory.serialize_writers:
        pytest.skip("PostgreSQL: no process-wide write lock (its row locks: the test above)")
    monkeypatch.setattr(factory, "write_lock_timeout", 0.2)
    released = threading.Event()

    def other_writer() -> None:
        with factory.for_client(api.world.client_a, write=True):
            released.wait(timeout=10)

    holder = threading.Thread(target=other_writer)
    holder.start()
    try:
        while factory.can_write_at_once():
            time.sleep(0.01)

        async def step() -> int:
            return await run_queue_step(api.world.services, threading.get_ident)

        with pytest.raises(DatabaseBusy, match="busy"):
            run_on_a_new_loop(step)
    finally:
        released.set()
        holder.join(timeout=10)


def test_while_another_process_writes_a_queue_step_waits_in_a_thread_and_the_loop_runs_on(
    api: Api, project: dict
) -> None:
    services = api.world.services
    factory = services.uow_factory
    if not factory.serialize_writers:
        pytest.skip("SQLite: one writer per database file")
    labeler = api.world.actors["labeler_a"]
    arguments = (labeler, project["client_id"], project["id"])
    # Another process's write transaction: a connection of its own on the same file.
    other = sqlite3.connect(services.engine.url.database or "", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseBusy):
            factory.begin_batch()  # what a queue step on the loop starts with
        assert time.monotonic() - started < 5  # at once, not after SQLite's busy timeout
        assert factory.can_write_at_once()  # the refused batch let go of the writer lock

        async def step_while_the_other_writes() -> tuple[int, int]:
            step = asyncio.ensure_future(run_queue_step(services, services.labeling.next_task, *arguments))
            threading.Timer(0.3, lambda: other.execute("COMMIT")).start()
            ticks = 0
            while not step.done():  # the loop keeps running while the step waits
                await asyncio.sleep(0.01)
                ticks += 1
            return (await step).task_id, ticks

        (task_id, ticks), _ = run_on_a_new_loop(step_while_the_other_writes)
    finally:
        if other.in_transaction:
            other.execute("ROLLBACK")
        other.close()
    assert ticks >= 10
    with factory.for_client(project["client_id"]) as uow:  # the refused attempt left nothing behind
        assert uow.sql.run(_LEASES_OF_PROJECT, {"project_id": project["id"]}).all() == [(task_id,)]
