"""The reviewer's queue, in process: what a next and a decision cost, and how the pick of the next
task grows with the pending tasks ahead of it that the reviewer may not take.

    python benchmarks/review_steps.py                          # SQLite, 20,000 tasks pending review
    python benchmarks/review_steps.py --ahead 0,1000,5000,19000 --decisions 200
    python benchmarks/review_steps.py --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres

Builds an install as ``bench_queue.py`` does (on PostgreSQL a fresh database, the app connecting as
a role without ownership, ``ANALYZE`` after the build), then one project per scenario, each with
``--ahead`` + ``--decisions`` + 20 tasks, policy "all", overlap 1, a rate per answer and per review:

- ``answered``: the reviewer (who also labels) answered the oldest AHEAD tasks, a labeler the rest;
- ``held``: a labeler answered every task, and the oldest AHEAD are held by AHEAD other reviewers
  (unexpired review leases).

Every task is then pending review. The answers and leases are written straight into the tables
(sealed as the queue seals them) rather than through AHEAD nexts and submits: the state is what
matters here, not how it came about. Per scenario the reviewer then runs 20 nexts and decisions to
warm up and ``--decisions`` measured ones (next, then accept), and the script prints per step the
statements sent (``before_cursor_execute``), those on SQLAlchemy's regular path rather than the
prepared one (``before_execute``), PostgreSQL's round trips (``DirectConnection.round_trips``), and
the CPU (``time.thread_time``) and wall time of the step and of the pick alone
(``ReviewRepository.next_for``). Last, the pick's query plan in the largest ``answered`` scenario
(``EXPLAIN QUERY PLAN`` / ``EXPLAIN (ANALYZE, BUFFERS)``), as the statement was sent. Tests never
run this file.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import create_engine, event, func, insert, text, update
from sqlalchemy.pool import NullPool

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_queue

from labelvault.bootstrap import build_services
from labelvault.settings import Settings
from labelvault.storage.direct_path import numbered
from labelvault.storage.ids import allocate_ids
from labelvault.storage.models import Answer, ReviewLease, Task, User, utcnow
from labelvault.storage.pg_direct import DirectConnection
from labelvault.workflow.projects import ProjectSettings

WARM = 20


class Tally:
    """Statements, regular-path statements, round trips, CPU and wall time of the calls measured."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self.active: list[str] = []  # the calls being measured, outermost first (a pick is in a next)

    def measure(self, label: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self.active.append(label)
        trips, cpu, wall = DirectConnection.round_trips, time.thread_time(), time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            self.seconds[f"{label} cpu"] += time.thread_time() - cpu
            self.seconds[f"{label} wall"] += time.perf_counter() - wall
            self.counts[f"{label} round trips"] += DirectConnection.round_trips - trips
            self.counts[f"{label} calls"] += 1
            self.active.pop()


def fill_project(services: Any, client_id: int, project_id: int, *, reviewer_id: int, labeler_id: int,
                 kind: str, ahead: int, holders: list[int]) -> None:
    """Every task of the project answered once and pending review (see the module docstring)."""
    now = utcnow()
    with services.uow_factory.for_client(client_id, write=True) as uow:
        task_ids = [t.id for t in uow.session.query(Task.id).filter(Task.project_id == project_id).order_by(Task.id)]
        key_id, cipher = uow.active_cipher()
        answer_ids = allocate_ids(uow.session, Answer, len(task_ids))
        rows = []
        for index, (task_id, answer_id) in enumerate(zip(task_ids, answer_ids, strict=True)):
            user_id = reviewer_id if kind == "answered" and index < ahead else labeler_id
            rows.append({
                "id": answer_id, "client_id": client_id, "project_id": project_id, "task_id": task_id,
                "user_id": user_id, "data_key_id": key_id, "status": "submitted", "started_at": now,
                "created_at": now, "time_spent_ms": 1000,
                "value": cipher.seal("answer.value", answer_id, orjson.dumps({"sentiment": "positive"})),
            })
        uow.session.execute(insert(Answer), rows)
        # Numbered as the submits would number them (review_seq): on PostgreSQL by this transaction.
        postgresql = uow.session.get_bind().dialect.name == "postgresql"
        uow.session.execute(update(Task).where(Task.project_id == project_id).values(
            answer_count=1, open_slots=0, review_state="pending",
            review_seq=func.txid_current() if postgresql else Task.id))
        if kind == "held":
            uow.session.execute(insert(ReviewLease), [
                {"client_id": client_id, "project_id": project_id, "task_id": task_id, "user_id": holder,
                 "started_at": now, "expires_at": now + timedelta(hours=1)}
                for task_id, holder in zip(task_ids[:ahead], holders, strict=False)
            ])
        uow.commit()


def explain(services: Any, statement: str, parameters: Any) -> list[str]:
    engine = services.engine
    if engine.dialect.name == "postgresql" and isinstance(parameters, list):  # the direct path's values
        parameters = dict(zip(numbered(statement)[1], parameters, strict=True))
    elif isinstance(parameters, list):
        parameters = tuple(parameters)
    prefix = "EXPLAIN (ANALYZE, BUFFERS) " if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            client = parameters.get("scope_client_id") or parameters.get("param_1")
            connection.execute(text("SELECT set_config('app.client_id', :c, true)"), {"c": str(client)})
        rows = connection.exec_driver_sql(prefix + statement, parameters).all()
        connection.rollback()
    return [" | ".join(str(value) for value in row) for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ahead", default="0,1000,5000,19000",
                        help="comma-separated: pending tasks ahead that the reviewer may not take")
    parser.add_argument("--decisions", type=int, default=200)
    parser.add_argument("--postgres-url", default=None,
                        help="Run on a fresh database of this PostgreSQL server (admin URL) instead of SQLite.")
    args = parser.parse_args()
    aheads = [int(a) for a in args.ahead.split(",")]

    with tempfile.TemporaryDirectory(prefix="lv-review-steps-") as directory:
        scratch = bench_queue.PostgresScratch(args.postgres_url) if args.postgres_url else None
        install = bench_queue.build_install(Path(directory), scratch and scratch.app_url,
                                            scratch and scratch.owner_url, tasks=0, labelers=1, overlap=1,
                                            analyze=False)
        services = build_services(Settings(home=install.home, database_url=scratch and scratch.app_url))
        try:
            accounts = services.accounts
            operator = accounts.first_operator()
            client_id, _ = services.projects.locate(install.project_id)
            accounts.create_user(operator, "rev", None)
            for role in ("reviewer", "labeler"):
                accounts.grant_role(operator, client_id, "rev", role)
            reviewer = accounts.actor_by_username("rev")
            labeler = accounts.actor_by_username("labeler000")
            with services.uow_factory.system(write=True) as uow:
                uow.session.execute(insert(User), [{"username": f"holder{i:05d}", "display_name": ""}
                                                   for i in range(max(aheads))])
                holders = [u.id for u in uow.session.query(User.id).filter(User.username.like("holder%"))
                           .order_by(User.id)]
                uow.commit()
            scenarios = []
            for kind in ("answered", "held"):
                for ahead in aheads:
                    if kind == "held" and ahead == 0:
                        continue
                    slug = f"{kind}-{ahead}"
                    project = services.projects.create(operator, client_id, slug=slug, name=slug,
                                                       schema=bench_queue.SCHEMA, overlap=1)
                    services.projects.update(operator, client_id, project.id, ProjectSettings(
                        review_policy="all", rate_per_answer=5, rate_per_review=3))
                    count = ahead + args.decisions + WARM
                    services.imports.import_rows(operator, client_id, project.id, bench_queue.task_rows(count))
                    fill_project(services, client_id, project.id, reviewer_id=reviewer.user_id,
                                 labeler_id=labeler.user_id, kind=kind, ahead=ahead, holders=holders)
                    scenarios.append((kind, ahead, project.id))
                    print(f"  built {slug}: {count:,} tasks pending review", flush=True)
            if scratch is not None:
                engine = create_engine(scratch.owner_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
                with engine.connect() as connection:
                    connection.execute(text("ANALYZE"))
                engine.dispose()

            tally = Tally()
            sent: list[tuple[str | None, str, Any]] = []

            @event.listens_for(services.engine, "before_cursor_execute")
            def on_cursor(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
                for label in tally.active:
                    tally.counts[f"{label} statements"] += 1
                if tally.active:
                    sent.append((tally.active[-1], statement, parameters))

            @event.listens_for(services.engine, "before_execute")
            def on_regular(*_: Any) -> None:
                for label in tally.active:
                    tally.counts[f"{label} regular path"] += 1

            import labelvault.storage.repositories as repositories

            original_next_for = repositories.ReviewRepository.next_for

            def next_for(self: Any, *a: Any, **k: Any) -> Any:
                return tally.measure("pick", original_next_for, self, *a, **k)

            repositories.ReviewRepository.next_for = next_for  # type: ignore[method-assign]
            reviews = services.reviews
            plans: list[str] = []
            print(f"{'scenario':<16} {'step':<7} {'stmts':>6} {'regular':>7} {'trips':>6} {'cpu ms':>7} {'wall ms':>8}")
            for kind, ahead, project_id in scenarios:
                for _ in range(WARM):
                    item = reviews.next_item(reviewer, client_id, project_id)
                    reviews.decide(reviewer, client_id, project_id, item.task_id, decision="accept")
                tally.counts.clear(), tally.seconds.clear(), sent.clear()
                for _ in range(args.decisions):
                    item = tally.measure("next", reviews.next_item, reviewer, client_id, project_id)
                    tally.measure("decide", reviews.decide, reviewer, client_id, project_id, item.task_id,
                                  decision="accept")
                for step in ("next", "decide", "pick"):
                    calls = tally.counts[f"{step} calls"] or 1
                    print(f"{kind + '-' + str(ahead):<16} {step:<7} {tally.counts[f'{step} statements'] / calls:6.1f} "
                          f"{tally.counts[f'{step} regular path'] / calls:7.1f} "
                          f"{tally.counts[f'{step} round trips'] / calls:6.1f} "
                          f"{1000 * tally.seconds[f'{step} cpu'] / calls:7.3f} "
                          f"{1000 * tally.seconds[f'{step} wall'] / calls:8.3f}", flush=True)
                if kind == "answered" and ahead == max(aheads):
                    picks = [(s, p) for label, s, p in sent if label == "pick" and s.lstrip().upper().startswith(
                        ("SELECT", "WITH"))]
                    if picks:
                        plans = [picks[-1][0], *explain(services, *picks[-1])]
            repositories.ReviewRepository.next_for = original_next_for  # type: ignore[method-assign]
            print(f"\nThe pick's statement and plan, answered-{max(aheads)}:")
            for line in plans:
                print("  " + line)
        finally:
            services.close()
            if scratch is not None:
                scratch.close()


if __name__ == "__main__":
    main()
