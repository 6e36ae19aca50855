"""Where a labeler's next walk of a project's queue may start: past the tasks they have done.

The next-task statement walks the project's open tasks in queue order and passes over those the
labeler answered, skipped or holds. A labeler far ahead of the others (they answered thousands of
tasks that still want answers from others) would pass over all of them on every next: a cost that
grows with their work, paid inside the database's write transaction. So each walk remembers where
it ended, and the next walk of the same labeler starts there.

A position is valid while every task before it in the queue order is done by the labeler or has no
free slot. Tasks done stay done; a task without a slot gets one back, or a task lands before the
position, only through a write that moves ``projects.queue_epoch`` (a trigger on ``tasks`` for a
slot returned or a new priority or uncertainty, from any code path; ``TaskRepository.queued`` for
tasks added, called by their writers). So a position is kept with the epoch read in the same
transaction before the walk, and used only while the project's epoch is still that: any requeue,
anywhere in the project, sends every labeler's next walk back to the start once.

The positions are hints held in the process's memory: a position lost (another process, a restart,
``forget_all``) only costs one walk from the start. A write batch that fails forgets them all, since
its steps may have walked past tasks whose rolled-back writes had filled them.

A reviewer's walk of the review queue (``ReviewRepository.next_for``) is kept the same way, in a
``QueueCursors`` of its own, with a ``ReviewPosition``. It passes over pending tasks the reviewer
answered, which stay so; tasks join the review queue behind every place (their ``review_seq`` only
grows, and on PostgreSQL a place never passes the oldest transaction still running, whose tasks the
walk may not see yet), so a place needs no epoch: only the project's ``created_at``, as a new
project may get a deleted one's id on SQLite.
"""

from __future__ import annotations

from typing import Generic, NamedTuple, TypeVar


class QueuePosition(NamedTuple):
    """A task's place in the queue order (priority first, then uncertainty, highest first, then id)."""

    priority: int
    uncertainty: float
    task_id: int


class ReviewPosition(NamedTuple):
    """A pending task's place in the review queue (the order it became pending in, then id)."""

    review_seq: int
    task_id: int


P = TypeVar("P", QueuePosition, ReviewPosition)


class QueueCursors(Generic[P]):
    """The positions of (project, labeler) walks, each with the queue epoch it is valid for."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._capacity = capacity
        self._positions: dict[tuple[int, int], tuple[int, P]] = {}

    def start(self, project_id: int, user_id: int, epoch: int) -> P | None:
        """Where this labeler's walk may start, or None (from the beginning)."""
        kept = self._positions.get((project_id, user_id))
        if kept is None or kept[0] != epoch:
            return None
        return kept[1]

    def known(self, project_id: int, user_id: int) -> P | None:
        """The position kept, whatever its epoch: what a step may fetch ahead before it has read
        the epoch (``start`` then decides; a wrong guess costs a round trip, see ``prefetch``)."""
        kept = self._positions.get((project_id, user_id))
        return None if kept is None else kept[1]

    def advance(self, project_id: int, user_id: int, epoch: int, position: P) -> None:
        if len(self._positions) >= self._capacity:
            # All at once rather than the least recently used: hints, and a dict's single steps are
            # safe across the server's threads without a lock.
            self._positions.clear()
        self._positions[project_id, user_id] = (epoch, position)

    def forget_all(self) -> None:
        self._positions.clear()
