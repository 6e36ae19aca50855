"""Review, settings, reports and bonuses over the API."""

from __future__ import annotations

from tests.e2e.conftest import Api, create_project


def setup_project(api: Api, **settings: object) -> int:
    project = create_project(api, "manager_a", api.world.client_a, "paid")
    if settings:
        response = api.patch("manager_a", f"/api/projects/{project['id']}", json=settings)
        assert response.status_code == 200, response.text
    rows = [{"external_id": f"r{i}", "data": {"text": f"review me {i}"}} for i in range(2)]
    api.world.services.imports.import_rows(api.world.operator, api.world.client_a, project["id"], rows)
    return project["id"]


def label(api: Api, pid: int, value: str = "positive") -> int:
    task = api.post("labeler_a", f"/api/projects/{pid}/tasks/next").json()
    receipt = api.post("labeler_a", f"/api/projects/{pid}/tasks/{task['task_id']}/answers",
                       json={"answer": {"sentiment": value}})
    assert receipt.status_code == 200, receipt.text
    return int(task["task_id"])


def test_settings_are_validated_and_echoed(api: Api) -> None:
    pid = setup_project(api, review_policy="all", rate_per_answer=250, budget_cap=10_000, pay_on="accept")
    project = api.get("manager_a", f"/api/projects/{pid}").json()
    assert (project["review_policy"], project["rate_per_answer"], project["budget_cap"], project["pay_on"]) == (
        "all", 250, 10_000, "accept")
    bad = api.patch("manager_a", f"/api/projects/{pid}", json={"review_policy": "sometimes"})
    assert bad.status_code == 400 and "review_policy" in bad.json()["error"]["message"]
    negative = api.patch("manager_a", f"/api/projects/{pid}", json={"rate_per_answer": -1})
    assert negative.status_code == 400


def test_a_reviewer_rejects_over_the_api_and_the_labeler_reads_why(api: Api) -> None:
    pid = setup_project(api, review_policy="all", rate_per_answer=100)
    task_id = label(api, pid, "neutral")
    item = api.post("reviewer_a", f"/api/projects/{pid}/reviews/next")
    assert item.status_code == 200, item.text
    assert item.json()["answers"][0]["value"] == {"sentiment": "neutral"}
    no_reason = api.post("reviewer_a", f"/api/projects/{pid}/reviews/{task_id}", json={"decision": "reject"})
    assert no_reason.status_code == 400
    rejected = api.post("reviewer_a", f"/api/projects/{pid}/reviews/{task_id}",
                        json={"decision": "reject", "reason": "it is positive"})
    assert rejected.status_code == 200, rejected.text
    feedback = api.get("labeler_a", f"/api/projects/{pid}/feedback").json()["items"]
    assert [(f["task_id"], f["reason"]) for f in feedback] == [(task_id, "it is positive")]
    assert api.post("labeler_a", f"/api/projects/{pid}/reviews/next").status_code == 403


def test_reports_come_as_json_and_csv(api: Api) -> None:
    pid = setup_project(api, rate_per_answer=1234)
    label(api, pid)
    spend = api.get("manager_a", f"/api/clients/{api.world.client_a}/reports/spend").json()
    assert [(row["project"], row["amount"]) for row in spend] == [("paid", 1234)]
    payout = api.get("manager_a", f"/api/clients/{api.world.client_a}/reports/earnings", params={"format": "csv"})
    assert payout.headers["content-type"].startswith("text/csv")
    assert "labeler_a,1234,USD,1,0,12.34" in payout.text
    costs = api.get("manager_a", f"/api/projects/{pid}/reports/costs").json()
    assert costs["spent"] == 1234
    assert api.get("labeler_a", f"/api/clients/{api.world.client_a}/reports/spend").status_code == 403
    assert api.get("manager_b", f"/api/clients/{api.world.client_a}/reports/spend").status_code == 404


def test_a_manager_grants_a_bonus(api: Api) -> None:
    pid = setup_project(api)
    response = api.post("manager_a", f"/api/projects/{pid}/bonuses",
                        json={"username": "labeler_a", "amount": 500, "note": "thorough"})
    assert response.status_code == 204
    earnings = api.get("manager_a", f"/api/clients/{api.world.client_a}/reports/earnings").json()
    assert [(e["username"], e["amount"]) for e in earnings] == [("labeler_a", 500)]
    stranger = api.post("manager_a", f"/api/projects/{pid}/bonuses", json={"username": "labeler_b", "amount": 5})
    assert stranger.status_code == 404


def test_the_budget_stops_the_queue_with_its_reason(api: Api) -> None:
    pid = setup_project(api, rate_per_answer=100, budget_cap=100)
    label(api, pid)
    refused = api.post("labeler_a", f"/api/projects/{pid}/tasks/next")
    assert refused.status_code == 409
    assert refused.json()["error"]["details"]["reason"] == "budget_reached"
