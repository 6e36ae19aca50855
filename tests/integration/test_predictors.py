"""Model predictors: suggestions from an entry point or an HTTP endpoint, the uncertainty order of
the queue, whole batches or nothing, allowed hosts only, and who may do what."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from labelvault.domain.predictors import PredictorConfig
from labelvault.errors import InvalidInput, NotFound, PermissionDenied, PredictorFailed
from labelvault.io.fetch import FetchPolicy
from labelvault.io.predictors import PredictorCallPolicy
from labelvault.periodic import PeriodicThread
from labelvault.storage.models import AuditEntry, TaskPrediction
from labelvault.workflow.content import open_task_content
from labelvault.workflow.predictions import PredictionScheduler
from tests.conftest import World
from tests.integration import predictor_helpers
from tests.integration.queue_helpers import LABEL_SCHEMA

# The model's confidence per task, in import order: the least sure (0.35) should be labeled first.
SCORES = [0.95, 0.6, 0.35, 0.8, 0.99]


def make_project(world: World, slug: str = "predicted") -> int:
    services = world.services
    project = services.projects.create(world.operator, world.client_a, slug=slug, name=slug, schema=LABEL_SCHEMA)
    rows = [{"external_id": f"t{i}", "data": {"text": f"sure {score}"}} for i, score in enumerate(SCORES)]
    services.imports.import_rows(world.operator, world.client_a, project.id, rows)
    return project.id


def entry_point(target: str = "confident", **changes: Any) -> PredictorConfig:
    return PredictorConfig(kind="entry_point", target=f"tests.integration.predictor_helpers:{target}",
                           question="sentiment", model_name="kw", **changes)


def task_state(world: World, project_id: int) -> list[tuple[str, float, list[dict[str, Any]], str | None]]:
    """(external id, uncertainty, suggestions, predicted version) of every task, in import order."""
    with world.services.uow_factory.for_client(world.client_a) as uow:
        tasks = uow.tasks.list(project_id, offset=0, limit=100)
        versions = {p.task_id: p.model_version for p in uow.session.scalars(select(TaskPrediction))}
        return [(t.external_id or "", t.uncertainty, open_task_content(uow, t)[1], versions.get(t.id))
                for t in tasks]


def audit_actions(world: World) -> list[tuple[str, dict[str, Any]]]:
    world.services.audit.sequence()  # PostgreSQL: number what acts wrote (audit/log.py)
    with world.services.uow_factory.system() as uow:
        rows = uow.session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
        return [(r.action, orjson.loads(r.entry).get("details", {})) for r in rows]


def audit_entries(world: World) -> list[dict[str, Any]]:
    world.services.audit.sequence()
    with world.services.uow_factory.system() as uow:
        return [orjson.loads(r.entry) for r in uow.session.scalars(select(AuditEntry).order_by(AuditEntry.seq))]


@pytest.fixture(autouse=True)
def _fresh_calls() -> None:
    predictor_helpers.CALLS.clear()


def test_an_entry_point_predictor_adds_suggestions_and_the_least_sure_task_is_served_first(world: World) -> None:
    services = world.services
    project_id = make_project(world)
    labeler = world.actors["labeler_a"]
    services.predictions.configure(world.operator, world.client_a, project_id, entry_point(batch_size=2))

    report = services.predictions.run(world.operator, world.client_a, project_id)

    assert (report.pending, report.scored, report.suggestions, report.batches) == (5, 5, 5, 3)
    assert [len(call) for call in predictor_helpers.CALLS] == [2, 2, 1]
    state = task_state(world, project_id)
    assert [round(u, 2) for _, u, _, _ in state] == [round(1 - s, 2) for s in SCORES]
    assert all(version == "1" for *_, version in state)
    assert state[0][2] == [{"model": "kw@1", "answer": {"sentiment": "positive"}, "score": 0.95}]
    # The queue now serves the task the model is least sure about, not the first imported.
    leased = services.labeling.next_task(labeler, world.client_a, project_id)
    assert leased.payload == {"text": "sure 0.35"}
    assert leased.suggestions[0]["model"] == "kw@1"
    # Every batch that left for the predictor is in the audit log, with its task ids, before its result.
    actions = [(a, d) for a, d in audit_actions(world) if a in ("tasks.sent_to_predictor", "suggestions.predicted")]
    assert [a for a, _ in actions] == ["tasks.sent_to_predictor", "suggestions.predicted"] * 3
    assert [d["task_ids"] for a, d in actions if a == "tasks.sent_to_predictor"] == predictor_helpers.CALLS
    assert actions[0][1]["to"] == "tests.integration.predictor_helpers:confident"


def test_running_again_asks_nothing_and_a_new_model_version_rescores_the_open_tasks(world: World) -> None:
    services = world.services
    project_id = make_project(world)
    services.predictions.configure(world.operator, world.client_a, project_id, entry_point())
    services.predictions.run(world.operator, world.client_a, project_id)
    # One task gets its answer: it no longer wants suggestions.
    labeler = world.actors["labeler_a"]
    leased = services.labeling.next_task(labeler, world.client_a, project_id)
    services.labeling.submit(labeler, world.client_a, project_id, leased.task_id, {"sentiment": "negative"})
    predictor_helpers.CALLS.clear()

    again = services.predictions.run(world.operator, world.client_a, project_id)
    assert (again.pending, again.scored, again.batches) == (0, 0, 0)
    assert predictor_helpers.CALLS == []

    services.predictions.configure(world.operator, world.client_a, project_id,
                                   entry_point(model_version="2", options={"label": "negative"}))
    assert services.predictions.get(world.operator, world.client_a, project_id).pending == 4  # type: ignore[union-attr]
    rescored = services.predictions.run(world.operator, world.client_a, project_id)
    assert rescored.scored == 4 and sorted(predictor_helpers.CALLS[0]) == predictor_helpers.CALLS[0]
    state = task_state(world, project_id)
    new = [s for _, _, s, v in state if v == "2"]
    assert len(new) == 4
    # The new version replaced the old one's suggestion: one suggestion of this model per task.
    assert all(s == [{"model": "kw@2", "answer": {"sentiment": "negative"}, "score": s[0]["score"]}] for s in new)
    everything = services.predictions.run(world.operator, world.client_a, project_id, everything=True)
    assert everything.scored == 4


def test_a_predictor_answering_badly_fails_its_batch_whole_and_the_next_run_continues(world: World) -> None:
    services = world.services
    project_id = make_project(world)
    services.predictions.configure(world.operator, world.client_a, project_id,
                                   entry_point("broken_on_second_batch", batch_size=2))
    with pytest.raises(PredictorFailed) as failed:
        services.predictions.run(world.operator, world.client_a, project_id)
    second = predictor_helpers.CALLS[1]
    message = failed.value.message
    assert f"batch 2 (tasks {second[0]}-{second[1]})" in message and f"task {second[0]}" in message
    assert "maybe" in message and "nothing of this batch was written" in message
    assert failed.value.details["task_ids"] == second
    state = task_state(world, project_id)
    # The first batch is written; the failing one not at all (no suggestion, no uncertainty, no mark).
    assert [(bool(s), v) for _, _, s, v in state] == [(True, "1"), (True, "1"), (False, None), (False, None),
                                                      (False, None)]
    assert [u for _, u, _, _ in state[2:]] == [0.0, 0.0, 0.0]

    # Fixed model, same version: the run resumes with the tasks not yet scored.
    services.predictions.configure(world.operator, world.client_a, project_id, entry_point(batch_size=2))
    predictor_helpers.CALLS.clear()
    resumed = services.predictions.run(world.operator, world.client_a, project_id)
    assert resumed.scored == 3
    assert [task for call in predictor_helpers.CALLS for task in call] == [t for t in second] + [
        predictor_helpers.CALLS[-1][-1]]


def test_a_predictor_that_raises_is_named_with_its_batch_and_writes_nothing(world: World) -> None:
    services = world.services
    project_id = make_project(world)
    services.predictions.configure(world.operator, world.client_a, project_id, entry_point("raises"))
    with pytest.raises(PredictorFailed, match=r"batch 1 \(tasks \d+-\d+\): .*RuntimeError: model weights not found"):
        services.predictions.run(world.operator, world.client_a, project_id)
    assert all(not s and v is None for _, _, s, v in task_state(world, project_id))


def test_managers_choose_installed_predictors_and_only_operators_name_a_module(world: World) -> None:
    services = world.services
    project_id = make_project(world)
    manager = world.actors["manager_a"]
    with pytest.raises(PermissionDenied, match="only an operator"):
        services.predictions.configure(manager, world.client_a, project_id, entry_point())
    http = PredictorConfig(kind="http", target="https://models.example.com/predict", question="sentiment")
    assert services.predictions.configure(manager, world.client_a, project_id, http).config.model_name == (
        "models.example.com")
    with pytest.raises(PermissionDenied):
        services.predictions.run(world.actors["labeler_a"], world.client_a, project_id)
    with pytest.raises(NotFound):
        services.predictions.configure(world.actors["manager_b"], world.client_a, project_id, http)
    with pytest.raises(InvalidInput, match="no question"):
        services.predictions.configure(manager, world.client_a, project_id,
                                       PredictorConfig(kind="http", target="https://m.example.com/", question="x"))


# --------------------------------------------------------------------------- HTTP predictors


class PredictorHandler(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []
    headers_seen: list[str | None] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append(body)
        type(self).headers_seen.append(self.headers.get("X-Api-Key"))
        if self.path == "/fail":
            answer, status = b'{"detail": "secret task text echoed"}', 500
        else:
            predictions = [[{"answer": "negative", "score": 1 - predictor_helpers.score_of(t["data"]["text"])},
                            {"answer": "positive", "score": predictor_helpers.score_of(t["data"]["text"])}]
                           for t in body["tasks"]]
            answer, status = json.dumps({"predictions": predictions}).encode(), 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_args: object) -> None:
        return


@pytest.fixture(scope="module")
def model_server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), PredictorHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


LOCAL = PredictorCallPolicy(fetch=FetchPolicy(allowed_hosts=frozenset({"127.0.0.1"}), allow_private=True),
                            secrets={"model-key": "k-123"})


def http_predictor(url: str, **changes: Any) -> PredictorConfig:
    return PredictorConfig(kind="http", target=url, question="sentiment", model_name="remote",
                           auth_secret="model-key", auth_header="X-Api-Key", **changes)


def test_an_http_predictor_on_an_allowed_host_gets_batches_with_its_secret(world: World, model_server: str) -> None:
    services = world.services
    project_id = make_project(world)
    PredictorHandler.received.clear()
    PredictorHandler.headers_seen.clear()
    services.predictions.policy = LOCAL
    services.predictions.configure(world.actors["manager_a"],
                                   world.client_a, project_id, http_predictor(f"{model_server}/predict", batch_size=3))
    report = services.predictions.run(world.actors["manager_a"], world.client_a, project_id)
    assert (report.scored, report.suggestions, report.batches) == (5, 10, 2)
    assert PredictorHandler.headers_seen == ["k-123", "k-123"]
    first = PredictorHandler.received[0]
    assert first["question"] == "sentiment" and first["model"] == "remote@1"
    assert [t["data"]["text"] for t in first["tasks"]] == ["sure 0.95", "sure 0.6", "sure 0.35"]
    state = task_state(world, project_id)
    # Two suggestions per task, best first; the uncertainty is 1 - the best score.
    assert state[2][2][0] == {"model": "remote@1", "answer": {"sentiment": "negative"}, "score": 0.65}
    assert [round(u, 2) for _, u, _, _ in state] == [0.05, 0.4, 0.35, 0.2, 0.01]
    leased = services.labeling.next_task(world.actors["labeler_a"], world.client_a, project_id)
    assert leased.payload == {"text": "sure 0.6"}


def test_an_http_predictor_error_names_the_status_and_never_the_body(world: World, model_server: str) -> None:
    services = world.services
    project_id = make_project(world)
    services.predictions.policy = LOCAL
    services.predictions.configure(world.actors["manager_a"], world.client_a, project_id,
                                   http_predictor(f"{model_server}/fail"))
    with pytest.raises(PredictorFailed) as failed:
        services.predictions.run(world.actors["manager_a"], world.client_a, project_id)
    assert "HTTP 500" in failed.value.message and "batch 1" in failed.value.message
    assert "echoed" not in failed.value.message
    assert all(not s for _, _, s, _ in task_state(world, project_id))


def test_a_host_off_the_allow_list_is_refused_before_any_task_is_read(world: World, model_server: str) -> None:
    services = world.services
    project_id = make_project(world)
    PredictorHandler.received.clear()
    services.predictions.configure(world.actors["manager_a"], world.client_a, project_id,
                                   http_predictor(f"{model_server}/predict"))
    before = len(audit_actions(world))
    # The install's default: no predictor host allowed at all.
    with pytest.raises(InvalidInput, match="LABELVAULT_PREDICTOR_ALLOWED_HOSTS"):
        services.predictions.run(world.actors["manager_a"], world.client_a, project_id)
    # Allowed by name but loopback: refused too unless private addresses are allowed.
    services.predictions.policy = PredictorCallPolicy(fetch=FetchPolicy(allowed_hosts=frozenset({"127.0.0.1"})))
    with pytest.raises(InvalidInput, match="loopback"):
        services.predictions.run(world.actors["manager_a"], world.client_a, project_id)
    assert PredictorHandler.received == []
    assert not any(a == "tasks.sent_to_predictor" for a, _ in audit_actions(world)[before:])


def test_the_api_sets_and_runs_a_predictor(world: World, model_server: str) -> None:
    from labelvault.api.app import create_app

    services = world.services
    project_id = make_project(world)
    services.predictions.policy = LOCAL
    headers = {"Authorization": f"Bearer {world.tokens['manager_a']}"}
    with TestClient(create_app(services)) as client:
        assert client.get(f"/api/projects/{project_id}/predictor", headers=headers).status_code == 404
        body = {"kind": "http", "target": f"{model_server}/predict", "question": "sentiment",
                "auth_secret": "model-key", "auth_header": "X-Api-Key"}
        put = client.put(f"/api/projects/{project_id}/predictor", headers=headers, json=body)
        assert put.status_code == 200, put.text
        assert put.json()["pending"] == 5 and put.json()["suggestion_model"] == "127.0.0.1@1"
        run = client.post(f"/api/projects/{project_id}/predictions", headers=headers, json={})
        assert run.status_code == 200, run.text
        assert run.json()["scored"] == 5
        assert client.get(f"/api/projects/{project_id}/predictor", headers=headers).json()["pending"] == 0
        module = {"kind": "entry_point", "target": "os:system", "question": "sentiment"}
        refused = client.put(f"/api/projects/{project_id}/predictor", headers=headers, json=module)
        assert refused.status_code == 403
        other = {"Authorization": f"Bearer {world.tokens['manager_b']}"}
        assert client.post(f"/api/projects/{project_id}/predictions", headers=other, json={}).status_code == 404
        services.predictions.policy = PredictorCallPolicy()
        failed = client.post(f"/api/projects/{project_id}/predictions", headers=headers, json={"all": True})
        assert failed.status_code == 400 and "allow-list" in failed.json()["error"]["message"]


def test_a_secret_the_install_does_not_hold_stops_the_run_before_anything_is_sent(
    world: World, model_server: str
) -> None:
    services = world.services
    project_id = make_project(world)
    PredictorHandler.received.clear()
    services.predictions.policy = PredictorCallPolicy(fetch=LOCAL.fetch, secrets={})
    services.predictions.configure(world.actors["manager_a"], world.client_a, project_id,
                                   http_predictor(f"{model_server}/predict"))
    with pytest.raises(PredictorFailed, match="'model-key' is not set"):
        services.predictions.run(world.actors["manager_a"], world.client_a, project_id)
    assert PredictorHandler.received == []
    assert not any(a == "tasks.sent_to_predictor" for a, _ in audit_actions(world))


# The scheduler: new tasks get suggestions without anyone running `labelvault predict`.


def test_the_scheduler_scores_new_tasks_by_itself_and_only_those(world: World) -> None:
    services = world.services
    project_id = make_project(world, "scheduled")
    services.predictions.configure(world.operator, world.client_a, project_id, entry_point())
    scheduler = PredictionScheduler(services.predictions, poll_seconds=0.05)

    assert scheduler.run_once() == 5
    services.imports.import_rows(world.operator, world.client_a, project_id,
                                 [{"external_id": "late", "data": {"text": "sure 0.5"}}])
    assert scheduler.run_once() == 1
    assert scheduler.run_once() == 0  # nothing new: the predictor is not called again
    assert [len(call) for call in predictor_helpers.CALLS] == [5, 1]
    state = task_state(world, project_id)
    assert state[-1][0] == "late" and state[-1][2][0]["score"] == 0.5 and state[-1][3] == "1"
    sent = [entry for entry in audit_entries(world) if entry["action"] == "tasks.sent_to_predictor"]
    assert len(sent) == 2 and len(sent[-1]["details"]["task_ids"]) == 1
    assert sent[-1]["actor"] == "system"  # nobody asked for this run: the system did, as configured


def test_the_scheduler_thread_runs_in_the_background_and_a_failing_predictor_waits(world: World) -> None:
    services = world.services
    good = make_project(world, "good")
    bad = make_project(world, "bad")
    services.predictions.configure(world.operator, world.client_a, bad, entry_point("raises"))
    # A pass by hand first: the broken predictor fails, and the next pass leaves it alone (it waits).
    waiting = PredictionScheduler(services.predictions, poll_seconds=60)
    assert waiting.run_once() == 0 and len(predictor_helpers.CALLS) == 1
    assert waiting.run_once() == 0 and len(predictor_helpers.CALLS) == 1

    services.predictions.configure(world.operator, world.client_a, good, entry_point())
    scheduler = PredictionScheduler(services.predictions, poll_seconds=0.05)
    thread = PeriodicThread("labelvault-predictions", scheduler.run_once, 0.05)  # as the server runs it
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(v == "1" for *_, v in task_state(world, good)):
            time.sleep(0.05)
    finally:
        thread.stop()
    assert all(version == "1" for *_, version in task_state(world, good))  # the failing project did not stop it
    assert all(version is None for *_, version in task_state(world, bad))  # nothing half-written
