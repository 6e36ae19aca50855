"""A daemon thread that repeats one piece of background work until it is stopped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class PeriodicThread:
    """Runs ``work`` every ``interval`` seconds, or again at once when it returns ``True`` (it left
    work undone, e.g. it handled a full batch); any other result waits the interval.

    An exception is logged and the thread goes on (a database hiccup must not end background work);
    ``stop`` lets the round in flight finish, up to its timeout.
    """

    def __init__(self, name: str, work: Callable[[], object], interval: float) -> None:
        self.work = work
        self.interval = interval
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
                again = self.work() is True
            except Exception:
                log.exception("background work %s failed", self._thread.name)
                again = False
            if not again:
                self._stop.wait(self.interval)
