"""Import a Label Studio export (with its labeling config) into a new or an existing project."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from labelvault.api.deps import ActorDep, ServicesDep
from labelvault.errors import InvalidInput
from labelvault.io.label_studio_import import NewProject

router = APIRouter(tags=["import and export"])


class LabelStudioImportRead(BaseModel):
    format: str = Field(description="json or json-min.")
    dry_run: bool
    project_id: int | None
    project_slug: str
    project_created: bool
    tasks_read: int
    tasks_created: int
    tasks_already_present: int = Field(description="Tasks whose Label Studio id the project had already.")
    gold_tasks_created: int = Field(description="New gold tasks (ground_truth_as_gold).")
    suggestions_created: int
    answers_created: int
    answers_already_present: int
    skips_created: int = Field(description="Cancelled (skipped) annotations.")
    annotations_superseded: int = Field(description="Older annotations of a person on a task, left out.")
    results_dropped: int = Field(description="Unsupported results dropped (skip_unsupported).")
    accounts_created: int
    accounts: list[str] = Field(description="The imported (inactive) accounts the annotations belong to.")
    mapping: dict[str, Any] = Field(description="The schema, data keys -> fields, from_names -> questions.")


@router.post(
    "/clients/{client_id}/imports/label-studio",
    response_model=LabelStudioImportRead,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "Dry run: nothing was written."}},
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "file": {"type": "string", "format": "binary", "description": "The JSON export."},
                            "config": {"type": "string", "format": "binary", "description": "Labeling config."},
                        },
                        "required": ["file"],
                    }
                }
            }
        }
    },
)
async def import_label_studio(
    client_id: int,
    actor: ActorDep,
    services: ServicesDep,
    request: Request,
    response: Response,
    project: Annotated[str | None, Query(description="Existing project (slug or id).")] = None,
    new_project: Annotated[str | None, Query(description="Slug of a project to create.")] = None,
    name: Annotated[str | None, Query(description="Name of the new project.")] = None,
    overlap: Annotated[int, Query(description="Answers wanted per task in the new project.")] = 1,
    dry_run: Annotated[bool, Query(description="Check and report; write nothing.")] = False,
    skip_unsupported: Annotated[bool, Query(description="Drop unsupported result types.")] = False,
    ground_truth_as_gold: Annotated[
        bool, Query(description="New tasks with a ground-truth annotation become gold tasks with that answer.")
    ] = False,
) -> LabelStudioImportRead:
    """Import tasks, predictions (as suggestions) and annotations (as answers of imported accounts,
    with their times). Idempotent by the Label Studio task id; one bad task rejects the file."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise InvalidInput("send the export as the multipart field 'file'", details={"field": "file"})
    form = await request.form(max_files=2)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("send the export in the multipart field 'file'", details={"field": "file"})
        config = form.get("config")
        raw = await upload.read()
        config_bytes = await config.read() if isinstance(config, UploadFile) else (config or None)
    finally:
        await form.close()
    target = NewProject(slug=new_project, name=name or new_project, overlap=overlap) if new_project else None
    report = await run_in_threadpool(
        lambda: services.label_studio.import_export(
            actor, client_id, raw, config=config_bytes, project=project, new_project=target, dry_run=dry_run,
            skip_unsupported=skip_unsupported, ground_truth_as_gold=ground_truth_as_gold,
        )
    )
    if dry_run:
        response.status_code = status.HTTP_200_OK
    return LabelStudioImportRead(**report.to_dict())
