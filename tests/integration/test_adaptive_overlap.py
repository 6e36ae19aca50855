"""Adaptive overlap: one more answer at a time where the answers disagree, up to the maximum."""

from __future__ import annotations

import pytest

from labelvault.errors import InvalidInput, QueueRefused
from labelvault.workflow.projects import ProjectSettings
from tests.conftest import World
from tests.integration.queue_helpers import label_once, make_labelers, make_project


def required(world: World, project_id: int) -> list[int]:
    tasks, _ = world.services.tasks.list(world.operator, world.client_a, project_id)
    return [t.required_answers for t in tasks]


def test_a_task_whose_answers_disagree_gets_one_more_answer_at_a_time(world: World) -> None:
    project_id = make_project(world, tasks=1, overlap=2, max_overlap=4, confidence_threshold=0.7)
    a, b, c, d, e = make_labelers(world, 5)
    label_once(world, a, project_id, "positive")
    assert required(world, project_id) == [2]
    label_once(world, b, project_id, "negative")  # 1/2 agree: below 0.7
    assert required(world, project_id) == [3]
    label_once(world, c, project_id, "positive")  # 2/3 = 0.67: still below
    assert required(world, project_id) == [4]
    label_once(world, d, project_id, "positive")  # 3/4 = 0.75: confident, complete
    assert required(world, project_id) == [4]
    with pytest.raises(QueueRefused) as refused:
        world.services.labeling.next_task(e, world.client_a, project_id)
    assert refused.value.reason == "no_tasks"


def test_a_task_whose_answers_agree_completes_at_the_minimum(world: World) -> None:
    project_id = make_project(world, tasks=2, overlap=2, max_overlap=5, confidence_threshold=0.9)
    a, b = make_labelers(world, 2)
    for _ in range(2):
        label_once(world, a, project_id, "neutral")
        label_once(world, b, project_id, "neutral")
    assert required(world, project_id) == [2, 2]


def test_the_maximum_is_never_exceeded(world: World) -> None:
    project_id = make_project(world, tasks=1, overlap=2, max_overlap=3, confidence_threshold=0.99)
    labelers = make_labelers(world, 4)
    for labeler, value in zip(labelers[:3], ("positive", "negative", "neutral"), strict=True):
        label_once(world, labeler, project_id, value)
    assert required(world, project_id) == [3]
    with pytest.raises(QueueRefused):
        world.services.labeling.next_task(labelers[3], world.client_a, project_id)


def test_without_a_maximum_overlap_stays_fixed(world: World) -> None:
    project_id = make_project(world, tasks=1, overlap=2)
    a, b = make_labelers(world, 2)
    label_once(world, a, project_id, "positive")
    label_once(world, b, project_id, "negative")
    assert required(world, project_id) == [2]


def test_an_extended_task_reaches_review_only_when_it_is_complete(world: World) -> None:
    project_id = make_project(world, tasks=1, overlap=2, max_overlap=3, review_policy="all")
    a, b, c = make_labelers(world, 3)
    label_once(world, a, project_id, "positive")
    label_once(world, b, project_id, "negative")
    assert world.services.reviews.pending(world.operator, world.client_a, project_id) == 0
    label_once(world, c, project_id, "positive")
    assert world.services.reviews.pending(world.operator, world.client_a, project_id) == 1


def test_the_report_counts_the_answers_saved_against_the_fixed_maximum(world: World) -> None:
    project_id = make_project(world, tasks=3, overlap=2, max_overlap=4, confidence_threshold=0.7)
    a, b, c = make_labelers(world, 3)
    for _ in range(3):  # a and b agree on the first two tasks, disagree on the third
        task = label_once(world, a, project_id, "positive")
        label_once(world, b, project_id, "negative" if task == max(_task_ids(world, project_id)) else "positive")
    label_once(world, c, project_id, "positive")  # the third task's extra answer: 2/3, one more wanted
    overlap = world.services.quality.report(world.operator, world.client_a, project_id)["overlap"]
    assert overlap["completed_tasks"] == 2 and overlap["extended_tasks"] == 1
    assert overlap["answers_used"] == 4 and overlap["answers_at_max"] == 8 and overlap["answers_saved"] == 4
    assert overlap["saved_share"] == pytest.approx(0.5)
    assert overlap["tasks_by_k"] == {"2": 2}


def _task_ids(world: World, project_id: int) -> list[int]:
    tasks, _ = world.services.tasks.list(world.operator, world.client_a, project_id)
    return [t.id for t in tasks]


def test_a_maximum_below_the_minimum_is_refused(world: World) -> None:
    project_id = make_project(world, tasks=1, overlap=3)
    with pytest.raises(InvalidInput) as refused:
        world.services.projects.update(world.operator, world.client_a, project_id, ProjectSettings(max_overlap=2))
    assert refused.value.details == {"field": "max_overlap"}


def test_adaptive_overlap_judges_ratings_by_their_spread(world: World) -> None:
    schema = {"fields": [{"name": "text", "kind": "text"}],
              "questions": [{"name": "score", "type": "rating", "min": 1, "max": 5}]}
    services = world.services
    project = services.projects.create(world.operator, world.client_a, slug="rated", name="r", schema=schema,
                                       overlap=2)
    services.projects.update(world.operator, world.client_a, project.id,
                             ProjectSettings(max_overlap=3, confidence_threshold=0.8))
    services.imports.import_rows(world.operator, world.client_a, project.id,
                                 [{"data": {"text": "close"}}, {"data": {"text": "far"}}])
    a, b = make_labelers(world, 2)
    labeling = services.labeling
    for labeler, ratings in ((a, (4, 1)), (b, (5, 5))):
        for rating in ratings:
            task = labeling.next_task(labeler, world.client_a, project.id)
            labeling.submit(labeler, world.client_a, project.id, task.task_id, {"score": rating})
    # close: 4 and 5, spread 0.5 of 4 -> 0.875; far: 1 and 5, spread 2 of 4 -> 0.5
    assert required(world, project.id) == [2, 3]
