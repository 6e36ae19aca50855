"""A person who leaves is deactivated: every way in closes at once, and nothing of their work goes."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from labelvault.bootstrap import build_services
from labelvault.errors import Conflict, NotAuthenticated, NotFound, PermissionDenied
from tests.conftest import World, owner_url
from tests.integration.queue_helpers import make_project

PASSWORD = "a-good-long-password"


def test_deactivation_closes_password_token_and_session_and_reactivation_opens_them(world: World) -> None:
    services, accounts = world.services, world.services.accounts
    accounts.create_user(world.operator, "pat", PASSWORD)
    token = accounts.issue_token(world.operator, "t", for_username="pat").token
    session = services.web_sessions.login("pat", PASSWORD).session_id
    assert accounts.actor_for_token(token).username == "pat"  # cached by this process from now on

    info = accounts.set_active(world.operator, "pat", active=False)
    assert info.is_active is False
    with pytest.raises(NotAuthenticated):
        accounts.actor_for_token(token)
    with pytest.raises(NotAuthenticated):
        accounts.authenticate("pat", PASSWORD)
    with pytest.raises(NotAuthenticated):
        services.web_sessions.lookup(session)

    accounts.set_active(world.operator, "pat", active=True)
    assert accounts.actor_for_token(token).username == "pat"
    assert accounts.authenticate("pat", PASSWORD).username == "pat"
    assert services.web_sessions.lookup(session).actor.username == "pat"


def test_another_server_process_refuses_the_token_once_its_cache_has_lapsed(world: World) -> None:
    accounts = world.services.accounts
    other = build_services(world.services.settings)  # a second process: its own cache
    try:
        other.accounts.token_cache_seconds = 0  # what "within token_cache_seconds" comes to
        token = world.tokens["labeler_a"]
        assert other.accounts.actor_for_token(token).username == "labeler_a"
        accounts.set_active(world.operator, "labeler_a", active=False)
        with pytest.raises(NotAuthenticated):
            other.accounts.actor_for_token(token)
    finally:
        other.close()


def test_their_work_and_roles_stay_and_each_change_is_audited(world: World) -> None:
    services, labeler = world.services, world.actors["labeler_a"]
    project_id = make_project(world, "kept", tasks=1)
    leased = services.labeling.next_task(labeler, world.client_a, project_id)
    services.labeling.submit(labeler, world.client_a, project_id, leased.task_id, {"sentiment": "positive"})

    services.accounts.set_active(world.operator, "labeler_a", active=False)
    services.accounts.set_active(world.operator, "labeler_a", active=False)  # already: nothing more happens
    manager = world.actors["manager_a"]
    assert services.projects.progress(manager, world.client_a, project_id)["answers_given"] == 1
    assert [u.is_active for u in services.accounts.list_users(world.operator, limit=1000)[0]
            if u.username == "labeler_a"] == [False]
    services.accounts.set_active(world.operator, "labeler_a", active=True)
    assert services.labeling.next_task(labeler, world.client_a, make_project(world, "again", tasks=1)).task_id > 0

    services.audit.sequence()  # PostgreSQL: number what acts wrote (audit/log.py)
    engine = create_engine(owner_url(services.settings))
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT action, actor, object_id FROM audit_entries WHERE action LIKE 'user.%activated' ORDER BY seq"
        )).all()
    engine.dispose()
    assert [tuple(row) for row in rows] == [
        ("user.deactivated", world.operator.username, str(labeler.user_id)),
        ("user.reactivated", world.operator.username, str(labeler.user_id)),
    ]


def test_only_an_operator_deactivates_and_never_themselves(world: World) -> None:
    accounts = world.services.accounts
    with pytest.raises(PermissionDenied):
        accounts.set_active(world.actors["manager_a"], "labeler_a", active=False)
    with pytest.raises(Conflict, match="yourself"):
        accounts.set_active(world.operator, world.operator.username, active=False)
    with pytest.raises(NotFound, match="nobody"):
        accounts.set_active(world.operator, "nobody", active=False)
    assert accounts.actor_for_token(world.tokens["labeler_a"]).username == "labeler_a"  # nothing changed
