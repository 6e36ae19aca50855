"""The audit log: every access is an entry, and any edit, deletion, reordering or truncation of
past entries, made directly in the database, is detected and named."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import World, owner_url
from tests.integration.queue_helpers import label_once, make_project

# Flip an entry's outcome from "ok" to "no" in place, as an attacker with database access could.
SQLITE_EDIT = (
    "UPDATE audit_entries SET entry = CAST(replace(CAST(entry AS TEXT), '\"ok\"', '\"no\"') AS BLOB) "
    "WHERE seq = {target}"
)
POSTGRES_EDIT = (
    "UPDATE audit_entries SET entry = convert_to(replace(convert_from(entry, 'UTF8'), '\"ok\"', '\"no\"'), 'UTF8') "
    "WHERE seq = {target}"
)


@pytest.fixture
def busy_world(world: World) -> World:
    project_id = make_project(world, "watched", tasks=3)
    label_once(world, world.actors["labeler_a"], project_id)
    return world


def tamper(world: World, *statements: str) -> None:
    """Change the log as an attacker with database access would (as the owner, past any grant)."""
    engine = create_engine(owner_url(world.services.settings))
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))
    engine.dispose()


def entries(world: World) -> list[tuple[int, str, str]]:
    world.services.audit.sequence()  # PostgreSQL: number what acts wrote (audit/log.py)
    engine = create_engine(owner_url(world.services.settings))
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT seq, action, outcome FROM audit_entries ORDER BY seq")).all()
    engine.dispose()
    return [(r[0], r[1], r[2]) for r in rows]


def test_accesses_and_administrative_acts_are_entries(busy_world: World) -> None:
    actions = [action for _, action, _ in entries(busy_world)]
    for expected in ("client.created", "role.granted", "project.created", "task.shown", "answer.submitted"):
        assert expected in actions
    assert busy_world.services.audit.verify().ok


def test_a_denied_access_is_an_entry(busy_world: World) -> None:
    from labelvault.errors import NotFound

    project_id = make_project(busy_world, "private", tasks=1)
    with pytest.raises(NotFound):
        busy_world.services.labeling.next_task(busy_world.actors["labeler_b"], busy_world.client_a, project_id)
    assert entries(busy_world)[-1][1:] == ("task.lease", "denied")


def test_an_edited_entry_is_detected_and_named(busy_world: World) -> None:
    target = entries(busy_world)[3][0]
    tamper(
        busy_world,
        SQLITE_EDIT.format(target=target)
        if busy_world.services.engine.dialect.name == "sqlite"
        else POSTGRES_EDIT.format(target=target),
    )
    report = busy_world.services.audit.verify()
    assert not report.ok and report.first_bad_seq == target and report.problem == "edited"


def test_a_deleted_entry_is_detected_and_named(busy_world: World) -> None:
    target = entries(busy_world)[2][0]
    tamper(busy_world, f"DELETE FROM audit_entries WHERE seq = {target}")
    report = busy_world.services.audit.verify()
    assert not report.ok and report.first_bad_seq == target and report.problem == "deleted"


def test_reordered_entries_are_detected(busy_world: World) -> None:
    a, b = entries(busy_world)[1][0], entries(busy_world)[2][0]
    tamper(
        busy_world,
        f"UPDATE audit_entries SET seq = -1 WHERE seq = {a}",
        f"UPDATE audit_entries SET seq = {a} WHERE seq = {b}",
        f"UPDATE audit_entries SET seq = {b} WHERE seq = -1",
    )
    report = busy_world.services.audit.verify()
    assert not report.ok and report.first_bad_seq == a


def test_truncation_after_a_checkpoint_is_detected(busy_world: World) -> None:
    checkpoint = busy_world.services.audit.checkpoint()
    last = entries(busy_world)[-1][0]
    tamper(busy_world, f"DELETE FROM audit_entries WHERE seq >= {last - 1}")
    report = busy_world.services.audit.verify([checkpoint.text])
    assert not report.ok and report.problem == "truncated"


def test_a_rewritten_tail_does_not_match_a_checkpoint_the_client_kept(busy_world: World) -> None:
    kept = busy_world.services.audit.checkpoint().text
    # An attacker deletes the stored checkpoints and the last entries, then recomputes nothing:
    tamper(busy_world, "DELETE FROM audit_checkpoints")
    last = entries(busy_world)[-1][0]
    tamper(busy_world, f"DELETE FROM audit_entries WHERE seq = {last}")
    assert busy_world.services.audit.verify().ok  # without the kept checkpoint the cut is invisible
    assert not busy_world.services.audit.verify([kept]).ok


def test_a_client_downloads_its_own_trail_only(busy_world: World) -> None:
    import json

    lines = list(busy_world.services.trails.trail(busy_world.actors["manager_a"], busy_world.client_a))
    clients = {json.loads(line).get("client_id") for line in lines}
    assert clients == {busy_world.client_a}
    from labelvault.errors import NotFound

    with pytest.raises(NotFound):
        busy_world.services.trails.trail(busy_world.actors["manager_b"], busy_world.client_a)
