"""Rates, the append-only ledger, reversals on reject, and the budget cap."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from labelvault.domain.access import Actor
from labelvault.errors import QueueRefused
from labelvault.storage.models import LedgerEntry
from labelvault.workflow import labeling
from labelvault.workflow.projects import ProjectSettings
from tests.conftest import World
from tests.integration.queue_helpers import label_once, make_labelers, make_project


def ledger(world: World) -> list[tuple[str, int, int]]:
    with world.services.uow_factory.for_client(world.client_a) as uow:
        rows = uow.session.scalars(select(LedgerEntry).order_by(LedgerEntry.id)).all()
        return [(r.kind, r.amount, r.user_id) for r in rows]


def test_each_submitted_answer_earns_the_rate_in_minor_units(world: World) -> None:
    project_id = make_project(world, tasks=2, rate_per_answer=125)
    labeler = world.actors["labeler_a"]
    label_once(world, labeler, project_id)
    label_once(world, labeler, project_id)
    assert ledger(world) == [("answer", 125, labeler.user_id), ("answer", 125, labeler.user_id)]
    info = world.services.projects.get(world.operator, world.client_a, project_id)
    assert info.spent == 250


def test_per_question_rates_add_to_the_answer_rate(world: World) -> None:
    project_id = make_project(world, tasks=1, rate_per_answer=100, question_rates={"sentiment": 20})
    label_once(world, world.actors["labeler_a"], project_id)
    assert [amount for _, amount, _ in ledger(world)] == [120]


def ledger_links(world: World) -> list[tuple[str, int | None, int | None]]:
    """(kind, answer id, review id) of each ledger entry, in order."""
    with world.services.uow_factory.for_client(world.client_a) as uow:
        rows = uow.session.scalars(select(LedgerEntry).order_by(LedgerEntry.id)).all()
        return [(r.kind, r.answer_id, r.review_id) for r in rows]


def test_a_rejection_reverses_the_earning_with_a_new_entry_naming_the_review(world: World) -> None:
    project_id = make_project(world, tasks=1, rate_per_answer=300, rate_per_review=50, review_policy="all")
    labeler, reviewer = world.actors["labeler_a"], world.actors["reviewer_a"]
    task_id = label_once(world, labeler, project_id)
    item = world.services.reviews.next_item(reviewer, world.client_a, project_id)
    review_id = world.services.reviews.decide(reviewer, world.client_a, project_id, task_id, decision="reject",
                                              reason="wrong")
    assert ledger(world) == [
        ("answer", 300, labeler.user_id),
        ("reversal", -300, labeler.user_id),
        ("review", 50, reviewer.user_id),
    ]
    answer_id = item.answers[0].answer_id
    assert ledger_links(world) == [
        ("answer", answer_id, None), ("reversal", answer_id, review_id), ("review", None, review_id),
    ]


def test_with_pay_on_accept_labelers_earn_only_when_accepted(world: World) -> None:
    project_id = make_project(world, tasks=1, rate_per_answer=300, review_policy="all", pay_on="accept")
    labeler, reviewer = world.actors["labeler_a"], world.actors["reviewer_a"]
    task_id = label_once(world, labeler, project_id)
    assert ledger(world) == []
    item = world.services.reviews.next_item(reviewer, world.client_a, project_id)
    review_id = world.services.reviews.decide(reviewer, world.client_a, project_id, task_id, decision="accept")
    assert ledger(world) == [("answer", 300, labeler.user_id)]
    assert ledger_links(world) == [("answer", item.answers[0].answer_id, review_id)]  # paid by that review


def test_an_answer_accepted_beside_a_rejection_is_not_paid_again_when_the_task_is_reviewed_again(
    world: World,
) -> None:
    """Pay on accept, two answers per task: the reviewer rejects one and so accepts (and pays) the
    other; a new labeler answers in the rejected one's place, and the task is reviewed again. Its
    acceptance pays the new answer only."""
    project_id = make_project(world, tasks=1, overlap=2, rate_per_answer=300, review_policy="all",
                              pay_on="accept")
    first, second, third = make_labelers(world, 3, prefix="paid")
    reviewer = world.actors["reviewer_a"]
    reviews = world.services.reviews
    task_id = label_once(world, first, project_id)
    label_once(world, second, project_id)
    item = reviews.next_item(reviewer, world.client_a, project_id)
    wrong = next(a.answer_id for a in item.answers if a.labeler_id == first.user_id)
    reviews.decide(reviewer, world.client_a, project_id, task_id, decision="reject", reason="wrong",
                   reject_answer_ids=[wrong])
    assert label_once(world, third, project_id) == task_id
    reviews.next_item(reviewer, world.client_a, project_id)
    reviews.decide(reviewer, world.client_a, project_id, task_id, decision="accept")
    paid = [(kind, amount, user) for kind, amount, user in ledger(world) if kind == "answer"]
    assert sorted(paid) == sorted([("answer", 300, second.user_id), ("answer", 300, third.user_id)])


def test_the_queue_stops_before_the_budget_would_be_exceeded(world: World) -> None:
    project_id = make_project(world, tasks=10, rate_per_answer=100, budget_cap=250)
    workers = make_labelers(world, 3)
    label_once(world, workers[0], project_id)
    label_once(world, workers[1], project_id)
    with pytest.raises(QueueRefused) as refused:
        world.services.labeling.next_task(workers[2], world.client_a, project_id)
    assert refused.value.reason == "budget_reached"
    assert sum(amount for _, amount, _ in ledger(world)) == 200


def test_open_leases_count_against_the_budget(world: World) -> None:
    project_id = make_project(world, tasks=10, rate_per_answer=100, budget_cap=200)
    a, b, c = make_labelers(world, 3)
    world.services.labeling.next_task(a, world.client_a, project_id)
    world.services.labeling.next_task(b, world.client_a, project_id)
    with pytest.raises(QueueRefused) as refused:
        world.services.labeling.next_task(c, world.client_a, project_id)
    assert refused.value.reason == "budget_reached"


def test_paid_submits_and_settings_changes_of_one_project_run_together_without_deadlock(world: World) -> None:
    """Every transaction locks a project's row before the audit head (the spend total is written
    just before the audit append): a settings change, which locks the row and then appends, and paid
    submits, which do the same, never wait for each other in a cycle (PostgreSQL would abort one)."""
    project_id = make_project(world, "race", tasks=60, overlap=2, rate_per_answer=5)
    labelers = make_labelers(world, 4, prefix="racer")
    services = world.services

    def label(actor: Actor) -> int:
        answered = 0
        while True:
            try:
                task = services.labeling.next_task(actor, world.client_a, project_id)
            except QueueRefused:
                return answered
            services.labeling.submit(actor, world.client_a, project_id, task.task_id, {"sentiment": "positive"})
            answered += 1

    def rename() -> int:
        for i in range(40):
            services.projects.update(world.operator, world.client_a, project_id, ProjectSettings(name=f"race {i}"))
        return 40

    with ThreadPoolExecutor(max_workers=5) as pool:
        answered = [pool.submit(label, actor) for actor in labelers]
        renamed = pool.submit(rename)
        assert renamed.result(timeout=120) == 40
        assert sum(future.result(timeout=120) for future in answered) == 120  # every slot answered, no error
    assert services.reports.project_costs(world.operator, world.client_a, project_id).spent == 120 * 5


def test_labelers_asking_at_once_never_lease_beyond_the_budget(world: World) -> None:
    """Twelve labelers ask for a task at the same moment, with room in the budget for three
    answers: exactly three get one (on PostgreSQL the nexts near the cap queue on the project;
    on SQLite writers take turns anyway)."""
    project_id = make_project(world, "cap", tasks=20, rate_per_answer=100, budget_cap=300)
    labelers = make_labelers(world, 12, prefix="rusher")
    start = threading.Barrier(len(labelers))
    outcomes: list[str] = []

    def ask(actor: Actor) -> None:
        start.wait()
        try:
            world.services.labeling.next_task(actor, world.client_a, project_id)
            outcomes.append("leased")
        except QueueRefused as refused:
            outcomes.append(refused.reason)

    threads = [threading.Thread(target=ask, args=(actor,)) for actor in labelers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["budget_reached"] * 9 + ["leased"] * 3


@pytest.mark.parametrize("margin", [0, 1000], ids=["no-margin", "default-margin"])
def test_the_nexts_of_one_write_batch_never_lease_beyond_the_budget(
    world: World, monkeypatch: pytest.MonkeyPatch, margin: int
) -> None:
    """In a write batch (SQLite's group commit) only the batch's first next counts the open leases;
    the others look at that count plus the leases given since. With no margin for concurrent
    nexts, a count that missed those would let the fourth labeler lease beyond the budget."""
    if not world.services.uow_factory.serialize_writers:
        pytest.skip("write batches are SQLite's (PostgreSQL runs writers side by side)")
    monkeypatch.setattr(labeling, "CONCURRENT_NEXTS", margin)
    project_id = make_project(world, "batch-cap", tasks=20, rate_per_answer=100, budget_cap=300)
    labelers = make_labelers(world, 6, prefix="batched")
    outcomes: list[str] = []

    def ask(actor: Actor) -> None:
        try:
            world.services.labeling.next_task(actor, world.client_a, project_id)
            outcomes.append("leased")
        except QueueRefused as refused:
            outcomes.append(refused.reason)

    batch = world.services.uow_factory.begin_batch()
    for actor in labelers:
        batch.run(ask, actor)
    batch.commit()
    assert outcomes == ["leased"] * 3 + ["budget_reached"] * 3
    with world.services.uow_factory.for_client(world.client_a) as uow:
        assert uow.leases.count_in_project(project_id) == 3
