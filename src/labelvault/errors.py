"""One error hierarchy for the whole product.

Every error carries a stable ``code`` (machine readable), a human ``message`` and optional
``details``. Interfaces translate them once: JSON ``{"error": {...}}`` with ``http_status`` on
the API, an HTML page on the web, one line and exit code 1 on the CLI.

    LabelVaultError
    ├── InvalidInput              400  bad request data (names the field, line or id)
    │   ├── SchemaInvalid         400  a project schema document is wrong
    │   ├── PayloadInvalid        400  a task payload does not fit the schema
    │   ├── AnswerInvalid         400  an answer does not fit the schema
    │   └── ImportInvalid         400  an import file has bad rows (details list them)
    ├── NotAuthenticated          401  no or bad credentials
    ├── LoginThrottled            429  too many failed logins
    ├── PermissionDenied          403  known actor, action not allowed (never used to hide objects)
    │   └── ConflictOfInterest    403  a conflict wall: the person has seen a competitor's data
    ├── NotFound                  404  no such object *in the caller's scope*
    ├── Conflict                  409  state does not allow it (duplicate slug, lease gone, ...)
    │   ├── DatabaseBusy          409  another writer held the database too long; nothing written
    │   └── QueueRefused          409  no task for this labeler; ``reason`` says why
    ├── PayloadTooLarge           413
    ├── WriteLost                 503  the database rolled a group of writes back; nothing written
    ├── PredictorFailed           502  a project's predictor failed or answered badly (names the batch)
    ├── AuditTampered             500  the audit log or a checkpoint fails verification
    └── CryptoError               500  a ciphertext failed to open or a key is missing
"""

from __future__ import annotations

from typing import Any


class LabelVaultError(Exception):
    code = "error"
    http_status = 500

    def __init__(self, message: str, *, details: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class InvalidInput(LabelVaultError):
    code = "invalid_input"
    http_status = 400


class SchemaInvalid(InvalidInput):
    code = "schema_invalid"


class PayloadInvalid(InvalidInput):
    code = "payload_invalid"


class AnswerInvalid(InvalidInput):
    code = "answer_invalid"


class ImportInvalid(InvalidInput):
    code = "import_invalid"


class NotAuthenticated(LabelVaultError):
    code = "not_authenticated"
    http_status = 401


class LoginThrottled(LabelVaultError):
    code = "login_throttled"
    http_status = 429


class PermissionDenied(LabelVaultError):
    code = "permission_denied"
    http_status = 403


class ConflictOfInterest(PermissionDenied):
    code = "conflict_of_interest"


class NotFound(LabelVaultError):
    code = "not_found"
    http_status = 404


class Conflict(LabelVaultError):
    code = "conflict"
    http_status = 409


class DatabaseBusy(Conflict):
    """Another writer held the database for longer than this request may wait; nothing was written."""

    code = "database_busy"


class LockWaitTooLong(DatabaseBusy):
    """A step run with short lock waits (``UnitOfWorkFactory.short_lock_waits``) waited longer for
    a row another transaction holds; its transaction rolled back: nothing was written."""


class WriteLost(LabelVaultError):
    """The database rolled back a group of writes that was about to commit (disk full, I/O error):
    nothing of it was written, and nothing of it was reported done. Try again."""

    code = "write_lost"
    http_status = 503


class QueueRefused(Conflict):
    """The queue has no task for this labeler; ``reason`` is shown to them."""

    code = "queue_refused"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, details={"reason": reason})
        self.reason = reason


class PayloadTooLarge(LabelVaultError):
    code = "payload_too_large"
    http_status = 413


class PredictorFailed(LabelVaultError):
    """A model predictor (workflow/predictions.py) failed, timed out or answered in a wrong shape."""

    code = "predictor_failed"
    http_status = 502


class CryptoError(LabelVaultError):
    code = "crypto_error"
    http_status = 500


class AuditTampered(LabelVaultError):
    """The audit log, an entry or a signed checkpoint failed verification; ``details`` says where."""

    code = "audit_tampered"
    http_status = 500
