"""Projects: a schema of fields and typed questions, and the settings of their queue."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from labelvault.audit import log as audit_log
from labelvault.domain.access import Actor, ClientAccess, ProjectPolicy, Role
from labelvault.domain.schema import ProjectSchema, parse_schema
from labelvault.errors import Conflict, InvalidInput, NotFound
from labelvault.storage.models import Project
from labelvault.storage.repositories import ActiveKey
from labelvault.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory
from labelvault.workflow.access import access_in
from labelvault.workflow.clients import check_slug

PROJECT_STATUSES = ("active", "paused", "archived")
MAX_INSTRUCTIONS = 100_000  # characters of guidelines: a long handbook, still one page to load


@dataclass(frozen=True, slots=True)
class ProjectInfo:
    id: int
    client_id: int
    slug: str
    name: str
    schema: ProjectSchema
    overlap: int
    lease_seconds: int
    status: str
    created_at: datetime
    review_policy: str = "none"
    review_sample_rate: float = 0.0
    pay_on: str = "submit"
    rate_per_answer: int = 0
    rate_per_review: int = 0
    question_rates: dict[str, int] = field(default_factory=dict)
    budget_cap: int | None = None
    spent: int = 0
    # Quality settings (see quality/settings.py).
    gold_rate: float = 0.0
    show_gold_feedback: bool = False
    qualification_required: bool = False
    qualification_pass_mark: float = 0.8
    required_skills: list[str] = field(default_factory=list)
    suspension_threshold: float | None = None
    suspension_min_answers: int = 10
    max_overlap: int | None = None
    confidence_threshold: float = 0.7


@dataclass(frozen=True, slots=True)
class ProjectSettings:
    """Changes to a project; None leaves a setting as it is."""

    name: str | None = None
    # The guidelines labelers read (Markdown, part of the schema's document); "" removes them.
    instructions: str | None = None
    overlap: int | None = None
    lease_seconds: int | None = None
    status: str | None = None
    review_policy: str | None = None
    review_sample_rate: float | None = None
    pay_on: str | None = None
    rate_per_answer: int | None = None
    rate_per_review: int | None = None
    question_rates: dict[str, int] | None = None
    budget_cap: int | None = None
    clear_budget_cap: bool = False
    # Quality settings (see quality/settings.py).
    gold_rate: float | None = None
    show_gold_feedback: bool | None = None
    qualification_required: bool | None = None
    qualification_pass_mark: float | None = None
    required_skills: list[str] | None = None
    suspension_threshold: float | None = None
    clear_suspension_threshold: bool = False
    suspension_min_answers: int | None = None
    max_overlap: int | None = None
    clear_max_overlap: bool = False
    confidence_threshold: float | None = None


_schema_cache: dict[str, ProjectSchema] = {}


def schema_of(project: Project) -> ProjectSchema:
    # Parsing is pure and schemas rarely change: cache by the stored document itself.
    schema = _schema_cache.get(project.schema_json)
    if schema is None:
        schema = parse_schema(json.loads(project.schema_json))
        if len(_schema_cache) > 1000:
            _schema_cache.clear()
        _schema_cache[project.schema_json] = schema
    return schema


def project_info(project: Project) -> ProjectInfo:
    return ProjectInfo(
        id=project.id, client_id=project.client_id, slug=project.slug, name=project.name,
        schema=schema_of(project), overlap=project.overlap, lease_seconds=project.lease_seconds,
        status=project.status, created_at=project.created_at, review_policy=project.review_policy,
        review_sample_rate=project.review_sample_rate, pay_on=project.pay_on, rate_per_answer=project.rate_per_answer,
        rate_per_review=project.rate_per_review, question_rates=json.loads(project.question_rates_json or "{}"),
        budget_cap=project.budget_cap, spent=project.spent,
        **_quality_info(project),
    )


def _quality_info(project: Project) -> dict[str, Any]:
    from labelvault.quality.settings import required_skills

    return {
        "gold_rate": project.gold_rate, "show_gold_feedback": project.show_gold_feedback,
        "qualification_required": project.qualification_required,
        "qualification_pass_mark": project.qualification_pass_mark, "required_skills": required_skills(project),
        "suspension_threshold": project.suspension_threshold,
        "suspension_min_answers": project.suspension_min_answers, "max_overlap": project.max_overlap,
        "confidence_threshold": project.confidence_threshold,
    }


def load_project(uow: UnitOfWork, project_id: int) -> Project:
    project = uow.projects.get(project_id)
    if project is None:
        raise NotFound(f"project {project_id} not found")
    return project


def load_project_settings(
    uow: UnitOfWork, project_id: int, actor: Actor, *, open_leases: bool = False
) -> tuple[Project, ClientAccess]:
    """The project's columns as a read-only row, and the actor's access to its client, in one read:
    for use cases that read settings and change none (the queue: a tenth of the cost of loading the
    object, and one statement for both). The row is typed as ``Project`` for its readers; with
    ``open_leases`` it also has ``open_leases`` (see ``ProjectRepository.row_with_roles``)."""
    project = uow.projects.row_with_roles(project_id, actor.user_id, open_leases=open_leases)
    if project is None:
        raise NotFound(f"project {project_id} not found")
    if project.active_key_id is not None:
        uow.data_keys.remember_active(ActiveKey(project.active_key_id, project.active_wrapped_key))
    roles = frozenset(Role(role) for role in project.roles.split(",")) if project.roles else frozenset()
    return project, ClientAccess(actor=actor, client_id=uow.client_id, roles=roles)  # type: ignore[return-value]


def _check_overlap(overlap: int) -> None:
    if not 1 <= overlap <= 100:
        raise InvalidInput("overlap must be between 1 and 100", details={"field": "overlap"})


def _check_lease(seconds: int) -> None:
    if not 10 <= seconds <= 7 * 24 * 3600:
        raise InvalidInput("lease_seconds must be between 10 and 604800", details={"field": "lease_seconds"})


def vars_of(changes: ProjectSettings) -> dict[str, object]:
    return {f.name: getattr(changes, f.name) for f in fields(changes)}


def _money(value: int, name: str) -> int:
    if value < 0:
        raise InvalidInput(f"{name} must be zero or more (integer minor units, e.g. cents)", details={"field": name})
    return value


def _apply_review_and_money(project: Project, changes: ProjectSettings) -> None:
    from labelvault.workflow.review import REVIEW_POLICIES

    if changes.review_policy is not None:
        if changes.review_policy not in REVIEW_POLICIES:
            raise InvalidInput(f"review_policy must be one of {', '.join(REVIEW_POLICIES)}",
                               details={"field": "review_policy"})
        project.review_policy = changes.review_policy
    if changes.review_sample_rate is not None:
        if not 0.0 <= changes.review_sample_rate <= 1.0:
            raise InvalidInput("review_sample_rate must be between 0 and 1", details={"field": "review_sample_rate"})
        project.review_sample_rate = changes.review_sample_rate
    if changes.pay_on is not None:
        if changes.pay_on not in ("submit", "accept"):
            raise InvalidInput("pay_on must be submit or accept", details={"field": "pay_on"})
        project.pay_on = changes.pay_on
    if changes.rate_per_answer is not None:
        project.rate_per_answer = _money(changes.rate_per_answer, "rate_per_answer")
    if changes.rate_per_review is not None:
        project.rate_per_review = _money(changes.rate_per_review, "rate_per_review")
    if changes.question_rates is not None:
        schema = schema_of(project)
        for name, rate in changes.question_rates.items():
            if not schema.has_question(name):
                raise InvalidInput(f"question_rates: no question {name!r} in the schema",
                                   details={"field": f"question_rates.{name}"})
            _money(rate, f"question_rates.{name}")
        project.question_rates_json = json.dumps(changes.question_rates) if changes.question_rates else None
    if changes.budget_cap is not None:
        project.budget_cap = _money(changes.budget_cap, "budget_cap")
    if changes.clear_budget_cap:
        project.budget_cap = None


def _apply_instructions(project: Project, text: str) -> None:
    """New guidelines: the schema's document with only its instructions changed (the fields and
    questions, which answers were checked against, stay as they are)."""
    if len(text) > MAX_INSTRUCTIONS:
        raise InvalidInput(f"instructions: at most {MAX_INSTRUCTIONS:,} characters", details={"field": "instructions"})
    document = schema_of(project).to_dict()
    if text.strip():
        document["instructions"] = text
    else:
        document.pop("instructions", None)
    schema_json = json.dumps(parse_schema(document).to_dict())
    if schema_json != project.schema_json:
        project.schema_json = schema_json


def _apply_settings(project: Project, changes: ProjectSettings) -> None:
    """``changes`` checked and set on the project (stored or not: ``ProjectService.check``)."""
    if changes.name is not None:
        project.name = changes.name
    if changes.instructions is not None:
        _apply_instructions(project, changes.instructions)
    if changes.overlap is not None:
        _check_overlap(changes.overlap)
        project.overlap = changes.overlap
    if changes.lease_seconds is not None:
        _check_lease(changes.lease_seconds)
        project.lease_seconds = changes.lease_seconds
    if changes.status is not None:
        if changes.status not in PROJECT_STATUSES:
            raise InvalidInput(
                f"status must be one of {', '.join(PROJECT_STATUSES)}", details={"field": "status"}
            )
        project.status = changes.status
    _apply_review_and_money(project, changes)
    from labelvault.quality.settings import apply_quality_settings

    apply_quality_settings(project, changes)


# Directory entries (project id -> client id) kept per process; a few MB at most.
_MAX_LOCATED = 100_000


class ProjectService:
    def __init__(self, uow_factory: UnitOfWorkFactory, *, default_lease_seconds: int = 600) -> None:
        self.uow_factory = uow_factory
        self.default_lease_seconds = default_lease_seconds
        self._located: dict[int, tuple[int, int]] = {}

    def located(self, project_id: int) -> tuple[int, int] | None:
        """(client id, project id) if this process located the project before, else None (no I/O)."""
        return self._located.get(project_id)

    def locate(self, reference: str | int) -> tuple[int, int]:
        """(client id, project id) from a project id or ``client-slug/project-slug``.

        This directory lookup reads ids only, across clients; the use case that follows opens the
        client's scope and checks access, so an unknown and a foreign project look the same.
        """
        text = str(reference)
        if text.isdigit() and (located := self._located.get(int(text))) is not None:
            return located
        with self.uow_factory.all_clients() as uow:
            if text.isdigit():
                project = uow.projects.get(int(text))
            else:
                client_slug, _, project_slug = text.partition("/")
                client = uow.clients.by_slug(client_slug)
                project = None
                if client is not None and project_slug:
                    project = uow.projects.in_client_by_slug(client.id, project_slug)
            if project is None:
                raise NotFound(f"project {reference} not found")
            located = project.client_id, project.id
        # A project never changes client and ids are never reused, so the answer can be kept: every
        # request of the queue asks it. A deleted project stays in here harmlessly (the use case
        # that follows finds nothing in the client's scope and says "not found").
        if len(self._located) >= _MAX_LOCATED:
            self._located.clear()
        self._located[located[1]] = located
        return located

    def create(
        self,
        actor: Actor,
        client_id: int,
        *,
        slug: str,
        name: str,
        schema: str | bytes | dict[str, Any],
        overlap: int = 1,
        lease_seconds: int | None = None,
    ) -> ProjectInfo:
        parsed, lease_seconds = self._checked_new(slug, schema, overlap, lease_seconds)
        with self.uow_factory.for_client(client_id, write=True) as uow:
            ProjectPolicy.manage(access_in(uow, actor))
            if uow.projects.by_slug(slug) is not None:
                raise Conflict(f"project {slug!r} exists already in this client", details={"field": "slug"})
            project = uow.projects.add(
                Project(slug=slug, name=name or slug, schema_json=json.dumps(parsed.to_dict()),
                        overlap=overlap, lease_seconds=lease_seconds)
            )
            audit_log.append(uow, "project.created", actor=actor, client_id=client_id, object_kind="project",
                             object_id=project.id)
            uow.commit()
            return project_info(project)

    def check(
        self, *, slug: str, schema: str | bytes | dict[str, Any], overlap: int, lease_seconds: int | None,
        changes: ProjectSettings,
    ) -> None:
        """Raise what ``create`` with these arguments, then ``update`` with ``changes``, would raise
        (InvalidInput naming the field), nothing read or written: for a caller that must refuse bad
        settings before it writes anything (a bundle's import). The slug is not looked up."""
        parsed, lease_seconds = self._checked_new(slug, schema, overlap, lease_seconds)
        # A project never stored: the same rules run on it as on a loaded one.
        _apply_settings(Project(slug=slug, name=slug, schema_json=json.dumps(parsed.to_dict()), overlap=overlap,
                                lease_seconds=lease_seconds), changes)

    def _checked_new(
        self, slug: str, schema: str | bytes | dict[str, Any], overlap: int, lease_seconds: int | None
    ) -> tuple[ProjectSchema, int]:
        """The checks of a new project: its parsed schema and its lease (the default if none)."""
        check_slug(slug, "project")
        parsed = parse_schema(schema)
        _check_overlap(overlap)
        lease_seconds = lease_seconds or self.default_lease_seconds
        _check_lease(lease_seconds)
        return parsed, lease_seconds

    def get(self, actor: Actor, client_id: int, project_id: int) -> ProjectInfo:
        with self.uow_factory.for_client(client_id) as uow:
            ProjectPolicy.view(access_in(uow, actor))
            return project_info(load_project(uow, project_id))

    def list(
        self, actor: Actor, client_id: int, *, offset: int = 0, limit: int = 100
    ) -> tuple[list[ProjectInfo], int]:
        with self.uow_factory.for_client(client_id) as uow:
            ProjectPolicy.view(access_in(uow, actor))
            rows = uow.projects.list(offset=offset, limit=limit)
            return [project_info(p) for p in rows], uow.projects.count()

    def update(self, actor: Actor, client_id: int, project_id: int, changes: ProjectSettings) -> ProjectInfo:
        with self.uow_factory.for_client(client_id, write=True) as uow:
            ProjectPolicy.manage(access_in(uow, actor))
            project = load_project(uow, project_id)
            _apply_settings(project, changes)
            changed = sorted(k for k, v in vars_of(changes).items() if v not in (None, False))
            audit_log.append(uow, "project.updated", actor=actor, client_id=client_id, object_kind="project",
                             object_id=project.id, details={"changed": changed})
            uow.commit()
            return project_info(project)

    def progress(self, actor: Actor, client_id: int, project_id: int) -> dict[str, int]:
        with self.uow_factory.for_client(client_id) as uow:
            ProjectPolicy.view(access_in(uow, actor))
            load_project(uow, project_id)
            tasks, needed, given = uow.tasks.progress(project_id)
            return {"tasks": tasks, "answers_needed": needed, "answers_given": given}
