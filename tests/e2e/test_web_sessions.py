"""Web sessions: cookies, a new id at every login, CSRF on forms and on fetch() calls, logout,
and sessions kept in the database (so any server process serves any browser)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from labelvault.bootstrap import build_services
from labelvault.server import build_app
from labelvault.storage.models import AuditEntry
from tests.browser.web import PASSWORD, add_people, csrf_of, form_login
from tests.conftest import World

# The session rules themselves run on SQLite; what touches the sessions table runs on both.
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    add_people(world)
    with TestClient(build_app(world.services)) as test_client:
        yield test_client


login = form_login


def session_cookie(response) -> str:  # type: ignore[no-untyped-def]
    return next(h for h in response.headers.get_list("set-cookie") if h.startswith("lv_session="))


def session_id(response) -> str:  # type: ignore[no-untyped-def]
    return session_cookie(response).split(";")[0].split("=", 1)[1]


def use_session(client: TestClient, value: str) -> None:
    client.cookies.clear()
    client.cookies.set("lv_session", value)


def test_login_sets_an_httponly_samesite_cookie_and_goes_home(client: TestClient) -> None:
    response = login(client, "ann")
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = session_cookie(response)
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http here
    assert client.get("/").status_code == 200


@sqlite_only
def test_the_cookie_is_secure_when_a_tls_proxy_says_so(client: TestClient) -> None:
    response = login(client, "ann", **{"X-Forwarded-Proto": "https"})
    assert "Secure" in session_cookie(response)


def test_every_login_gets_a_new_session_id_and_drops_the_old_one(client: TestClient) -> None:
    first = session_id(login(client, "ann"))
    second = session_id(login(client, "ann"))
    assert first != second
    use_session(client, first)
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


@sqlite_only
def test_a_planted_session_id_is_not_adopted_at_login(client: TestClient) -> None:
    use_session(client, "attacker-chosen-id-0123456789")
    assert session_id(login(client, "ann")) != "attacker-chosen-id-0123456789"


@sqlite_only
def test_a_wrong_password_shows_the_form_again_with_401(client: TestClient) -> None:
    response = login(client, "ann", "not-the-password")
    assert response.status_code == 401
    assert "wrong username or password" in response.text
    assert "lv_session" not in response.headers.get("set-cookie", "")


@sqlite_only
def test_the_login_form_needs_its_token(client: TestClient) -> None:
    response = client.post("/login", data={"username": "ann", "password": PASSWORD, "login_token": "forged"},
                           follow_redirects=False)
    assert response.status_code == 403
    assert "lv_session" not in response.headers.get("set-cookie", "")


@sqlite_only
def test_logins_are_throttled_after_repeated_failures(client: TestClient) -> None:
    for _ in range(5):
        login(client, "ann", "wrong-password-x")
    response = login(client, "ann")
    assert response.status_code == 429
    assert "too many failed logins" in response.text


@sqlite_only
def test_a_page_without_a_session_redirects_to_the_login_and_back(client: TestClient) -> None:
    response = client.get("/clients/1?x=1", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/clients/1%3Fx%3D1"


@sqlite_only
def test_the_login_page_gives_a_form_token_in_a_strict_cookie(client: TestClient) -> None:
    response = client.get("/login")
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("lv_login_csrf="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    token = cookie.split(";")[0].split("=", 1)[1]
    assert f'name="login_token" value="{token}"' in response.text


@sqlite_only
def test_login_never_redirects_to_another_site(client: TestClient) -> None:
    token = "login-form-token-0123456789abcdef"
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example", "/\t/evil.example"):
        client.cookies.clear()
        client.cookies.set("lv_login_csrf", token, path="/login")
        response = client.post("/login", data={"username": "ann", "password": PASSWORD, "login_token": token,
                                               "next": target}, follow_redirects=False)
        assert response.headers["location"] == "/"


def test_logout_ends_the_session_in_the_database(client: TestClient) -> None:
    old = session_id(login(client, "ann"))
    csrf = csrf_of(client.get("/").text)
    response = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert response.status_code == 303
    use_session(client, old)
    assert client.get("/", follow_redirects=False).status_code == 303


@sqlite_only
def test_logout_without_the_csrf_token_is_refused(client: TestClient) -> None:
    login(client, "ann")
    response = client.post("/logout", data={}, follow_redirects=False)
    assert response.status_code == 403
    assert client.get("/").status_code == 200


@sqlite_only
def test_form_posts_need_the_sessions_csrf_token(client: TestClient, world: World) -> None:
    project = world.services.projects.create(world.operator, world.client_a, slug="p", name="P",
                                             schema={"fields": [{"name": "text", "kind": "text"}],
                                                     "questions": [{"name": "q", "type": "label",
                                                                    "labels": ["a", "b"]}]})
    login(client, "max")
    response = client.post(f"/projects/{project.id}/settings", data={"overlap": "3", "csrf_token": "wrong"})
    assert response.status_code == 403
    assert "csrf_failed" in response.text
    assert world.services.projects.get(world.operator, world.client_a, project.id).overlap == 1


def test_the_api_takes_the_session_cookie_but_writes_need_the_csrf_header(client: TestClient, world: World) -> None:
    project = world.services.projects.create(world.operator, world.client_a, slug="p", name="P",
                                             schema={"fields": [{"name": "text", "kind": "text"}],
                                                     "questions": [{"name": "q", "type": "label",
                                                                    "labels": ["a", "b"]}]})
    world.services.imports.import_rows(world.operator, world.client_a, project.id,
                                       [{"external_id": "t1", "data": {"text": "hello"}}])
    login(client, "ann")
    assert client.get("/api/me").json()["username"] == "ann"
    refused = client.post(f"/api/projects/{project.id}/tasks/next")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "csrf_failed"
    csrf = csrf_of(client.get("/").text)
    leased = client.post(f"/api/projects/{project.id}/tasks/next", headers={"X-CSRF-Token": csrf})
    assert leased.status_code == 200
    assert leased.json()["data"] == {"text": "hello"}


def test_a_session_started_on_one_server_process_works_on_another(client: TestClient, world: World) -> None:
    cookie = session_id(login(client, "ann"))
    other = build_services(world.services.settings)  # a second process: its own engine and services
    try:
        with TestClient(build_app(other)) as second:
            use_session(second, cookie)
            response = second.get("/")
            assert response.status_code == 200
            assert "Hello, ann" in response.text
    finally:
        other.close()


def test_login_and_logout_are_in_the_audit_log(client: TestClient, world: World) -> None:
    login(client, "ann")
    client.post("/logout", data={"csrf_token": csrf_of(client.get("/").text)})
    world.services.audit.sequence()
    with world.services.uow_factory.system() as uow:
        actions = list(uow.session.scalars(select(AuditEntry.action).where(AuditEntry.actor == "ann")))
    assert "login.succeeded" in actions
    assert "web_session.started" in actions
    assert "web_session.ended" in actions
