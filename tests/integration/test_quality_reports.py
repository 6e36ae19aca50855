"""Quality reports from stored answers: agreement, aggregation per question type, the labeler table,
confusion matrices, the cache and its refresh, and the aggregated export."""

from __future__ import annotations

import krippendorff
import numpy as np
import orjson
import pytest
from sklearn.metrics import cohen_kappa_score
from sqlalchemy import text
from statsmodels.stats.inter_rater import fleiss_kappa

from labelvault.errors import ConflictOfInterest, NotFound, PermissionDenied
from tests.conftest import World
from tests.integration.queue_helpers import LABEL_SCHEMA, make_labelers, make_project

LABELS = ["positive", "negative", "neutral"]
# Rows: labelers; columns: the project's tasks in order.
VOTES = [
    ["positive", "positive", "negative", "neutral", "positive"],
    ["positive", "negative", "negative", "neutral", "negative"],
    ["positive", "positive", "negative", "positive", "positive"],
]


def vote(world: World, votes: list[list[str]] = VOTES, **settings: object) -> tuple[int, list]:  # type: ignore[type-arg]
    """A project with one task per column, every labeler answering every task in task order."""
    project_id = make_project(world, tasks=len(votes[0]), overlap=len(votes), **settings)  # type: ignore[arg-type]
    labelers = make_labelers(world, len(votes))
    labeling = world.services.labeling
    for labeler, row in zip(labelers, votes, strict=True):
        for value in row:
            task = labeling.next_task(labeler, world.client_a, project_id)
            labeling.submit(labeler, world.client_a, project_id, task.task_id, {"sentiment": value})
    return project_id, labelers


def report(world: World, project_id: int) -> dict:  # type: ignore[type-arg]
    return world.services.quality.report(world.operator, world.client_a, project_id)


def test_label_agreement_matches_independent_implementations(world: World) -> None:
    project_id, _ = vote(world)
    stats = report(world, project_id)["agreement"]["sentiment"]
    codes = np.array([[LABELS.index(v) for v in row] for row in VOTES])
    assert stats["alpha"] == pytest.approx(krippendorff.alpha(codes, level_of_measurement="nominal"))
    table = np.array([[list(column).count(c) for c in range(3)] for column in codes.T])
    assert stats["fleiss_kappa"] == pytest.approx(fleiss_kappa(table))
    pairs = {(p["labeler_a"], p["labeler_b"]): p["kappa"] for p in stats["pairwise"]}
    assert pairs[("worker0", "worker1")] == pytest.approx(cohen_kappa_score(codes[0], codes[1]))
    assert pairs[("worker1", "worker2")] == pytest.approx(cohen_kappa_score(codes[1], codes[2]))
    agreeing_pairs = [sum(a == b for a, b in [(c[0], c[1]), (c[0], c[2]), (c[1], c[2])]) / 3 for c in codes.T]
    assert stats["percent_agreement"] == pytest.approx(np.mean(agreeing_pairs))
    # Leave-one-out: worker1 matches the others on tasks 1 and 3, and half of the tie on task 4.
    consensus = {c["labeler"]: c for c in stats["consensus"]}
    assert consensus["worker1"]["n"] == 5 and consensus["worker1"]["rate"] == pytest.approx(2.5 / 5)


def test_fleiss_kappa_is_left_out_when_tasks_have_different_numbers_of_answers(world: World) -> None:
    project_id = make_project(world, tasks=2, overlap=3)
    a, b, c = make_labelers(world, 3)
    labeling = world.services.labeling
    for labeler, count in ((a, 2), (b, 2), (c, 1)):
        for _ in range(count):
            task = labeling.next_task(labeler, world.client_a, project_id)
            labeling.submit(labeler, world.client_a, project_id, task.task_id, {"sentiment": "positive"})
    stats = report(world, project_id)["agreement"]["sentiment"]
    assert stats["fleiss_kappa"] is None
    assert stats["tasks"] == 2


def test_each_task_gets_a_label_with_confidence_and_the_alternatives(world: World) -> None:
    project_id, _ = vote(world)
    aggregates = world.services.quality.aggregates(world.operator, world.client_a, project_id)
    tasks = [aggregates[k]["questions"]["sentiment"] for k in sorted(aggregates, key=int)]
    assert [t["value"] for t in tasks] == ["positive", "positive", "negative", "neutral", "positive"]
    assert tasks[1]["method"] == "majority_vote"  # five answers per labeler: too few for Dawid-Skene
    assert tasks[1]["confidence"] == pytest.approx(2 / 3)
    assert tasks[1]["votes"] == {"positive": 2, "negative": 1}
    assert set(tasks[1]["dawid_skene"]) == {"value", "confidence"}


def test_dawid_skene_takes_over_with_enough_answers_and_learns_who_to_trust(world: World) -> None:
    rng = np.random.default_rng(7)
    truth = rng.integers(0, 3, 45)
    good = [LABELS[t] for t in truth]
    noisy = [LABELS[(t + 1) % 3] if rng.random() < 0.7 else LABELS[t] for t in truth]
    project_id, _ = vote(world, [good, list(good), noisy])
    result = report(world, project_id)
    assert result["labelers"][2]["dawid_skene_accuracy"] < 0.5 < result["labelers"][0]["dawid_skene_accuracy"]
    confusion = result["confusion"]["sentiment"]
    assert confusion["labels"] == LABELS and set(confusion["labelers"]) == {"worker0", "worker1", "worker2"}
    assert np.allclose(np.sum(confusion["labelers"]["worker2"]["matrix"], axis=1), 1.0)
    aggregates = world.services.quality.aggregates(world.operator, world.client_a, project_id)
    values = [aggregates[k]["questions"]["sentiment"] for k in sorted(aggregates, key=int)]
    assert {v["method"] for v in values} == {"dawid_skene"}
    assert [v["value"] for v in values] == good


def test_gold_tasks_calibrate_the_vote_and_show_their_own_answer(world: World) -> None:
    project_id, _ = vote(world, [VOTES[0][:2], VOTES[1][:2], VOTES[2][:2]])
    world.services.gold.import_rows(world.operator, world.client_a, project_id, [
        {"external_id": "g", "data": {"text": "gold"}, "gold": {"sentiment": "neutral"}}])
    aggregates = world.services.quality.aggregates(world.operator, world.client_a, project_id)
    (gold,) = [a for a in aggregates.values() if a["gold"]]
    assert gold["questions"]["sentiment"] == {"value": "neutral", "confidence": 1.0, "method": "gold"}
    assert report(world, project_id)["gold_tasks"] == 1


def test_a_reviewers_correction_is_the_final_answer_of_its_task(world: World) -> None:
    project_id, _ = vote(world, [["positive"], ["positive"], ["positive"]], review_policy="all")
    reviews = world.services.reviews
    reviewer = world.actors["reviewer_a"]
    item = reviews.next_item(reviewer, world.client_a, project_id)
    reviews.decide(reviewer, world.client_a, project_id, item.task_id, decision="correct",
                   correction={"sentiment": "negative"})
    aggregates = world.services.quality.aggregates(world.operator, world.client_a, project_id)
    assert aggregates[str(item.task_id)]["questions"]["sentiment"] == {
        "value": "negative", "confidence": 1.0, "method": "review", "n": 3}


SCHEMA = {
    "fields": [{"name": "text", "kind": "text"}, {"name": "image", "kind": "image"},
               {"name": "candidates", "kind": "candidates"}],
    "questions": [
        {"name": "tags", "type": "multi_label", "labels": ["a", "b", "c"]},
        {"name": "score", "type": "rating", "min": 1, "max": 5},
        {"name": "order", "type": "ranking", "field": "candidates"},
        {"name": "pref", "type": "preference", "field": "candidates"},
        {"name": "names", "type": "span", "field": "text", "labels": ["PER", "ORG"]},
        {"name": "boxes", "type": "bbox", "field": "image", "labels": ["cat", "dog"]},
        {"name": "note", "type": "text", "required": False},
        {"name": "quality", "type": "rubric", "criteria": [{"name": "clarity", "type": "rating", "min": 1, "max": 3}]},
    ],
}
ANSWERS = [
    {"tags": ["a", "b"], "score": 4, "order": [2, 0, 1], "pref": {"choice": "a"},
     "names": [{"start": 0, "end": 5, "label": "PER"}, {"start": 11, "end": 15, "label": "ORG"}],
     "boxes": [{"x": 0.1, "y": 0.1, "w": 0.4, "h": 0.4, "label": "cat"}], "note": "first", "quality": {"clarity": 3}},
    {"tags": ["a"], "score": 5, "order": [2, 0, 1], "pref": {"choice": "a"},
     "names": [{"start": 0, "end": 5, "label": "PER"}],
     "boxes": [{"x": 0.12, "y": 0.1, "w": 0.4, "h": 0.4, "label": "cat"}], "note": "second", "quality": {"clarity": 3}},
    {"tags": ["a", "c"], "score": 4, "order": [0, 2, 1], "pref": {"choice": "b"},
     "names": [{"start": 0, "end": 5, "label": "PER"}, {"start": 11, "end": 15, "label": "ORG"}],
     "boxes": [{"x": 0.1, "y": 0.12, "w": 0.4, "h": 0.4, "label": "dog"}], "note": "first", "quality": {"clarity": 2}},
]


def test_every_question_type_is_aggregated_with_a_confidence(world: World) -> None:
    services = world.services
    project = services.projects.create(world.operator, world.client_a, slug="multi", name="m", schema=SCHEMA,
                                       overlap=3)
    services.imports.import_rows(world.operator, world.client_a, project.id, [
        {"external_id": "t", "data": {"text": "Alice buys Acme shares", "image": "file:cat.png",
                                      "candidates": ["one", "two", "three"]}}])
    for labeler, answer in zip(make_labelers(world, 3), ANSWERS, strict=True):
        task = services.labeling.next_task(labeler, world.client_a, project.id)
        services.labeling.submit(labeler, world.client_a, project.id, task.task_id, answer)
    (entry,) = services.quality.aggregates(world.operator, world.client_a, project.id).values()
    result = entry["questions"]
    assert result["tags"]["value"] == ["a"] and result["tags"]["share"]["b"] == pytest.approx(1 / 3)
    assert (result["score"]["value"], result["score"]["method"]) == (4.0, "median")
    assert result["score"]["confidence"] == pytest.approx(1 - (1 / 3) / 4)
    assert result["order"]["value"] == [2, 0, 1] and result["order"]["method"] == "bradley_terry"
    assert {"chosen": 2, "rejected": 1, "confidence": 1.0} in result["order"]["pairs"]
    assert result["pref"]["value"] == {"choice": "a"} and result["pref"]["confidence"] == pytest.approx(2 / 3)
    assert result["pref"]["scores"][0] > result["pref"]["scores"][1]
    assert [(s["start"], s["end"], s["label"]) for s in result["names"]["value"]] == [(0, 5, "PER"), (11, 15, "ORG")]
    (box,) = result["boxes"]["value"]
    assert box["label"] == "cat" and box["label_confidence"] == pytest.approx(2 / 3)
    assert box["x"] == pytest.approx(0.32 / 3) and box["w"] == pytest.approx(0.4)
    assert (result["note"]["value"], result["note"]["method"]) == ("first", "first_accepted")
    assert result["note"]["confidence"] == pytest.approx(2 / 3)
    assert result["quality.clarity"]["value"] == 3.0
    for path, value in result.items():
        assert 0.0 <= value["confidence"] <= 1.0, path
    agreement = services.quality.report(world.operator, world.client_a, project.id)["agreement"]
    assert agreement["score"]["level"] == "ordinal" and "alpha_interval" in agreement["score"]
    assert agreement["tags"]["unit"] == "task x label" and set(agreement["tags"]["alpha_per_label"]) == {"a", "b", "c"}
    assert agreement["names"]["unit"] == "task x token"
    assert agreement["boxes"]["mean_pairwise_f1"] == pytest.approx(1 / 3)  # cat/cat match; cat/dog do not
    assert agreement["note"]["alpha"] is None


def test_the_labeler_table_has_gold_agreement_speed_and_earnings(world: World) -> None:
    project_id, _ = vote(world, rate_per_answer=25)
    rows = {r["labeler"]: r for r in report(world, project_id)["labelers"]}
    row = rows["worker1"]
    assert row["answers"] == 5 and row["earned"] == 125 and row["currency"] == "USD"
    assert row["median_time_ms"] is not None and row["median_time_ms"] >= 0
    assert row["gold"]["n"] == 0 and row["gold"]["accuracy"] is None
    assert row["agreement_with_consensus"]["rate"] == pytest.approx(2.5 / 5)


def test_results_are_cached_and_refreshed_when_answers_or_reviews_change(world: World) -> None:
    project_id, _ = vote(world, [["positive", "negative"]] * 2, review_policy="all")
    first = report(world, project_id)
    assert report(world, project_id)["computed_at"] == first["computed_at"]  # served from the cache
    reviewer = world.actors["reviewer_a"]
    item = world.services.reviews.next_item(reviewer, world.client_a, project_id)
    world.services.reviews.decide(reviewer, world.client_a, project_id, item.task_id, decision="reject",
                                  reason="wrong")
    after_review = report(world, project_id)
    assert after_review["version"] != first["version"] and after_review["answers"] == first["answers"] - 2
    labeler = make_labelers(world, 1, prefix="late")[0]
    task = world.services.labeling.next_task(labeler, world.client_a, project_id)
    world.services.labeling.submit(labeler, world.client_a, project_id, task.task_id, {"sentiment": "neutral"})
    after_answer = report(world, project_id)
    assert after_answer["version"] != after_review["version"]
    assert after_answer["answers"] == after_review["answers"] + 1


def test_recompute_computes_even_when_the_cache_is_fresh(world: World) -> None:
    project_id, _ = vote(world, [["positive"]] * 2)
    first = report(world, project_id)
    again = world.services.quality.recompute(world.operator, world.client_a, project_id)
    assert again["computed_at"] != first["computed_at"] and again["version"] == first["version"]


def test_cached_results_are_sealed_with_the_clients_key(world: World) -> None:
    project_id, _ = vote(world, [["positive"]] * 2)
    report(world, project_id)
    with world.services.uow_factory.all_clients() as uow:  # the raw rows, as a backup would hold them
        rows = uow.session.execute(text("SELECT kind, data FROM quality_cache")).all()
    assert {kind for kind, _ in rows} == {"report", "aggregates"}
    for _, data in rows:
        assert b"positive" not in bytes(data) and b"worker0" not in bytes(data)


def test_the_aggregated_export_has_one_line_per_task_and_is_audited(world: World) -> None:
    project_id, _ = vote(world)
    stream = world.services.quality.export_aggregated(world.operator, world.client_a, project_id)
    lines = [orjson.loads(line) for line in b"".join(stream.chunks).splitlines()]
    assert len(lines) == stream.tasks == 5
    assert [line["answers"]["sentiment"]["value"] for line in lines] == ["positive", "positive", "negative",
                                                                         "neutral", "positive"]
    assert all(set(line) == {"id", "external_id", "gold", "answers"} for line in lines)
    assert stream.filename.endswith("-aggregated.jsonl")
    exported = world.services.exports.export(world.operator, world.client_a, project_id, format="aggregated-jsonl")
    assert b"".join(exported.chunks).splitlines() == [orjson.dumps(line) for line in lines]
    world.services.audit.sequence()
    with world.services.uow_factory.all_clients() as uow:
        actions = [a for (a,) in uow.session.execute(text("SELECT action FROM audit_entries"))]
    assert actions.count("project.exported") == 2


def test_reports_are_for_managers_of_the_client_only(world: World) -> None:
    project_id, _ = vote(world, [["positive"]] * 2)
    quality = world.services.quality
    with pytest.raises(PermissionDenied):
        quality.report(world.actors["labeler_a"], world.client_a, project_id)
    with pytest.raises(NotFound):
        quality.report(world.actors["manager_b"], world.client_a, project_id)
    with pytest.raises(NotFound):
        quality.export_aggregated(world.actors["manager_b"], world.client_a, project_id)


def test_the_aggregated_export_passes_the_conflict_wall(world: World) -> None:
    project_id, _ = vote(world, [["positive"]] * 2)
    walls = world.services.walls
    walls.create_class(world.operator, "frontier-labs")
    walls.add_client(world.operator, "frontier-labs", world.client_a)
    walls.add_client(world.operator, "frontier-labs", world.client_b)
    world.services.accounts.grant_role(world.operator, world.client_b, "manager_a", "manager")
    other = world.services.projects.create(world.operator, world.client_b, slug="b", name="b", schema=LABEL_SCHEMA)
    manager = world.actors["manager_a"]
    world.services.quality.export_aggregated(manager, world.client_b, other.id)  # touches the competitor
    with pytest.raises(ConflictOfInterest):
        world.services.quality.export_aggregated(manager, world.client_a, project_id)
