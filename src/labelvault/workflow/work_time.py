"""Time that counts as work: a labeler's answer and a reviewer's decision are measured alike."""

from __future__ import annotations

from datetime import datetime, timedelta

# Time between a lease's start and the answer or decision on it counts as work up to this much
# (a lunch break does not).
MAX_COUNTED_WORK = timedelta(minutes=30)


def counted_work_ms(started: datetime, now: datetime) -> int:
    """Milliseconds of work from a lease's start to ``now``, idle capped at ``MAX_COUNTED_WORK``."""
    return int(min(now - started, MAX_COUNTED_WORK).total_seconds() * 1000)
