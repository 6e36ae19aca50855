"""Calling a project's predictor with a batch of tasks: in-process entry points and HTTP endpoints.

The contract, the same for both kinds. A batch is a list of tasks
``{"id": 17, "external_id": "t-17" | None, "data": {...payload...}}``; the predictor answers one
prediction per task, in the same order:

- ``None``: no suggestion for this task;
- ``{"answer": <value of the question>, "score": 0.83}`` (``score`` from 0 to 1, optional);
- or a list of such objects (e.g. the top labels with their probabilities).

An entry point is called as ``predict(tasks, schema, question=..., options=...)`` and returns the
list. An HTTP predictor receives ``POST <url>`` with the JSON body ``{"model": ..., "question":
..., "schema": ..., "options": ..., "tasks": [...]}`` and answers ``{"predictions": [...]}``.

HTTP calls reuse the URL import's defences (io/fetch.py): the host must be on the allow-list, it
is resolved once and the connection goes to the checked address (private, loopback, link-local and
metadata addresses refused unless allowed), no redirect is followed, the answer is capped. Errors
name the status, never the body: an endpoint may echo task content back, and errors are logged.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import httpx
import orjson

from labelvault.domain.predictors import ENTRY_POINT_GROUP, PredictorConfig
from labelvault.errors import InvalidInput, PredictorFailed
from labelvault.io.fetch import FetchPolicy, _pinned_url, resolve_target

PredictFunction = Callable[..., Any]
Batch = list[dict[str, Any]]


@dataclass(frozen=True)
class PredictorCallPolicy:
    """What the install allows predictors: the HTTP hosts and the secrets their headers may carry."""

    fetch: FetchPolicy = field(default_factory=FetchPolicy)
    secrets: Mapping[str, str] | None = None


def load_entry_point(target: str) -> PredictFunction:
    """The callable named by an installed entry point of ``labelvault.predictors`` or ``module:function``."""
    if ":" not in target:
        found = [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == target]
        if not found:
            raise PredictorFailed(f"no entry point {target!r} is installed in the group {ENTRY_POINT_GROUP}")
        try:
            function = found[0].load()
        except Exception as exc:  # an installed plugin failing to import: say which and why
            raise PredictorFailed(f"entry point {target!r} failed to load: {type(exc).__name__}: {exc}") from exc
    else:
        module_name, _, attribute = target.partition(":")
        try:
            function = importlib.import_module(module_name)
        except ImportError as exc:
            raise PredictorFailed(f"cannot import the predictor module {module_name!r}: {exc}") from exc
        for part in attribute.split("."):
            function = getattr(function, part, None)
            if function is None:
                raise PredictorFailed(f"module {module_name!r} has no {attribute!r}")
    if not callable(function):
        raise PredictorFailed(f"predictor {target!r} is not callable")
    return function  # type: ignore[no-any-return]


def call_entry_point(
    function: PredictFunction, batch: Batch, schema: dict[str, Any], config: PredictorConfig
) -> list[Any]:
    try:
        result = function(batch, schema, question=config.question, options=dict(config.options))
    except PredictorFailed:
        raise
    except Exception as exc:
        # The type and message of the model's own error help its author; they are the author's words.
        raise PredictorFailed(f"predictor {config.target} raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(result, list | tuple):
        raise PredictorFailed(f"predictor {config.target} returned {type(result).__name__}, expected a list")
    return list(result)


def call_http(batch: Batch, schema: dict[str, Any], config: PredictorConfig, policy: PredictorCallPolicy) -> list[Any]:
    """POST the batch to the predictor's URL under the install's fetch policy."""
    fetch = policy.fetch
    try:
        host, address, _port = resolve_target(config.target, fetch)
    except InvalidInput as exc:
        # The same refusal as a URL import, naming the predictor's own allow-list setting.
        message = exc.message.replace("LABELVAULT_IMPORT_ALLOWED_HOSTS", "LABELVAULT_PREDICTOR_ALLOWED_HOSTS")
        raise InvalidInput(message, details={"field": "target"}) from None
    headers = {"Host": host, "Content-Type": "application/json", "Accept": "application/json"}
    if config.auth_secret:
        secret = (policy.secrets or {}).get(config.auth_secret)
        if secret is None:
            raise PredictorFailed(
                f"the secret {config.auth_secret!r} is not set (LABELVAULT_PREDICTOR_SECRETS)",
                details={"field": "auth_secret"},
            )
        headers[config.auth_header or "Authorization"] = secret
    body = orjson.dumps({
        "model": config.suggestion_model, "question": config.question, "schema": schema,
        "options": config.options, "tasks": batch,
    })
    try:
        with httpx.Client(timeout=config.timeout_seconds, follow_redirects=False, trust_env=False) as client:
            request = client.build_request("POST", _pinned_url(config.target, address), headers=headers,
                                           content=body, extensions={"sni_hostname": host})
            response = client.send(request, stream=True)
            try:
                if response.status_code != 200:
                    raise PredictorFailed(f"predictor {config.target} answered HTTP {response.status_code}")
                received = bytearray()
                for chunk in response.iter_bytes():
                    received += chunk
                    if len(received) > fetch.max_bytes:
                        raise PredictorFailed(f"predictor {config.target} answered more than {fetch.max_bytes} bytes")
            finally:
                response.close()
    except httpx.TimeoutException:
        raise PredictorFailed(f"predictor {config.target} did not answer within {config.timeout_seconds:g} s") from None
    except httpx.HTTPError as exc:
        raise PredictorFailed(f"predictor {config.target} could not be reached: {type(exc).__name__}") from None
    try:
        answer = orjson.loads(received)
    except orjson.JSONDecodeError:
        raise PredictorFailed(f"predictor {config.target} did not answer JSON") from None
    predictions = answer.get("predictions") if isinstance(answer, dict) else None
    if not isinstance(predictions, list):
        raise PredictorFailed(f'predictor {config.target} must answer {{"predictions": [...]}}')
    return predictions


class PredictorClient:
    """Calls one configured predictor; built per run (entry points are loaded once per run)."""

    def __init__(self, config: PredictorConfig, policy: PredictorCallPolicy) -> None:
        self.config = config
        self.policy = policy
        self._function: PredictFunction | None = None

    @property
    def destination(self) -> str:
        """Where task payloads go, for the audit log: an entry point's name or the URL's host."""
        if self.config.kind == "http":
            return str(httpx.URL(self.config.target).host)
        return self.config.target

    def check(self) -> None:
        """Fail before anything is read or sent: the entry point loads, or the URL passes the policy."""
        if self.config.kind == "entry_point":
            self._function = load_entry_point(self.config.target)
        else:
            try:
                resolve_target(self.config.target, self.policy.fetch)
            except InvalidInput as exc:
                message = exc.message.replace("LABELVAULT_IMPORT_ALLOWED_HOSTS", "LABELVAULT_PREDICTOR_ALLOWED_HOSTS")
                raise InvalidInput(message, details={"field": "target"}) from None
            if self.config.auth_secret and self.config.auth_secret not in (self.policy.secrets or {}):
                raise PredictorFailed(
                    f"the secret {self.config.auth_secret!r} is not set (LABELVAULT_PREDICTOR_SECRETS)",
                    details={"field": "auth_secret"},
                )

    def predict(self, batch: Batch, schema: dict[str, Any]) -> list[Any]:
        if self.config.kind == "entry_point":
            if self._function is None:
                self._function = load_entry_point(self.config.target)
            return call_entry_point(self._function, batch, schema, self.config)
        return call_http(batch, schema, self.config, self.policy)
