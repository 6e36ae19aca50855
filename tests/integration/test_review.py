"""Review policies, the reviewer queue, and accept / reject / correct."""

from __future__ import annotations

import pytest

from labelvault.errors import InvalidInput, QueueRefused
from tests.conftest import World
from tests.integration.queue_helpers import label_once, make_labelers, make_project


def reviewer(world: World):  # type: ignore[no-untyped-def]
    return world.actors["reviewer_a"]


def test_with_policy_none_completed_answers_are_accepted_and_nothing_awaits_review(world: World) -> None:
    project_id = make_project(world, tasks=1)
    label_once(world, world.actors["labeler_a"], project_id)
    with pytest.raises(QueueRefused) as refused:
        world.services.reviews.next_item(reviewer(world), world.client_a, project_id)
    assert refused.value.reason == "no_tasks"
    exported = _statuses(world, project_id)
    assert exported == ["accepted"]


def _statuses(world: World, project_id: int) -> list[str]:
    with world.services.uow_factory.for_client(world.client_a) as uow:
        return [a.status for a in uow.answers.iterate(project_id)]


def test_policy_all_puts_completed_tasks_in_the_reviewer_queue_with_their_answers(world: World) -> None:
    project_id = make_project(world, tasks=1, overlap=2, review_policy="all")
    a, b = make_labelers(world, 2)
    label_once(world, a, project_id, "positive")
    with pytest.raises(QueueRefused):  # not complete yet: one answer of two
        world.services.reviews.next_item(reviewer(world), world.client_a, project_id)
    label_once(world, b, project_id, "negative")
    item = world.services.reviews.next_item(reviewer(world), world.client_a, project_id)
    assert sorted(x.value["sentiment"] for x in item.answers) == ["negative", "positive"]
    assert item.payload == {"text": "text number 0"}


def test_disagreement_policy_reviews_only_tasks_whose_answers_differ(world: World) -> None:
    project_id = make_project(world, tasks=2, overlap=2, review_policy="disagreement")
    a, b = make_labelers(world, 2)
    first = label_once(world, a, project_id, "positive")
    label_once(world, b, project_id, "positive")  # b gets the same first task: agreement
    second = label_once(world, a, project_id, "positive")
    label_once(world, b, project_id, "negative")  # disagreement
    assert first != second
    item = world.services.reviews.next_item(reviewer(world), world.client_a, project_id)
    assert item.task_id == second


def test_a_rejected_answer_stops_counting_and_the_task_goes_back_to_a_new_labeler(world: World) -> None:
    project_id = make_project(world, tasks=1, review_policy="all")
    a, b = make_labelers(world, 2)
    task_id = label_once(world, a, project_id, "neutral")
    with pytest.raises(QueueRefused):
        world.services.labeling.next_task(b, world.client_a, project_id)  # full while under review
    world.services.reviews.next_item(reviewer(world), world.client_a, project_id)
    world.services.reviews.decide(reviewer(world), world.client_a, project_id, task_id,
                                  decision="reject", reason="the text is clearly positive")
    # The first labeler never sees it again; a new labeler does.
    with pytest.raises(QueueRefused):
        world.services.labeling.next_task(a, world.client_a, project_id)
    assert world.services.labeling.next_task(b, world.client_a, project_id).task_id == task_id
    feedback = world.services.reviews.rejected_feedback(a, world.client_a, project_id)
    assert [(f.task_id, f.reason, f.value) for f in feedback] == [
        (task_id, "the text is clearly positive", {"sentiment": "neutral"})
    ]


def test_a_rejection_needs_a_reason(world: World) -> None:
    project_id = make_project(world, tasks=1, review_policy="all")
    task_id = label_once(world, world.actors["labeler_a"], project_id)
    world.services.reviews.next_item(reviewer(world), world.client_a, project_id)
    with pytest.raises(InvalidInput):
        world.services.reviews.decide(reviewer(world), world.client_a, project_id, task_id, decision="reject")


def test_a_correction_is_validated_final_and_marks_the_answers(world: World) -> None:
    project_id = make_project(world, tasks=1, review_policy="all")
    task_id = label_once(world, world.actors["labeler_a"], project_id, "neutral")
    world.services.reviews.next_item(reviewer(world), world.client_a, project_id)
    with pytest.raises(InvalidInput):
        world.services.reviews.decide(reviewer(world), world.client_a, project_id, task_id,
                                      decision="correct", correction={"sentiment": "great"})
    world.services.reviews.decide(reviewer(world), world.client_a, project_id, task_id,
                                  decision="correct", correction={"sentiment": "positive"})
    assert _statuses(world, project_id) == ["corrected"]
    with pytest.raises(QueueRefused):
        world.services.reviews.next_item(reviewer(world), world.client_a, project_id)


def test_a_reviewer_never_reviews_their_own_answer(world: World) -> None:
    project_id = make_project(world, tasks=1, review_policy="all")
    world.services.accounts.grant_role(world.operator, world.client_a, "reviewer_a", "labeler")
    label_once(world, reviewer(world), project_id)
    with pytest.raises(QueueRefused):
        world.services.reviews.next_item(reviewer(world), world.client_a, project_id)


def test_sample_policy_reviews_about_the_share_asked_for(world: World) -> None:
    project_id = make_project(world, tasks=200, review_policy="sample", review_sample_rate=0.5)
    labeler = world.actors["labeler_a"]
    for _ in range(200):
        label_once(world, labeler, project_id)
    pending = world.services.reviews.pending(world.operator, world.client_a, project_id)
    assert 60 <= pending <= 140  # binomial(200, 0.5): far outside 6 sigma otherwise
