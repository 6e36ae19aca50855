"""Import tasks from a URL on an allowed host (the server fetches it, with SSRF protections)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from labelvault.api.deps import ActorDep, ServicesDep
from labelvault.api.routes.projects import ProjectRefDep

router = APIRouter(tags=["import and export"])


class UrlImport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="http(s) URL on a host of LABELVAULT_IMPORT_ALLOWED_HOSTS.")
    format: str | None = Field(default=None, description="jsonl, csv or parquet (else from the URL's file name).")
    skip_invalid: bool = False


@router.post("/projects/{project_id}/imports/url", status_code=status.HTTP_201_CREATED)
async def import_from_url(
    ref: ProjectRefDep, body: UrlImport, actor: ActorDep, services: ServicesDep
) -> dict[str, Any]:
    """Fetch a file from an allowed host and import it (access is checked before anything is fetched)."""
    report = await run_in_threadpool(
        lambda: services.url_imports.import_url(
            actor, ref.client_id, ref.project_id, body.url, format=body.format, skip_invalid=body.skip_invalid
        )
    )
    return report.to_dict()
