"""HTTP under the SDK: one httpx client, the token, retries with backoff, errors mapped once.

A request is retried only when repeating it cannot do anything twice: the method is idempotent
(GET, HEAD, OPTIONS, PUT, DELETE), the request carries an ``Idempotency-Key``, or the caller says
the endpoint is idempotent for this body (an import whose every row has an ``external_id``, a
suggestions request, which replaces a model's suggestions). It is retried after connection
errors and timeouts, and after 429, 502, 503 and 504, with exponential backoff and full jitter;
a ``Retry-After`` header (seconds or an HTTP date) is waited out instead.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

import labelvault
from labelvault.sdk.errors import ApiError, TransportError, error_from_response

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({429, 502, 503, 504})

Body = bytes | Callable[[], Iterable[bytes]] | None


@dataclass(frozen=True)
class RetryPolicy:
    """``retries`` further attempts after the first; delays grow as ``backoff * 2**n`` up to ``max_backoff``."""

    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 120.0  # a Retry-After longer than this is not waited for

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            wait = _retry_after(response)
            if wait is not None:
                return min(wait, self.max_retry_after)
        # Full jitter: many clients told to back off at once do not come back at once.
        return random.uniform(0, min(self.max_backoff, self.backoff * 2**attempt))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


class Transport:
    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float,
        retry: RetryPolicy,
        verify: bool | str = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.retry = retry
        self._sleep = sleep
        headers = {"User-Agent": f"labelvault-sdk/{labelvault.__version__}"}
        if token is not None:  # None: only to log in and get a token
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(
            base_url=url.rstrip("/") + "/api",
            headers=headers,
            timeout=timeout,
            verify=verify,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | list[tuple[str, Any]] | None = None,
        json: Any = None,
        content: Body = None,
        headers: dict[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send, retrying when safe; return the successful response or raise the mapped error."""
        with self._send(method, path, params=params, json=json, content=content, headers=headers,
                        idempotent=idempotent, stream=False) as response:
            return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        return response.json() if response.content else None

    @contextmanager
    def stream(self, method: str, path: str, *, params: dict[str, Any] | None = None) -> Iterator[httpx.Response]:
        """A successful streamed response (its body not read yet); errors are raised mapped."""
        with self._send(method, path, params=params, json=None, content=None, headers=None, idempotent=None,
                        stream=True) as response:
            yield response

    def retryable(self, method: str, headers: dict[str, str] | None, idempotent: bool | None) -> bool:
        if idempotent is not None:
            return idempotent
        if method.upper() in IDEMPOTENT_METHODS:
            return True
        return any(name.lower() == "idempotency-key" for name in headers or {})

    @contextmanager
    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Any,
        json: Any,
        content: Body,
        headers: dict[str, str] | None,
        idempotent: bool | None,
        stream: bool,
    ) -> Iterator[httpx.Response]:
        may_retry = self.retryable(method, headers, idempotent)
        attempts = 1 + (self.retry.retries if may_retry else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            # A body given as a factory is made afresh for each attempt (a file is read again).
            body = content() if callable(content) else content
            request = self.http.build_request(method, path, params=params, json=json, content=body,
                                              headers=headers)
            try:
                response = self.http.send(request, stream=stream)
            except httpx.TransportError as exc:
                if last:
                    tries = f" after {attempt + 1} attempts" if attempt else ""
                    raise TransportError(f"{method} {request.url} failed{tries}: {exc or type(exc).__name__}") from exc
                self._sleep(self.retry.delay(attempt, None))
                continue
            try:
                if response.status_code in RETRY_STATUSES and not last:
                    response.close()
                    self._sleep(self.retry.delay(attempt, response))
                    continue
                if response.is_error:
                    if stream:
                        response.read()
                    raise error_from_response(response)
                yield response
                return
            finally:
                response.close()
        raise AssertionError("unreachable")  # pragma: no cover


__all__ = ["ApiError", "RetryPolicy", "Transport"]
