"""A project's predictor: the model that suggests answers, and who may name which kind.

Two kinds:

- ``entry_point``: a Python callable in the server's environment, named as an installed entry
  point of the group ``labelvault.predictors`` (``sentiment-v2``) or as ``module:function``.
- ``http``: a URL that receives batches of tasks as a JSON POST; its host must be on the
  install's allow-list (``LABELVAULT_PREDICTOR_ALLOWED_HOSTS``), checked when it is called.

A predictor sees task payloads, so naming one is managing the project (``PredictorPolicy``), and
running arbitrary code is more than that: a ``module:function`` target runs any importable
function inside the server, so only an operator may set one. Installed entry points were put there
by whoever installed the server, so a manager may choose among them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from labelvault.domain.access import ClientAccess, ProjectPolicy
from labelvault.domain.schema import ProjectSchema, quote
from labelvault.errors import InvalidInput, PermissionDenied

PREDICTOR_KINDS = ("entry_point", "http")
ENTRY_POINT_GROUP = "labelvault.predictors"
MAX_BATCH_SIZE = 1000
MAX_TIMEOUT_SECONDS = 600.0
MAX_OPTIONS_BYTES = 16_384

_MODULE_FUNCTION = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")
_ENTRY_POINT_NAME = re.compile(r"^[A-Za-z0-9][\w.\-]*$")
_NAME = re.compile(r"^[A-Za-z0-9][\w.\-]*$")
_HEADER = re.compile(r"^[A-Za-z0-9\-]{1,100}$")


@dataclass(frozen=True, slots=True)
class PredictorConfig:
    """What a project's predictor is; ``auth_secret`` names a secret of the install, not its value."""

    kind: str
    target: str
    question: str
    model_name: str = ""
    model_version: str = "1"
    batch_size: int = 64
    timeout_seconds: float = 30.0
    auth_header: str | None = None
    auth_secret: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def runs_module_function(self) -> bool:
        return self.kind == "entry_point" and ":" in self.target

    @property
    def suggestion_model(self) -> str:
        """The ``model`` written on its suggestions: name and version, so a reader can tell them apart."""
        return f"{self.model_name}@{self.model_version}"


def _invalid(field_name: str, message: str) -> InvalidInput:
    return InvalidInput(message, details={"field": field_name})


def check_predictor(config: PredictorConfig, schema: ProjectSchema) -> PredictorConfig:
    """Validate a predictor against the project's schema; returns it with defaults filled in."""
    if config.kind not in PREDICTOR_KINDS:
        raise _invalid("kind", f"kind must be one of {', '.join(PREDICTOR_KINDS)}, not {config.kind!r}")
    target = config.target.strip()
    if config.kind == "entry_point":
        if not (_MODULE_FUNCTION.match(target) or _ENTRY_POINT_NAME.match(target)):
            raise _invalid(
                "target",
                f"an entry_point predictor is an entry point name of the group {ENTRY_POINT_GROUP} "
                f"or module:function, not {target!r}",
            )
    else:
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _invalid("target", "an http predictor needs an http(s) URL with a host")
        if parts.username or parts.password:
            raise _invalid("target", "put credentials in auth_secret (a secret of the install), not in the URL")
    if not schema.has_question(config.question):
        names = ", ".join(q.name for q in schema.questions)
        raise _invalid("question", f"no question {quote(config.question)} in the schema (it has {names})")
    name = config.model_name.strip() or _default_name(config.kind, target)
    if not _NAME.match(name) or len(name) > 60:
        raise _invalid("model_name", "model_name is 1 to 60 letters, digits, '.', '_' or '-'")
    version = config.model_version.strip()
    if not version or len(version) > 60 or not _NAME.match(version):
        raise _invalid("model_version", "model_version is 1 to 60 letters, digits, '.', '_' or '-'")
    if not 1 <= config.batch_size <= MAX_BATCH_SIZE:
        raise _invalid("batch_size", f"batch_size must be between 1 and {MAX_BATCH_SIZE}")
    if not 0 < config.timeout_seconds <= MAX_TIMEOUT_SECONDS:
        raise _invalid("timeout_seconds", f"timeout_seconds must be above 0 and at most {MAX_TIMEOUT_SECONDS:g}")
    if config.auth_secret is not None:
        if config.kind != "http":
            raise _invalid("auth_secret", "auth_secret is for http predictors")
        if not _NAME.match(config.auth_secret):
            raise _invalid("auth_secret", "auth_secret names a secret of LABELVAULT_PREDICTOR_SECRETS")
    header = config.auth_header or ("Authorization" if config.auth_secret else None)
    if header is not None and not _HEADER.match(header):
        raise _invalid("auth_header", "auth_header must be a header name (letters, digits, '-')")
    if not isinstance(config.options, dict):
        raise _invalid("options", "options must be a JSON object")
    try:
        size = len(json.dumps(config.options))
    except (TypeError, ValueError):
        raise _invalid("options", "options must be plain JSON") from None
    if size > MAX_OPTIONS_BYTES:
        raise _invalid("options", f"options must be at most {MAX_OPTIONS_BYTES} bytes of JSON")
    return PredictorConfig(
        kind=config.kind, target=target, question=config.question, model_name=name, model_version=version,
        batch_size=config.batch_size, timeout_seconds=float(config.timeout_seconds), auth_header=header,
        auth_secret=config.auth_secret, options=dict(config.options),
    )


def _default_name(kind: str, target: str) -> str:
    if kind == "http":
        return (urlsplit(target).hostname or "http")[:60]
    return re.sub(r"[^\w.\-]", "-", target.rsplit(":", 1)[-1])[:60] or "predictor"


class PredictorPolicy:
    @staticmethod
    def view(access: ClientAccess) -> None:
        ProjectPolicy.manage(access)

    @staticmethod
    def configure(access: ClientAccess, config: PredictorConfig) -> None:
        ProjectPolicy.manage(access)
        if config.runs_module_function and not access.actor.is_operator:
            raise PermissionDenied(
                "a module:function predictor runs code inside the server: only an operator may set one "
                f"(managers may choose an installed entry point of {ENTRY_POINT_GROUP}, or an http predictor)"
            )

    @staticmethod
    def run(access: ClientAccess) -> None:
        # Sending the project's tasks to a model is handling its data in bulk, as an export is.
        ProjectPolicy.manage(access)
