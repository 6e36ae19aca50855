"""Qualification tests and skills: who may label a project, and what they are told when they may not."""

from __future__ import annotations

import pytest

from labelvault.errors import InvalidInput, NotFound, PermissionDenied, QueueRefused
from labelvault.workflow.projects import ProjectSettings
from tests.conftest import World
from tests.integration.queue_helpers import LABEL_SCHEMA, make_labelers, make_project


def add_test(world: World, project_id: int, count: int, answer: str = "positive") -> list[int]:
    rows = [{"external_id": f"test-{i}", "data": {"text": f"test text {i}"}, "gold": {"sentiment": answer}}
            for i in range(count)]
    world.services.gold.import_rows(world.operator, world.client_a, project_id, rows, qualification=True)
    items, _ = world.services.gold.list(world.operator, world.client_a, project_id)
    return sorted(g.task_id for g in items if g.qualification)


def refusal(world: World, labeler, project_id: int) -> QueueRefused:  # type: ignore[no-untyped-def]
    with pytest.raises(QueueRefused) as refused:
        world.services.labeling.next_task(labeler, world.client_a, project_id)
    return refused.value


def take_test(world: World, labeler, project_id: int, answers: list[str | None]) -> list[int]:  # type: ignore[no-untyped-def]
    """Answer the test tasks in the order served; None skips one."""
    labeling = world.services.labeling
    served = []
    for value in answers:
        task = labeling.next_task(labeler, world.client_a, project_id)
        served.append(task.task_id)
        if value is None:
            labeling.skip(labeler, world.client_a, project_id, task.task_id, reason="unsure")
        else:
            labeling.submit(labeler, world.client_a, project_id, task.task_id, {"sentiment": value})
    return served


def test_a_labeler_without_a_required_skill_is_refused_as_not_qualified(world: World) -> None:
    project_id = make_project(world, tasks=2, required_skills=["lang:de", "phd:chemistry"])
    labeler = world.actors["labeler_a"]
    refused = refusal(world, labeler, project_id)
    assert refused.reason == "not_qualified"
    assert "lang:de" in refused.message and "phd:chemistry" in refused.message
    manager = world.actors["manager_a"]
    world.services.qualifications.grant_skill(manager, world.client_a, "labeler_a", "lang:de")
    assert "lang:de" not in refusal(world, labeler, project_id).message
    # Tags are kept in lower case.
    world.services.qualifications.grant_skill(manager, world.client_a, "labeler_a", "PhD:Chemistry")
    world.services.labeling.next_task(labeler, world.client_a, project_id)


def test_skills_belong_to_the_client_that_gave_them(world: World) -> None:
    services = world.services
    world.services.qualifications.grant_skill(world.actors["manager_a"], world.client_a, "labeler_a", "lang:de")
    services.accounts.grant_role(world.operator, world.client_b, "labeler_a", "labeler")
    project = services.projects.create(world.operator, world.client_b, slug="b", name="b", schema=LABEL_SCHEMA)
    services.projects.update(world.operator, world.client_b, project.id, ProjectSettings(required_skills=["lang:de"]))
    services.imports.import_rows(world.operator, world.client_b, project.id, [{"data": {"text": "x"}}])
    with pytest.raises(QueueRefused) as refused:
        services.labeling.next_task(world.actors["labeler_a"], world.client_b, project.id)
    assert refused.value.reason == "not_qualified"
    assert [g.skill for g in services.qualifications.skills(world.actors["manager_b"], world.client_b)] == []


def test_only_a_manager_gives_skills_and_only_well_formed_ones(world: World) -> None:
    qualifications = world.services.qualifications
    with pytest.raises(PermissionDenied):
        qualifications.grant_skill(world.actors["labeler_a"], world.client_a, "labeler_a", "lang:de")
    with pytest.raises(InvalidInput):
        qualifications.grant_skill(world.actors["manager_a"], world.client_a, "labeler_a", "two words")
    with pytest.raises(NotFound):
        qualifications.grant_skill(world.actors["manager_a"], world.client_a, "labeler_b", "lang:de")  # not a member
    qualifications.grant_skill(world.actors["manager_a"], world.client_a, "labeler_a", "lang:de")
    qualifications.revoke_skill(world.actors["manager_a"], world.client_a, "labeler_a", "lang:de")
    assert qualifications.skills(world.actors["manager_a"], world.client_a) == []


def test_the_qualification_test_comes_first_and_a_pass_opens_regular_work(world: World) -> None:
    project_id = make_project(world, tasks=3, qualification_required=True, qualification_pass_mark=0.6)
    test = add_test(world, project_id, 3)
    labeler = world.actors["labeler_a"]
    assert take_test(world, labeler, project_id, ["positive", "positive", "negative"]) == test
    status = world.services.qualifications.my_status(labeler, world.client_a, project_id)
    assert (status.passed, status.test_done, status.test_tasks) == (True, 3, 3)
    assert status.score == pytest.approx(2 / 3)
    assert world.services.labeling.next_task(labeler, world.client_a, project_id).task_id not in test


def test_a_labeler_who_fails_the_test_is_refused_with_the_score(world: World) -> None:
    project_id = make_project(world, tasks=3, qualification_required=True, qualification_pass_mark=0.8)
    add_test(world, project_id, 2)
    labeler = world.actors["labeler_a"]
    take_test(world, labeler, project_id, ["positive", "neutral"])
    refused = refusal(world, labeler, project_id)
    assert refused.reason == "not_qualified" and "50%" in refused.message and "80%" in refused.message


def test_a_skipped_test_task_counts_as_wrong(world: World) -> None:
    project_id = make_project(world, tasks=3, qualification_required=True, qualification_pass_mark=0.8)
    add_test(world, project_id, 3)
    labeler = world.actors["labeler_a"]
    take_test(world, labeler, project_id, ["positive", None, "positive"])
    assert refusal(world, labeler, project_id).reason == "not_qualified"
    (status,) = [s for s in world.services.qualifications.statuses(world.operator, world.client_a, project_id)
                 if s.username == "labeler_a"]
    assert status.passed is False and status.score == pytest.approx(2 / 3)


def test_a_test_without_tasks_refuses_with_the_reason(world: World) -> None:
    project_id = make_project(world, tasks=3, qualification_required=True)
    refused = refusal(world, world.actors["labeler_a"], project_id)
    assert refused.reason == "not_qualified" and "no tasks" in refused.message


def test_a_manager_qualifies_by_hand_and_withdraws(world: World) -> None:
    project_id = make_project(world, tasks=3, qualification_required=True)
    add_test(world, project_id, 2)
    labeler = world.actors["labeler_a"]
    manager = world.actors["manager_a"]
    world.services.qualifications.set_qualified(manager, world.client_a, project_id, "labeler_a", qualified=True)
    test = {g.task_id for g in world.services.gold.list(manager, world.client_a, project_id)[0]}
    leased = world.services.labeling.next_task(labeler, world.client_a, project_id)
    assert leased.task_id not in test  # no test for a hand-qualified labeler
    world.services.labeling.submit(labeler, world.client_a, project_id, leased.task_id, {"sentiment": "positive"})
    world.services.qualifications.set_qualified(manager, world.client_a, project_id, "labeler_a", qualified=False)
    assert refusal(world, labeler, project_id).reason == "not_qualified"


def test_test_answers_do_not_count_towards_suspension(world: World) -> None:
    project_id = make_project(world, tasks=3, qualification_required=True, qualification_pass_mark=0.0,
                              suspension_threshold=0.9, suspension_min_answers=2)
    add_test(world, project_id, 2)
    labeler = world.actors["labeler_a"]
    take_test(world, labeler, project_id, ["negative", "negative"])  # wrong, but the pass mark is 0
    world.services.labeling.next_task(labeler, world.client_a, project_id)  # qualified, not suspended


def test_labelers_who_are_not_asked_a_test_see_no_test_tasks(world: World) -> None:
    project_id = make_project(world, tasks=2, gold_rate=1.0)
    test = set(add_test(world, project_id, 2))
    labeler = make_labelers(world, 1)[0]
    labeling = world.services.labeling
    for _ in range(2):
        task = labeling.next_task(labeler, world.client_a, project_id)
        assert task.task_id not in test
        labeling.submit(labeler, world.client_a, project_id, task.task_id, {"sentiment": "positive"})
