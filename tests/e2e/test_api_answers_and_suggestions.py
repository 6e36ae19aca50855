"""Answers page by page and suggestions added to existing tasks, through the app (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

from sqlalchemy import select

from labelvault.storage.models import AuditEntry
from tests.e2e.conftest import Api, create_project


def _import(api: Api, pid: int, n: int) -> None:
    lines = "".join(json.dumps({"external_id": f"t{i}", "data": {"text": f"text {i}"}}) + "\n" for i in range(n))
    response = api.post("manager_a", f"/api/projects/{pid}/imports", content=lines.encode(),
                        headers={"content-type": "application/x-ndjson"})
    assert response.status_code == 201, response.text


def _label_all(api: Api, pid: int, who: str, label: str) -> list[int]:
    ids = []
    while True:
        task = api.post(who, f"/api/projects/{pid}/tasks/next")
        if task.status_code == 409:
            return ids
        receipt = api.post(who, f"/api/projects/{pid}/tasks/{task.json()['task_id']}/answers",
                           json={"answer": {"sentiment": label}})
        assert receipt.status_code == 200, receipt.text
        ids.append(receipt.json()["answer_id"])


def test_answers_come_page_by_page_in_id_order_without_gaps(api: Api) -> None:
    pid = create_project(api, "manager_a", api.world.client_a)["id"]
    _import(api, pid, 7)
    answer_ids = _label_all(api, pid, "labeler_a", "positive")
    seen: list[dict] = []
    after = 0
    while True:
        page = api.get("manager_a", f"/api/projects/{pid}/answers", params={"after_id": after, "limit": 3})
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["total"] == 7
        seen.extend(body["items"])
        if body["next_after_id"] is None:
            break
        after = body["next_after_id"]
    assert [a["id"] for a in seen] == sorted(answer_ids)
    first = seen[0]
    assert first["value"] == {"sentiment": "positive"}
    assert first["labeler"] == "labeler_a" and first["status"] == "accepted"  # no review policy
    assert first["external_id"].startswith("t")
    assert api.get("manager_a", f"/api/projects/{pid}/answers", params={"status": "rejected"}).json()["total"] == 0
    # Every page was witnessed before it was read, with the page asked for (never content).
    api.world.services.audit.sequence()
    with api.world.services.uow_factory.system() as uow:
        reads = uow.session.scalars(select(AuditEntry).where(AuditEntry.action == "answers.read")).all()
    assert len(reads) == 4 and {r.actor for r in reads} == {"manager_a"}
    assert all(r.object_id == str(pid) and r.client_id == api.world.client_a for r in reads)


def test_answers_need_a_manager_and_stay_inside_the_client(api: Api) -> None:
    pid = create_project(api, "manager_a", api.world.client_a)["id"]
    assert api.get("labeler_a", f"/api/projects/{pid}/answers").status_code == 403
    foreign = api.get("manager_b", f"/api/projects/{pid}/answers")
    assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "not_found"
    bad = api.get("manager_a", f"/api/projects/{pid}/answers", params={"status": "maybe"})
    assert bad.status_code == 400 and bad.json()["error"]["details"] == {"field": "status"}


def test_skips_come_page_by_page_with_the_labelers_reasons_for_managers_only(api: Api) -> None:
    pid = create_project(api, "manager_a", api.world.client_a)["id"]
    _import(api, pid, 3)
    reasons = ["the text is in Finnish", "", "duplicate of t0"]
    for reason in reasons:
        task = api.post("labeler_a", f"/api/projects/{pid}/tasks/next").json()
        skipped = api.post("labeler_a", f"/api/projects/{pid}/tasks/{task['task_id']}/skip", json={"reason": reason})
        assert skipped.status_code == 204, skipped.text
    first = api.get("manager_a", f"/api/projects/{pid}/skips", params={"limit": 2}).json()
    rest = api.get("manager_a", f"/api/projects/{pid}/skips", params={"after_id": first["next_after_id"]}).json()
    assert first["total"] == 3 and rest["next_after_id"] is None
    items = first["items"] + rest["items"]
    assert [s["reason"] for s in items] == reasons
    assert {s["labeler"] for s in items} == {"labeler_a"} and all(s["external_id"].startswith("t") for s in items)
    assert api.get("labeler_a", f"/api/projects/{pid}/skips").status_code == 403
    assert api.get("manager_b", f"/api/projects/{pid}/skips").status_code == 404
    api.world.services.audit.sequence()
    with api.world.services.uow_factory.system() as uow:
        reads = uow.session.scalars(select(AuditEntry).where(AuditEntry.action == "skips.read")).all()
    # Both pages witnessed; the two refusals recorded as such.
    assert sorted((r.actor, r.outcome) for r in reads) == [
        ("labeler_a", "denied"), ("manager_a", "ok"), ("manager_a", "ok"), ("manager_b", "denied")]


def test_suggestions_of_a_model_replace_its_earlier_ones_so_a_repeat_changes_nothing(api: Api) -> None:
    pid = create_project(api, "manager_a", api.world.client_a)["id"]
    _import(api, pid, 2)
    body = {"items": [
        {"external_id": "t0", "suggestions": [{"model": "m1", "answer": {"sentiment": "negative"}, "score": 0.6}]},
        {"external_id": "t0", "suggestions": [{"model": "m2", "answer": {"sentiment": "neutral"}}]},
    ]}
    for _ in range(2):
        added = api.post("manager_a", f"/api/projects/{pid}/suggestions", json=body)
        assert added.status_code == 200, added.text
        assert added.json() == {"tasks": 1, "suggestions": 2}
    update = {"items": [{"external_id": "t0",
                         "suggestions": [{"model": "m1", "answer": {"sentiment": "positive"}, "score": 0.9}]}]}
    assert api.post("manager_a", f"/api/projects/{pid}/suggestions", json=update).status_code == 200
    export = api.get("manager_a", f"/api/projects/{pid}/export")
    rows = {r["external_id"]: r for r in map(json.loads, export.text.splitlines())}
    assert rows["t0"]["suggestions"] == [
        {"model": "m2", "answer": {"sentiment": "neutral"}, "score": None},
        {"model": "m1", "answer": {"sentiment": "positive"}, "score": 0.9},
    ]
    assert rows["t1"]["suggestions"] == []
    # The labeler sees them pre-filled (the most uncertain task first: t0 has a best score of 0.9).
    leased = api.post("labeler_a", f"/api/projects/{pid}/tasks/next").json()
    assert {s["model"] for s in leased["suggestions"]} in ({"m1", "m2"}, set())


def test_one_bad_suggestion_rejects_the_request_and_names_every_bad_item(api: Api) -> None:
    pid = create_project(api, "manager_a", api.world.client_a)["id"]
    _import(api, pid, 1)
    body = {"items": [
        {"external_id": "t0", "suggestions": [{"model": "m1", "answer": {"sentiment": "happy"}}]},
        {"external_id": "nope", "suggestions": [{"model": "m1", "answer": {"sentiment": "positive"}}]},
        {"task_id": 10**9, "suggestions": []},
    ]}
    response = api.post("manager_a", f"/api/projects/{pid}/suggestions", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert [d["item"] for d in error["details"]] == [0, 1, 2]
    assert error["details"][0]["field"].startswith("items[0].suggestions[0].answer")
    export = api.get("manager_a", f"/api/projects/{pid}/export")
    assert json.loads(export.text.splitlines()[0])["suggestions"] == []
    assert api.post("labeler_a", f"/api/projects/{pid}/suggestions", json={"items": []}).status_code == 403
    assert api.post("manager_b", f"/api/projects/{pid}/suggestions", json={"items": []}).status_code == 404
