"""A person who leaves is deactivated: every way in closes at once, and nothing of their work goes."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import create_engine, text

from labelvault.bootstrap import build_services
from labelvault.errors import Conflict, NotAuthenticated, NotFound, PermissionDenied, QueueRefused
from tests.conftest import World, owner_url
from tests.integration.queue_helpers import label_once, make_labelers, make_project

PASSWORD = "a-good-long-password"


def _entries(world: World, action: str) -> list[tuple[str, str, str]]:
    """(actor, object id, details as canonical JSON) of the audit entries of ``action``, in order."""
    world.services.audit.sequence()  # PostgreSQL: number what acts wrote (audit/log.py)
    engine = create_engine(owner_url(world.services.settings))
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT actor, object_id, entry FROM audit_entries WHERE action = :action"
                                       " ORDER BY seq"), {"action": action}).all()
    engine.dispose()
    return [(row[0], row[1], orjson.dumps(orjson.loads(bytes(row[2])).get("details")).decode()) for row in rows]


def test_deactivation_closes_password_token_and_session_and_reactivation_opens_the_first_two(world: World) -> None:
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
    assert accounts.actor_for_token(token).username == "pat"  # tokens are kept, and work again
    assert accounts.authenticate("pat", PASSWORD).username == "pat"
    with pytest.raises(NotAuthenticated):
        services.web_sessions.lookup(session)  # sessions were ended: they log in again


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

    assert [(action, actor, object_id) for action in ("user.deactivated", "user.reactivated")
            for actor, object_id, _ in _entries(world, action)] == [
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


def test_what_a_deactivated_person_held_goes_back_to_the_queues_at_once(world: World) -> None:
    services, operator = world.services, world.operator
    labeled = make_project(world, "held", tasks=1, lease_seconds=86_400)  # a lease of a day
    held = services.labeling.next_task(world.actors["labeler_a"], world.client_a, labeled)
    other = make_labelers(world, 1)[0]
    with pytest.raises(QueueRefused):
        services.labeling.next_task(other, world.client_a, labeled)  # the one task is held
    reviewed = make_project(world, "reviewed", tasks=1, review_policy="all")
    label_once(world, other, reviewed)
    in_review = services.reviews.next_item(world.actors["reviewer_a"], world.client_a, reviewed).task_id
    services.accounts.create_user(operator, "second_reviewer", None)
    services.accounts.grant_role(operator, world.client_a, "second_reviewer", "reviewer")
    second_reviewer = services.accounts.actor_by_username("second_reviewer")
    with pytest.raises(QueueRefused):
        services.reviews.next_item(second_reviewer, world.client_a, reviewed)  # held by the first

    services.accounts.set_active(operator, "labeler_a", active=False)
    services.accounts.set_active(operator, "reviewer_a", active=False)
    assert services.labeling.next_task(other, world.client_a, labeled).task_id == held.task_id
    assert services.reviews.next_item(second_reviewer, world.client_a, reviewed).task_id == in_review
    released = [(actor, object_id, details) for actor, object_id, details in _entries(world, "leases.released")]
    assert released == [(operator.username, str(world.actors[who].user_id), '{"leases":1}')
                        for who in ("labeler_a", "reviewer_a")]

    services.accounts.set_active(operator, "viewer_a", active=False)  # held nothing: nothing to record
    assert len(_entries(world, "leases.released")) == 2


def test_an_operator_lists_a_persons_tokens_and_revokes_one(world: World) -> None:
    accounts = world.services.accounts
    labeler = world.actors["labeler_a"]
    extra = accounts.issue_token(world.operator, "laptop", for_username="labeler_a", scopes=["label"])
    tokens, total = accounts.list_tokens(world.operator, user_id=labeler.user_id)
    assert total == 2 and [(t.name, t.scopes, t.revoked_at) for t in tokens] == [
        ("test", ["label", "manage", "read"], None), ("laptop", ["label"], None)]
    accounts.revoke_token(world.operator, extra.id)
    assert [t.revoked_at is not None for t in accounts.list_tokens(world.operator, user_id=labeler.user_id)[0]
            ] == [False, True]
    with pytest.raises(NotAuthenticated):
        accounts.actor_for_token(extra.token)
    assert accounts.list_tokens(labeler)[1] == 2  # their own, as before
    with pytest.raises(PermissionDenied):
        accounts.list_tokens(world.actors["manager_a"], user_id=labeler.user_id)
    with pytest.raises(NotFound):
        accounts.list_tokens(world.operator, user_id=999_999)
