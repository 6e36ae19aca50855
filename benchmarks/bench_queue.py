"""The labeling queue under load: next and submit over HTTP against a real server process.

    python benchmarks/bench_queue.py                                  # SQLite, 10k and 1M tasks, 100 labelers
    python benchmarks/bench_queue.py --database postgresql            # PostgreSQL, 4 server workers
    python benchmarks/bench_queue.py --quick                          # small numbers, under a minute
    python benchmarks/bench_queue.py --json out.json                  # also keep every figure as JSON

For each project size (``--tasks``, default 10,000 and 1,000,000) the script builds a new install
in a temporary directory with the package's own Python API (``bootstrap.initialize``, clients,
accounts, projects, ``imports.import_rows`` in batches of 100,000 rows): one client, one text
classification project (overlap 3, a rate per answer and a budget cap, so the ledger and the budget
check run as in production), and ``--labelers`` labelers, each with their own API token. It then
starts ``labelvault serve`` in a subprocess on a free loopback port (``--workers`` processes) and
runs three load phases against it, each ``--warmup`` + ``--seconds`` long (a size with fewer than
a million answer slots gets a new install and server per phase, so that no phase runs out of work):

- single: one labeler, no pause: the time a request takes when nothing else is queued;
- paced: every labeler loops next -> think (a random 0.5 to 1.5 s) -> submit, like a person;
- saturation: the same labelers with no pause: answers per second at saturation.

With ``--submit-and-next`` the labelers submit with ``?next=true`` and take their next task from
the submit's response (one request per task, as the browser's labeling screen and the SDK do).

The labelers are coroutines on one uvloop event loop (one keep-alive connection each, through
``lean_http.py``: httpx cost as much CPU per request as the server, on the same CPUs); their
starts are spread over the first pause so they do not arrive in lockstep. Latency is measured by the
client, from sending a request to having read its response, so it includes the loopback round trip
and the client's own scheduling (the loop's lag is reported, to show that part is small). Requests
started during the warm-up are left out of the figures. Each phase ends by itself: a labeler stops
starting new tasks at the deadline (the task in hand is still submitted, so no lease is left open),
every request has a timeout, and the phase as a whole has a hard limit.

After each phase the answers in the database are counted: never fewer than the submits that were
acknowledged (more only by submits the client gave up on that the server still committed). On
PostgreSQL the server's connections are sampled every 50 ms (state, wait event, and for lock waits
the statement that waits). The server's CPU time (its processes, workers included), the load generator's and the
whole machine's busy share are read from /proc, so a reader can tell a slow server from a full
machine. On PostgreSQL a fresh database and an application role (not owner, so row-level security
applies as in production) are created on the local server and dropped at the end; after the
import the database is analysed (``--no-analyze`` to measure a fresh import before autovacuum has
gathered statistics), and ``--launcher uvicorn`` runs the same app as ``labelvault serve --workers N``
with a longer worker health check, for a crowded machine (see ``--help``).

Tests never run this file and never assert times.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import uvloop
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from labelvault.bootstrap import initialize
from labelvault.settings import Settings
from labelvault.workflow.projects import ProjectSettings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lean_http import HTTPFailure, LeanClient

SCHEMA = {
    "fields": [{"name": "text", "kind": "text"}],
    "questions": [{"name": "sentiment", "type": "label", "labels": ["positive", "negative", "neutral"]}],
}
LABELS = ["positive", "negative", "neutral"]
OPENINGS = ["The blender", "This kettle", "Our new vacuum", "The headphones", "My phone case", "The desk lamp"]
VERDICTS = [
    "is loud but crushes ice in seconds.",
    "stopped working after two weeks; support never answered.",
    "does what it says, nothing more and nothing less.",
    "is the best purchase I made this year, I bought a second one.",
    "arrived scratched and the box was open.",
]
IMPORT_BATCH = 100_000
REQUEST_TIMEOUT = 30.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- The install: a temporary home, a database, one client, one project, labelers with tokens.


@dataclass
class Install:
    home: Path
    database_url: str  # what the server connects with (the app role on PostgreSQL)
    owner_url: str | None  # PostgreSQL: the owner, for migrations and for counting from outside
    project_id: int
    tokens: list[str]
    app_role: str | None  # PostgreSQL: the role the server connects as
    build_seconds: float
    import_seconds: float

    @property
    def inspect_url(self) -> str:
        return self.owner_url or self.database_url


class PostgresScratch:
    """A fresh database and app role on the local server, dropped (with force) on close."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = make_url(admin_url)
        self.admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        suffix = uuid.uuid4().hex[:10]
        self.name = f"lv_bench_{suffix}"
        self.role = f"lv_bench_app_{suffix}"
        with self.admin.connect() as connection:
            connection.execute(text(f'CREATE ROLE "{self.role}" LOGIN NOSUPERUSER NOBYPASSRLS'))
            connection.execute(text(f'CREATE DATABASE "{self.name}"'))
        owner = self.admin_url.set(database=self.name)
        self.owner_url = owner.render_as_string(hide_password=False)
        self.app_url = owner.set(username=self.role, password=None).render_as_string(hide_password=False)

    def close(self) -> None:
        with self.admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
            connection.execute(text(f'DROP ROLE IF EXISTS "{self.role}"'))
        self.admin.dispose()


def task_rows(count: int, start: int = 0) -> Iterator[dict[str, Any]]:
    for i in range(start, start + count):
        text_ = f"{OPENINGS[i % len(OPENINGS)]} {VERDICTS[(i // 7) % len(VERDICTS)]} (review {i})"
        yield {"external_id": f"review-{i:07d}", "data": {"text": text_}}


def build_install(directory: Path, database_url: str | None, owner_url: str | None, *, tasks: int, labelers: int,
                  overlap: int, analyze: bool = True) -> Install:
    started = time.perf_counter()
    settings = Settings(home=directory / "home", database_url=database_url, migration_database_url=owner_url)
    services = initialize(settings, "operator", "benchmark-password")
    try:
        accounts = services.accounts
        operator = accounts.first_operator()
        client_id = services.clients.create(operator, "acme", "Acme AI").id
        project = services.projects.create(operator, client_id, slug="reviews", name="Product reviews",
                                           schema=SCHEMA, overlap=overlap)
        # Pay per answer under a (far) budget cap: the ledger append and the budget check run as they would.
        services.projects.update(operator, client_id, project.id,
                                 ProjectSettings(rate_per_answer=5, budget_cap=10**12))
        imported = time.perf_counter()
        for start in range(0, tasks, IMPORT_BATCH):
            count = min(IMPORT_BATCH, tasks - start)
            report = services.imports.import_rows(operator, client_id, project.id, task_rows(count, start))
            assert report.created == count, report.to_dict()
            print(f"  imported {start + count:,} / {tasks:,} tasks", flush=True)
        import_seconds = time.perf_counter() - imported
        tokens = []
        for i in range(labelers):
            name = f"labeler{i:03d}"
            accounts.create_user(operator, name, None)
            accounts.grant_role(operator, client_id, name, "labeler")
            tokens.append(accounts.issue_token(operator, "bench", for_username=name, scopes=["label"]).token)
    finally:
        services.close()
    if owner_url and analyze:
        # PostgreSQL plans the queue from table statistics; right after a big import there are none
        # until autovacuum's ANALYZE comes round (a minute or more), and with none the planner picks a
        # plan that reads and sorts the whole project (see docs/benchmarks.md). Measure steady state.
        engine = create_engine(owner_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(text("ANALYZE"))
        finally:
            engine.dispose()
    app_role = make_url(database_url).username if owner_url and database_url else None
    return Install(settings.home, settings.resolved_database_url, owner_url, project.id, tokens, app_role,
                   time.perf_counter() - started, import_seconds)


def count_answers(install: Install) -> int:
    engine = create_engine(install.inspect_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return int(connection.execute(
                text("SELECT count(*) FROM answers WHERE project_id = :p"), {"p": install.project_id}).scalar_one())
    finally:
        engine.dispose()


def open_leases(install: Install) -> int:
    engine = create_engine(install.inspect_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return int(connection.execute(
                text("SELECT count(*) FROM leases WHERE project_id = :p"), {"p": install.project_id}).scalar_one())
    finally:
        engine.dispose()


# --- The server: `labelvault serve` in a subprocess (its own process group), on a free loopback port.


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, install: Install, workers: int, log_path: Path, synchronous: str,
                 launcher: str = "serve") -> None:
        self.install = install
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.synchronous = synchronous
        self.launcher = launcher
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        env = {
            **os.environ,
            "LABELVAULT_HOME": str(self.install.home),
            "LABELVAULT_DATABASE_URL": self.install.database_url,
            "LABELVAULT_SQLITE_SYNCHRONOUS": self.synchronous,
        }
        if self.install.owner_url:
            env["LABELVAULT_MIGRATION_DATABASE_URL"] = self.install.owner_url
        command = [sys.executable, "-m", "labelvault.cli.main", "serve", "--port", str(self.port)]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        if self.launcher == "uvicorn":
            # What `labelvault serve --workers N` runs (server.app_from_environment in N uvicorn workers),
            # but with a longer worker health check: on a crowded machine a worker can take more than
            # uvicorn's default 5 s to import the app, and is then killed and restarted, forever.
            command = [sys.executable, "-m", "uvicorn", "labelvault.server:app_from_environment", "--factory",
                       "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
                       "--timeout-worker-healthcheck", "120", "--no-access-log", "--log-level", "warning"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + (60 if self.workers == 1 else 180)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            hint = " (try --launcher uvicorn: see its help)" if self.workers > 1 else ""
            raise RuntimeError(f"server did not start in time{hint}: {self.log_path.read_text()[-2000:]}")
        if self.workers > 1:
            time.sleep(2.0)  # the other workers finish starting (the warm-up absorbs the rest)
        return self

    def pids(self) -> list[int]:
        """The server process and all its descendants (uvicorn's workers)."""
        if self.process is None:
            return []
        found, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            with contextlib.suppress(OSError):
                for task in Path(f"/proc/{pid}/task").iterdir():
                    todo.extend(int(c) for c in (task / "children").read_text().split())
        return found

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)  # our own process group only
            self.process.wait(timeout=10)


# --- CPU accounting from /proc.


def process_cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / CLK_TCK


def postgres_cpu_seconds() -> float | None:
    """CPU of the PostgreSQL server on this machine (every ``postgres`` process, plus what its
    postmaster collected from children that ended, so a backend that exits in a phase still
    counts); None if none runs here. Its difference over a phase is the database's own share."""
    total, found = 0, False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            text = stat.read_text()
            name = text[text.index("(") + 1:text.rindex(")")]
            if name != "postgres":
                continue
            fields = text.rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
            parent = Path(f"/proc/{fields[1]}/comm")
            if not parent.exists() or parent.read_text().strip() != "postgres":  # the postmaster
                total += int(fields[13]) + int(fields[14])  # cutime, cstime: its children that ended
            found = True
    return total / CLK_TCK if found else None


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # user .. steal (guest time is counted in user already)
    return total - idle, total


class WaitSampler:
    """PostgreSQL: what the server's connections are doing, sampled every 50 ms during a phase.

    Counts (state, wait event) of the application role's backends, and for lock waits the statement
    that waits: a lock everybody queues on shows up here and in no latency figure.
    """

    def __init__(self, url: str, role: str) -> None:
        self.engine = create_engine(url, poolclass=NullPool)
        self.role = role
        self.counts: Counter[str] = Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> WaitSampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        query = text(
            "SELECT state, coalesce(wait_event_type || ':' || wait_event, 'on CPU'), left(query, 70)"
            " FROM pg_stat_activity WHERE usename = :role AND state <> 'idle' AND pid <> pg_backend_pid()"
        )
        with self.engine.connect() as connection:
            while not self._stop.wait(0.05):
                rows = connection.execute(query, {"role": self.role}).all()
                connection.commit()
                self.samples += 1
                for state, wait, statement in rows:
                    key = f"{state} / {wait}"
                    if wait.startswith("Lock:"):
                        key += f" / {' '.join(statement.split())}"
                    self.counts[key] += 1

    def stop(self) -> dict[str, float]:
        """Mean number of backends in each (state / wait) over the samples, biggest first."""
        self._stop.set()
        self._thread.join(timeout=10)
        self.engine.dispose()
        n = max(self.samples, 1)
        return {key: round(count / n, 2) for key, count in self.counts.most_common(8)}


# --- The labelers.


@dataclass
class Sample:
    kind: str  # next | submit
    start: float  # seconds since the phase began
    latency: float  # seconds
    status: int  # HTTP status, or 0 for a transport error


@dataclass
class Phase:
    mode: str
    labelers: int
    seconds: float
    samples: list[Sample] = field(default_factory=list)
    acknowledged: int = 0  # submits answered 200, whole phase (warm-up included)
    no_tasks: int = 0  # labelers that ran out of work
    out_of_work_at: float | None = None  # seconds into the phase when the first one did
    errors: Counter[str] = field(default_factory=Counter)
    loop_lag: list[float] = field(default_factory=list)


async def labeler(http: LeanClient, project_id: int, phase: Phase, began: float, stop_at: float,
                  pause: tuple[float, float] | None, rng: random.Random, then_next: bool = False) -> None:
    """``then_next``: submit with ``?next=true`` and take the next task from the submit's response
    (one request per task; a separate next only at the start and after an error)."""
    perf = time.perf_counter
    next_url = f"/api/projects/{project_id}/tasks/next"
    # Spread the starts over one pause (or 0.2 s without pauses): people do not start in lockstep.
    await asyncio.sleep(rng.uniform(0, pause[1] if pause else 0.2))
    task_id: int | None = None
    while True:
        if task_id is None:
            if perf() >= stop_at:
                return
            t0 = perf()
            try:
                status, content = await http.post(next_url)
            except HTTPFailure as exc:
                phase.samples.append(Sample("next", t0 - began, perf() - t0, 0))
                phase.errors[f"next {exc}"] += 1
                await asyncio.sleep(0.5)
                continue
            phase.samples.append(Sample("next", t0 - began, perf() - t0, status))
            if status != 200:
                error = orjson.loads(content).get("error", {}) if content.startswith(b"{") else {}
                if not refused_for_want_of_work(phase, error, t0 - began):
                    phase.errors[f"next {status} {(error.get('details') or {}).get('reason', '')}".strip()] += 1
                    await asyncio.sleep(0.5)
                    continue
                return
            task_id = orjson.loads(content)["task_id"]
        if pause:
            await asyncio.sleep(rng.uniform(*pause))
        body = orjson.dumps({"answer": {"sentiment": rng.choice(LABELS)}, "idempotency_key": uuid.uuid4().hex})
        t0 = perf()
        # Past the deadline the task in hand is submitted without leasing another one.
        query = "?next=true" if then_next and t0 < stop_at else ""
        try:
            status, content = await http.post(f"/api/projects/{project_id}/tasks/{task_id}/answers{query}", body)
        except HTTPFailure as exc:
            phase.samples.append(Sample("submit", t0 - began, perf() - t0, 0))
            phase.errors[f"submit {exc}"] += 1
            task_id = None
            continue
        phase.samples.append(Sample("submit", t0 - began, perf() - t0, status))
        task_id = None
        if status != 200:
            phase.errors[f"submit {status}"] += 1
            continue
        phase.acknowledged += 1
        if query:
            receipt = orjson.loads(content)
            if receipt["next_task"] is not None:
                task_id = receipt["next_task"]["task_id"]
            elif refused_for_want_of_work(phase, receipt["next_error"], t0 - began):
                return
            else:
                phase.errors[f"next {receipt['next_error']['status']} {receipt['next_error']['code']}"] += 1


def refused_for_want_of_work(phase: Phase, error: dict[str, Any], at: float) -> bool:
    """Whether a refused next said the queue has nothing left (noted in ``phase``)."""
    if (error.get("details") or {}).get("reason") != "no_tasks":
        return False
    phase.no_tasks += 1
    if phase.out_of_work_at is None:
        phase.out_of_work_at = at
    return True


async def watch_loop_lag(phase: Phase, stop_at: float, interval: float = 0.01) -> None:
    """How late the event loop wakes up: the part of a measured latency that is the client's own."""
    while time.perf_counter() < stop_at:
        before = time.perf_counter()
        await asyncio.sleep(interval)
        phase.loop_lag.append(time.perf_counter() - before - interval)


async def run_phase_async(url: str, install: Install, mode: str, warmup: float, seconds: float,
                          pause: tuple[float, float] | None, seed: int, then_next: bool = False) -> Phase:
    tokens = install.tokens[:1] if mode == "single" else install.tokens
    phase = Phase(mode, len(tokens), seconds)
    began = time.perf_counter()
    stop_at = began + warmup + seconds
    clients = [LeanClient(url, {"Authorization": f"Bearer {token}"}, REQUEST_TIMEOUT) for token in tokens]
    try:
        jobs = [labeler(client, install.project_id, phase, began, stop_at, pause, random.Random(seed + i), then_next)
                for i, client in enumerate(clients)]
        jobs.append(watch_loop_lag(phase, stop_at))
        # Hard limit: the last task in hand (pause + two timed-out requests) and then some.
        limit = warmup + seconds + (pause[1] if pause else 0) + 2 * REQUEST_TIMEOUT + 10
        await asyncio.wait_for(asyncio.gather(*jobs), timeout=limit)
    finally:
        for client in clients:
            await client.aclose()
    return phase


# --- Figures.


@dataclass
class Result:
    database: str
    workers: int
    tasks: int
    overlap: int
    mode: str
    labelers: int
    seconds: float
    answers: int  # submits acknowledged within the window
    answers_per_s: float
    next_ms: dict[str, float]
    submit_ms: dict[str, float]
    errors: dict[str, int]
    labelers_out_of_work: int
    answers_in_db: int
    acknowledged_total: int
    open_leases_after: int
    server_cpu_percent: float
    server_cpu_ms_per_answer: float  # server CPU over the whole phase / answers acknowledged in it
    client_cpu_percent: float
    machine_busy_percent: float
    loop_lag_p99_ms: float
    postgres_backends: dict[str, float]  # mean backends of the app role per (state / wait event)
    postgres_cpu_ms_per_answer: float | None  # the local PostgreSQL server's CPU / answers acknowledged
    calibration_ms: float  # the machine's speed just before the phase: see calibrate()


def calibrate() -> float:
    """CPU ms of a fixed pure-Python loop, the best of three: the machine's speed at the time.

    The virtual machines these figures come from run the same code at very different speeds from
    one hour (and one machine) to the next, by 40% and more: printed with every phase, so that runs
    can be compared (lower is faster)."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        sum(i * i for i in range(2_000_000))
        best = min(best, time.process_time() - started)
    return 1000 * best


def percentiles(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {"n": 0, "p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "max": float("nan")}
    values = np.asarray(latencies) * 1000.0
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"n": len(values), "p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(values.max())}


def start_py_spy(directory: Path | None, server: Server, name: str, seconds: float,
                 gil_only: bool = False) -> list[subprocess.Popen[bytes]]:
    """Sample the server (all its processes) for the phase: collapsed stacks, one line per stack;
    with ``gil_only`` only the samples of threads holding the GIL (where one process's CPU goes)."""
    if directory is None or server.process is None:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    command = ["py-spy", "record", "--pid", str(server.process.pid), "--subprocesses", "--duration",
               str(int(seconds)), "--rate", "100", "--nonblocking", "--format", "raw",
               "--output", str(directory / f"{name}.txt"), *(["--gil"] if gil_only else [])]
    return [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]


def run_phase(server: Server, install: Install, args: argparse.Namespace, database: str, mode: str,
              tasks: int) -> Result:
    pause = (args.pause_min, args.pause_max) if mode == "paced" else None
    answers_before = count_answers(install)
    calibration = calibrate()
    # The window's CPU figures are taken over the whole phase (warm-up included) for simplicity.
    pids = server.pids()
    server_cpu, client_cpu, machine = process_cpu_seconds(pids), time.process_time(), machine_ticks()
    postgres_cpu = postgres_cpu_seconds() if database == "postgresql" else None
    recorders = start_py_spy(args.py_spy, server, f"{database}-{tasks}-{mode}", args.warmup + args.seconds,
                                 args.py_spy_gil)
    sampler = WaitSampler(install.owner_url, install.app_role).start() if install.owner_url and install.app_role \
        else None
    wall = time.perf_counter()
    # The load generator's own garbage collection would otherwise add pauses of tens of ms to the
    # latencies it measures (the server does the same at start, see server.py).
    gc.collect()
    gc.freeze()
    phase = uvloop.run(run_phase_async(server.url, install, mode, args.warmup, args.seconds, pause, args.seed,
                                             args.submit_and_next))
    wall = time.perf_counter() - wall
    server_cpu = process_cpu_seconds(pids) - server_cpu
    postgres_now = postgres_cpu_seconds() if postgres_cpu is not None else None
    client_cpu = time.process_time() - client_cpu
    busy, total = (a - b for a, b in zip(machine_ticks(), machine, strict=True))
    waits = sampler.stop() if sampler else {}
    for recorder in recorders:
        recorder.wait(timeout=60)

    # A project that ran out of work is measured until then: after it, the labelers idle and the
    # answers per second would fall for want of tasks, not of speed.
    end = args.warmup + args.seconds
    if phase.out_of_work_at is not None:
        end = max(args.warmup, min(end, phase.out_of_work_at))
    window = (args.warmup, end)
    seconds = end - args.warmup

    def measured(kind: str) -> list[float]:
        return [s.latency for s in phase.samples
                if s.kind == kind and s.status == 200 and window[0] <= s.start < window[1]]

    answers = len(measured("submit"))
    in_db = count_answers(install) - answers_before
    return Result(
        database=database, workers=server.workers, tasks=tasks, overlap=args.overlap, mode=mode,
        labelers=phase.labelers, seconds=seconds, answers=answers,
        answers_per_s=answers / seconds if seconds else float("nan"),
        next_ms=percentiles(measured("next")), submit_ms=percentiles(measured("submit")),
        errors=dict(phase.errors), labelers_out_of_work=phase.no_tasks, answers_in_db=in_db,
        acknowledged_total=phase.acknowledged, open_leases_after=open_leases(install),
        server_cpu_percent=100 * server_cpu / wall,
        server_cpu_ms_per_answer=1000 * server_cpu / phase.acknowledged if phase.acknowledged else float("nan"),
        client_cpu_percent=100 * client_cpu / wall,
        machine_busy_percent=100 * busy / total if total else float("nan"),
        postgres_backends=waits,
        postgres_cpu_ms_per_answer=1000 * (postgres_now - postgres_cpu) / phase.acknowledged
        if postgres_now is not None and postgres_cpu is not None and phase.acknowledged else None,
        loop_lag_p99_ms=float(np.percentile(phase.loop_lag, 99) * 1000) if phase.loop_lag else float("nan"),
        calibration_ms=calibration,
    )


def describe(result: Result) -> str:
    n, s = result.next_ms, result.submit_ms
    # Stored may exceed acknowledged by submits the client gave up on (timeouts) that the server
    # still committed; fewer stored than acknowledged would be a lost answer.
    unanswered = sum(v for k, v in result.errors.items() if k.startswith("submit"))
    if result.answers_in_db == result.acknowledged_total:
        check = "ok"
    elif result.acknowledged_total < result.answers_in_db <= result.acknowledged_total + unanswered:
        check = "ok: the rest are submits that failed on the client side"
    else:
        check = "MISMATCH"
    return (
        f"  {result.mode:<10} {result.answers:>7,} answers in {result.seconds:.0f} s = {result.answers_per_s:,.1f}/s; "
        f"next p50 {n['p50']:.1f} p95 {n['p95']:.1f} p99 {n['p99']:.1f} max {n['max']:.1f} ms; "
        f"submit p50 {s['p50']:.1f} p95 {s['p95']:.1f} p99 {s['p99']:.1f} max {s['max']:.1f} ms\n"
        f"  {'':<10} server CPU {result.server_cpu_percent:.0f}% ({result.server_cpu_ms_per_answer:.1f} ms/answer), "
        + (f"PostgreSQL CPU {result.postgres_cpu_ms_per_answer:.1f} ms/answer, "
           if result.postgres_cpu_ms_per_answer is not None else "") +
        f"load generator {result.client_cpu_percent:.0f}%, "
        f"machine busy {result.machine_busy_percent:.0f}%, loop lag p99 {result.loop_lag_p99_ms:.1f} ms, "
        f"calibration {result.calibration_ms:.0f} ms; "
        f"answers stored {result.answers_in_db:,} = acknowledged {result.acknowledged_total:,} ({check}); "
        f"open leases after {result.open_leases_after}; errors {result.errors or 'none'}"
        + (f"; {result.labelers_out_of_work} labelers ran out of work" if result.labelers_out_of_work else "")
        + "".join(f"\n  {'':<10} PostgreSQL backends {mean:.2f}: {key}"
                  for key, mean in result.postgres_backends.items())
    )


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def markdown(results: list[Result], args: argparse.Namespace, load: tuple[float, float, float],
             started: dt.datetime) -> str:
    import sqlalchemy

    lines = [
        f"- Machine: {os.cpu_count()} CPUs (`nproc`), {cpu_model()}; Python {platform.python_version()}, "
        f"SQLite {__import__('sqlite3').sqlite_version}, SQLAlchemy {sqlalchemy.__version__}, "
        f"uvicorn {__import__('uvicorn').__version__}; load generator: lean_http.py on uvloop.",
        f"- Date: {started.strftime('%Y-%m-%d %H:%M')}-{dt.datetime.now(dt.UTC).strftime('%H:%M UTC')}; "
        "load average at the start "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}.",
        f"- {args.labelers} labelers, overlap {args.overlap}, {args.warmup:.0f} s warm-up + {args.seconds:.0f} s "
        f"measured per phase; paced = a random {args.pause_min}-{args.pause_max} s between next and submit."
        + (" Submits with ?next=true: the next task comes with the submit's response (next = the first of each"
           " labeler only; submit = the request that does both)." if args.submit_and_next else ""),
        "",
        "| database | workers | tasks | phase | answers/s | next p50 / p95 / p99 ms | submit p50 / p95 / p99 ms "
        "| server CPU (per answer) | machine busy | calibration |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        n, s = r.next_ms, r.submit_ms
        lines.append(
            f"| {r.database} | {r.workers} | {r.tasks:,} | {r.mode} | {r.answers_per_s:,.1f}"
            f"{f' (out of work after {r.seconds:.0f} s)' if r.labelers_out_of_work else ''} "
            f"| {n['p50']:.1f} / {n['p95']:.1f} / {n['p99']:.1f} | {s['p50']:.1f} / {s['p95']:.1f} / {s['p99']:.1f} "
            f"| {r.server_cpu_percent:.0f}% ({r.server_cpu_ms_per_answer:.1f} ms) | {r.machine_busy_percent:.0f}% "
            f"| {r.calibration_ms:.0f} ms |"
        )
    return "\n".join(lines)


# --- Main.


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="10000,1000000",
                        help="Project sizes, comma-separated; a new install each (default 10000,1000000).")
    parser.add_argument("--labelers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=60.0, help="Measured seconds per phase.")
    parser.add_argument("--warmup", type=float, default=5.0, help="Seconds per phase left out of the figures.")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--workers", type=int, default=None,
                        help="Server processes (default 1 on SQLite, 4 on PostgreSQL).")
    parser.add_argument("--phases", default="single,paced,saturation",
                        help="Comma-separated: single (one labeler, no pause: the service time without "
                        "queueing), paced, saturation (default: all three).")
    parser.add_argument("--overlap", type=int, default=3, help="Answers wanted per task (default 3).")
    parser.add_argument("--pause-min", type=float, default=0.5)
    parser.add_argument("--pause-max", type=float, default=1.5)
    parser.add_argument("--postgres-url", default=os.environ.get(
        "LABELVAULT_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
        help="An admin connection to the local server; a fresh database is created there and dropped.")
    parser.add_argument("--launcher", choices=["serve", "uvicorn"], default="serve",
                        help="serve: `labelvault serve [--workers N]` (default). uvicorn: the same app factory in "
                        "`uvicorn --workers N --timeout-worker-healthcheck 120`, for a crowded machine where "
                        "workers take longer than uvicorn's default 5 s health check to start.")
    parser.add_argument("--submit-and-next", action="store_true",
                        help="Labelers submit with ?next=true and take their next task from the response.")
    parser.add_argument("--sqlite-synchronous", default="FULL", help="LABELVAULT_SQLITE_SYNCHRONOUS (default FULL).")
    parser.add_argument("--no-analyze", action="store_true",
                        help="PostgreSQL: do not ANALYZE after the import (measure a fresh import before autovacuum).")
    parser.add_argument("--seed", type=int, default=20250601)
    parser.add_argument("--json", type=Path, default=None, help="Write every figure to this file as JSON.")
    parser.add_argument("--py-spy", type=Path, default=None, dest="py_spy",
                        help="Record each phase's server with py-spy (collapsed stacks) into this directory.")
    parser.add_argument("--py-spy-gil", action="store_true", dest="py_spy_gil",
                        help="With --py-spy: keep only samples of threads holding the GIL (CPU, not waits).")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary installs (SQLite) for a look.")
    parser.add_argument("--quick", action="store_true",
                        help="Small numbers (1k and 5k tasks, 20 labelers, 1 + 4 s per phase): under a minute.")
    args = parser.parse_args()
    if args.quick:
        args.tasks, args.labelers, args.seconds, args.warmup = "1000,5000", 20, 4.0, 1.0
    args.sizes = [int(v.replace("_", "")) for v in str(args.tasks).split(",") if v.strip()]
    args.phase_list = [p.strip() for p in args.phases.split(",") if p.strip()]
    if not set(args.phase_list) <= {"single", "paced", "saturation"}:
        parser.error("--phases takes single, paced and/or saturation")
    if args.workers is None:
        args.workers = 4 if args.database == "postgresql" else 1
    return args


# Answer slots (tasks x overlap) below which every phase gets an install of its own: a phase may
# answer tens of thousands of tasks (at 650 answers/s, 23,000 in 35 s), and the 10,000-task
# project (30,000 slots) ran out of work in the phases after the first on the machine of 2026-11-27.
FRESH_INSTALL_BELOW_SLOTS = 1_000_000


def run_size(args: argparse.Namespace, tasks: int, directory: Path) -> list[Result]:
    if tasks * args.overlap >= FRESH_INSTALL_BELOW_SLOTS:
        return run_phases(args, tasks, directory, args.phase_list)
    results = []
    for number, mode in enumerate(args.phase_list):
        results.extend(run_phases(args, tasks, directory / f"{number}-{mode}", [mode]))
    return results


def run_phases(args: argparse.Namespace, tasks: int, directory: Path, phases: list[str]) -> list[Result]:
    directory.mkdir(parents=True, exist_ok=True)
    scratch = PostgresScratch(args.postgres_url) if args.database == "postgresql" else None
    server: Server | None = None
    try:
        print(f"{args.database}, {tasks:,} tasks: building the install", flush=True)
        install = build_install(directory, scratch.app_url if scratch else None,
                                scratch.owner_url if scratch else None,
                                tasks=tasks, labelers=args.labelers, overlap=args.overlap,
                                analyze=not args.no_analyze)
        print(f"  built in {install.build_seconds:.1f} s (import {tasks / install.import_seconds:,.0f} tasks/s)",
              flush=True)
        # Assigned before start(), so that a server that fails to come up is still stopped below.
        server = Server(install, args.workers, directory / "server.log", args.sqlite_synchronous, args.launcher)
        server.start()
        results = []
        for mode in phases:
            result = run_phase(server, install, args, args.database, mode, tasks)
            print(describe(result), flush=True)
            results.append(result)
        return results
    finally:
        if server is not None:
            server.stop()
        if scratch is not None:
            scratch.close()


def main() -> None:
    args = parse_args()
    # SIGTERM unwinds like Ctrl-C, so that the server is stopped and the scratch database dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load, started = os.getloadavg(), dt.datetime.now(dt.UTC)
    print(f"{os.cpu_count()} CPUs ({cpu_model()}), load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}",
          flush=True)
    results: list[Result] = []
    for tasks in args.sizes:
        directory = Path(tempfile.mkdtemp(prefix="lv-bench-queue-"))
        try:
            results.extend(run_size(args, tasks, directory))
        finally:
            if args.keep:
                print(f"  kept {directory}")
            else:
                import shutil

                shutil.rmtree(directory, ignore_errors=True)
    print()
    print(markdown(results, args, load, started))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))


if __name__ == "__main__":
    main()
