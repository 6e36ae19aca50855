"""A labeler's walk of the queue starts where their last one ended (storage/queue_cursors.py), and
still gets, in queue order, every task that a requeue put before that place.

Each test sets up a "runner": a labeler who answered several tasks past one that another labeler
held, so that their walks start past it. A write that gives that task a free slot again (a skip, an
expired lease, a rejected answer) or puts a task before their place (a new priority, an import)
must bring the runner back to it at their next request.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, select, text, update

from labelvault.domain.access import Actor
from labelvault.errors import QueueRefused
from labelvault.storage.models import Lease, Project, Task, utcnow
from labelvault.storage.queue_cursors import QueueCursors, QueuePosition
from tests.conftest import World, owner_url
from tests.integration.queue_helpers import label_once, make_labelers, make_project


@dataclass
class RunnerAhead:
    project_id: int
    holder: Actor  # holds a lease on ``held``, the project's first task (overlap 1: no slot left)
    runner: Actor  # answered the tasks after it
    held: int
    answered: list[int]


def _runner_ahead(world: World, *, answered: int = 6, **settings: object) -> RunnerAhead:
    project_id = make_project(world, tasks=12, overlap=1, **settings)
    holder, runner = make_labelers(world, 2)
    held = world.services.labeling.next_task(holder, world.client_a, project_id).task_id
    done = [label_once(world, runner, project_id) for _ in range(answered)]
    assert held not in done and done == sorted(done)
    return RunnerAhead(project_id, holder, runner, held, done)


def _next(world: World, actor: Actor, project_id: int) -> int:
    return world.services.labeling.next_task(actor, world.client_a, project_id).task_id


def _epoch(world: World, project_id: int) -> int:
    with world.services.uow_factory.for_client(world.client_a) as uow:
        return int(uow.session.scalar(select(Project.queue_epoch).where(Project.id == project_id)))


def test_a_runner_ahead_keeps_the_queue_order_and_leases_and_answers_leave_the_epoch_alone(world: World) -> None:
    ahead = _runner_ahead(world)
    epoch = _epoch(world, ahead.project_id)
    cursors = world.services.uow_factory.queue_cursors
    kept = cursors.start(ahead.project_id, ahead.runner.user_id, epoch)
    assert kept is not None and kept.task_id == ahead.answered[-1]  # their walks start past the held task
    following = [label_once(world, ahead.runner, ahead.project_id) for _ in range(3)]
    assert following == list(range(ahead.answered[-1] + 1, ahead.answered[-1] + 4))
    assert _epoch(world, ahead.project_id) == epoch


def test_a_skipped_task_comes_back_to_the_runner_first(world: World) -> None:
    ahead = _runner_ahead(world)
    epoch = _epoch(world, ahead.project_id)
    world.services.labeling.skip(ahead.holder, world.client_a, ahead.project_id, ahead.held, "unreadable")
    assert _epoch(world, ahead.project_id) != epoch
    assert _next(world, ahead.runner, ahead.project_id) == ahead.held


def test_a_lease_that_expired_gives_its_task_back_to_the_runner_first(world: World) -> None:
    ahead = _runner_ahead(world)
    with world.services.uow_factory.for_client(world.client_a, write=True) as uow:
        uow.session.execute(update(Lease).where(Lease.task_id == ahead.held)
                            .values(expires_at=utcnow() - timedelta(seconds=1)))
        uow.commit()
    # The runner's own request collects the expired lease, then walks from the start.
    assert _next(world, ahead.runner, ahead.project_id) == ahead.held


def test_a_lease_that_another_request_expired_still_brings_the_runner_back(world: World) -> None:
    ahead = _runner_ahead(world)
    other = make_labelers(world, 1, prefix="third")[0]
    with world.services.uow_factory.for_client(world.client_a, write=True) as uow:
        uow.session.execute(update(Lease).where(Lease.task_id == ahead.held)
                            .values(expires_at=utcnow() - timedelta(seconds=1)))
        uow.commit()
    assert _next(world, other, ahead.project_id) == ahead.held  # collects it, and leases it
    world.services.labeling.skip(other, world.client_a, ahead.project_id, ahead.held)
    assert _next(world, ahead.runner, ahead.project_id) == ahead.held


def test_a_rejected_answer_brings_its_task_back_to_the_runner_first(world: World) -> None:
    ahead = _runner_ahead(world, review_policy="all")
    labeling, reviews, reviewer = world.services.labeling, world.services.reviews, world.actors["reviewer_a"]
    labeling.submit(ahead.holder, world.client_a, ahead.project_id, ahead.held, {"sentiment": "neutral"})
    while True:  # the runner's answers are in the review queue too
        item = reviews.next_item(reviewer, world.client_a, ahead.project_id)
        if item.task_id == ahead.held:
            break
        reviews.decide(reviewer, world.client_a, ahead.project_id, item.task_id, decision="accept")
    reviews.decide(reviewer, world.client_a, ahead.project_id, ahead.held, decision="reject", reason="no")
    assert _next(world, ahead.runner, ahead.project_id) == ahead.held


def test_a_task_moved_up_or_imported_before_the_runners_place_comes_first(world: World) -> None:
    ahead = _runner_ahead(world)
    last = ahead.answered[-1] + 3
    with world.services.uow_factory.for_client(world.client_a, write=True) as uow:
        uow.session.execute(update(Task).where(Task.id == last).values(priority=5))
        uow.commit()
    assert _next(world, ahead.runner, ahead.project_id) == last
    world.services.labeling.submit(ahead.runner, world.client_a, ahead.project_id, last, {"sentiment": "positive"})
    world.services.imports.import_rows(world.operator, world.client_a, ahead.project_id,
                                       [{"external_id": "urgent", "priority": 9, "data": {"text": "now"}}])
    with world.services.uow_factory.for_client(world.client_a) as uow:
        urgent = uow.session.scalar(select(Task.id).where(Task.external_id == "urgent"))
    assert _next(world, ahead.runner, ahead.project_id) == urgent


def test_a_new_uncertainty_moves_a_task_before_the_runners_place(world: World) -> None:
    ahead = _runner_ahead(world)
    later = ahead.answered[-1] + 4
    with world.services.uow_factory.for_client(world.client_a, write=True) as uow:
        uow.session.execute(update(Task).where(Task.id == later).values(uncertainty=0.9))
        uow.commit()
    assert _next(world, ahead.runner, ahead.project_id) == later


def test_the_runner_still_gets_every_task_left_when_the_queue_ends(world: World) -> None:
    ahead = _runner_ahead(world, answered=11)  # all but the held one
    world.services.labeling.skip(ahead.holder, world.client_a, ahead.project_id, ahead.held)
    assert label_once(world, ahead.runner, ahead.project_id) == ahead.held
    with pytest.raises(QueueRefused) as refused:
        _next(world, ahead.runner, ahead.project_id)
    assert refused.value.reason == "no_tasks"


def test_a_write_batch_that_rolls_back_forgets_every_place(world: World) -> None:
    factory = world.services.uow_factory
    if not factory.serialize_writers:
        pytest.skip("write batches are SQLite's group commit")
    ahead = _runner_ahead(world)
    epoch = _epoch(world, ahead.project_id)
    assert factory.queue_cursors.start(ahead.project_id, ahead.runner.user_id, epoch) is not None
    factory.begin_batch().rollback()
    assert factory.queue_cursors.start(ahead.project_id, ahead.runner.user_id, epoch) is None


def test_cursors_hold_one_place_per_labeler_and_project_and_only_for_their_epoch() -> None:
    cursors = QueueCursors(capacity=2)
    cursors.advance(1, 7, epoch=3, position=QueuePosition(0, 0.0, 10))
    assert cursors.start(1, 7, 3) == QueuePosition(0, 0.0, 10)
    assert cursors.start(1, 7, 4) is None and cursors.start(2, 7, 3) is None
    cursors.advance(1, 8, epoch=3, position=QueuePosition(0, 0.0, 11))
    cursors.advance(1, 9, epoch=3, position=QueuePosition(0, 0.0, 12))  # full: the others go
    assert cursors.start(1, 9, 3) == QueuePosition(0, 0.0, 12) and cursors.start(1, 7, 3) is None


def test_a_task_held_for_a_moment_is_not_passed_over_for_good(world: World) -> None:
    """PostgreSQL: a walk skips a task another transaction holds (SKIP LOCKED), and must not start
    past it next time: it may still want this labeler's answer."""
    if world.services.engine.dialect.name != "postgresql":
        pytest.skip("row locks and SKIP LOCKED are PostgreSQL's")
    project_id = make_project(world, tasks=4, overlap=2)
    labeler = make_labelers(world, 1)[0]
    with world.services.uow_factory.for_client(world.client_a) as uow:
        first = uow.session.scalar(select(Task.id).where(Task.project_id == project_id).order_by(Task.id))
    owner = create_engine(owner_url(world.services.settings))
    try:
        with owner.connect() as connection:
            connection.execute(text("SELECT set_config('app.all_clients', 'on', true)"))
            connection.execute(text("SELECT id FROM tasks WHERE id = :t FOR UPDATE"), {"t": first})
            second = _next(world, labeler, project_id)
            assert second != first
            connection.rollback()
    finally:
        owner.dispose()
    world.services.labeling.submit(labeler, world.client_a, project_id, second, {"sentiment": "positive"})
    assert _next(world, labeler, project_id) == first


def test_a_queue_whose_last_free_slot_is_held_for_a_moment_is_not_called_empty(world: World) -> None:
    """PostgreSQL: when every task left with a free slot is held by another transaction (being
    leased or answered by someone else), the walk that skipped it does not make the queue "empty":
    the last walk waits for that transaction and then looks at the task as it left it."""
    if world.services.engine.dialect.name != "postgresql":
        pytest.skip("row locks and SKIP LOCKED are PostgreSQL's")
    project_id = make_project(world, tasks=1, overlap=2)
    labeler = make_labelers(world, 1)[0]
    with world.services.uow_factory.for_client(world.client_a) as uow:
        only = uow.session.scalar(select(Task.id).where(Task.project_id == project_id))
    outcome: list[object] = []

    def ask() -> None:
        try:
            outcome.append(_next(world, labeler, project_id))
        except QueueRefused as refused:
            outcome.append(refused.reason)

    owner = create_engine(owner_url(world.services.settings))
    try:
        with owner.connect() as connection:
            connection.execute(text("SELECT set_config('app.all_clients', 'on', true)"))
            connection.execute(text("SELECT id FROM tasks WHERE id = :t FOR UPDATE"), {"t": only})
            asking = threading.Thread(target=ask)
            asking.start()
            asking.join(0.5)  # (a walk that skipped the task and called the queue empty is done by now)
            connection.rollback()
        asking.join(30)
    finally:
        owner.dispose()
    assert outcome == [only]


def test_the_next_task_statement_is_planned_once_not_at_every_run(world: World) -> None:
    """PostgreSQL plans a prepared statement afresh for its first five runs, then keeps a generic
    plan if it costs no more; the queue's statement has a literal LIMIT so that it can."""
    if world.services.engine.dialect.name != "postgresql":
        pytest.skip("prepared statements' plans are PostgreSQL's")
    project_id = make_project(world, tasks=40, overlap=3)
    labeler = make_labelers(world, 1)[0]
    for _ in range(14):
        label_once(world, labeler, project_id)
    with world.services.uow_factory.for_client(world.client_a) as uow:
        plans = uow.session.connection().execute(text(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE :s"
        ), {"s": "%first_unseen%SKIP LOCKED%"}).all()
    assert plans and all(custom <= 5 for _, custom in plans) and sum(g for g, _ in plans) >= 3


def test_every_writer_of_new_tasks_moves_the_epoch(world: World) -> None:
    """New tasks are counted by their writers (a trigger on INSERT cost SQLite three times per row)."""
    from tests.integration.test_label_studio_import import TEXT_CONFIG, TEXT_EXPORT, import_ls

    project_id = make_project(world, tasks=0)
    created = _epoch(world, project_id)
    world.services.imports.import_rows(world.operator, world.client_a, project_id,
                                       [{"data": {"text": "one"}}, {"data": {"text": "two"}}])
    after_import = _epoch(world, project_id)
    assert after_import != created
    world.services.imports.import_rows(world.operator, world.client_a, project_id, [{"data": {"text": "three"}}])
    assert _epoch(world, project_id) != after_import
    dry = import_ls(world, TEXT_EXPORT, config=TEXT_CONFIG, dry_run=True)
    by_hand = world.services.projects.create(world.actors["manager_a"], world.client_a, slug="by-hand",
                                             name="By hand", schema=dry.mapping["schema"])
    created = _epoch(world, by_hand.id)
    assert import_ls(world, TEXT_EXPORT, project="by-hand").tasks_created == 4
    assert _epoch(world, by_hand.id) != created


def test_projects_start_at_epochs_of_their_own(world: World) -> None:
    epochs = {_epoch(world, make_project(world, f"p{i}", tasks=0)) for i in range(3)}
    assert len(epochs) == 3


def test_a_project_id_handed_out_again_does_not_inherit_a_labelers_place(world: World) -> None:
    if world.services.engine.dialect.name != "sqlite":
        pytest.skip("only SQLite hands out the id of a deleted row again (PostgreSQL's sequences never do)")
    ahead = _runner_ahead(world)
    # The project goes with everything of it (as offboarding takes a client's), its ids the largest.
    with world.services.uow_factory.all_clients(write=True) as uow:
        for table in reversed(Project.metadata.sorted_tables):
            if "project_id" in table.c:
                uow.session.execute(table.delete().where(table.c.project_id == ahead.project_id))
        uow.session.execute(Project.__table__.delete().where(Project.id == ahead.project_id))
        uow.commit()
    again = make_project(world, "again", tasks=12, overlap=1)
    assert again == ahead.project_id  # the same id, and its tasks the same ids as the old ones
    with world.services.uow_factory.for_client(world.client_a) as uow:
        first = uow.session.scalar(select(Task.id).where(Task.project_id == again).order_by(Task.id).limit(1))
    assert _next(world, ahead.runner, again) == first
