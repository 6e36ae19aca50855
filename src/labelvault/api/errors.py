"""Translate the error hierarchy into JSON once: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from labelvault import logs
from labelvault.errors import LabelVaultError


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def _location(loc: tuple[Any, ...]) -> str:
    # ("body", "answer", "sentiment") -> "answer.sentiment"; the "body"/"query" part is noise.
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or str(loc[0] if loc else "request")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LabelVaultError)
    async def _domain_error(_request: Request, exc: LabelVaultError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"field": _location(tuple(e["loc"])), "message": e["msg"]} for e in exc.errors()]
        first = details[0] if details else {"field": "request", "message": "invalid"}
        message = f"{first['field']}: {first['message']}"
        return JSONResponse(error_body("invalid_input", message, details), status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        # Logged with its type and traceback (no values); the client gets the request id to quote.
        logging.getLogger("labelvault.http").error("unhandled error", exc_info=exc)
        return JSONResponse(
            error_body("internal_error", "something went wrong on our side; quote the request id to your operator",
                       {"request_id": logs.request_id.get()}),
            status_code=500,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "not_authenticated"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=getattr(exc, "headers", None)
        )
