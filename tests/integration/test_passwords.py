"""People change their password; an operator resets a lost one. Other sessions end each time."""

from __future__ import annotations

import pytest

from labelvault.errors import InvalidInput, LoginThrottled, NotAuthenticated, NotFound, PermissionDenied
from labelvault.workflow.accounts import PasswordlessAccountService
from tests.conftest import World

OLD, NEW = "the-old-long-password", "the-new-long-password"


@pytest.fixture
def pat(world: World):  # type: ignore[no-untyped-def]
    world.services.accounts.create_user(world.operator, "pat", OLD)
    return world.services.accounts.actor_by_username("pat")


def test_a_person_changes_their_password_and_their_other_sessions_end(world: World, pat) -> None:  # type: ignore[no-untyped-def]
    accounts, sessions = world.services.accounts, world.services.web_sessions
    here, elsewhere = sessions.login("pat", OLD), sessions.login("pat", OLD)
    token = accounts.issue_token(world.operator, "t", for_username="pat").token
    with pytest.raises(NotAuthenticated):
        accounts.change_password(pat, "not-the-password", NEW)
    with pytest.raises(InvalidInput, match="too short"):
        accounts.change_password(pat, OLD, "short")
    assert accounts.authenticate("pat", OLD).username == "pat"  # nothing changed so far

    accounts.change_password(pat, OLD, NEW, keep_session=here.session_id)
    with pytest.raises(NotAuthenticated):
        accounts.authenticate("pat", OLD)
    assert accounts.authenticate("pat", NEW).username == "pat"
    assert sessions.lookup(here.session_id).actor.username == "pat"
    with pytest.raises(NotAuthenticated):
        sessions.lookup(elsewhere.session_id)
    assert accounts.actor_for_token(token).username == "pat"  # tokens are credentials of their own


def test_wrong_current_passwords_count_as_failed_logins(world: World, pat) -> None:  # type: ignore[no-untyped-def]
    for _ in range(5):
        with pytest.raises(NotAuthenticated):
            world.services.accounts.change_password(pat, "guess-guess-guess", NEW)
    with pytest.raises(LoginThrottled):
        world.services.accounts.change_password(pat, OLD, NEW)


def test_an_operator_resets_a_lost_password_ending_every_session(world: World, pat) -> None:  # type: ignore[no-untyped-def]
    accounts, sessions = world.services.accounts, world.services.web_sessions
    session = sessions.login("pat", OLD)
    with pytest.raises(PermissionDenied):
        accounts.reset_password(world.actors["manager_a"], "pat", NEW)
    with pytest.raises(NotFound):
        accounts.reset_password(world.operator, "nobody", NEW)
    accounts.reset_password(world.operator, "pat", NEW)
    with pytest.raises(NotAuthenticated):
        sessions.lookup(session.session_id)
    assert accounts.authenticate("pat", NEW).username == "pat"
    # A token-only account gets a password this way too.
    assert accounts.reset_password(world.operator, "labeler_a", NEW) is None
    assert accounts.authenticate("labeler_a", NEW).username == "labeler_a"


def test_where_only_single_sign_on_logs_in_no_password_is_set(world: World, pat) -> None:  # type: ignore[no-untyped-def]
    sso_only = PasswordlessAccountService(world.services.uow_factory)
    for attempt in (lambda: sso_only.reset_password(world.operator, "pat", NEW),
                    lambda: sso_only.change_password(pat, OLD, NEW)):
        with pytest.raises(PermissionDenied, match="password login is switched off"):
            attempt()
    assert world.services.accounts.authenticate("pat", OLD).username == "pat"

