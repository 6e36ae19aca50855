"""What the SDK raises: one hierarchy, carrying the API's ``code``, ``message`` and ``details``.

Every SDK error is a :class:`labelvault.errors.LabelVaultError`, and an error the API answered is
also the server's own class for it, so ``except labelvault.errors.NotFound`` catches the same
thing in a script as on the server::

    LabelVaultError                      (labelvault.errors)
    └── SdkError                         anything the SDK raises
        ├── TransportError               the server could not be reached (after the retries)
        ├── MissingDependency            pandas or datasets is needed (also an ImportError)
        └── ApiError                     the API answered an error: status_code, code, message, details
            ├── InvalidInputError        400  (errors.InvalidInput)
            │   ├── SchemaInvalidError        (errors.SchemaInvalid)
            │   ├── PayloadInvalidError       (errors.PayloadInvalid)
            │   ├── AnswerInvalidError        (errors.AnswerInvalid)
            │   └── ImportInvalidError        (errors.ImportInvalid)
            ├── NotAuthenticatedError    401  (errors.NotAuthenticated)
            ├── PermissionDeniedError    403  (errors.PermissionDenied)
            │   └── ConflictOfInterestError   (errors.ConflictOfInterest)
            ├── NotFoundError            404  (errors.NotFound)
            ├── ConflictError            409  (errors.Conflict)
            │   └── QueueRefusedError         (``reason`` from details)
            ├── PayloadTooLargeError     413  (errors.PayloadTooLarge)
            ├── RateLimitedError         429  (errors.LoginThrottled for that code)
            └── ServerError              5xx
"""

from __future__ import annotations

from typing import Any

import httpx

from labelvault import errors


class SdkError(errors.LabelVaultError):
    code = "sdk_error"


class TransportError(SdkError):
    """No answer from the server: connection refused, timed out, cut off (after the retries)."""

    code = "transport_error"


class MissingDependency(SdkError, ImportError):
    """An optional package (pandas, datasets) is needed for this call."""

    code = "missing_dependency"


class ApiError(SdkError):
    """The API answered with an error; ``status_code`` is the HTTP status, ``code`` the API's code."""

    code = "api_error"

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None = None,
        details: Any = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, details=details, code=code)
        self.status_code = status_code
        self.request_id = request_id

    def __str__(self) -> str:
        return f"{self.message} ({self.status_code} {self.code})"


class InvalidInputError(ApiError, errors.InvalidInput):
    pass


class SchemaInvalidError(InvalidInputError, errors.SchemaInvalid):
    pass


class PayloadInvalidError(InvalidInputError, errors.PayloadInvalid):
    pass


class AnswerInvalidError(InvalidInputError, errors.AnswerInvalid):
    pass


class ImportInvalidError(InvalidInputError, errors.ImportInvalid):
    pass


class NotAuthenticatedError(ApiError, errors.NotAuthenticated):
    pass


class PermissionDeniedError(ApiError, errors.PermissionDenied):
    pass


class ConflictOfInterestError(PermissionDeniedError, errors.ConflictOfInterest):
    pass


class NotFoundError(ApiError, errors.NotFound):
    pass


class ConflictError(ApiError, errors.Conflict):
    pass


class QueueRefusedError(ConflictError):
    """No task for this labeler; ``reason`` says why (no_tasks, budget, conflict_of_interest...)."""

    @property
    def reason(self) -> str | None:
        return self.details.get("reason") if isinstance(self.details, dict) else None


class PayloadTooLargeError(ApiError, errors.PayloadTooLarge):
    pass


class RateLimitedError(ApiError):
    pass


class LoginThrottledError(RateLimitedError, errors.LoginThrottled):
    pass


class ServerError(ApiError):
    pass


_BY_CODE: dict[str, type[ApiError]] = {
    "invalid_input": InvalidInputError,
    "schema_invalid": SchemaInvalidError,
    "payload_invalid": PayloadInvalidError,
    "answer_invalid": AnswerInvalidError,
    "import_invalid": ImportInvalidError,
    "not_authenticated": NotAuthenticatedError,
    "permission_denied": PermissionDeniedError,
    "conflict_of_interest": ConflictOfInterestError,
    "not_found": NotFoundError,
    "conflict": ConflictError,
    "queue_refused": QueueRefusedError,
    "payload_too_large": PayloadTooLargeError,
    "login_throttled": LoginThrottledError,
}

_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidInputError,
    401: NotAuthenticatedError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: InvalidInputError,
    429: RateLimitedError,
}


def error_from_response(response: httpx.Response) -> ApiError:
    """The SDK error for an error response: from its ``{"error": {...}}`` body, else from its status."""
    status = response.status_code
    code: str | None = None
    message = ""
    details: Any = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        code = str(error.get("code") or "") or None
        message = str(error.get("message") or "")
        details = error.get("details")
    if code is None:
        # Not our API's error shape: a proxy in between, or not a LabelVault server at all.
        code = f"http_{status}"
        text = response.text.strip().splitlines()[0][:200] if response.text.strip() else response.reason_phrase
        message = f"HTTP {status} from {response.request.method} {response.request.url.path}: {text}"
    return api_error(status, code, message, details, response.headers.get("x-request-id"))


def api_error(status: int, code: str, message: str, details: Any = None, request_id: str | None = None) -> ApiError:
    """The SDK error for an API error of this status and code (also one that came inside a body,
    as a submit's ``next_error``)."""
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    return cls(message or f"HTTP {status}", status_code=status, code=code, details=details, request_id=request_id)
