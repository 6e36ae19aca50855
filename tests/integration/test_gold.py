"""Gold tasks: import and promotion, injection into the queue, scoring, suspension, feedback."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import text

from labelvault.domain.schema import parse_schema
from labelvault.errors import CryptoError, ImportInvalid, NotFound, PermissionDenied, QueueRefused
from labelvault.quality.scores import wilson_interval
from labelvault.quality.scoring import credit, score_answer
from labelvault.workflow.projects import ProjectSettings
from tests.conftest import World
from tests.integration.queue_helpers import make_labelers, make_project


def add_gold(world: World, project_id: int, count: int, answer: str = "positive", prefix: str = "gold",
             qualification: bool = False) -> None:
    rows = [{"external_id": f"{prefix}-{i}", "data": {"text": f"{prefix} text {i}"}, "gold": {"sentiment": answer}}
            for i in range(count)]
    report = world.services.gold.import_rows(world.operator, world.client_a, project_id, rows,
                                             qualification=qualification)
    assert report.created == count


def gold_ids(world: World, project_id: int) -> set[int]:
    items, _ = world.services.gold.list(world.operator, world.client_a, project_id)
    return {g.task_id for g in items}


def answer_next(world: World, labeler, project_id: int, value: str | None = None,  # type: ignore[no-untyped-def]
                gold: set[int] | None = None) -> int:
    """Lease the next task and answer it: ``value``, or the wrong label on gold tasks if ``gold`` is given."""
    labeling = world.services.labeling
    task = labeling.next_task(labeler, world.client_a, project_id)
    chosen = value or ("negative" if gold is not None and task.task_id in gold else "positive")
    labeling.submit(labeler, world.client_a, project_id, task.task_id, {"sentiment": chosen})
    return task.task_id


def test_gold_tasks_stay_out_of_the_regular_queue_and_alone_are_no_work(world: World) -> None:
    project_id = make_project(world, tasks=0, gold_rate=1.0)
    add_gold(world, project_id, 3)
    with pytest.raises(QueueRefused) as refused:
        world.services.labeling.next_task(world.actors["labeler_a"], world.client_a, project_id)
    assert refused.value.reason == "no_tasks"
    assert world.services.projects.progress(world.operator, world.client_a, project_id)["answers_needed"] == 0


def test_with_gold_rate_one_the_labeler_gets_a_gold_task_shaped_like_any_other(world: World) -> None:
    project_id = make_project(world, tasks=2, gold_rate=1.0)
    add_gold(world, project_id, 1)
    labeler = world.actors["labeler_a"]
    leased = world.services.labeling.next_task(labeler, world.client_a, project_id)
    assert leased.task_id in gold_ids(world, project_id)
    assert leased.payload == {"text": "gold text 0"}  # the data only: no gold answer, no flag
    assert leased.suggestions == []
    assert {f.name for f in dataclasses.fields(leased)} == {
        "task_id", "project_id", "payload", "suggestions", "lease_started_at", "lease_expires_at"}
    world.services.labeling.submit(labeler, world.client_a, project_id, leased.task_id, {"sentiment": "positive"})
    # The one gold task is used up for this labeler: regular work follows.
    assert world.services.labeling.next_task(labeler, world.client_a, project_id).task_id not in gold_ids(
        world, project_id)


def test_gold_is_served_only_while_this_labeler_has_regular_work_left(world: World) -> None:
    # Overlap 3: after labeler_a answered every regular task, each still wants two answers from
    # others, but none is left for labeler_a, and gold alone is no work.
    project_id = make_project(world, tasks=3, overlap=3)
    add_gold(world, project_id, 5)
    labeler = world.actors["labeler_a"]
    gold = gold_ids(world, project_id)
    regular_served = {answer_next(world, labeler, project_id) for _ in range(3)}
    assert not regular_served & gold
    world.services.projects.update(world.operator, world.client_a, project_id, ProjectSettings(gold_rate=1.0))
    with pytest.raises(QueueRefused) as refused:
        world.services.labeling.next_task(labeler, world.client_a, project_id)
    assert refused.value.reason == "no_tasks"
    # New regular work (behind the place labeler_a's walks had reached) brings gold back first,
    # then the new task itself once the gold is used up for this labeler.
    world.services.imports.import_rows(world.operator, world.client_a, project_id,
                                       [{"external_id": "late", "data": {"text": "a late task"}}])
    served = [answer_next(world, labeler, project_id) for _ in range(6)]
    assert set(served[:5]) == gold
    assert served[5] not in gold | regular_served
    with pytest.raises(QueueRefused):
        world.services.labeling.next_task(labeler, world.client_a, project_id)


def test_with_gold_rate_zero_no_gold_task_is_ever_served(world: World) -> None:
    project_id = make_project(world, tasks=5)
    add_gold(world, project_id, 5)
    labeler = world.actors["labeler_a"]
    served = {answer_next(world, labeler, project_id) for _ in range(5)}
    assert not served & gold_ids(world, project_id)


def test_a_partial_gold_rate_mixes_gold_into_regular_work(world: World) -> None:
    project_id = make_project(world, tasks=40, gold_rate=0.5)
    add_gold(world, project_id, 40)
    labeler = world.actors["labeler_a"]
    gold = gold_ids(world, project_id)
    served = [answer_next(world, labeler, project_id) for _ in range(40)]
    share = sum(t in gold for t in served) / len(served)
    assert 0.15 < share < 0.85  # binomial(40, 0.5): outside this range with probability < 1e-4


def test_gold_answers_are_scored_and_accuracy_has_a_wilson_interval(world: World) -> None:
    project_id = make_project(world, tasks=10, gold_rate=1.0)
    add_gold(world, project_id, 4)
    labeler = world.actors["labeler_a"]
    gold = gold_ids(world, project_id)
    # Right on two gold tasks, wrong on two.
    for i in range(4):
        task = world.services.labeling.next_task(labeler, world.client_a, project_id)
        assert task.task_id in gold
        answer = "positive" if i % 2 == 0 else "neutral"
        world.services.labeling.submit(labeler, world.client_a, project_id, task.task_id, {"sentiment": answer})
    (row,) = world.services.quality.labelers(world.operator, world.client_a, project_id)
    lower, upper = wilson_interval(2, 4)
    assert row["labeler"] == "labeler_a"
    assert row["gold"] == {"n": 4, "accuracy": 0.5, "lower": pytest.approx(lower), "upper": pytest.approx(upper)}
    assert row["gold_by_question"]["sentiment"]["n"] == 4


def test_a_labeler_confidently_below_the_threshold_is_suspended_until_a_manager_reinstates(world: World) -> None:
    project_id = make_project(world, tasks=10, gold_rate=1.0, suspension_threshold=0.8, suspension_min_answers=3)
    add_gold(world, project_id, 6)
    labeler = world.actors["labeler_a"]
    gold = gold_ids(world, project_id)
    for _ in range(3):  # wrong on every gold task: 0 of 3, upper Wilson bound 0.56 < 0.8
        answer_next(world, labeler, project_id, gold=gold)
    with pytest.raises(QueueRefused) as refused:
        world.services.labeling.next_task(labeler, world.client_a, project_id)
    assert refused.value.reason == "suspended"
    (suspension,) = world.services.gold.suspensions(world.operator, world.client_a, project_id, active_only=True)
    assert suspension.username == "labeler_a" and suspension.n == 3 and suspension.upper < 0.8
    world.services.gold.reinstate(world.actors["manager_a"], world.client_a, project_id, "labeler_a")
    assert world.services.labeling.next_task(labeler, world.client_a, project_id).task_id in gold
    assert not world.services.gold.suspensions(world.operator, world.client_a, project_id, active_only=True)


def test_suspension_waits_for_the_minimum_number_of_gold_answers(world: World) -> None:
    project_id = make_project(world, tasks=10, gold_rate=1.0, suspension_threshold=0.8, suspension_min_answers=5)
    add_gold(world, project_id, 6)
    labeler = world.actors["labeler_a"]
    gold = gold_ids(world, project_id)
    for _ in range(4):
        answer_next(world, labeler, project_id, gold=gold)
    world.services.labeling.next_task(labeler, world.client_a, project_id)  # not suspended yet


def test_a_labeler_who_is_right_on_gold_is_not_suspended(world: World) -> None:
    project_id = make_project(world, tasks=10, gold_rate=1.0, suspension_threshold=0.5, suspension_min_answers=3)
    add_gold(world, project_id, 5)
    labeler = world.actors["labeler_a"]
    for _ in range(5):
        answer_next(world, labeler, project_id, "positive")
    world.services.labeling.next_task(labeler, world.client_a, project_id)


def test_only_a_manager_reinstates_and_only_a_suspended_labeler(world: World) -> None:
    project_id = make_project(world, tasks=1)
    with pytest.raises(NotFound):
        world.services.gold.reinstate(world.actors["manager_a"], world.client_a, project_id, "labeler_a")
    with pytest.raises(PermissionDenied):
        world.services.gold.reinstate(world.actors["labeler_a"], world.client_a, project_id, "labeler_a")


def test_gold_feedback_shows_the_labelers_own_results_only_when_the_project_allows(world: World) -> None:
    project_id = make_project(world, tasks=3, gold_rate=1.0)
    add_gold(world, project_id, 1)
    labeler = world.actors["labeler_a"]
    task_id = answer_next(world, labeler, project_id, "neutral")
    with pytest.raises(PermissionDenied):
        world.services.gold.feedback(labeler, world.client_a, project_id)
    world.services.projects.update(world.operator, world.client_a, project_id,
                                   ProjectSettings(show_gold_feedback=True))
    (item,) = world.services.gold.feedback(labeler, world.client_a, project_id)
    assert (item.task_id, item.question, item.your_answer, item.gold_answer, item.credit) == (
        task_id, "sentiment", "neutral", "positive", 0.0)
    other = make_labelers(world, 1)[0]
    assert world.services.gold.feedback(other, world.client_a, project_id) == []


def test_a_reviewed_task_is_promoted_to_gold_with_its_accepted_answer(world: World) -> None:
    project_id = make_project(world, tasks=2, overlap=2)
    first, second, third = make_labelers(world, 3)
    task_id = answer_next(world, first, project_id, "negative")
    assert answer_next(world, second, project_id, "negative") == task_id  # accepted (policy none)
    promoted = world.services.gold.promote(world.actors["manager_a"], world.client_a, project_id, task_id)
    assert promoted.gold == {"sentiment": "negative"}
    world.services.projects.update(world.operator, world.client_a, project_id, ProjectSettings(gold_rate=1.0))
    leased = world.services.labeling.next_task(third, world.client_a, project_id)
    assert leased.task_id == task_id  # served as gold now, beyond its two answers
    world.services.labeling.submit(third, world.client_a, project_id, task_id, {"sentiment": "negative"})
    rows = {r["labeler"]: r["gold"]["n"] for r in world.services.quality.labelers(world.operator, world.client_a,
                                                                                   project_id)}
    assert rows == {first.username: 0, second.username: 0, third.username: 1}  # earlier answers are not scored


def test_promotion_needs_a_reviewed_answer_or_an_explicit_one(world: World) -> None:
    project_id = make_project(world, tasks=1, overlap=2)
    first, second = make_labelers(world, 2)
    task_id = answer_next(world, first, project_id, "negative")
    answer_next(world, second, project_id, "positive")  # answers differ: no gold answer to take
    manager = world.actors["manager_a"]
    with pytest.raises(Exception, match="no reviewed answer"):
        world.services.gold.promote(manager, world.client_a, project_id, task_id)
    promoted = world.services.gold.promote(manager, world.client_a, project_id, task_id,
                                           answer={"sentiment": "neutral"})
    assert promoted.gold == {"sentiment": "neutral"}


def test_gold_answers_are_sealed_and_bound_to_their_task(world: World) -> None:
    project_id = make_project(world, tasks=0)
    add_gold(world, project_id, 2, answer="neutral")
    first, second = sorted(gold_ids(world, project_id))
    with world.services.uow_factory.all_clients() as uow:  # the raw column, as a backup would hold it
        blobs = dict(uow.session.execute(text("SELECT id, gold_answer FROM tasks WHERE is_gold")).all())
    assert set(blobs) == {first, second}
    assert all(b"neutral" not in bytes(blob) for blob in blobs.values())
    with world.services.uow_factory.for_client(world.client_a) as uow:
        task = uow.tasks.get(first)
        assert task is not None
        cipher = uow.cipher(task.data_key_id)
        assert b"neutral" in cipher.open("task.gold", first, bytes(blobs[first]))
        with pytest.raises(CryptoError):
            cipher.open("task.gold", second, bytes(blobs[first]))  # moved to another task: does not open


def test_gold_import_is_idempotent_and_rejects_a_bad_gold_answer_naming_the_row(world: World) -> None:
    project_id = make_project(world, tasks=0)
    add_gold(world, project_id, 2)
    again = world.services.gold.import_rows(world.operator, world.client_a, project_id, [
        {"external_id": "gold-0", "data": {"text": "x"}, "gold": {"sentiment": "positive"}}])
    assert (again.created, again.already_present) == (0, 1)
    with pytest.raises(ImportInvalid) as rejected:
        world.services.gold.import_rows(world.operator, world.client_a, project_id, [
            {"external_id": "ok", "data": {"text": "x"}, "gold": {"sentiment": "positive"}},
            {"external_id": "bad", "data": {"text": "y"}, "gold": {"sentiment": "furious"}},
            {"external_id": "none", "data": {"text": "z"}},
        ])
    messages = [e["message"] for e in rejected.value.details["errors"]]
    assert messages[0].startswith("row 2: gold:") and "furious" in messages[0]
    assert messages[1].startswith("row 3:")
    assert len(gold_ids(world, project_id)) == 2  # nothing written


def test_another_clients_manager_finds_no_gold(world: World) -> None:
    project_id = make_project(world, tasks=0)
    add_gold(world, project_id, 1)
    with pytest.raises(NotFound):
        world.services.gold.list(world.actors["manager_b"], world.client_a, project_id)


def test_scoring_gives_partial_credit_where_the_question_type_allows() -> None:
    schema = parse_schema({
        "fields": [{"name": "text", "kind": "text"}, {"name": "candidates", "kind": "candidates"}],
        "questions": [
            {"name": "tags", "type": "multi_label", "labels": ["a", "b", "c"]},
            {"name": "score", "type": "rating", "min": 1, "max": 5},
            {"name": "order", "type": "ranking", "field": "candidates"},
            {"name": "spans", "type": "span", "field": "text", "labels": ["X"]},
            {"name": "note", "type": "text", "required": False},
        ],
    })
    gold = {"tags": ["a", "b"], "score": 5, "order": [0, 1, 2],
            "spans": [{"start": 0, "end": 4, "label": "X"}], "note": "fine"}
    answer = {"tags": ["a"], "score": 4, "order": [0, 2, 1], "spans": [{"start": 2, "end": 4, "label": "X"}],
              "note": "fine"}
    scores = score_answer(schema, gold, answer)
    assert scores == {"tags": 0.5, "score": 0.75, "order": pytest.approx(2 / 3), "spans": pytest.approx(2 / 3)}
    assert credit(schema.question("score"), 3, None) == 0.0  # unanswered: no credit
    assert "note" not in scores  # free text is not scored



def test_gold_answers_never_reach_the_reviewer_queue_nor_count_as_progress(world: World) -> None:
    project_id = make_project(world, tasks=1, gold_rate=1.0, review_policy="all")
    add_gold(world, project_id, 1)
    labeler = world.actors["labeler_a"]
    gold_task = answer_next(world, labeler, project_id)
    assert gold_task in gold_ids(world, project_id)
    with pytest.raises(QueueRefused):
        world.services.reviews.next_item(world.actors["reviewer_a"], world.client_a, project_id)
    progress = world.services.projects.progress(world.operator, world.client_a, project_id)
    assert (progress["tasks"], progress["answers_needed"], progress["answers_given"]) == (1, 1, 0)
