"""Label Studio import over the API: multipart upload with the config, dry run, errors, access."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import Api

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "label_studio"
EXPORT = (FIXTURES / "text_project.json").read_bytes()
CONFIG = (FIXTURES / "text_project.xml").read_bytes()


def url(api: Api, client: str = "a") -> str:
    client_id = api.world.client_a if client == "a" else api.world.client_b
    return f"/api/clients/{client_id}/imports/label-studio"


def files(export: bytes = EXPORT) -> dict[str, tuple[str, bytes, str]]:
    return {"file": ("project-7.json", export, "application/json"), "config": ("config.xml", CONFIG, "text/xml")}


def test_an_export_and_its_config_become_a_project_with_answers(api: Api) -> None:
    response = api.post("manager_a", url(api), files=files(), params={"new_project": "reviews", "overlap": 2})
    assert response.status_code == 201, response.text
    report = response.json()
    assert (report["tasks_created"], report["answers_created"], report["skips_created"]) == (4, 4, 1)
    assert report["accounts"] == ["ls:acme:user-1", "ls:acme:user-2"]
    progress = api.get("manager_a", f"/api/projects/{report['project_id']}/progress").json()
    assert progress == {"tasks": 4, "answers_needed": 8, "answers_given": 4}  # imported answers count
    again = api.post("manager_a", url(api), files=files(), params={"project": "reviews"})
    assert again.status_code == 201
    assert (again.json()["tasks_already_present"], again.json()["answers_created"]) == (4, 0)


def test_a_dry_run_answers_200_with_the_schema_and_writes_nothing(api: Api) -> None:
    response = api.post("manager_a", url(api), files=files(), params={"new_project": "reviews", "dry_run": True})
    assert response.status_code == 200, response.text
    assert [q["name"] for q in response.json()["mapping"]["schema"]["questions"]][:2] == ["sentiment", "topics"]
    projects = api.get("manager_a", f"/api/clients/{api.world.client_a}/projects").json()
    assert projects["total"] == 0


def test_a_bad_export_is_a_400_naming_the_place(api: Api) -> None:
    bad = EXPORT.replace(b'"Positive"', b'"Great"', 1)
    response = api.post("manager_a", url(api), files=files(bad), params={"new_project": "reviews"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "import_invalid"
    assert 'tasks[0] (id 101).annotations[0] (id 2001): question "sentiment": unknown label "Great"' in error["message"]
    assert error["details"]["errors"][0]["task"] == 0


def test_only_the_clients_managers_may_import(api: Api) -> None:
    assert api.post("labeler_a", url(api), files=files(), params={"new_project": "x"}).status_code == 403
    assert api.post("manager_b", url(api), files=files(), params={"new_project": "x"}).status_code == 404
    no_file = api.post("manager_a", url(api), content=b"[]", params={"new_project": "x"},
                       headers={"content-type": "application/json"})
    assert no_file.status_code == 400
