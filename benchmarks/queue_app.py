"""What a next and a submit cost the whole application in process: the ASGI stack, no sockets.

    python benchmarks/queue_app.py                        # 10,000 tasks, SQLite, 20 labelers, 3,000 answers
    python benchmarks/queue_app.py --labelers 1           # one at a time: no write batches to share
    python benchmarks/queue_app.py --rounds 5             # five measured rounds, to see the spread

Builds an install as ``bench_queue.py`` does and the server's application (``server.build_app``:
API, pages, every middleware), then has ``--labelers`` coroutines on one event loop loop next ->
submit by calling the application as uvicorn does (an ASGI scope with the same headers as
``lean_http.py`` sends, a ``receive`` that hands over the body, a ``send`` that keeps the
response), without sockets, HTTP parsing or a second process. It prints the process's CPU time
per answer (all threads; on SQLite the steps run on the loop) for each measured round. Against
``queue_steps.py`` (the use cases alone) the difference is what the web stack costs; against
``bench_queue.py`` (over HTTP) what uvicorn and the sockets add. Comparing two versions of the code
in the same minutes (``PYTHONPATH=<other checkout>/src``) shows what a change to the stack saves
while the machine's own speed drifts. Tests never run this file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_queue

from labelvault.bootstrap import build_services
from labelvault.server import build_app
from labelvault.settings import Settings


class Exchange:
    """One request through the application: what uvicorn hands it and what it sends back."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def post(self, path: str, token: str, body: bytes) -> tuple[int, bytes]:
        scope = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000),
            "headers": [(b"host", b"127.0.0.1:8000"), (b"authorization", f"Bearer {token}".encode()),
                        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            "state": {},
        }
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)  # as a server does after the body: the client is still there
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        status, chunks = 0, []

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, b"".join(chunks)


async def labeler(exchange: Exchange, project_id: int, token: str, answers: list[int], stop: int) -> None:
    while len(answers) < stop:
        status, body = await exchange.post(f"/api/projects/{project_id}/tasks/next", token, b"{}")
        if status != 200:
            raise SystemExit(f"next answered {status}: {body[:200]!r}")
        task_id = json.loads(body)["task_id"]
        answer = json.dumps({"answer": {"sentiment": "positive"}, "idempotency_key": uuid.uuid4().hex}).encode()
        status, body = await exchange.post(f"/api/projects/{project_id}/tasks/{task_id}/answers", token, answer)
        if status not in (200, 201):
            raise SystemExit(f"submit answered {status}: {body[:200]!r}")
        answers.append(task_id)


async def measure(exchange: Exchange, project_id: int, tokens: list[str], answers: int) -> float:
    done: list[int] = []
    started = time.process_time()
    await asyncio.gather(*(labeler(exchange, project_id, token, done, answers) for token in tokens))
    return (time.process_time() - started) / len(done)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--labelers", type=int, default=20)
    parser.add_argument("--answers", type=int, default=3_000, help="Answers per measured round.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--overlap", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lv-queue-app-") as directory:
        install = bench_queue.build_install(Path(directory), None, None, tasks=args.tasks, labelers=args.labelers,
                                            overlap=args.overlap)
        services = build_services(Settings(home=install.home))
        try:
            exchange = Exchange(build_app(services))

            async def run() -> list[float]:
                await measure(exchange, install.project_id, install.tokens, 200)  # warm caches
                return [await measure(exchange, install.project_id, install.tokens, args.answers)
                        for _ in range(args.rounds)]

            rounds = asyncio.run(run())
        finally:
            services.close()
    figures = ", ".join(f"{1000 * cpu:.3f}" for cpu in rounds)
    print(f"{args.tasks:,} tasks, {args.labelers} labelers: CPU ms per answer (next + submit) by round: {figures}")


if __name__ == "__main__":
    main()
