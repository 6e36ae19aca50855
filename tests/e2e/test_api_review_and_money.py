"""Review, settings, reports and bonuses over the API."""

from __future__ import annotations

from sqlalchemy import select

from labelvault.storage.models import AuditEntry
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


def test_the_ledger_comes_page_by_page_with_bonus_notes_for_managers_only(api: Api) -> None:
    pid = setup_project(api, rate_per_answer=25)
    label(api, pid)
    label(api, pid)
    assert api.post("manager_a", f"/api/projects/{pid}/bonuses",
                    json={"username": "labeler_a", "amount": 500, "note": "thorough"}).status_code == 204
    too_long = api.post("manager_a", f"/api/projects/{pid}/bonuses",
                        json={"username": "labeler_a", "amount": 5, "note": "x" * 201})
    assert too_long.status_code == 400 and "note" in too_long.text
    first = api.get("manager_a", f"/api/projects/{pid}/ledger", params={"limit": 2})
    assert first.status_code == 200, first.text
    rest = api.get("manager_a", f"/api/projects/{pid}/ledger", params={"after_id": first.json()["next_after_id"]})
    assert first.json()["total"] == 3 and rest.json()["next_after_id"] is None
    entries = first.json()["items"] + rest.json()["items"]
    assert [(e["kind"], e["amount"], e["note"], e["username"]) for e in entries] == [
        ("answer", 25, "", "labeler_a"), ("answer", 25, "", "labeler_a"), ("bonus", 500, "thorough", "labeler_a")]
    assert entries[0]["answer_id"] and entries[0]["currency"] == "USD" and entries[2]["answer_id"] is None
    assert api.get("labeler_a", f"/api/projects/{pid}/ledger").status_code == 403
    assert api.get("manager_b", f"/api/projects/{pid}/ledger").status_code == 404
    api.world.services.audit.sequence()
    with api.world.services.uow_factory.system() as uow:
        reads = uow.session.scalars(select(AuditEntry).where(AuditEntry.action == "ledger.read")).all()
    assert sorted((r.actor, r.outcome) for r in reads) == [
        ("labeler_a", "denied"), ("manager_a", "ok"), ("manager_a", "ok"), ("manager_b", "denied")]


def test_the_budget_stops_the_queue_with_its_reason(api: Api) -> None:
    pid = setup_project(api, rate_per_answer=100, budget_cap=100)
    label(api, pid)
    refused = api.post("labeler_a", f"/api/projects/{pid}/tasks/next")
    assert refused.status_code == 409
    assert refused.json()["error"]["details"]["reason"] == "budget_reached"
