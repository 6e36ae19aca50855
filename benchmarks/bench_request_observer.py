"""What the per-request observer costs: ``RequestObserver`` (request id, histogram, one JSON log line)
around a trivial ASGI app, in process, with ``logs.configure()`` and the handler writing to a file.

    python benchmarks/bench_request_observer.py                  # 20,000 requests, 7 rounds
    python benchmarks/bench_request_observer.py --requests 50000 --rounds 9

A round awaits the middleware ``--requests`` times in sequence on one event loop and measures the
process's CPU time; the same loop around the bare app is subtracted, so the figure is the
observer's own cost per request (the log line's formatting and write included). The best and the
median round are printed, as well as the JSON formatter alone. Tests never run this file.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from labelvault import logs
from labelvault.api.observability import RequestObserver

HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"user-agent", b"labelvault-sdk/1.0"),
    (b"accept", b"*/*"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"connection", b"keep-alive"),
    (b"authorization", b"Bearer 0123456789abcdef0123456789abcdef"),
    (b"content-type", b"application/json"),
    (b"content-length", b"42"),
]
ROUTE = SimpleNamespace(path="/api/projects/{project_id}/tasks/next")
START = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
BODY = {"type": "http.response.body", "body": b"{}"}


async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    scope["route"] = ROUTE  # what Starlette's router leaves for the observer
    await send(dict(START))
    await send(BODY)


async def receive() -> dict:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message: dict) -> None:
    return None


def scope(with_id: bool) -> dict:
    headers = [*HEADERS, (b"x-request-id", b"trace-42")] if with_id else HEADERS
    return {"type": "http", "method": "POST", "path": "/api/projects/1/tasks/next", "headers": headers}


async def run(target, n: int, with_id: bool) -> float:  # type: ignore[no-untyped-def]
    started = time.process_time()
    for _ in range(n):
        await target(scope(with_id), receive, send)
    return time.process_time() - started


def per_request_us(n: int, rounds: int, with_id: bool) -> list[float]:
    observed = RequestObserver(app)
    asyncio.run(run(observed, 2000, with_id))  # warm the caches and the histogram's children
    results = []
    for _ in range(rounds):
        bare = asyncio.run(run(app, n, with_id))
        full = asyncio.run(run(observed, n, with_id))
        results.append((full - bare) / n * 1e6)
    return results


def formatter_us(n: int, rounds: int) -> list[float]:
    formatter = logs.JsonFormatter()
    record = logging.getLogger("labelvault.http").makeRecord(
        "labelvault.http", logging.INFO, __file__, 1, "request", (), None,
        extra={"method": "POST", "route": ROUTE.path, "status": 200, "duration_ms": 0.42},
    )
    token = logs.request_id.set("0123456789abcdef0123456789abcdef")
    results = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(n):
            formatter.format(record)
        results.append((time.process_time() - started) / n * 1e6)
    logs.request_id.reset(token)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        logs.configure()
        handler = logging.getLogger().handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        with (Path(tmp) / "requests.log").open("w") as file:
            handler.setStream(file)
            for label, with_id in (("new request id", False), ("incoming x-request-id", True)):
                figures = per_request_us(args.requests, args.rounds, with_id)
                print(f"observer, {label}: best {min(figures):.1f} µs, median {statistics.median(figures):.1f} µs"
                      " per request")
            figures = formatter_us(args.requests, args.rounds)
            print(f"JsonFormatter.format alone: best {min(figures):.2f} µs, median {statistics.median(figures):.2f} µs")


if __name__ == "__main__":
    main()
