"""Conflict walls: a person who saw one client's data never sees a competitor's."""

from __future__ import annotations

import threading

import pytest

from labelvault.errors import PermissionDenied, QueueRefused
from labelvault.workflow.projects import ProjectSettings
from tests.conftest import World
from tests.integration.queue_helpers import LABEL_SCHEMA


def project_in(world: World, client_id: int, slug: str, tasks: int = 3) -> int:
    services = world.services
    project = services.projects.create(world.operator, client_id, slug=slug, name=slug, schema=LABEL_SCHEMA)
    rows = [{"external_id": str(i), "data": {"text": f"{slug} {i}"}} for i in range(tasks)]
    services.imports.import_rows(world.operator, client_id, project.id, rows)
    return project.id


@pytest.fixture
def competitors(world: World) -> tuple[int, int]:
    """Acme and Globex are both frontier labs; the labeler works for both."""
    walls = world.services.walls
    walls.create_class(world.operator, "frontier-labs")
    walls.add_client(world.operator, "frontier-labs", world.client_a)
    walls.add_client(world.operator, "frontier-labs", world.client_b)
    world.services.accounts.grant_role(world.operator, world.client_b, "labeler_a", "labeler")
    return project_in(world, world.client_a, "a-proj", 10), project_in(world, world.client_b, "b-proj", 10)


def test_a_labeler_who_saw_one_client_is_refused_its_competitor(world: World, competitors: tuple[int, int]) -> None:
    project_a, project_b = competitors
    labeler = world.actors["labeler_a"]
    world.services.labeling.next_task(labeler, world.client_a, project_a)
    with pytest.raises(QueueRefused) as refused:
        world.services.labeling.next_task(labeler, world.client_b, project_b)
    assert refused.value.reason == "conflict_of_interest"
    # Their own client stays open to them.
    assert world.services.labeling.next_task(labeler, world.client_a, project_a).project_id == project_a


def test_clients_in_no_shared_class_are_not_walled(world: World) -> None:
    world.services.walls.create_class(world.operator, "frontier-labs")
    world.services.walls.add_client(world.operator, "frontier-labs", world.client_a)
    world.services.accounts.grant_role(world.operator, world.client_b, "labeler_a", "labeler")
    project_a, project_b = project_in(world, world.client_a, "a1"), project_in(world, world.client_b, "b1")
    labeler = world.actors["labeler_a"]
    world.services.labeling.next_task(labeler, world.client_a, project_a)
    assert world.services.labeling.next_task(labeler, world.client_b, project_b).project_id == project_b


def test_an_operator_override_with_a_reason_opens_the_wall(world: World, competitors: tuple[int, int]) -> None:
    project_a, project_b = competitors
    labeler = world.actors["labeler_a"]
    world.services.labeling.next_task(labeler, world.client_a, project_a)
    with pytest.raises(PermissionDenied):
        world.services.walls.override(world.actors["manager_b"], "labeler_a", world.client_b, "needed for audit")
    world.services.walls.override(world.operator, "labeler_a", world.client_b, "contract signed by both clients")
    assert world.services.labeling.next_task(labeler, world.client_b, project_b).project_id == project_b


def test_reviewing_counts_as_seeing_data(world: World, competitors: tuple[int, int]) -> None:
    project_a, project_b = competitors
    accounts = world.services.accounts
    accounts.grant_role(world.operator, world.client_b, "reviewer_a", "reviewer")
    accounts.grant_role(world.operator, world.client_b, "reviewer_a", "labeler")
    world.services.projects.update(world.operator, world.client_a, project_a, ProjectSettings(review_policy="all"))
    labeler = world.actors["labeler_a"]
    task = world.services.labeling.next_task(labeler, world.client_a, project_a)
    world.services.labeling.submit(labeler, world.client_a, project_a, task.task_id, {"sentiment": "positive"})
    reviewer = world.actors["reviewer_a"]
    world.services.reviews.next_item(reviewer, world.client_a, project_a)
    with pytest.raises(QueueRefused) as refused:
        world.services.labeling.next_task(reviewer, world.client_b, project_b)
    assert refused.value.reason == "conflict_of_interest"


def test_two_simultaneous_requests_for_competitors_let_exactly_one_through(
    world: World, competitors: tuple[int, int]
) -> None:
    project_a, project_b = competitors
    labeler = world.actors["labeler_a"]
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def ask(client_id: int, project_id: int) -> None:
        barrier.wait()
        try:
            world.services.labeling.next_task(labeler, client_id, project_id)
            outcomes.append("granted")
        except QueueRefused as refused:
            outcomes.append(refused.reason)

    for _ in range(5):  # several rounds; each round uses a fresh labeler
        threads = [threading.Thread(target=ask, args=(world.client_a, project_a)),
                   threading.Thread(target=ask, args=(world.client_b, project_b))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["conflict_of_interest", "granted"], outcomes
        outcomes.clear()
        name = f"fresh{len(world.actors)}"
        world.services.accounts.create_user(world.operator, name, None)
        for client_id in (world.client_a, world.client_b):
            world.services.accounts.grant_role(world.operator, client_id, name, "labeler")
        labeler = world.services.accounts.actor_by_username(name)
        world.actors[name] = labeler


def test_an_export_counts_as_seeing_data_and_is_walled(world: World, competitors: tuple[int, int]) -> None:
    from labelvault.errors import ConflictOfInterest

    project_a, project_b = competitors
    accounts = world.services.accounts
    accounts.grant_role(world.operator, world.client_a, "manager_b", "manager")
    b"".join(world.services.exports.export(world.actors["manager_b"], world.client_b, project_b).chunks)
    with pytest.raises(ConflictOfInterest):
        world.services.exports.export(world.actors["manager_b"], world.client_a, project_a)
