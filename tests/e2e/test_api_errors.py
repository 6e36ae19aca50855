"""The error shape is a contract: every failure is {"error": {"code", "message", "details"}}."""

from __future__ import annotations

from tests.e2e.conftest import Api, create_project


def assert_error(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


def test_missing_token_is_401_with_the_error_shape(api: Api) -> None:
    assert_error(api.client.get("/api/me"), 401, "not_authenticated")


def test_unknown_token_is_401(api: Api) -> None:
    response = api.client.get("/api/me", headers={"Authorization": "Bearer lv_nope"})
    assert_error(response, 401, "not_authenticated")


def test_bad_body_names_the_field(api: Api) -> None:
    response = api.post("operator", "/api/clients", json={"name": "no slug"})
    error = assert_error(response, 400, "invalid_input")
    assert "slug" in error["message"]


def test_unknown_route_is_404_json(api: Api) -> None:
    assert_error(api.get("operator", "/api/nothing-here"), 404, "not_found")


def test_body_over_the_limit_is_413(api: Api) -> None:
    limit = api.world.services.settings.max_request_bytes
    response = api.client.post(
        "/api/clients", content=b"x" * 10, headers={**api.as_("operator"), "content-length": str(limit + 1)}
    )
    assert_error(response, 413, "payload_too_large")


def test_invalid_schema_is_400_naming_the_problem(api: Api) -> None:
    bad = {
        "fields": [{"name": "text", "kind": "text"}],
        "questions": [{"name": "q", "type": "label", "labels": ["a", "a"]}],
    }
    response = api.post("manager_a", f"/api/clients/{api.world.client_a}/projects", json={"slug": "x", "schema": bad})
    error = assert_error(response, 400, "schema_invalid")
    assert "q" in error["message"]


def test_duplicate_project_slug_is_409(api: Api) -> None:
    create_project(api, "manager_a", api.world.client_a, "dup")
    response = api.post(
        "manager_a",
        f"/api/clients/{api.world.client_a}/projects",
        json={
            "slug": "dup",
            "schema": {"fields": [{"name": "t", "kind": "text"}], "questions": [{"name": "q", "type": "text"}]},
        },
    )
    assert_error(response, 409, "conflict")


def test_the_api_docs_load_nothing_from_outside(api: Api) -> None:
    page = api.client.get("/api/docs")
    assert page.status_code == 200
    assert "http://" not in page.text and "https://" not in page.text and "<script>" not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/api/docs/assets/swagger-ui-bundle.js", "/api/docs/assets/swagger-ui.css", "/api/docs/init.js"):
        assert api.client.get(asset).status_code == 200, asset
    assert api.client.get("/api/openapi.json").json()["info"]["title"] == "LabelVault"
