"""Where a next and a submit spend their CPU, step by step, in process (no HTTP, one thread).

    python benchmarks/queue_steps.py                      # 10,000 tasks, SQLite, 300 answers measured
    python benchmarks/queue_steps.py --tasks 1000000 --answers 500
    python benchmarks/queue_steps.py --batch 10           # in write batches of 10 (group commit)
    python benchmarks/queue_steps.py --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres

Builds an install as ``bench_queue.py`` does, then calls ``labeling.next_task`` and
``labeling.submit`` directly, with timers wrapped around the steps of both (repository methods,
hooks, the audit append, the ledger, the commit). For each step it prints the CPU time of the
calling thread (``time.thread_time``, so waiting for the disk or for another process does not
count) and the wall time, per answer. Steps nest (``audit append`` includes its own statements),
so the lines do not add up to the totals; the totals are the ``= ...`` lines. The SQL statements
run per answer are counted too, and first the latency of a one-row SQLite commit with
synchronous=FULL and NORMAL is probed (what one fsync of this disk costs). Tests never run this file.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_queue

from labelvault.bootstrap import build_services
from labelvault.settings import Settings
from labelvault.storage.pg_direct import DirectConnection

CPU: Counter[str] = Counter()
WALL: Counter[str] = Counter()
CALLS: Counter[str] = Counter()


def timed(label: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        cpu, wall = time.thread_time(), time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            CPU[label] += time.thread_time() - cpu
            WALL[label] += time.perf_counter() - wall
            CALLS[label] += 1

    return wrapper


def wrap(owner: Any, name: str, label: str) -> None:
    if hasattr(owner, name):
        setattr(owner, name, timed(label, getattr(owner, name)))


def instrument(services: Any) -> None:
    import labelvault.audit.log as audit_log
    import labelvault.storage.repositories as repositories
    import labelvault.storage.unit_of_work as unit_of_work
    import labelvault.workflow.labeling as labeling

    for name in ("__enter__", "__exit__", "commit", "cipher", "active_cipher"):
        wrap(unit_of_work.UnitOfWork, name, f"uow.{name.strip('_')}")
    for name in ("access_in", "load_project", "expire_leases", "check_active", "check_budget",
                 "open_task_content", "validate_answer", "allocate_ids", "on_task_complete"):
        wrap(labeling, name, name)
    wrap(audit_log, "append", "audit append")
    wrap(labeling.ledger, "append", "ledger append")
    wrap(repositories.UserRepository, "lock", "users.lock")
    for name in ("open_for", "take", "remove", "insert", "count_in_project", "expired"):
        wrap(repositories.LeaseRepository, name, f"leases.{name}")
    for name in ("get", "next_for", "adjust_slots"):
        wrap(repositories.TaskRepository, name, f"tasks.{name}")
    for name in ("by_idempotency_key", "of", "add"):
        wrap(repositories.AnswerRepository, name, f"answers.{name}")
    wrap(repositories.SkipRepository, "of", "skips.of")
    hooks = services.labeling.hooks
    for kind in ("eligibility", "pickers", "on_grant", "on_submit", "on_complete"):
        functions = getattr(hooks, kind, [])
        for index, function in enumerate(functions):
            functions[index] = timed(f"hook {kind}: {getattr(function, '__name__', function)}", function)


def commit_latency(directory: Path, synchronous: str, commits: int = 300) -> tuple[float, float]:
    """(p50, p99) ms of one tiny SQLite write transaction in WAL mode: what the disk's fsync costs."""
    import sqlite3

    connection = sqlite3.connect(directory / f"probe-{synchronous}.db", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous}")
    connection.execute("CREATE TABLE t (x INTEGER)")
    times = []
    for i in range(commits):
        started = time.perf_counter()
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO t VALUES (?)", (i,))
        connection.execute("COMMIT")
        times.append(1000 * (time.perf_counter() - started))
    connection.close()
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.99)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--answers", type=int, default=300)
    parser.add_argument("--labelers", type=int, default=10)
    parser.add_argument("--overlap", type=int, default=3)
    parser.add_argument("--sqlite-synchronous", default="FULL")
    parser.add_argument("--postgres-url", default=None,
                        help="Run on a fresh database of this PostgreSQL server (admin URL) instead of SQLite.")
    parser.add_argument("--batch", type=int, default=0,
                        help="Run the steps in write batches of this many (group commit, as the server on SQLite).")
    args = parser.parse_args()
    if args.batch > args.labelers:
        # A labeler's second next in one batch would return the lease of the first (no hoarding),
        # and the second submit of that task would be refused.
        parser.error(f"--batch {args.batch} needs at least as many --labelers (each takes one task per batch)")

    with tempfile.TemporaryDirectory(prefix="lv-queue-steps-") as directory:
        for mode in ("FULL", "NORMAL"):
            p50, p99 = commit_latency(Path(directory), mode)
            print(f"SQLite commit of one row, WAL, synchronous={mode}: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        scratch = bench_queue.PostgresScratch(args.postgres_url) if args.postgres_url else None
        install = bench_queue.build_install(Path(directory), scratch and scratch.app_url, scratch and scratch.owner_url,
                                            tasks=args.tasks, labelers=args.labelers, overlap=args.overlap)
        services = build_services(Settings(home=install.home, database_url=scratch and scratch.app_url,
                                           sqlite_synchronous=args.sqlite_synchronous))
        try:
            actors = [services.accounts.actor_for_token(token) for token in install.tokens]
            client_id, project_id = services.projects.locate(install.project_id)
            statements = Counter[str]()

            @event.listens_for(services.engine, "after_cursor_execute")
            def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
                statements[statement.split(None, 1)[0].upper()] += 1

            def loop(answers: int) -> None:
                labeling = services.labeling
                for start in range(0, answers, args.batch or 1):
                    group = range(start, min(start + (args.batch or 1), answers))
                    # As the server's group commit does: the steps of one batch share one commit.
                    batch = services.uow_factory.begin_batch() if args.batch else None
                    run = batch.run if batch is not None else (lambda function, *a, **k: function(*a, **k))
                    tasks = [run(timed("= next_task", labeling.next_task), actors[i % len(actors)], client_id,
                                 project_id) for i in group]
                    if batch is not None:
                        timed("batch commit", batch.commit)()
                        batch = services.uow_factory.begin_batch()
                        run = batch.run
                    for i, task in zip(group, tasks, strict=True):
                        run(timed("= submit", labeling.submit), actors[i % len(actors)], client_id, project_id,
                            task.task_id, {"sentiment": "positive"}, idempotency_key=uuid.uuid4().hex)
                        timed("= actor_for_token (once per HTTP request)", services.accounts.actor_for_token)(
                            install.tokens[i % len(actors)])
                    if batch is not None:
                        timed("batch commit", batch.commit)()

            instrument(services)
            loop(50)  # warm caches (compiled SQL, schemas, keys)
            CPU.clear(), WALL.clear(), CALLS.clear(), statements.clear()
            round_trips = DirectConnection.round_trips
            loop(args.answers)
            round_trips = DirectConnection.round_trips - round_trips
        finally:
            services.close()
            if scratch is not None:
                scratch.close()

    n = args.answers
    print(f"{args.tasks:,} tasks, overlap {args.overlap}, synchronous={args.sqlite_synchronous}; "
          f"per answer (one next + one submit), {n} answers:")
    print(f"  {'CPU ms':>8} {'wall ms':>8}  step (calls per answer)")
    for label in sorted(CPU, key=lambda k: -CPU[k]):
        print(f"  {1000 * CPU[label] / n:8.3f} {1000 * WALL[label] / n:8.3f}  {label} ({CALLS[label] / n:.1f})")
    print("SQL statements per answer: " + ", ".join(f"{k} {v / n:.1f}" for k, v in statements.most_common()))
    if args.postgres_url:  # each a pipeline or a single statement on the direct path (pg_direct.py)
        print(f"round trips per answer on PostgreSQL's direct path: {round_trips / n:.1f}")


if __name__ == "__main__":
    main()
