"""A project's tasks one at a time: their states, one opened with all that happened to it, and a
new priority that the queue follows at once."""

from __future__ import annotations

import threading

import orjson
import pytest
from sqlalchemy import create_engine, text

from labelvault.domain.access import Actor
from labelvault.errors import Conflict, ConflictOfInterest, InvalidInput, NotFound, PermissionDenied
from labelvault.workflow.projects import ProjectSettings
from tests.conftest import World, owner_url
from tests.integration.queue_helpers import LABEL_SCHEMA, make_labelers, make_project


def _audit_details(world: World, action: str) -> list[dict[str, object]]:
    world.services.audit.sequence()  # PostgreSQL: number what acts wrote (audit/log.py)
    engine = create_engine(owner_url(world.services.settings))
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT entry FROM audit_entries WHERE action = :action ORDER BY seq"),
                                  {"action": action}).scalars().all()
    engine.dispose()
    return [orjson.loads(bytes(row)).get("details", {}) for row in rows]


def _states(world: World, project_id: int, **filters: object) -> dict[str, str]:
    summaries, total = world.services.tasks.list(world.operator, world.client_a, project_id, **filters)  # type: ignore[arg-type]
    assert total == len(summaries)
    return {s.external_id or "": s.state for s in summaries}


def test_states_follow_the_work_and_filter_the_list(world: World) -> None:
    services = world.services
    project_id = make_project(world, "states", tasks=3, overlap=2, review_policy="all")
    services.gold.import_rows(world.operator, world.client_a, project_id,
                              [{"external_id": "g1", "data": {"text": "known"}, "gold": {"sentiment": "positive"}}])
    first, second = make_labelers(world, 2)
    assert _states(world, project_id) == {"states-0": "open", "states-1": "open", "states-2": "open", "g1": "gold"}

    done = []
    for labeler in (first, second):  # both answer the same first task (the queue's order is import order)
        task = services.labeling.next_task(labeler, world.client_a, project_id)
        services.labeling.submit(labeler, world.client_a, project_id, task.task_id, {"sentiment": "negative"})
        done.append(task.task_id)
    assert done[0] == done[1]
    assert _states(world, project_id)["states-0"] == "in_review"

    reviewer = world.actors["reviewer_a"]
    item = services.reviews.next_item(reviewer, world.client_a, project_id)
    services.reviews.decide(reviewer, world.client_a, project_id, item.task_id, decision="accept")
    assert _states(world, project_id) == {"states-0": "complete", "states-1": "open", "states-2": "open",
                                          "g1": "gold"}
    assert _states(world, project_id, state="open") == {"states-1": "open", "states-2": "open"}
    assert _states(world, project_id, state="complete") == {"states-0": "complete"}
    assert _states(world, project_id, state="in_review") == {}
    assert _states(world, project_id, external_id="states-2") == {"states-2": "open"}
    assert _states(world, project_id, external_id="nothing-like-it") == {}
    with pytest.raises(InvalidInput, match="state must be one of"):
        services.tasks.list(world.operator, world.client_a, project_id, state="finished")
    # Anyone in the client may list (no content is shown); another client's people may not.
    assert services.tasks.list(world.actors["viewer_a"], world.client_a, project_id)[1] == 4
    with pytest.raises(NotFound):
        services.tasks.list(world.actors["manager_b"], world.client_a, project_id)


def test_an_opened_task_shows_content_answers_skips_leases_and_reviews(world: World) -> None:
    services = world.services
    project = services.projects.create(world.operator, world.client_a, slug="open", name="open",
                                       schema=LABEL_SCHEMA, overlap=2)
    services.projects.update(world.operator, world.client_a, project.id, ProjectSettings(review_policy="all"))
    services.imports.import_rows(world.operator, world.client_a, project.id, [
        {"external_id": "t1", "data": {"text": "the only task"}, "metadata": {"source": "mail"}},
    ])
    first, second, third = make_labelers(world, 3)
    labeling = services.labeling
    task_id = labeling.next_task(first, world.client_a, project.id).task_id
    labeling.submit(first, world.client_a, project.id, task_id, {"sentiment": "positive"})
    labeling.next_task(second, world.client_a, project.id)
    labeling.skip(second, world.client_a, project.id, task_id, "the text is cut off")
    labeling.next_task(third, world.client_a, project.id)  # holds the task: a lease
    held = services.tasks.open(world.operator, world.client_a, project.id, task_id)
    assert held.state == "open" and held.open_slots == 0 and held.answer_count == 1
    assert [(lease.holder, lease.purpose) for lease in held.leases] == [("worker2", "label")]
    labeling.submit(third, world.client_a, project.id, task_id, {"sentiment": "negative"})

    reviewer = world.actors["reviewer_a"]
    services.reviews.next_item(reviewer, world.client_a, project.id)
    reviewing = services.tasks.open(world.operator, world.client_a, project.id, task_id)
    assert reviewing.state == "in_review"
    assert [(lease.holder, lease.purpose) for lease in reviewing.leases] == [("reviewer_a", "review")]
    rejected_id = reviewing.answers[1].id
    services.reviews.decide(reviewer, world.client_a, project.id, task_id, decision="reject",
                            reject_answer_ids=[rejected_id], reason="negative is wrong here")

    detail = services.tasks.open(world.actors["manager_a"], world.client_a, project.id, task_id)
    assert detail.external_id == "t1" and detail.state == "open"  # the rejection sent it back for one more
    assert detail.payload == {"text": "the only task"}
    assert detail.metadata == {"source": "mail"}
    assert detail.required_answers == 2 and detail.answer_count == 1 and detail.open_slots == 1
    assert [(a.labeler, a.status, a.value) for a in detail.answers] == [
        ("worker0", "accepted", {"sentiment": "positive"}),  # a rejection accepts the rest
        ("worker2", "rejected", {"sentiment": "negative"}),
    ]
    assert detail.answers[1].review_note == "negative is wrong here" and detail.answers[0].review_note is None
    assert [(s.labeler, s.reason) for s in detail.skips] == [("worker1", "the text is cut off")]
    assert detail.leases == []
    assert [(r.reviewer, r.decision, r.reason) for r in detail.reviews] == [
        ("reviewer_a", "reject", "negative is wrong here")]
    # Each opening is witnessed, with the task's id and never its content.
    opened = _audit_details(world, "task.read")
    assert opened == [{"task_id": task_id}] * 3
    assert "the only task" not in orjson.dumps(opened).decode()


def test_opening_a_task_is_a_managers_right_inside_the_client_and_the_wall(world: World) -> None:
    services = world.services
    project_id = make_project(world, "guarded", tasks=2)
    other_project = make_project(world, "elsewhere", tasks=1)
    task_id = services.tasks.list(world.operator, world.client_a, project_id)[0][0].id
    with pytest.raises(PermissionDenied):
        services.tasks.open(world.actors["labeler_a"], world.client_a, project_id, task_id)
    with pytest.raises(NotFound):
        services.tasks.open(world.actors["manager_b"], world.client_a, project_id, task_id)
    with pytest.raises(NotFound, match=f"task {task_id} not found"):
        services.tasks.open(world.operator, world.client_a, other_project, task_id)  # another project's task
    with pytest.raises(NotFound):
        services.tasks.open(world.operator, world.client_a, project_id, 10**9)

    # A manager of both competitors who saw Globex's data may not open Acme's tasks.
    services.walls.create_class(world.operator, "frontier-labs")
    services.walls.add_client(world.operator, "frontier-labs", world.client_a)
    services.walls.add_client(world.operator, "frontier-labs", world.client_b)
    services.accounts.grant_role(world.operator, world.client_a, "manager_b", "manager")
    globex = services.projects.create(world.operator, world.client_b, slug="g", name="g", schema=LABEL_SCHEMA)
    services.imports.import_rows(world.operator, world.client_b, globex.id,
                                 [{"external_id": "x", "data": {"text": "globex data"}}])
    globex_task = services.tasks.list(world.operator, world.client_b, globex.id)[0][0].id
    services.tasks.open(world.actors["manager_b"], world.client_b, globex.id, globex_task)
    with pytest.raises(ConflictOfInterest):
        services.tasks.open(world.actors["manager_b"], world.client_a, project_id, task_id)


def test_a_new_priority_moves_tasks_to_the_front_of_the_queue_at_once(world: World) -> None:
    services = world.services
    project_id = make_project(world, "rush", tasks=6, overlap=1)
    (labeler,) = make_labelers(world, 1)
    first = services.labeling.next_task(labeler, world.client_a, project_id)  # walks from the start
    services.labeling.submit(labeler, world.client_a, project_id, first.task_id, {"sentiment": "positive"})
    ids = {s.external_id: s.id for s in services.tasks.list(world.operator, world.client_a, project_id)[0]}

    changed = services.tasks.set_priority(world.actors["manager_a"], world.client_a, project_id, 5,
                                          external_ids=["rush-4"], task_ids=[ids["rush-5"]])
    assert changed == 2
    served = []
    for _ in range(2):
        task = services.labeling.next_task(labeler, world.client_a, project_id)
        services.labeling.submit(labeler, world.client_a, project_id, task.task_id, {"sentiment": "positive"})
        served.append(task.task_id)
    assert sorted(served) == sorted([ids["rush-4"], ids["rush-5"]])
    assert services.labeling.next_task(labeler, world.client_a, project_id).task_id == ids["rush-1"]
    # Asking again for the same priority changes nothing, and says so.
    assert services.tasks.set_priority(world.operator, world.client_a, project_id, 5, external_ids=["rush-4"]) == 0
    assert _audit_details(world, "tasks.reprioritized") == [
        {"moved": 2, "priority": 5, "tasks": 2}, {"moved": 0, "priority": 5, "tasks": 1}]


def test_a_priority_change_is_all_or_nothing_and_a_managers_right(world: World) -> None:
    services = world.services
    project_id = make_project(world, "strict", tasks=2)
    other = make_project(world, "other", tasks=1)
    other_task = services.tasks.list(world.operator, world.client_a, other)[0][0].id
    with pytest.raises(NotFound) as missing:
        services.tasks.set_priority(world.operator, world.client_a, project_id, 9,
                                    external_ids=["strict-0", "no-such-task"], task_ids=[other_task])
    assert "2 task(s) not found" in str(missing.value)
    assert "'no-such-task'" in str(missing.value) and str(other_task) in str(missing.value)
    assert {s.priority for s in services.tasks.list(world.operator, world.client_a, project_id)[0]} == {0}
    with pytest.raises(PermissionDenied):
        services.tasks.set_priority(world.actors["labeler_a"], world.client_a, project_id, 9,
                                    external_ids=["strict-0"])
    with pytest.raises(NotFound):
        services.tasks.set_priority(world.actors["manager_b"], world.client_a, project_id, 9,
                                    external_ids=["strict-0"])
    for bad in (10**7, True):
        with pytest.raises(InvalidInput, match="priority must be an integer"):
            services.tasks.set_priority(world.operator, world.client_a, project_id, bad, external_ids=["strict-0"])
    with pytest.raises(InvalidInput, match="name the tasks"):
        services.tasks.set_priority(world.operator, world.client_a, project_id, 1)


def test_tasks_nobody_answered_are_removed_with_their_skips_and_leases(world: World) -> None:
    services = world.services
    project_id = make_project(world, "broken", tasks=4)  # overlap 1
    first, second = make_labelers(world, 2)
    ids = {s.external_id: s.id for s in services.tasks.list(world.operator, world.client_a, project_id)[0]}
    answered = services.labeling.next_task(first, world.client_a, project_id).task_id
    services.labeling.submit(first, world.client_a, project_id, answered, {"sentiment": "positive"})
    skipped = services.labeling.next_task(first, world.client_a, project_id).task_id
    services.labeling.skip(first, world.client_a, project_id, skipped, "the text is garbled")
    held = services.labeling.next_task(second, world.client_a, project_id).task_id
    assert (answered, skipped, held) == (ids["broken-0"], ids["broken-1"], ids["broken-1"])

    # All or nothing: an answered task is named, and nothing goes.
    with pytest.raises(Conflict, match=rf"1 task\(s\) have answers and cannot be removed: {answered} \('broken-0'\)"):
        services.tasks.remove(world.actors["manager_a"], world.client_a, project_id,
                              external_ids=["broken-0", "broken-1", "broken-2"])
    with pytest.raises(NotFound, match="'broken-9'"):
        services.tasks.remove(world.operator, world.client_a, project_id, external_ids=["broken-1", "broken-9"])
    assert services.tasks.list(world.operator, world.client_a, project_id)[1] == 4
    with pytest.raises(PermissionDenied):
        services.tasks.remove(world.actors["labeler_a"], world.client_a, project_id, external_ids=["broken-1"])

    removed = services.tasks.remove(world.actors["manager_a"], world.client_a, project_id,
                                    external_ids=["broken-1"], task_ids=[ids["broken-2"]])
    assert removed == 2
    assert {s.external_id for s in services.tasks.list(world.operator, world.client_a, project_id)[0]} == {
        "broken-0", "broken-3"}
    assert services.answers.skips(world.operator, world.client_a, project_id).items == []  # the skip went too
    # The labeler who held a removed task is given another one, not the one that is gone.
    assert services.labeling.next_task(second, world.client_a, project_id).task_id == ids["broken-3"]
    assert services.projects.progress(world.operator, world.client_a, project_id)["tasks"] == 2
    # Refusals of access are witnessed too (a task named that the project lacks, a labeler asking).
    assert _audit_details(world, "tasks.removed") == [
        {"reason": "not_found"}, {"reason": "permission_denied"},
        {"tasks": 2, "task_ids": sorted([ids["broken-1"], ids["broken-2"]])}]


def _submit_and_remove_at_once(world: World, project_id: int, labeler: Actor, task_id: int) -> tuple[str, str]:
    """The labeler submits the task they hold while a manager removes it: what each one got."""
    services = world.services
    barrier = threading.Barrier(2)
    results = {"submit": "?", "remove": "?"}

    def submit() -> None:
        barrier.wait()
        try:
            services.labeling.submit(labeler, world.client_a, project_id, task_id, {"sentiment": "neutral"})
            results["submit"] = "acknowledged"
        except (Conflict, NotFound) as refused:
            results["submit"] = type(refused).__name__

    def remove() -> None:
        barrier.wait()
        try:
            services.tasks.remove(world.operator, world.client_a, project_id, task_ids=[task_id])
            results["remove"] = "removed"
        except Conflict:
            results["remove"] = "refused"

    threads = [threading.Thread(target=submit), threading.Thread(target=remove)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results["submit"], results["remove"]


def test_a_removal_racing_a_submit_never_takes_an_acknowledged_answer_with_it(world: World) -> None:
    services = world.services
    rounds = 12
    project_id = make_project(world, "race", tasks=rounds)
    outcomes = []
    for labeler in make_labelers(world, rounds):
        task_id = services.labeling.next_task(labeler, world.client_a, project_id).task_id
        submitted, removed = _submit_and_remove_at_once(world, project_id, labeler, task_id)
        outcomes.append((submitted, removed))
        remaining = {s.id for s in services.tasks.list(world.operator, world.client_a, project_id, limit=1000)[0]}
        if submitted == "acknowledged":
            assert removed == "refused" and task_id in remaining
        else:
            assert removed == "removed" and task_id not in remaining
    answers = services.answers.page(world.operator, world.client_a, project_id, limit=1000).items
    assert len(answers) == sum(1 for submitted, _ in outcomes if submitted == "acknowledged"), outcomes


def test_more_answers_send_a_task_back_to_labelers_who_have_not_answered_it(world: World) -> None:
    services = world.services
    project_id = make_project(world, "second", tasks=2, overlap=1, review_policy="all")
    first, second = make_labelers(world, 2)
    done = services.labeling.next_task(first, world.client_a, project_id).task_id
    services.labeling.submit(first, world.client_a, project_id, done, {"sentiment": "positive"})
    reviewer = world.actors["reviewer_a"]
    assert services.reviews.next_item(reviewer, world.client_a, project_id).task_id == done  # held for review
    assert _states(world, project_id)["second-0"] == "in_review"

    asked = services.tasks.ask_more_answers(world.actors["manager_a"], world.client_a, project_id, 1,
                                            external_ids=["second-0"])
    assert asked == 1
    detail = services.tasks.open(world.operator, world.client_a, project_id, done)
    assert (detail.state, detail.required_answers, detail.open_slots, detail.leases) == ("open", 2, 1, [])
    # Out of the review queue until complete again; the reviewer's hold went with it.
    with pytest.raises(Conflict):
        services.reviews.decide(reviewer, world.client_a, project_id, done, decision="accept")
    # Not to the labeler who answered it; to one who did not, and then it is reviewed again.
    assert services.labeling.next_task(first, world.client_a, project_id).task_id != done
    assert services.labeling.next_task(second, world.client_a, project_id).task_id == done
    services.labeling.submit(second, world.client_a, project_id, done, {"sentiment": "negative"})
    assert _states(world, project_id)["second-0"] == "in_review"
    item = services.reviews.next_item(reviewer, world.client_a, project_id)
    assert item.task_id == done and len(item.answers) == 2
    assert _audit_details(world, "tasks.more_answers_asked") == [{"more": 1, "tasks": 1, "task_ids": [done]}]


def test_more_answers_refuse_gold_tasks_and_more_than_a_hundred_and_change_nothing(world: World) -> None:
    services = world.services
    project_id = make_project(world, "capped", tasks=1, overlap=3)
    services.gold.import_rows(world.operator, world.client_a, project_id,
                              [{"external_id": "g1", "data": {"text": "known"}, "gold": {"sentiment": "positive"}}])
    with pytest.raises(InvalidInput, match=r"cannot take more answers .*'g1'\): a gold task") as refused:
        services.tasks.ask_more_answers(world.operator, world.client_a, project_id, 1,
                                        external_ids=["capped-0", "g1"])
    assert "capped-0" not in str(refused.value)
    with pytest.raises(InvalidInput, match="'capped-0'\\): would want 101"):
        services.tasks.ask_more_answers(world.operator, world.client_a, project_id, 98, external_ids=["capped-0"])
    with pytest.raises(InvalidInput, match="more must be a whole number from 1 to 100"):
        services.tasks.ask_more_answers(world.operator, world.client_a, project_id, 0, external_ids=["capped-0"])
    with pytest.raises(PermissionDenied):
        services.tasks.ask_more_answers(world.actors["labeler_a"], world.client_a, project_id, 1,
                                        external_ids=["capped-0"])
    summaries = {s.external_id: s.required_answers for s in
                 services.tasks.list(world.operator, world.client_a, project_id)[0]}
    assert summaries == {"capped-0": 3, "g1": 0}
