"""Roles are checked on every route; another client's objects answer 404, never 403."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Api, create_project


@pytest.fixture
def foreign_project(api: Api) -> dict:
    return create_project(api, "manager_b", api.world.client_b, "secret-project")


PROJECT_ROUTES = [
    ("get", "/api/projects/{p}", None),
    ("patch", "/api/projects/{p}", {"name": "x"}),
    ("get", "/api/projects/{p}/progress", None),
    ("get", "/api/projects/{p}/tasks", None),
    ("get", "/api/projects/{p}/tasks/1", None),
    ("post", "/api/projects/{p}/tasks/priority", {"priority": 1, "task_ids": [1]}),
    ("post", "/api/projects/{p}/tasks/remove", {"task_ids": [1]}),
    ("post", "/api/projects/{p}/tasks/more-answers", {"more": 1, "task_ids": [1]}),
    ("post", "/api/projects/{p}/tasks/next", None),
    ("post", "/api/projects/{p}/tasks/1/answers", {"answer": {"sentiment": "positive"}}),
    ("post", "/api/projects/{p}/tasks/1/skip", {"reason": "x"}),
    ("get", "/api/projects/{p}/export?format=jsonl", None),
]


@pytest.mark.parametrize(("method", "route", "body"), PROJECT_ROUTES)
@pytest.mark.parametrize("who", ["manager_a", "labeler_a", "reviewer_a", "viewer_a"])
def test_members_of_another_client_get_404_on_every_project_route(
    api: Api, foreign_project: dict, method: str, route: str, body: dict | None, who: str
) -> None:
    url = route.format(p=foreign_project["id"])
    kwargs = {"json": body} if body is not None else {}
    response = getattr(api, method)(who, url, **kwargs)
    assert response.status_code == 404, (who, url, response.text)
    assert response.json()["error"]["code"] == "not_found"


def test_a_foreign_project_and_a_missing_project_look_the_same(api: Api, foreign_project: dict) -> None:
    foreign = api.get("manager_a", f"/api/projects/{foreign_project['id']}")
    missing = api.get("manager_a", "/api/projects/999999")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json()["error"]["code"] == missing.json()["error"]["code"]


@pytest.mark.parametrize(("method", "route", "body"), [
    ("get", "/api/clients/{c}", None),
    ("get", "/api/clients/{c}/projects", None),
    ("post", "/api/clients/{c}/projects", {"slug": "x", "schema": {"fields": [{"name": "t", "kind": "text"}],
                                                                    "questions": [{"name": "q", "type": "text"}]}}),
    ("post", "/api/clients/{c}/members", {"username": "labeler_a", "role": "labeler"}),
])
def test_client_routes_of_another_client_answer_404(api: Api, method: str, route: str, body: dict | None) -> None:
    url = route.format(c=api.world.client_b)
    kwargs = {"json": body} if body is not None else {}
    response = getattr(api, method)("manager_a", url, **kwargs)
    assert response.status_code == 404, response.text


def test_a_labeler_cannot_change_project_settings(api: Api) -> None:
    project = create_project(api, "manager_a", api.world.client_a)
    response = api.patch("labeler_a", f"/api/projects/{project['id']}", json={"overlap": 3})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_a_viewer_cannot_label(api: Api) -> None:
    project = create_project(api, "manager_a", api.world.client_a)
    response = api.post("viewer_a", f"/api/projects/{project['id']}/tasks/next")
    assert response.status_code == 403


def test_only_operators_create_clients_and_users(api: Api) -> None:
    assert api.post("manager_a", "/api/clients", json={"slug": "new"}).status_code == 403
    assert api.post("manager_a", "/api/users", json={"username": "x"}).status_code == 403
    assert api.post("operator", "/api/clients", json={"slug": "new"}).status_code == 201


def test_clients_list_shows_only_the_members_clients(api: Api) -> None:
    mine = api.get("labeler_a", "/api/clients").json()
    assert [c["slug"] for c in mine["items"]] == ["acme"]
    assert mine["total"] == 1
    everything = api.get("operator", "/api/clients").json()
    assert {c["slug"] for c in everything["items"]} == {"acme", "globex"}


def test_tokens_are_shown_once_and_revocable(api: Api) -> None:
    api.world.services.accounts.create_user(api.world.operator, "pat", "a-long-password-1")
    issued = api.client.post("/api/auth/token", json={"username": "pat", "password": "a-long-password-1"})
    assert issued.status_code == 201
    token = issued.json()["token"]
    assert token.startswith("lv_")
    headers = {"Authorization": f"Bearer {token}"}
    assert api.client.get("/api/me", headers=headers).json()["username"] == "pat"
    listed = api.client.get("/api/tokens", headers=headers).json()["items"]
    assert all("token" not in t for t in listed)
    assert listed[0]["display_prefix"] == token[:10]
    assert api.client.delete(f"/api/tokens/{issued.json()['id']}", headers=headers).status_code == 204
    assert api.client.get("/api/me", headers=headers).status_code == 401


def test_wrong_password_is_refused(api: Api) -> None:
    response = api.client.post("/api/auth/token", json={"username": "operator", "password": "nope-nope-nope"})
    assert response.status_code == 401


def test_lists_are_paginated(api: Api) -> None:
    for i in range(5):
        create_project(api, "manager_a", api.world.client_a, f"p{i}")
    page = api.get("manager_a", f"/api/clients/{api.world.client_a}/projects?offset=1&limit=2").json()
    assert page["total"] == 5
    assert [p["slug"] for p in page["items"]] == ["p1", "p2"]
    assert api.get("manager_a", f"/api/clients/{api.world.client_a}/projects?limit=5000").status_code == 400


def test_an_operator_deactivates_a_person_who_leaves_and_can_bring_them_back(api: Api) -> None:
    labeler_id = api.world.actors["labeler_a"].user_id
    assert api.get("labeler_a", "/api/me").status_code == 200
    refused = api.patch("manager_a", f"/api/users/{labeler_id}", json={"is_active": False})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"

    response = api.patch("operator", f"/api/users/{labeler_id}", json={"is_active": False})
    assert response.status_code == 200
    assert (response.json()["username"], response.json()["is_active"]) == ("labeler_a", False)
    assert api.get("labeler_a", "/api/me").status_code == 401
    listed = api.get("operator", "/api/users?limit=1000").json()["items"]
    assert [u["is_active"] for u in listed if u["id"] == labeler_id] == [False]

    assert api.patch("operator", f"/api/users/{labeler_id}", json={"is_active": True}).json()["is_active"] is True
    assert api.get("labeler_a", "/api/me").status_code == 200
    operator_id = api.world.operator.user_id
    themselves = api.patch("operator", f"/api/users/{operator_id}", json={"is_active": False})
    assert themselves.status_code == 409 and "yourself" in themselves.json()["error"]["message"]
    assert api.patch("operator", "/api/users/999999", json={"is_active": False}).status_code == 404
    misspelt = api.patch("operator", f"/api/users/{labeler_id}", json={"active": False})
    assert misspelt.status_code == 400 and "active" in misspelt.text


def test_a_person_changes_their_password_through_the_api(api: Api) -> None:
    api.world.services.accounts.create_user(api.world.operator, "pat", "the-old-long-password")
    token = api.client.post("/api/auth/token", json={"username": "pat", "password": "the-old-long-password"})
    headers = {"Authorization": f"Bearer {token.json()['token']}"}
    wrong = api.client.post("/api/me/password", headers=headers,
                            json={"current_password": "not-it-at-all", "new_password": "the-new-long-password"})
    assert wrong.status_code == 401
    short = api.client.post("/api/me/password", headers=headers,
                            json={"current_password": "the-old-long-password", "new_password": "short"})
    assert short.status_code == 400 and "new_password" in short.text
    change = {"current_password": "the-old-long-password", "new_password": "the-new-long-password"}
    changed = api.client.post("/api/me/password", headers=headers, json=change)
    assert changed.status_code == 204
    assert api.client.post("/api/auth/token", json={"username": "pat", "password": "the-old-long-password"}
                           ).status_code == 401
    assert api.client.post("/api/auth/token", json={"username": "pat", "password": "the-new-long-password"}
                           ).status_code == 201
    assert api.client.get("/api/me", headers=headers).status_code == 200  # the token still works


def test_an_operator_reads_a_persons_tokens_to_revoke_them(api: Api) -> None:
    labeler_id = api.world.actors["labeler_a"].user_id
    listed = api.get("operator", f"/api/users/{labeler_id}/tokens")
    assert listed.status_code == 200 and [t["name"] for t in listed.json()["items"]] == ["test"]
    assert all("token" not in t for t in listed.json()["items"])
    assert api.get("manager_a", f"/api/users/{labeler_id}/tokens").status_code == 403
    token_id = listed.json()["items"][0]["id"]
    assert api.delete("operator", f"/api/tokens/{token_id}").status_code == 204
    assert api.get("labeler_a", "/api/me").status_code == 401


def test_a_manager_changes_the_guidelines_through_the_api_and_a_labeler_may_not(api: Api) -> None:
    project = create_project(api, "manager_a", api.world.client_a, "guided")
    url = f"/api/projects/{project['id']}"
    changed = api.patch("manager_a", url, json={"instructions": "Sarcasm is negative."})
    assert changed.status_code == 200 and changed.json()["schema"]["instructions"] == "Sarcasm is negative."
    assert api.get("labeler_a", url).json()["schema"]["instructions"] == "Sarcasm is negative."
    assert api.patch("labeler_a", url, json={"instructions": "mine"}).status_code == 403
    too_long = api.patch("manager_a", url, json={"instructions": "x" * 100_001})
    assert too_long.status_code == 400 and too_long.json()["error"]["details"] == {"field": "instructions"}
    removed = api.patch("manager_a", url, json={"instructions": ""}).json()
    assert "instructions" not in removed["schema"]
