"""Import and export: upload a JSONL, CSV or Parquet file of tasks; download a project (docs/exports.md)."""

from __future__ import annotations

import tempfile
from typing import Annotated, Any, BinaryIO

from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from labelvault.api.deps import ActorDep, ServicesDep
from labelvault.api.routes.projects import ProjectRef, ProjectRefDep
from labelvault.bootstrap import Services
from labelvault.domain.access import Actor
from labelvault.errors import InvalidInput
from labelvault.io.exporter import ExportOptions
from labelvault.io.formats import FORMATS, formats_help
from labelvault.io.importer import ImportReport
from labelvault.io.readers import infer_format
from labelvault.io.rows import parse_field_map

router = APIRouter(tags=["import and export"])

_SPOOL_IN_MEMORY = 1024 * 1024  # uploads larger than this are spooled to a temporary file


class ImportReportRead(BaseModel):
    format: str
    rows_read: int
    created: int = Field(description="New tasks.")
    already_present: int = Field(description="Rows whose external_id the project had already (left as they were).")
    invalid: int = Field(description="Bad rows (skipped with skip_invalid; otherwise the import is rejected).")
    errors: list[dict[str, Any]] = Field(description='The first bad rows: {"line" or "row", "field", "message"}.')
    errors_omitted: int = Field(description="Bad rows not listed in errors.")


@router.post(
    "/projects/{project_id}/imports",
    response_model=ImportReportRead,
    status_code=status.HTTP_201_CREATED,
    openapi_extra={
        "requestBody": {
            "description": "The file: as the raw body, or as the multipart field `file`.",
            "content": {
                "application/x-ndjson": {"schema": {"type": "string", "format": "binary"}},
                "text/csv": {"schema": {"type": "string", "format": "binary"}},
                "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
            },
        }
    },
)
async def import_tasks(
    ref: ProjectRefDep,
    actor: ActorDep,
    services: ServicesDep,
    request: Request,
    format: Annotated[
        str | None, Query(description="jsonl, csv or parquet; else from the file name or content type.")
    ] = None,
    skip_invalid: Annotated[bool, Query(description="Write the valid rows and report the bad ones.")] = False,
    mapping: Annotated[
        list[str] | None, Query(alias="map", description="column=field: read a column as a schema field.")
    ] = None,
) -> ImportReportRead:
    """Import tasks; idempotent by external_id. One bad row rejects the whole file unless skip_invalid."""
    field_map = parse_field_map(mapping)
    # Refuse before receiving the upload, not after.
    await run_in_threadpool(services.imports.authorize, actor, ref.client_id, ref.project_id)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=1)
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise InvalidInput("send the file in the multipart field 'file'", details={"field": "file"})
            fmt = infer_format(upload.filename, explicit=format, media_type=upload.content_type)
            report = await _run_import(services, actor, ref, upload.file, fmt, skip_invalid, field_map)
        finally:
            await form.close()
    else:
        fmt = infer_format(None, explicit=format, media_type=content_type)
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
            async for chunk in request.stream():
                spool.write(chunk)
            spool.seek(0)
            report = await _run_import(services, actor, ref, spool, fmt, skip_invalid, field_map)
    return ImportReportRead(**report.to_dict())


async def _run_import(
    services: Services,
    actor: Actor,
    ref: ProjectRef,
    stream: BinaryIO,
    fmt: str,
    skip_invalid: bool,
    field_map: dict[str, str],
) -> ImportReport:
    return await run_in_threadpool(
        lambda: services.imports.import_file(
            actor, ref.client_id, ref.project_id, stream, format=fmt, skip_invalid=skip_invalid, mapping=field_map
        )
    )


_EXPORT_CONTENT: dict[str | int, Any] = {f.media_type.split(";")[0]: {} for f in FORMATS.values()}


@router.get(
    "/projects/{project_id}/export",
    response_class=StreamingResponse,
    responses={200: {"content": _EXPORT_CONTENT,
                     "description": "The export file, streamed (directory formats as a zip)."}},
)
def export_tasks(
    ref: ProjectRefDep,
    actor: ActorDep,
    services: ServicesDep,
    format: Annotated[str, Query(description=formats_help())] = "jsonl",
    question: Annotated[str | None, Query(description="The question a training format reads, when the project "
                                                       "has several that fit.")] = None,
    dpo_form: Annotated[str | None, Query(description="dpo: string or chat.")] = None,
    prompt_field: Annotated[str | None, Query(description="dpo and sft: the field giving the prompt.")] = None,
    lang: Annotated[str, Query(description="spacy: the tokenizer's language.")] = "en",
) -> StreamingResponse:
    """Download a project: its tasks with answers, aggregated answers, or a training format, streamed."""
    options = ExportOptions(question=question, dpo_form=dpo_form, prompt_field=prompt_field, lang=lang)
    export = services.exports.export(actor, ref.client_id, ref.project_id, format=format, options=options)
    return StreamingResponse(
        export.chunks,
        media_type=export.media_type,
        headers={"Content-Disposition": f'attachment; filename="{export.filename}"'},
    )
