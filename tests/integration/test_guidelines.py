"""A project's guidelines change while it runs; its fields and questions, which answers were checked
against, do not."""

from __future__ import annotations

import pytest

from labelvault.errors import InvalidInput, PermissionDenied
from labelvault.workflow.projects import MAX_INSTRUCTIONS, ProjectSettings
from tests.conftest import World
from tests.integration.queue_helpers import make_project


def test_new_guidelines_replace_the_old_and_leave_the_questions_alone(world: World) -> None:
    projects = world.services.projects
    project_id = make_project(world, "guided", tasks=1)
    before = projects.get(world.operator, world.client_a, project_id).schema
    assert before.instructions is None

    text = "# Sentiment\n\nSarcasm counts as **negative**; ads are neutral."
    info = projects.update(world.actors["manager_a"], world.client_a, project_id, ProjectSettings(instructions=text))
    assert info.schema.instructions == text
    assert (info.schema.fields, info.schema.questions) == (before.fields, before.questions)
    # What every reader gets: the stored document, read again.
    assert projects.get(world.actors["labeler_a"], world.client_a, project_id).schema.instructions == text
    # Other settings leave them as they are; an empty text removes them.
    projects.update(world.operator, world.client_a, project_id, ProjectSettings(overlap=2))
    assert projects.get(world.operator, world.client_a, project_id).schema.instructions == text
    projects.update(world.operator, world.client_a, project_id, ProjectSettings(instructions="  \n"))
    assert projects.get(world.operator, world.client_a, project_id).schema == before


def test_guidelines_are_a_managers_change_of_bounded_length(world: World) -> None:
    projects = world.services.projects
    project_id = make_project(world, "bounded", tasks=1)
    with pytest.raises(PermissionDenied):
        projects.update(world.actors["labeler_a"], world.client_a, project_id, ProjectSettings(instructions="mine"))
    with pytest.raises(InvalidInput, match="at most 100,000 characters") as refused:
        projects.update(world.operator, world.client_a, project_id,
                        ProjectSettings(instructions="x" * (MAX_INSTRUCTIONS + 1), overlap=2))
    assert refused.value.details == {"field": "instructions"}
    after = projects.get(world.operator, world.client_a, project_id)
    assert after.schema.instructions is None and after.overlap == 1  # nothing of the refused change stayed
