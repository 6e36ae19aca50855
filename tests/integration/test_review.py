"""Review policies, the reviewer queue, and accept / reject / correct."""

from __future__ import annotations

from datetime import timedelta

import pytest

from labelvault.errors import Conflict, InvalidInput, QueueRefused
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


# --- The reviewer's walk: pending tasks ahead that they may not take (storage/queue_cursors.py).


def _review_next(world: World, actor, project_id: int) -> int:  # type: ignore[no-untyped-def]
    return world.services.reviews.next_item(actor, world.client_a, project_id).task_id


def _accept(world: World, actor, project_id: int, task_id: int) -> None:  # type: ignore[no-untyped-def]
    world.services.reviews.decide(actor, world.client_a, project_id, task_id, decision="accept")


def _expire_review_lease(world: World, task_id: int, *, started_ago: timedelta | None = None) -> None:
    """The task's review lease expired a second ago (and, with ``started_ago``, was taken that long ago)."""
    from sqlalchemy import update

    from labelvault.storage.models import ReviewLease, utcnow

    now = utcnow()
    aged = {} if started_ago is None else {"started_at": now - started_ago}
    with world.services.uow_factory.for_client(world.client_a, write=True) as uow:
        uow.session.execute(update(ReviewLease).where(ReviewLease.task_id == task_id)
                            .values(expires_at=now - timedelta(seconds=1), **aged))
        uow.commit()


def test_a_reviewer_gets_the_oldest_task_past_those_held_by_others_and_those_they_answered(world: World) -> None:
    project_id = make_project(world, tasks=6, review_policy="all")
    world.services.accounts.grant_role(world.operator, world.client_a, "reviewer_a", "labeler")
    me, other = reviewer(world), world.actors["manager_a"]
    labeler = world.actors["labeler_a"]
    tasks = [label_once(world, labeler, project_id)]  # 0: held by the other reviewer below
    tasks += [label_once(world, me, project_id) for _ in range(3)]  # 1-3: answered by me
    tasks += [label_once(world, labeler, project_id) for _ in range(2)]  # 4, 5
    assert _review_next(world, other, project_id) == tasks[0]
    assert _review_next(world, me, project_id) == tasks[4]
    assert _review_next(world, me, project_id) == tasks[4]  # asking again: my open lease
    _accept(world, me, project_id, tasks[4])
    assert _review_next(world, me, project_id) == tasks[5]
    _accept(world, me, project_id, tasks[5])
    # My walk starts past my own answers now, but not past a task someone else held: once its
    # lease expires it is mine, although my place in the queue is past the tasks I answered.
    _expire_review_lease(world, tasks[0])
    assert _review_next(world, me, project_id) == tasks[0]
    _accept(world, me, project_id, tasks[0])
    with pytest.raises(QueueRefused):  # what is left is mine: for other reviewers
        world.services.reviews.next_item(me, world.client_a, project_id)
    assert _review_next(world, other, project_id) == tasks[1]
    assert world.services.reviews.pending(world.operator, world.client_a, project_id) == 3


def test_a_task_that_joins_the_review_queue_again_reaches_a_reviewer_whose_walk_passed_it(world: World) -> None:
    """The review queue is in the order tasks became pending: a task rejected and answered anew
    joins it at the end, behind the place a reviewer's walk remembers, though its id is lower."""
    project_id = make_project(world, tasks=4, review_policy="all")
    world.services.accounts.grant_role(world.operator, world.client_a, "reviewer_a", "labeler")
    me = reviewer(world)
    first_labeler, second_labeler = make_labelers(world, 2)
    rejected = label_once(world, first_labeler, project_id)
    mine = label_once(world, me, project_id)
    later = label_once(world, first_labeler, project_id)
    assert _review_next(world, me, project_id) == rejected
    world.services.reviews.decide(me, world.client_a, project_id, rejected, decision="reject", reason="wrong")
    assert _review_next(world, me, project_id) == later  # past `mine`: my place is after it now
    _accept(world, me, project_id, later)
    with pytest.raises(QueueRefused):
        world.services.reviews.next_item(me, world.client_a, project_id)
    assert label_once(world, second_labeler, project_id) == rejected  # pending again
    assert rejected < mine  # a lower id than the task my walk passed
    assert _review_next(world, me, project_id) == rejected


def test_reviewers_places_do_not_leak_between_projects_or_reviewers(world: World) -> None:
    first = make_project(world, "first", tasks=3, review_policy="all")
    second = make_project(world, "second", tasks=3, review_policy="all")
    world.services.accounts.grant_role(world.operator, world.client_a, "reviewer_a", "labeler")
    me, other = reviewer(world), world.actors["manager_a"]
    labeler = world.actors["labeler_a"]
    answered = [label_once(world, me, first) for _ in range(2)]
    left = label_once(world, labeler, first)
    shown = [label_once(world, labeler, second) for _ in range(2)]
    assert _review_next(world, me, first) == left
    _accept(world, me, first, left)
    assert _review_next(world, me, second) == shown[0]  # from the start of this project's queue
    assert _review_next(world, other, first) == answered[0]  # from the start for another reviewer


def test_a_review_decision_and_next_run_every_statement_prepared(world: World) -> None:
    """The reviewer's next and accept stay on the prepared path (see test_scope.py for the queue's)."""
    from sqlalchemy import event

    project_id = make_project(world, tasks=4, review_policy="all", rate_per_answer=5, rate_per_review=3)
    labeler, me = world.actors["labeler_a"], reviewer(world)
    for _ in range(4):
        label_once(world, labeler, project_id)
    _accept(world, me, project_id, _review_next(world, me, project_id))  # plans made on first use
    regular: list[str] = []

    def on_regular_path(_conn: object, clause: object, *_: object) -> None:
        regular.append(str(clause))

    engine = world.services.engine
    event.listen(engine, "before_execute", on_regular_path)
    try:
        _accept(world, me, project_id, _review_next(world, me, project_id))
    finally:
        event.remove(engine, "before_execute", on_regular_path)
    assert regular == []
    assert world.services.projects.get(world.operator, world.client_a, project_id).spent == 4 * 5 + 2 * 3


def test_a_warm_review_next_and_decision_on_postgresql_take_few_round_trips(world: World) -> None:
    """next: the settings, lock, wall, open lease, the walk's place and the pick in one round trip,
    then the answers (with the lease's writes), then the commit (with the audit entry). accept: the
    settings, lock, task, lease, answers and the review's id in one, then the commit with every write."""
    from labelvault.storage.pg_direct import DirectConnection

    if world.services.engine.dialect.name != "postgresql":
        pytest.skip("round trips are counted on PostgreSQL's direct path")
    project_id = make_project(world, tasks=3, review_policy="all", rate_per_review=3)
    labeler, me = world.actors["labeler_a"], reviewer(world)
    for _ in range(3):
        label_once(world, labeler, project_id)
    _accept(world, me, project_id, _review_next(world, me, project_id))  # plans prepared, the wall touched
    before = DirectConnection.round_trips
    task_id = _review_next(world, me, project_id)
    after_next = DirectConnection.round_trips
    _accept(world, me, project_id, task_id)
    assert (after_next - before, DirectConnection.round_trips - after_next) == (3, 2)


# --- A decision that arrives after its reviewer's lease expired.


def _review_trace(world: World, project_id: int, task_id: int) -> tuple[object, ...]:
    """What a decision writes: review rows, ledger entries, the task's state, its answers' states."""
    from sqlalchemy import select

    from labelvault.storage.models import LedgerEntry, Review, Task

    with world.services.uow_factory.for_client(world.client_a) as uow:
        reviews = uow.session.scalars(select(Review.id).where(Review.task_id == task_id)).all()
        ledger = uow.session.scalars(select(LedgerEntry.kind).where(LedgerEntry.project_id == project_id)).all()
        state = uow.session.scalar(select(Task.review_state).where(Task.id == task_id))
        answers = [a.status for a in uow.answers.iterate(project_id)]
    spent = world.services.projects.get(world.operator, world.client_a, project_id).spent
    return list(reviews), sorted(ledger), state, answers, spent


_LATE_DECISIONS = {
    "accept": {},
    "reject": {"reason": "too late to say so"},
    "correct": {"correction": {"sentiment": "negative"}},
}


@pytest.mark.parametrize("decision", sorted(_LATE_DECISIONS))
def test_a_late_decision_on_a_task_another_reviewer_took_over_is_refused_and_writes_nothing(
    world: World, decision: str
) -> None:
    project_id = make_project(world, tasks=1, review_policy="all", pay_on="accept", rate_per_answer=5,
                              rate_per_review=3)
    first, second = reviewer(world), world.actors["manager_a"]
    task_id = label_once(world, world.actors["labeler_a"], project_id)
    assert _review_next(world, first, project_id) == task_id
    _expire_review_lease(world, task_id)
    assert _review_next(world, second, project_id) == task_id  # the expired lease is taken over
    before = _review_trace(world, project_id, task_id)
    with pytest.raises(Conflict) as refused:
        world.services.reviews.decide(first, world.client_a, project_id, task_id, decision=decision,
                                      **_LATE_DECISIONS[decision])
    assert refused.value.http_status == 409
    assert f"task {task_id}" in refused.value.message and "another reviewer" in refused.value.message
    assert _review_trace(world, project_id, task_id) == before == ([], [], "pending", ["submitted"], 0)
    # The second reviewer's lease stands: they get the task again and their decision counts.
    assert _review_next(world, second, project_id) == task_id
    _accept(world, second, project_id, task_id)
    assert _review_trace(world, project_id, task_id)[1:] == (["answer", "review"], "done", ["accepted"], 5 + 3)


@pytest.mark.parametrize("decision", sorted(_LATE_DECISIONS))
def test_a_late_decision_goes_through_while_nobody_else_took_the_task(world: World, decision: str) -> None:
    """As a labeler's late submit counts while a slot is free: the expired lease is nobody else's."""
    project_id = make_project(world, tasks=1, review_policy="all", pay_on="accept", rate_per_answer=5,
                              rate_per_review=3)
    me = reviewer(world)
    task_id = label_once(world, world.actors["labeler_a"], project_id)
    assert _review_next(world, me, project_id) == task_id
    _expire_review_lease(world, task_id)
    review_id = world.services.reviews.decide(me, world.client_a, project_id, task_id, decision=decision,
                                              **_LATE_DECISIONS[decision])
    reviews, ledger, state, answers, _ = _review_trace(world, project_id, task_id)
    assert reviews == [review_id] and "review" in ledger
    assert (state, answers) == {"accept": ("done", ["accepted"]), "reject": ("none", ["rejected"]),
                                "correct": ("done", ["corrected"])}[decision]
    with pytest.raises(QueueRefused):  # nothing left to review; the expired lease went with the decision
        world.services.reviews.next_item(world.actors["manager_a"], world.client_a, project_id)


def test_a_late_decision_racing_the_reviewer_who_takes_the_task_over_is_refused(world: World) -> None:
    """The late decision waits for the take-over in flight and then sees the new lease (PostgreSQL
    runs them side by side; SQLite's writers take turns)."""
    import threading

    from labelvault.storage.models import utcnow

    project_id = make_project(world, tasks=1, review_policy="all", rate_per_review=3)
    first, second = reviewer(world), world.actors["manager_a"]
    task_id = label_once(world, world.actors["labeler_a"], project_id)
    assert _review_next(world, first, project_id) == task_id
    _expire_review_lease(world, task_id)
    outcome: list[object] = []

    def late_decision() -> None:
        try:
            outcome.append(world.services.reviews.decide(first, world.client_a, project_id, task_id,
                                                         decision="accept"))
        except Exception as error:  # the test asserts what it was
            outcome.append(error)

    decider = threading.Thread(target=late_decision)
    now = utcnow()
    with world.services.uow_factory.for_client(world.client_a, write=True) as uow:
        # The second reviewer's next, up to its commit: the pick (locks the task) and the take-over.
        task, _ = uow.reviews.next_for(project_id, second.user_id, now)
        assert task is not None and task.id == task_id
        uow.reviews.take_over(project_id=project_id, task_id=task_id, user_id=second.user_id, started_at=now,
                              expires_at=now + timedelta(minutes=5))
        decider.start()
        decider.join(timeout=1)  # the decision is waiting, or (before the fix) ran ahead and waits at its writes
        uow.commit()
    decider.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], Conflict), outcome
    assert _review_trace(world, project_id, task_id) == ([], [], "pending", ["submitted"], 0)
    assert _review_next(world, second, project_id) == task_id


def _time_spent_ms(world: World, review_id: int) -> int:
    from sqlalchemy import select

    from labelvault.storage.models import Review

    with world.services.uow_factory.for_client(world.client_a) as uow:
        spent = uow.session.scalar(select(Review.time_spent_ms).where(Review.id == review_id))
    assert spent is not None
    return spent


def test_a_decision_on_an_old_review_lease_counts_no_more_working_time_than_a_labelers_answer(world: World) -> None:
    """Idle time is capped for reviewers as for labelers (workflow/work_time.py): a decision hours
    after its lease began counts the cap, a prompt one the time it took."""
    from labelvault.workflow.work_time import MAX_COUNTED_WORK

    project_id = make_project(world, tasks=2, review_policy="all")
    me = reviewer(world)
    old = label_once(world, world.actors["labeler_a"], project_id)
    prompt = label_once(world, world.actors["labeler_a"], project_id)
    assert _review_next(world, me, project_id) == old
    _expire_review_lease(world, old, started_ago=timedelta(hours=5))
    late = world.services.reviews.decide(me, world.client_a, project_id, old, decision="accept")
    assert _time_spent_ms(world, late) == MAX_COUNTED_WORK / timedelta(milliseconds=1) == 30 * 60 * 1000
    assert _review_next(world, me, project_id) == prompt
    on_time = world.services.reviews.decide(me, world.client_a, project_id, prompt, decision="accept")
    assert 0 <= _time_spent_ms(world, on_time) < 60 * 1000
