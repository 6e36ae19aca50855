"""Quality over the API: settings, gold tasks in the queue, suspension and reinstatement, skills and
qualification, reports (JSON and CSV), recompute and the aggregated export."""

from __future__ import annotations

import orjson
import pytest

from tests.e2e.conftest import Api, create_project


@pytest.fixture
def project(api: Api) -> dict:
    project = create_project(api, "manager_a", api.world.client_a, overlap=1)
    world = api.world
    rows = [{"external_id": f"t{i}", "data": {"text": f"regular {i}"}} for i in range(4)]
    world.services.imports.import_rows(world.operator, project["client_id"], project["id"], rows)
    return project


def add_gold(api: Api, pid: int, count: int, *, qualification: bool = False) -> list[int]:
    rows = [{"external_id": f"g{i}-{qualification}", "data": {"text": f"gold {i}"}, "gold": {"sentiment": "positive"}}
            for i in range(count)]
    response = api.post("manager_a", f"/api/projects/{pid}/gold", json={"rows": rows, "qualification": qualification})
    assert response.status_code == 201, response.text
    assert response.json() == {"rows_read": count, "created": count, "already_present": 0}
    listed = api.get("manager_a", f"/api/projects/{pid}/gold").json()
    return [g["task_id"] for g in listed["items"] if g["qualification"] == qualification]


def settings(api: Api, pid: int, **changes: object) -> dict:
    response = api.patch("manager_a", f"/api/projects/{pid}/quality/settings", json=changes)
    assert response.status_code == 200, response.text
    return response.json()


def answer(api: Api, who: str, pid: int, value: str) -> dict:
    task = api.post(who, f"/api/projects/{pid}/tasks/next")
    assert task.status_code == 200, task.text
    body = task.json()
    submitted = api.post(who, f"/api/projects/{pid}/tasks/{body['task_id']}/answers",
                         json={"answer": {"sentiment": value}})
    assert submitted.status_code == 200, submitted.text
    return body


def test_quality_settings_are_read_and_changed_by_a_manager(api: Api, project: dict) -> None:
    pid = project["id"]
    changed = settings(api, pid, gold_rate=0.2, max_overlap=3, confidence_threshold=0.8, suspension_threshold=0.6,
                       required_skills=["lang:de"], show_gold_feedback=True)
    assert changed["gold_rate"] == 0.2 and changed["max_overlap"] == 3 and changed["required_skills"] == ["lang:de"]
    assert api.get("labeler_a", f"/api/projects/{pid}/quality/settings").json() == changed
    refused = api.patch("labeler_a", f"/api/projects/{pid}/quality/settings", json={"gold_rate": 1})
    assert refused.status_code == 403
    bad = api.patch("manager_a", f"/api/projects/{pid}/quality/settings", json={"gold_rate": 2})
    assert bad.status_code == 400 and bad.json()["error"]["details"] == {"field": "gold_rate"}


def test_a_gold_task_reaches_the_labeler_in_the_same_shape_and_is_scored(api: Api, project: dict) -> None:
    pid = project["id"]
    gold = add_gold(api, pid, 1)
    settings(api, pid, gold_rate=1.0, show_gold_feedback=True)
    served = answer(api, "labeler_a", pid, "negative")
    regular = answer(api, "labeler_a", pid, "positive")
    assert served["task_id"] in gold and regular["task_id"] not in gold
    assert set(served) == set(regular) and served["data"] == {"text": "gold 0"}
    feedback = api.get("labeler_a", f"/api/projects/{pid}/gold/feedback").json()
    assert [(f["task_id"], f["your_answer"], f["gold_answer"], f["credit"]) for f in feedback] == [
        (served["task_id"], "negative", "positive", 0.0)]
    labelers = api.get("manager_a", f"/api/projects/{pid}/quality/labelers").json()
    assert labelers[0]["gold"]["n"] == 1 and labelers[0]["gold"]["accuracy"] == 0.0


def test_a_suspended_labeler_is_refused_until_reinstated(api: Api, project: dict) -> None:
    pid = project["id"]
    add_gold(api, pid, 3)
    settings(api, pid, gold_rate=1.0, suspension_threshold=0.9, suspension_min_answers=2)
    answer(api, "labeler_a", pid, "negative")
    answer(api, "labeler_a", pid, "negative")
    refused = api.post("labeler_a", f"/api/projects/{pid}/tasks/next")
    assert refused.status_code == 409
    assert refused.json()["error"]["details"] == {"reason": "suspended"}
    (suspension,) = api.get("manager_a", f"/api/projects/{pid}/suspensions?active=true").json()
    assert suspension["username"] == "labeler_a" and suspension["n"] == 2
    lifted = api.post("manager_a", f"/api/projects/{pid}/suspensions/labeler_a/reinstate")
    assert lifted.status_code == 200 and lifted.json()["lifted_at"] is not None
    assert api.post("labeler_a", f"/api/projects/{pid}/tasks/next").status_code == 200


def test_skills_and_the_qualification_test_gate_the_queue(api: Api, project: dict) -> None:
    pid = project["id"]
    client = api.world.client_a
    settings(api, pid, required_skills=["lang:de"])
    refused = api.post("labeler_a", f"/api/projects/{pid}/tasks/next")
    assert refused.json()["error"]["details"] == {"reason": "not_qualified"}
    granted = api.post("manager_a", f"/api/clients/{client}/skills", json={"username": "labeler_a", "skill": "lang:de"})
    assert granted.status_code == 201
    assert api.get("manager_a", f"/api/clients/{client}/skills").json() == [granted.json()]
    test = add_gold(api, pid, 1, qualification=True)
    settings(api, pid, qualification_required=True, qualification_pass_mark=1.0)
    assert answer(api, "labeler_a", pid, "neutral")["task_id"] == test[0]  # the test first; failed
    refused = api.post("labeler_a", f"/api/projects/{pid}/tasks/next")
    assert refused.json()["error"]["details"] == {"reason": "not_qualified"}
    mine = api.get("labeler_a", f"/api/projects/{pid}/qualifications/me").json()
    assert (mine["passed"], mine["score"], mine["test_done"]) == (False, 0.0, 1)
    hand = api.client.put(f"/api/projects/{pid}/qualifications/labeler_a", headers=api.as_("manager_a"),
                          json={"qualified": True})
    assert hand.status_code == 204
    assert api.post("labeler_a", f"/api/projects/{pid}/tasks/next").status_code == 200
    revoked = api.delete("manager_a", f"/api/clients/{client}/skills/labeler_a/lang:de")
    assert revoked.status_code == 204


def test_reports_recompute_and_the_aggregated_export(api: Api, project: dict) -> None:
    pid = project["id"]
    for who, value in (("labeler_a", "positive"), ("labeler_a", "negative")):
        answer(api, who, pid, value)
    report = api.get("manager_a", f"/api/projects/{pid}/quality/report")
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["tasks"] == 4 and body["answers"] == 2 and "sentiment" in body["agreement"]
    assert api.get("manager_a", f"/api/projects/{pid}/quality/agreement").json() == body["agreement"]
    assert api.get("manager_a", f"/api/projects/{pid}/quality/confusion").json() == body["confusion"]
    csv = api.get("manager_a", f"/api/projects/{pid}/quality/labelers?format=csv")
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0].startswith("labeler,answers,gold_n,gold_accuracy,gold_lower,gold_upper")
    recomputed = api.post("manager_a", f"/api/projects/{pid}/quality/recompute").json()
    assert recomputed["version"] == body["version"] and recomputed["answers"] == 2
    export = api.get("manager_a", f"/api/projects/{pid}/quality/export")
    assert export.status_code == 200 and export.headers["content-type"].startswith("application/x-ndjson")
    lines = [orjson.loads(line) for line in export.content.splitlines()]
    answered = [line for line in lines if line["answers"]]
    assert len(lines) == 4 and [a["answers"]["sentiment"]["value"] for a in answered] == ["positive", "negative"]
    same = api.get("manager_a", f"/api/projects/{pid}/export?format=aggregated-jsonl")
    assert same.status_code == 200 and same.content == export.content


def test_quality_endpoints_hide_other_clients_and_refuse_labelers(api: Api, project: dict) -> None:
    pid = project["id"]
    for url in (f"/api/projects/{pid}/quality/report", f"/api/projects/{pid}/gold",
                f"/api/projects/{pid}/suspensions", f"/api/projects/{pid}/quality/export"):
        assert api.get("manager_b", url).status_code == 404, url
        assert api.get("labeler_a", url).status_code == 403, url
    error = api.get("manager_b", f"/api/projects/{pid}/quality/report").json()["error"]
    assert set(error) == {"code", "message", "details"} and error["code"] == "not_found"
