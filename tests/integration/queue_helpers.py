"""Helpers for queue tests: a project with tasks, labelers, and a loop that answers."""

from __future__ import annotations

from typing import Any

from labelvault.domain.access import Actor
from tests.conftest import World

LABEL_SCHEMA = {
    "fields": [{"name": "text", "kind": "text"}],
    "questions": [{"name": "sentiment", "type": "label", "labels": ["positive", "negative", "neutral"]}],
}


def make_project(world: World, slug: str = "queue", *, tasks: int = 3, overlap: int = 1,
                 **settings: Any) -> int:
    from labelvault.workflow.projects import ProjectSettings

    services = world.services
    project = services.projects.create(world.operator, world.client_a, slug=slug, name=slug,
                                       schema=LABEL_SCHEMA, overlap=overlap)
    if settings:
        services.projects.update(world.operator, world.client_a, project.id, ProjectSettings(**settings))
    rows = [{"external_id": f"{slug}-{i}", "data": {"text": f"text number {i}"}} for i in range(tasks)]
    services.imports.import_rows(world.operator, world.client_a, project.id, rows)
    return project.id


def make_labelers(world: World, count: int, prefix: str = "worker") -> list[Actor]:
    accounts = world.services.accounts
    actors = []
    for i in range(count):
        name = f"{prefix}{i}"
        accounts.create_user(world.operator, name, None)
        accounts.grant_role(world.operator, world.client_a, name, "labeler")
        actors.append(accounts.actor_by_username(name))
    return actors


def label_once(world: World, actor: Actor, project_id: int, value: str = "positive") -> int:
    labeling = world.services.labeling
    task = labeling.next_task(actor, world.client_a, project_id)
    labeling.submit(actor, world.client_a, project_id, task.task_id, {"sentiment": value})
    return task.task_id
