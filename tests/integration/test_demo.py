"""The demo install (`labelvault demo`): seeded through the real use cases, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from labelvault.bootstrap import Services
from labelvault.demo.seed import DEMO_CLIENT, TASKS_PER_PROJECT, demo_projects, seed_demo
from labelvault.domain.access import Actor
from labelvault.domain.answers import validate_answer, validate_suggestion
from labelvault.domain.payloads import validate_payload
from labelvault.domain.schema import (
    BboxQuestion,
    LabelQuestion,
    MultiLabelQuestion,
    PreferenceQuestion,
    ProjectSchema,
    RankingQuestion,
    RatingQuestion,
    SpanQuestion,
    TextQuestion,
    parse_schema,
)
from labelvault.workflow.labeling import open_task_content

MAIN_QUESTION_TYPES = {"label", "multi_label", "rating", "ranking", "preference", "text", "span", "bbox"}


def demo_layout(services: Services, operator: Actor) -> dict[str, Any]:
    """What the demo consists of, as counts: clients, projects, tasks per project, operator's roles."""
    client_id = services.clients.resolve(DEMO_CLIENT)
    _, client_count = services.clients.list(operator, limit=1000)
    projects, _ = services.projects.list(operator, client_id, limit=1000)
    tasks = {p.slug: services.projects.progress(operator, client_id, p.id)["tasks"] for p in projects}
    with services.uow_factory.for_client(client_id) as uow:
        roles = sorted(uow.memberships.roles_of(operator.user_id))
    return {"clients": client_count, "projects": len(projects), "tasks": tasks, "roles": roles}


def test_seeding_twice_creates_nothing_new(services: Services) -> None:
    operator = services.accounts.first_operator()

    first = seed_demo(services)
    layout = demo_layout(services, operator)
    second = seed_demo(services)

    total = len(demo_projects()) * TASKS_PER_PROJECT
    assert first == second == f"client demo, {len(demo_projects())} projects, {total} tasks"
    assert demo_layout(services, operator) == layout
    assert layout["clients"] == 1
    assert layout["projects"] == len(demo_projects()) == 8
    assert set(layout["tasks"].values()) == {TASKS_PER_PROJECT}
    assert layout["roles"] == ["labeler", "manager", "reviewer"]


def test_demo_has_a_project_per_main_question_type_with_instructions() -> None:
    projects = demo_projects()
    types = {question.type for p in projects for _, question in parse_schema(p.schema).iter_questions()}
    assert types >= MAIN_QUESTION_TYPES
    for project in projects:
        assert (parse_schema(project.schema).instructions or "").strip(), project.slug
    assert any("suggestions" in row for p in projects for row in p.rows)


def test_demo_content_is_the_same_on_every_run() -> None:
    assert [p.rows for p in demo_projects()] == [p.rows for p in demo_projects()]
    ids = [row["external_id"] for p in demo_projects() for row in p.rows]
    assert len(ids) == len(set(ids))


def test_demo_images_are_inline_so_nothing_is_fetched() -> None:
    shapes = next(p for p in demo_projects() if p.slug == "shape-boxes")
    assert all(row["data"]["image"].startswith("data:image/svg+xml;base64,") for row in shapes.rows)


def test_every_stored_demo_task_fits_its_project_schema(services: Services) -> None:
    seed_demo(services)
    operator = services.accounts.first_operator()
    client_id = services.clients.resolve(DEMO_CLIENT)
    projects, _ = services.projects.list(operator, client_id, limit=1000)
    checked = suggestions = 0
    for project in projects:
        with services.uow_factory.for_client(client_id) as uow:
            tasks = uow.tasks.page(project.id, after_id=0, limit=1000)
            contents = [open_task_content(uow, task) for task in tasks]
        assert len(contents) == TASKS_PER_PROJECT
        for payload, stored_suggestions in contents:
            validate_payload(project.schema, payload)
            for suggestion in stored_suggestions:
                validate_suggestion(project.schema, payload, suggestion_answer(suggestion))
                suggestions += 1
            checked += 1
    assert checked == len(projects) * TASKS_PER_PROJECT
    assert suggestions > 0


def suggestion_answer(suggestion: dict[str, Any]) -> dict[str, Any]:
    """The answer part of a stored suggestion (next to its model name and score)."""
    for key in ("answer", "values", "value"):
        if isinstance(suggestion.get(key), dict):
            return suggestion[key]
    raise AssertionError(f"no answer in stored suggestion {suggestion!r}")


@pytest.mark.parametrize("who", ["demo operator", "new labeler"])
def test_a_labeler_gets_and_answers_a_task_in_every_demo_project(services: Services, who: str) -> None:
    seed_demo(services)
    operator = services.accounts.first_operator()
    client_id = services.clients.resolve(DEMO_CLIENT)
    if who == "demo operator":
        labeler = operator  # the login that `labelvault demo` prints can label at once
    else:
        services.accounts.create_user(operator, "lena", None)
        services.accounts.grant_role(operator, client_id, "lena", "labeler")
        labeler = services.accounts.actor_by_username("lena")

    projects, _ = services.projects.list(operator, client_id, limit=1000)
    assert len(projects) == len(demo_projects())
    for project in projects:
        leased = services.labeling.next_task(labeler, client_id, project.id)
        answer = valid_answer(project.schema, leased.payload)
        validate_answer(project.schema, leased.payload, answer)
        receipt = services.labeling.submit(
            labeler, client_id, project.id, leased.task_id, answer, idempotency_key=f"demo-{project.slug}"
        )
        assert receipt.created
        assert services.projects.progress(operator, client_id, project.id)["answers_given"] == 1


def valid_answer(schema: ProjectSchema, payload: dict[str, Any]) -> dict[str, Any]:
    """A simple answer that is valid for any demo task: what a hurried but careful labeler gives."""
    answer: dict[str, Any] = {}
    for name, question in schema.iter_questions():
        if not question.required:
            continue
        if isinstance(question, LabelQuestion):
            answer[name] = question.labels[0]
        elif isinstance(question, MultiLabelQuestion):
            answer[name] = question.labels[: max(1, question.min_selected)]
        elif isinstance(question, RatingQuestion):
            answer[name] = question.max
        elif isinstance(question, RankingQuestion):
            answer[name] = list(range(len(payload[question.field])))[::-1]
        elif isinstance(question, PreferenceQuestion):
            answer[name] = {"choice": "b", "strength": 2} if question.strength_levels else {"choice": "b"}
        elif isinstance(question, TextQuestion):
            reply = "Thank you for writing to us. We are looking into it and will reply by tomorrow."
            answer[name] = reply.ljust(question.min_length, ".")[: question.max_length]
        elif isinstance(question, SpanQuestion):
            text = payload[question.field]
            answer[name] = [{"start": 0, "end": text.index(" "), "label": question.labels[0]}]
        elif isinstance(question, BboxQuestion):
            answer[name] = [{"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.25, "label": question.labels[-1]}]
        else:  # pragma: no cover - the demo has no other required question types
            raise AssertionError(f"no sample answer for {question.type}")
    return answer
