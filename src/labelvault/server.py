"""Run the HTTP server (uvicorn) on the app built by the bootstrap."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
import uvicorn
from fastapi import FastAPI

from labelvault import logs
from labelvault.api.app import create_app
from labelvault.audit.log import SEQUENCE_BATCH, sequence_pending
from labelvault.bootstrap import Services, build_services
from labelvault.periodic import PeriodicThread
from labelvault.settings import Settings
from labelvault.storage.engine import checkpoint_wal, is_sqlite
from labelvault.web import install_web
from labelvault.workflow.predictions import PredictionScheduler


def build_app(services: Services) -> FastAPI:
    """The API (``/api``) and the web pages (everything else) on one application.

    The interfaces may not import each other, so they meet here, in the wiring."""
    app = create_app(services)
    install_web(app, services)
    return app


def run_background_work(app: FastAPI, services: Services) -> None:
    """What a server process does besides answering requests, started and stopped with it:

    - calls projects' predictors on their new tasks from a thread (LABELVAULT_PREDICTOR_POLL_SECONDS);
    - sends webhooks from a thread, unless turned off (LABELVAULT_WEBHOOK_DISPATCH=false, e.g. to run
      `labelvault webhook deliver` elsewhere); every process may run one: they claim rows in the
      database, never the same one;
    - on PostgreSQL, numbers the audit entries that requests wrote into the log from a thread
      (LABELVAULT_AUDIT_SEQUENCE_SECONDS, LABELVAULT_AUDIT_SEQUENCE_IDLE_SECONDS after a round that
      found nothing; see audit/log.py): every process runs one, one at a time works;
    - on SQLite, copies the write-ahead log into the database file from a thread, so that a request's
      commit seldom has to (a checkpoint inside a commit is a latency spike of tens of milliseconds);
    - sizes the thread pool that runs the (synchronous) use cases (LABELVAULT_WORKER_THREADS);
    - moves what start-up built (modules, models, compiled statements: about a million objects) out of
      the cyclic garbage collector's sight with ``gc.freeze()``: a full collection otherwise walks
      all of it, a pause of tens of milliseconds that some request always waits for.
    """
    settings, threads = services.settings, []
    if settings.webhook_dispatch:
        dispatcher = services.webhook_dispatcher
        threads.append(PeriodicThread("labelvault-webhooks", lambda: dispatcher.run_once().attempted > 0,
                                      settings.webhook_poll_seconds))
    if settings.predictor_poll_seconds > 0:
        scheduler = PredictionScheduler(services.predictions, settings.predictor_poll_seconds)
        threads.append(PeriodicThread("labelvault-predictions", scheduler.run_once,
                                      settings.predictor_poll_seconds))
    engine = services.engine
    if is_sqlite(engine):
        threads.append(PeriodicThread("labelvault-wal-checkpoint", lambda: checkpoint_wal(engine), 0.2))
    else:
        factory = services.uow_factory
        # Again at once only after a full batch: a round for a handful of entries costs more than it
        # saves, and every process runs one. After a round that found nothing, the longer idle wait.
        def sequence_round() -> object:
            numbered = sequence_pending(factory)
            return True if numbered >= SEQUENCE_BATCH else numbered

        threads.append(PeriodicThread("labelvault-audit-sequencer", sequence_round,
                                      settings.audit_sequence_seconds, settings.audit_sequence_idle_seconds))
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = services.settings.worker_threads
        gc.collect()
        gc.freeze()
        for thread in threads:
            thread.start()
        try:
            async with inner(application) as state:
                yield state
        finally:
            for thread in threads:
                await asyncio.to_thread(thread.stop)  # lets work in flight finish (bounded by its timeout)

    app.router.lifespan_context = lifespan


def app_from_environment() -> FastAPI:
    """App factory for worker processes: each builds its own services from LABELVAULT_* settings.

    Workers share nothing in memory: leases, sessions, login failures and the audit head are in
    the database, so any number of processes (on any number of machines) can serve one install.
    """
    settings = Settings()
    logs.configure(settings.log_level)
    services = build_services(settings)
    app = build_app(services)
    run_background_work(app, services)
    return app


def run(settings: Settings, *, host: str, port: int, workers: int = 1) -> None:
    if workers > 1:
        uvicorn.run("labelvault.server:app_from_environment", factory=True, host=host, port=port,
                    workers=workers, log_config=None, access_log=False)
        return
    logs.configure(settings.log_level)
    services = build_services(settings)
    app = build_app(services)
    run_background_work(app, services)
    try:
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
    finally:
        services.close()
