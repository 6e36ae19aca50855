"""A daemon thread that repeats one piece of background work until it is stopped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class PeriodicThread:
    """Runs ``work`` every ``interval`` seconds, or again at once when it returns ``True`` (it left
    work undone, e.g. it handled a full batch); any other result waits the interval. With an
    ``idle_interval``, a round whose result is false (``0``, ``None``: it found nothing to do) waits
    that long instead, so that an idle server asks its database less often.

    An exception is logged and the thread goes on (a database hiccup must not end background work);
    ``stop`` lets the round in flight finish, up to its timeout.
    """

    def __init__(self, name: str, work: Callable[[], object], interval: float,
                 idle_interval: float | None = None) -> None:
        self.work = work
        self.interval = interval
        self.idle_interval = interval if idle_interval is None else idle_interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                result = self.work()
            except Exception:
                log.exception("background work %s failed", self._thread.name)
                result = "failed"  # not idle: try again after the interval
            if result is not True:
                self._stop.wait(self.interval if result else self.idle_interval)
