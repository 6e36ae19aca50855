"""Uploaded files: sealed at rest, served only to people allowed to see the project."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel

from labelvault.api.deps import ActorDep, ServicesDep
from labelvault.api.routes.projects import ProjectRefDep

router = APIRouter(tags=["files"])


class FileRead(BaseModel):
    id: str
    name: str
    content_type: str
    size: int
    ref: str


@router.post("/projects/{project_id}/files", response_model=FileRead, status_code=status.HTTP_201_CREATED)
async def upload_file(
    ref: ProjectRefDep, actor: ActorDep, services: ServicesDep, request: Request,
    name: Annotated[str, Query(max_length=255, description="The file's name.")] = "file",
) -> FileRead:
    """Upload a file as the raw body (its Content-Type says what it is); use the returned ``ref``
    (``file:<id>``) as the value of an image field of tasks."""
    data = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    info = await run_in_threadpool(services.files.upload, actor, ref.client_id, ref.project_id, name, content_type,
                                   data)
    return FileRead(id=info.id, name=info.name, content_type=info.content_type, size=info.size, ref=info.ref)


@router.get("/projects/{project_id}/files/{file_id}", response_class=Response)
def download_file(ref: ProjectRefDep, file_id: str, actor: ActorDep, services: ServicesDep) -> Response:
    info, data = services.files.download(actor, ref.client_id, ref.project_id, file_id)
    return Response(data, media_type=info.content_type,
                    headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff",
                             "Content-Disposition": "inline"})
