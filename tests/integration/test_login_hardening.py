"""Failed logins are throttled (counted in the database), and tokens carry scopes."""

from __future__ import annotations

import pytest

from labelvault.bootstrap import build_services
from labelvault.errors import LoginThrottled, NotAuthenticated, PermissionDenied
from tests.conftest import World
from tests.integration.queue_helpers import make_project

PASSWORD = "a-good-long-password"


def test_five_failures_lock_the_username_out_even_with_the_right_password(world: World) -> None:
    accounts = world.services.accounts
    accounts.create_user(world.operator, "pat", PASSWORD)
    for _ in range(5):
        with pytest.raises(NotAuthenticated):
            accounts.authenticate("pat", "wrong-password", address="10.0.0.1")
    with pytest.raises(LoginThrottled):
        accounts.authenticate("pat", PASSWORD, address="10.0.0.2")


def test_failures_made_through_another_server_process_count_too(world: World) -> None:
    world.services.accounts.create_user(world.operator, "sam", PASSWORD)
    other = build_services(world.services.settings)  # a second process: own engine, own memory
    try:
        for service in (world.services.accounts, other.accounts) * 2 + (other.accounts,):
            with pytest.raises(NotAuthenticated):
                service.authenticate("sam", "nope-nope-nope")
        with pytest.raises(LoginThrottled):
            world.services.accounts.authenticate("sam", PASSWORD)
    finally:
        other.close()


def test_a_successful_login_clears_earlier_failures(world: World) -> None:
    accounts = world.services.accounts
    accounts.create_user(world.operator, "kim", PASSWORD)
    for _ in range(4):
        with pytest.raises(NotAuthenticated):
            accounts.authenticate("kim", "nope-nope-nope")
    accounts.authenticate("kim", PASSWORD)
    for _ in range(4):
        with pytest.raises(NotAuthenticated):
            accounts.authenticate("kim", "nope-nope-nope")
    assert accounts.authenticate("kim", PASSWORD).username == "kim"


def test_a_read_only_token_can_look_but_not_label(world: World) -> None:
    accounts = world.services.accounts
    project_id = make_project(world, "scoped", tasks=1)
    read_only = accounts.issue_token(world.operator, "ro", for_username="labeler_a", scopes=["read"]).token
    actor = accounts.actor_for_token(read_only)
    assert world.services.projects.get(actor, world.client_a, project_id).id == project_id
    with pytest.raises(PermissionDenied, match="scope 'label'"):
        world.services.labeling.next_task(actor, world.client_a, project_id)
    labeling = accounts.actor_for_token(accounts.issue_token(world.operator, "l", for_username="labeler_a",
                                                             scopes=["read", "label"]).token)
    assert world.services.labeling.next_task(labeling, world.client_a, project_id).project_id == project_id


def test_a_token_cannot_mint_a_token_with_more_scopes(world: World) -> None:
    accounts = world.services.accounts
    narrow = accounts.actor_for_token(accounts.issue_token(world.operator, "n", scopes=["read", "manage"]).token)
    with pytest.raises(PermissionDenied):
        accounts.issue_token(narrow, "wider", scopes=["read", "label", "manage"])


def test_an_unknown_username_fails_as_a_wrong_password_does_and_is_counted(world: World) -> None:
    """The password is checked against a dummy hash (made on first need), so the answer, and its
    time, do not tell whether the username exists; the failure counts towards the lockout."""
    accounts = world.services.accounts
    for _ in range(5):
        with pytest.raises(NotAuthenticated, match=r"^wrong username or password$"):
            accounts.authenticate("nobody-here", PASSWORD, address="10.0.0.9")
    with pytest.raises(LoginThrottled):
        accounts.authenticate("nobody-here", PASSWORD, address="10.0.0.8")
