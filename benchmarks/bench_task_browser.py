"""How long a manager waits for a project's task list, by state and by external id, and for one task.

    python benchmarks/bench_task_browser.py                     # 1,000,000 tasks, SQLite
    python benchmarks/bench_task_browser.py --tasks 10000
    python benchmarks/bench_task_browser.py --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres

Builds an install as ``bench_queue.py`` does (one project, overlap 3), answers a few tasks so that
every state has members, then times ``TaskService.list`` (a page of 50 and the total, as the web
page asks) with no filter, each state and an external id, and ``TaskService.open``: the median
and the slowest of seven calls, in process. Tests never run this file.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_queue

from labelvault.bootstrap import build_services
from labelvault.settings import Settings

REPEATS = 7
PAGE = 50


def timed(call: Callable[[], Any]) -> tuple[float, float]:
    """(median, slowest) wall milliseconds of ``REPEATS`` calls."""
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--postgres-url", default=None, help="An admin URL: a fresh database is made and dropped.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        database_url = owner_url = None
        admin = None
        if args.postgres_url:
            name = f"lv_bench_tasks_{uuid.uuid4().hex[:8]}"
            admin = create_engine(args.postgres_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            database_url = owner_url = str(admin.url.set(database=name).render_as_string(hide_password=False))
        try:
            install = bench_queue.build_install(Path(directory), database_url, owner_url, tasks=args.tasks,
                                                labelers=3, overlap=3)
            services = build_services(Settings(home=install.home, database_url=database_url,
                                               migration_database_url=owner_url))
            try:
                measure(services, install.project_id, args.tasks)
            finally:
                services.close()
        finally:
            if admin is not None:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()


def measure(services: Any, project_id: int, tasks: int) -> None:
    operator = services.accounts.first_operator()
    client_id, _ = services.projects.locate(project_id)
    labelers = [services.accounts.actor_by_username(f"labeler{i:03d}") for i in range(3)]
    for labeler in labelers:  # the first two tasks get their three answers: complete
        for _ in range(2):
            leased = services.labeling.next_task(labeler, client_id, project_id)
            services.labeling.submit(labeler, client_id, project_id, leased.task_id, {"sentiment": "positive"})
    middle = bench_queue.task_rows(1, tasks // 2)
    external_id = next(iter(middle))["external_id"]
    first_id = services.tasks.list(operator, client_id, project_id, limit=1)[0][0].id

    print(f"{tasks:,} tasks; median / slowest of {REPEATS} calls, ms")
    for label, state in (("all", None), ("open", "open"), ("complete", "complete"), ("in_review", "in_review")):
        for offset in (0, tasks // 2):
            median, slowest = timed(lambda state=state, offset=offset: services.tasks.list(
                operator, client_id, project_id, state=state, offset=offset, limit=PAGE))
            print(f"  list {label:9} page at offset {offset:>9,}: {median:8.1f} / {slowest:8.1f}")
    median, slowest = timed(lambda: services.tasks.list(operator, client_id, project_id, external_id=external_id))
    print(f"  list by external id             : {median:8.1f} / {slowest:8.1f}")
    median, slowest = timed(lambda: services.tasks.open(operator, client_id, project_id, first_id))
    print(f"  open one task (audited)         : {median:8.1f} / {slowest:8.1f}")


if __name__ == "__main__":
    main()
