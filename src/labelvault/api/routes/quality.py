"""Quality: settings, gold tasks, suspensions, qualifications and skills, reports and the aggregated export."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, status
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from labelvault.api.deps import ActorDep, PageDep, ServicesDep
from labelvault.api.routes.projects import ProjectRefDep
from labelvault.api.schemas import Page
from labelvault.quality.reports import labeler_rows
from labelvault.workflow.projects import ProjectInfo, ProjectSettings
from labelvault.workflow.reports import rows_to_csv

router = APIRouter(tags=["quality"])


class QualitySettingsRead(BaseModel):
    overlap: int = Field(description="Answers per task to start with: the minimum k.")
    max_overlap: int | None = Field(description="Adaptive overlap: at most this many answers (none: off).")
    confidence_threshold: float = Field(description="A task below this aggregate confidence gets one more answer.")
    gold_rate: float = Field(description="Chance that a labeler's next task is a gold task.")
    show_gold_feedback: bool
    qualification_required: bool
    qualification_pass_mark: float
    required_skills: list[str]
    suspension_threshold: float | None = Field(description="Suspend below this gold accuracy (none: never).")
    suspension_min_answers: int


class QualitySettingsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_overlap: int | None = None
    clear_max_overlap: bool = False
    confidence_threshold: float | None = None
    gold_rate: float | None = None
    show_gold_feedback: bool | None = None
    qualification_required: bool | None = None
    qualification_pass_mark: float | None = None
    required_skills: list[str] | None = None
    suspension_threshold: float | None = None
    clear_suspension_threshold: bool = False
    suspension_min_answers: int | None = None


class GoldImport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rows: list[dict[str, Any]] = Field(description='Task rows, each with a "gold" answer.', max_length=100_000)
    qualification: bool = Field(default=False, description="The tasks form the qualification test.")


class GoldImportRead(BaseModel):
    rows_read: int
    created: int
    already_present: int


class GoldPromote(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: dict[str, Any] | None = Field(default=None, description="Default: the reviewed answer of the task.")
    qualification: bool = False


class GoldAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: dict[str, Any]


class GoldTaskRead(BaseModel):
    task_id: int
    external_id: str | None
    qualification: bool
    answers: int
    gold: dict[str, Any]


class GoldFeedbackRead(BaseModel):
    task_id: int
    answer_id: int
    question: str
    credit: float
    your_answer: Any
    gold_answer: Any
    submitted_at: datetime


class SuspensionRead(BaseModel):
    id: int
    user_id: int
    username: str
    reason: str
    n: int
    accuracy: float | None
    upper: float | None
    created_at: datetime
    lifted_at: datetime | None


class QualificationRead(BaseModel):
    user_id: int
    username: str
    passed: bool | None
    score: float | None
    test_tasks: int
    test_done: int
    granted_by: str | None
    decided_at: datetime | None
    missing_skills: list[str]


class QualificationSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    qualified: bool


class SkillGrant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str
    skill: str = Field(description="A tag such as lang:de or phd:chemistry.")


class SkillRead(BaseModel):
    user_id: int
    username: str
    skill: str


Format = Annotated[Literal["json", "csv"], Query(description="json or csv")]


def _settings_read(info: ProjectInfo) -> QualitySettingsRead:
    return QualitySettingsRead(
        overlap=info.overlap, max_overlap=info.max_overlap, confidence_threshold=info.confidence_threshold,
        gold_rate=info.gold_rate, show_gold_feedback=info.show_gold_feedback,
        qualification_required=info.qualification_required, qualification_pass_mark=info.qualification_pass_mark,
        required_skills=info.required_skills, suspension_threshold=info.suspension_threshold,
        suspension_min_answers=info.suspension_min_answers,
    )


# ------------------------------------------------------------------------------------------ settings


@router.get("/projects/{project_id}/quality/settings", response_model=QualitySettingsRead)
def get_settings(ref: ProjectRefDep, actor: ActorDep, services: ServicesDep) -> QualitySettingsRead:
    return _settings_read(services.projects.get(actor, ref.client_id, ref.project_id))


@router.patch("/projects/{project_id}/quality/settings", response_model=QualitySettingsRead)
def update_settings(
    ref: ProjectRefDep, body: QualitySettingsUpdate, actor: ActorDep, services: ServicesDep
) -> QualitySettingsRead:
    changes = ProjectSettings(**body.model_dump())
    return _settings_read(services.projects.update(actor, ref.client_id, ref.project_id, changes))


# ------------------------------------------------------------------------------------------ gold


@router.post("/projects/{project_id}/gold", response_model=GoldImportRead, status_code=status.HTTP_201_CREATED)
def import_gold(ref: ProjectRefDep, body: GoldImport, actor: ActorDep, services: ServicesDep) -> GoldImportRead:
    """Add gold tasks: task rows each with a ``gold`` answer (idempotent by external_id)."""
    report = services.gold.import_rows(actor, ref.client_id, ref.project_id, body.rows,
                                       qualification=body.qualification)
    return GoldImportRead(rows_read=report.rows_read, created=report.created, already_present=report.already_present)


@router.get("/projects/{project_id}/gold", response_model=Page[GoldTaskRead])
def list_gold(ref: ProjectRefDep, actor: ActorDep, services: ServicesDep, page: PageDep) -> Page[GoldTaskRead]:
    items, total = services.gold.list(actor, ref.client_id, ref.project_id, offset=page.offset, limit=page.limit)
    return Page(items=[GoldTaskRead.model_validate(i, from_attributes=True) for i in items], total=total,
                offset=page.offset, limit=page.limit)


@router.get("/projects/{project_id}/gold/feedback", response_model=list[GoldFeedbackRead])
def gold_feedback(ref: ProjectRefDep, actor: ActorDep, services: ServicesDep, page: PageDep) -> list[GoldFeedbackRead]:
    """The caller's own results on gold tasks, newest first (if the project shows gold feedback)."""
    rows = services.gold.feedback(actor, ref.client_id, ref.project_id, offset=page.offset, limit=page.limit)
    return [GoldFeedbackRead.model_validate(r, from_attributes=True) for r in rows]


@router.post("/projects/{project_id}/gold/{task_id}", response_model=GoldTaskRead)
def promote_to_gold(
    ref: ProjectRefDep, task_id: int, body: GoldPromote, actor: ActorDep, services: ServicesDep
) -> GoldTaskRead:
    """Make a reviewed task gold (its answer: the one given, else the reviewed one)."""
    info = services.gold.promote(actor, ref.client_id, ref.project_id, task_id, answer=body.answer,
                                 qualification=body.qualification)
    return GoldTaskRead.model_validate(info, from_attributes=True)


@router.put("/projects/{project_id}/gold/{task_id}", status_code=status.HTTP_204_NO_CONTENT)
def set_gold_answer(ref: ProjectRefDep, task_id: int, body: GoldAnswer, actor: ActorDep, services: ServicesDep) -> None:
    services.gold.set_answer(actor, ref.client_id, ref.project_id, task_id, body.answer)


@router.delete("/projects/{project_id}/gold/{task_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_gold(ref: ProjectRefDep, task_id: int, actor: ActorDep, services: ServicesDep) -> None:
    """The task becomes a regular task again."""
    services.gold.demote(actor, ref.client_id, ref.project_id, task_id)


# ------------------------------------------------------------------------------------------ suspensions


@router.get("/projects/{project_id}/suspensions", response_model=list[SuspensionRead])
def list_suspensions(ref: ProjectRefDep, actor: ActorDep, services: ServicesDep,
                     active: bool = False) -> list[SuspensionRead]:
    rows = services.gold.suspensions(actor, ref.client_id, ref.project_id, active_only=active)
    return [SuspensionRead.model_validate(r, from_attributes=True) for r in rows]


@router.post("/projects/{project_id}/suspensions/{username}/reinstate", response_model=SuspensionRead)
def reinstate(ref: ProjectRefDep, username: str, actor: ActorDep, services: ServicesDep) -> SuspensionRead:
    """Lift a labeler's suspension; their gold accuracy counts afresh."""
    info = services.gold.reinstate(actor, ref.client_id, ref.project_id, username)
    return SuspensionRead.model_validate(info, from_attributes=True)


# ------------------------------------------------------------------------------------------ qualification


@router.get("/projects/{project_id}/qualifications", response_model=list[QualificationRead])
def list_qualifications(ref: ProjectRefDep, actor: ActorDep, services: ServicesDep) -> list[QualificationRead]:
    rows = services.qualifications.statuses(actor, ref.client_id, ref.project_id)
    return [QualificationRead.model_validate(r, from_attributes=True) for r in rows]


@router.get("/projects/{project_id}/qualifications/me", response_model=QualificationRead)
def my_qualification(ref: ProjectRefDep, actor: ActorDep, services: ServicesDep) -> QualificationRead:
    info = services.qualifications.my_status(actor, ref.client_id, ref.project_id)
    return QualificationRead.model_validate(info, from_attributes=True)


@router.put("/projects/{project_id}/qualifications/{username}", status_code=status.HTTP_204_NO_CONTENT)
def set_qualification(
    ref: ProjectRefDep, username: str, body: QualificationSet, actor: ActorDep, services: ServicesDep
) -> None:
    """Qualify a labeler by hand, or withdraw the qualification."""
    services.qualifications.set_qualified(actor, ref.client_id, ref.project_id, username, qualified=body.qualified)


@router.get("/clients/{client_id}/skills", response_model=list[SkillRead])
def list_skills(client_id: int, actor: ActorDep, services: ServicesDep) -> list[SkillRead]:
    return [SkillRead.model_validate(s, from_attributes=True) for s in services.qualifications.skills(actor, client_id)]


@router.post("/clients/{client_id}/skills", response_model=SkillRead, status_code=status.HTTP_201_CREATED)
def grant_skill(client_id: int, body: SkillGrant, actor: ActorDep, services: ServicesDep) -> SkillRead:
    grant = services.qualifications.grant_skill(actor, client_id, body.username, body.skill)
    return SkillRead.model_validate(grant, from_attributes=True)


@router.delete("/clients/{client_id}/skills/{username}/{skill}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_skill(client_id: int, username: str, skill: str, actor: ActorDep, services: ServicesDep) -> None:
    services.qualifications.revoke_skill(actor, client_id, username, skill)


# ------------------------------------------------------------------------------------------ reports


@router.get("/projects/{project_id}/quality/report", response_model=dict[str, Any])
def quality_report(ref: ProjectRefDep, actor: ActorDep, services: ServicesDep) -> dict[str, Any]:
    """Agreement per question, the labeler table, confusion matrices and adaptive-overlap savings
    (cached; computed again when answers, reviews or gold have changed)."""
    return services.quality.report(actor, ref.client_id, ref.project_id)


@router.get("/projects/{project_id}/quality/agreement", response_model=dict[str, Any])
def agreement(ref: ProjectRefDep, actor: ActorDep, services: ServicesDep) -> dict[str, Any]:
    """Krippendorff's alpha, Fleiss' kappa, pairwise Cohen's kappa, percent agreement per question."""
    return dict(services.quality.report(actor, ref.client_id, ref.project_id)["agreement"])


@router.get("/projects/{project_id}/quality/confusion", response_model=dict[str, Any])
def confusion(ref: ProjectRefDep, actor: ActorDep, services: ServicesDep) -> dict[str, Any]:
    """Dawid-Skene confusion matrices per labeler, per label question."""
    return dict(services.quality.report(actor, ref.client_id, ref.project_id)["confusion"])


@router.get("/projects/{project_id}/quality/labelers", response_model=list[dict[str, Any]])
def labelers(ref: ProjectRefDep, actor: ActorDep, services: ServicesDep, format: Format = "json") -> object:
    """Per labeler: gold accuracy with its interval, agreement with the consensus, speed and earnings."""
    report = services.quality.report(actor, ref.client_id, ref.project_id)
    if format == "csv":
        return PlainTextResponse(rows_to_csv(list(labeler_rows(report))), media_type="text/csv",
                                 headers={"Content-Disposition": 'attachment; filename="labelers.csv"'})
    return report["labelers"]


@router.post("/projects/{project_id}/quality/recompute", response_model=dict[str, Any])
def recompute(ref: ProjectRefDep, actor: ActorDep, services: ServicesDep) -> dict[str, Any]:
    """Compute the project's quality results now (they are also refreshed on read when stale)."""
    report = services.quality.recompute(actor, ref.client_id, ref.project_id)
    return {key: report[key] for key in ("version", "computed_at", "tasks", "gold_tasks", "answers")}


@router.get(
    "/projects/{project_id}/quality/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "One JSON line per task."}},
)
def export_aggregated(ref: ProjectRefDep, actor: ActorDep, services: ServicesDep) -> StreamingResponse:
    """The aggregated answer of every task with its confidence and method (aggregated-jsonl)."""
    export = services.quality.export_aggregated(actor, ref.client_id, ref.project_id)
    return StreamingResponse(export.chunks, media_type=export.media_type,
                             headers={"Content-Disposition": f'attachment; filename="{export.filename}"'})
