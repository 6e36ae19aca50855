"""A project's tasks over the API: listed by state or external id, one opened, reprioritised."""

from __future__ import annotations

from tests.e2e.conftest import Api, create_project


def _project_with_tasks(api: Api) -> dict:
    project = create_project(api, "manager_a", api.world.client_a, overlap=1)
    rows = [{"external_id": f"r{i}", "data": {"text": f"review {i}"}} for i in range(3)]
    api.world.services.imports.import_rows(api.world.operator, api.world.client_a, project["id"], rows)
    return project


def test_tasks_are_listed_by_state_and_found_by_external_id(api: Api) -> None:
    project = _project_with_tasks(api)
    tasks = f"/api/projects/{project['id']}/tasks"
    leased = api.post("labeler_a", f"{tasks}/next").json()
    answered = api.post("labeler_a", f"{tasks}/{leased['task_id']}/answers", json={"answer": {"sentiment": "neutral"}})
    assert answered.status_code == 200, answered.text

    listed = api.get("viewer_a", tasks).json()
    assert listed["total"] == 3
    assert {(t["external_id"], t["state"]) for t in listed["items"]} == {("r0", "complete"), ("r1", "open"),
                                                                       ("r2", "open")}
    open_only = api.get("viewer_a", tasks, params={"state": "open"}).json()
    assert open_only["total"] == 2 and {t["external_id"] for t in open_only["items"]} == {"r1", "r2"}
    found = api.get("viewer_a", tasks, params={"external_id": "r2"}).json()
    assert [t["external_id"] for t in found["items"]] == ["r2"]

    bad = api.get("viewer_a", tasks, params={"state": "finished"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_input" and "state" in bad.text


def test_a_manager_opens_a_task_and_a_labeler_may_not(api: Api) -> None:
    project = _project_with_tasks(api)
    tasks = f"/api/projects/{project['id']}/tasks"
    leased = api.post("labeler_a", f"{tasks}/next").json()
    api.post("labeler_a", f"{tasks}/{leased['task_id']}/answers", json={"answer": {"sentiment": "neutral"}})

    opened = api.get("manager_a", f"{tasks}/{leased['task_id']}")
    assert opened.status_code == 200, opened.text
    detail = opened.json()
    assert detail["external_id"] == "r0" and detail["state"] == "complete"
    assert detail["payload"] == {"text": "review 0"}
    assert [(a["labeler"], a["status"], a["value"]) for a in detail["answers"]] == [
        ("labeler_a", "accepted", {"sentiment": "neutral"})]  # no review: accepted as it completes
    assert detail["skips"] == [] and detail["leases"] == [] and detail["reviews"] == []

    refused = api.get("labeler_a", f"{tasks}/{leased['task_id']}")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    missing = api.get("manager_a", f"{tasks}/999999")
    assert missing.status_code == 404 and "999999" in missing.json()["error"]["message"]


def test_a_priority_change_names_what_it_could_not_find_and_changes_nothing(api: Api) -> None:
    project = _project_with_tasks(api)
    tasks = f"/api/projects/{project['id']}/tasks"
    refused = api.post("manager_a", f"{tasks}/priority", json={"priority": 7, "external_ids": ["r1", "r9"]})
    assert refused.status_code == 404
    assert "'r9'" in refused.json()["error"]["message"]
    assert {t["priority"] for t in api.get("manager_a", tasks).json()["items"]} == {0}

    changed = api.post("manager_a", f"{tasks}/priority", json={"priority": 7, "external_ids": ["r2"]})
    assert changed.status_code == 200 and changed.json() == {"changed": 1}
    leased = api.post("labeler_a", f"{tasks}/next").json()
    assert api.get("manager_a", f"{tasks}/{leased['task_id']}").json()["external_id"] == "r2"  # first now

    assert api.post("labeler_a", f"{tasks}/priority", json={"priority": 1, "external_ids": ["r1"]}).status_code == 403
    too_high = api.post("manager_a", f"{tasks}/priority", json={"priority": 10**9, "external_ids": ["r1"]})
    assert too_high.status_code == 400 and "priority" in too_high.text


def test_unanswered_tasks_are_removed_and_answered_ones_are_named_and_kept(api: Api) -> None:
    project = _project_with_tasks(api)
    tasks = f"/api/projects/{project['id']}/tasks"
    leased = api.post("labeler_a", f"{tasks}/next").json()
    api.post("labeler_a", f"{tasks}/{leased['task_id']}/answers", json={"answer": {"sentiment": "neutral"}})

    refused = api.post("manager_a", f"{tasks}/remove", json={"external_ids": ["r0", "r1"]})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "conflict"
    assert "'r0'" in refused.json()["error"]["message"] and api.get("manager_a", tasks).json()["total"] == 3
    assert api.post("labeler_a", f"{tasks}/remove", json={"external_ids": ["r1"]}).status_code == 403
    assert api.post("manager_a", f"{tasks}/remove", json={}).status_code == 400

    removed = api.post("manager_a", f"{tasks}/remove", json={"external_ids": ["r1", "r2"]})
    assert removed.status_code == 200 and removed.json() == {"removed": 2}
    assert [t["external_id"] for t in api.get("manager_a", tasks).json()["items"]] == ["r0"]
    again = api.post("manager_a", f"{tasks}/remove", json={"external_ids": ["r1"]})
    assert again.status_code == 404 and "'r1'" in again.json()["error"]["message"]


def test_a_manager_asks_for_more_answers_on_a_complete_task(api: Api) -> None:
    project = _project_with_tasks(api)
    tasks = f"/api/projects/{project['id']}/tasks"
    leased = api.post("labeler_a", f"{tasks}/next").json()
    api.post("labeler_a", f"{tasks}/{leased['task_id']}/answers", json={"answer": {"sentiment": "neutral"}})
    asked = api.post("manager_a", f"{tasks}/more-answers", json={"more": 2, "external_ids": ["r0"]})
    assert asked.status_code == 200 and asked.json() == {"tasks": 1}
    detail = api.get("manager_a", f"{tasks}/{leased['task_id']}").json()
    assert (detail["state"], detail["required_answers"], detail["open_slots"]) == ("open", 3, 2)
    assert api.post("manager_a", f"{tasks}/more-answers", json={"more": 0, "external_ids": ["r0"]}).status_code == 400
    assert api.post("labeler_a", f"{tasks}/more-answers", json={"more": 1, "external_ids": ["r0"]}).status_code == 403
    missing = api.post("manager_a", f"{tasks}/more-answers", json={"more": 1, "external_ids": ["r7"]})
    assert missing.status_code == 404 and "'r7'" in missing.json()["error"]["message"]


def test_a_large_project_is_walked_page_by_page_by_id(api: Api) -> None:
    project = _project_with_tasks(api)
    rows = [{"external_id": f"x{i}", "data": {"text": f"more {i}"}} for i in range(4)]
    api.world.services.imports.import_rows(api.world.operator, api.world.client_a, project["id"], rows)
    tasks = f"/api/projects/{project['id']}/tasks"
    seen, after_id, pages = [], 0, 0
    while after_id is not None:
        page = api.get("viewer_a", tasks, params={"after_id": after_id, "limit": 3}).json()
        assert page["total"] == 7  # the filter's tasks, whatever the page
        seen += [t["external_id"] for t in page["items"]]
        after_id, pages = page["next_after_id"], pages + 1
    assert seen == ["r0", "r1", "r2", "x0", "x1", "x2", "x3"] and pages == 3
    last = api.get("viewer_a", tasks, params={"after_id": 0, "limit": 7}).json()
    assert len(last["items"]) == 7 and last["next_after_id"] is None
