"""Running a coroutine on an event loop of its own, for tests that drive the API's async code."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_on_a_new_loop(coroutine_function: Callable[[], Coroutine[Any, Any, T]]) -> tuple[T, int]:
    """Run a coroutine on a new event loop in a new thread: (its result, that thread's id).

    A thread of its own because the test's thread may have a loop running already (browser tests
    leave one), where ``asyncio.run`` refuses to start."""
    outcome: dict[str, Any] = {}

    def main() -> None:
        outcome["thread"] = threading.get_ident()
        try:
            outcome["result"] = asyncio.run(coroutine_function())
        except Exception as error:  # handed to the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=main)
    thread.start()
    thread.join(timeout=60)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"], outcome["thread"]
