"""A labeler's own money events over the API: /clients/{id}/my-ledger and /projects/{id}/my-ledger."""

from __future__ import annotations

from sqlalchemy import select

from labelvault.storage.models import AuditEntry
from tests.e2e.conftest import Api
from tests.e2e.test_api_review_and_money import label, setup_project

REASON = "it is positive"


def paid_rejected_and_bonused(api: Api) -> int:
    """labeler_a: an answer paid then reversed by a rejection, an answer paid, a bonus; reviewer_a
    gets a bonus too."""
    pid = setup_project(api, review_policy="all", rate_per_answer=100)
    task_id = label(api, pid, "neutral")
    assert api.post("reviewer_a", f"/api/projects/{pid}/reviews/next").status_code == 200
    rejected = api.post("reviewer_a", f"/api/projects/{pid}/reviews/{task_id}",
                        json={"decision": "reject", "reason": REASON})
    assert rejected.status_code == 200, rejected.text
    label(api, pid)
    for username, note in (("labeler_a", "thorough <em>work</em>"), ("reviewer_a", "for the reviewer only")):
        granted = api.post("manager_a", f"/api/projects/{pid}/bonuses",
                           json={"username": username, "amount": 500, "note": note})
        assert granted.status_code == 204, granted.text
    return pid


def test_a_labeler_reads_their_own_ledger_page_by_page_with_note_and_reason(api: Api) -> None:
    pid = paid_rejected_and_bonused(api)
    first = api.get("labeler_a", f"/api/projects/{pid}/my-ledger", params={"limit": 3})
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["total"], body["earned"], body["currency"], body["limit"]) == (4, 600, "USD", 3)
    rest = api.get("labeler_a", f"/api/projects/{pid}/my-ledger", params={"after_id": body["next_after_id"]}).json()
    assert rest["next_after_id"] is None
    entries = body["items"] + rest["items"]
    assert [(e["kind"], e["amount"], e["note"], e["reason"]) for e in entries] == [
        ("answer", 100, "", ""), ("reversal", -100, "", REASON), ("answer", 100, "", ""),
        ("bonus", 500, "thorough <em>work</em>", "")]
    assert all(e["project_id"] == pid and e["project"] == "paid" and e["currency"] == "USD" for e in entries)
    assert "username" not in entries[0] and "user_id" not in entries[0]  # it is always the caller
    # The whole client, or one of its projects by query, lists the same; the reviewer sees only theirs.
    across = api.get("labeler_a", f"/api/clients/{api.world.client_a}/my-ledger").json()
    assert [e["id"] for e in across["items"]] == [e["id"] for e in entries]
    one = api.get("labeler_a", f"/api/clients/{api.world.client_a}/my-ledger", params={"project_id": pid}).json()
    assert one["items"] == across["items"]
    reviewer = api.get("reviewer_a", f"/api/clients/{api.world.client_a}/my-ledger").json()
    assert [(e["kind"], e["note"]) for e in reviewer["items"]] == [("bonus", "for the reviewer only")]


def test_another_clients_people_get_404_and_every_page_read_is_audited(api: Api) -> None:
    pid = paid_rejected_and_bonused(api)
    client_a = api.world.client_a
    assert api.get("labeler_a", f"/api/projects/{pid}/my-ledger").status_code == 200
    assert api.get("labeler_a", f"/api/clients/{client_a}/my-ledger").status_code == 200
    for who in ("labeler_b", "manager_b"):
        for url in (f"/api/projects/{pid}/my-ledger", f"/api/clients/{client_a}/my-ledger"):
            response = api.get(who, url)
            assert response.status_code == 404, (who, url)
            assert response.json()["error"]["code"] == "not_found"
    # Client B's member naming A's project under B: not there either.
    foreign = api.get("labeler_b", f"/api/clients/{api.world.client_b}/my-ledger", params={"project_id": pid})
    assert foreign.status_code == 404
    api.world.services.audit.sequence()
    with api.world.services.uow_factory.system() as uow:
        reads = uow.session.scalars(select(AuditEntry).where(AuditEntry.action == "ledger.read_own")
                                    .order_by(AuditEntry.seq)).all()
    assert [(r.actor, r.object_kind, r.outcome) for r in reads] == [
        ("labeler_a", "project", "ok"), ("labeler_a", "client", "ok"),
        ("labeler_b", "project", "denied"), ("labeler_b", "client", "denied"),
        ("manager_b", "project", "denied"), ("manager_b", "client", "denied"),
        ("labeler_b", "project", "denied")]
    assert api.get("labeler_a", "/api/clients/999999/my-ledger").status_code == 404  # no such client


def test_a_read_token_is_enough_and_a_label_only_token_is_refused(api: Api) -> None:
    pid = paid_rejected_and_bonused(api)
    accounts, operator = api.world.services.accounts, api.world.operator
    for name, scopes in (("ro", ["read"]), ("lo", ["label"])):
        api.world.tokens[name] = accounts.issue_token(operator, name, for_username="labeler_a", scopes=scopes).token
    assert api.get("ro", f"/api/projects/{pid}/my-ledger").json()["total"] == 4
    refused = api.get("lo", f"/api/projects/{pid}/my-ledger")
    assert refused.status_code == 403 and "read" in refused.json()["error"]["message"]


def test_bad_paging_gets_a_400_naming_the_field(api: Api) -> None:
    pid = paid_rejected_and_bonused(api)
    for params, field in (({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"after_id": -1}, "after_id"),
                          ({"project_id": "x"}, "project_id")):
        response = api.get("labeler_a", f"/api/clients/{api.world.client_a}/my-ledger", params=params)
        assert response.status_code == 400, params
        assert response.json()["error"]["details"][0]["field"] == field
    bad = api.get("labeler_a", f"/api/projects/{pid}/my-ledger", params={"limit": "many"})
    assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("limit:")
