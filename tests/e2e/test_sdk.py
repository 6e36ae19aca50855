"""The Python SDK against a real ``labelvault serve`` process, on SQLite and PostgreSQL.

Retries are tested through a real local proxy in front of that server, which fails the first
requests (503, 429 with Retry-After, a dropped connection) and then forwards them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import datasets
import httpx
import pandas as pd
import pytest

import labelvault as lv
from labelvault import errors
from labelvault.sdk import errors as sdk_errors
from tests.conftest import World
from tests.e2e.server_process import ServerProcess

SCHEMA_YAML = """
instructions: Is the review positive or negative?
fields:
  - {name: text, kind: text}
questions:
  - {name: sentiment, type: label, labels: [positive, negative]}
"""


@pytest.fixture
def server(world: World, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(world.services.settings, tmp_path / "server.log").start()
    yield process
    process.stop()


def sdk(server: ServerProcess, world: World, who: str = "manager_a", **kw: object) -> lv.Client:
    return lv.Client(server.url, world.tokens[who], progress=False, **kw)  # type: ignore[arg-type]


def typed_schema() -> lv.schema.Schema:
    return lv.schema.Schema(
        fields=[lv.schema.Field(name="text", kind="text")],
        questions=[lv.schema.Label(name="sentiment", labels=["positive", "negative"])],
    )


def label_everything(server: ServerProcess, world: World, project_id: int, answer: str) -> int:
    """The labeler's loop over plain HTTP (the SDK is the client's side, not the labeler's)."""
    done = 0
    headers = {"Authorization": f"Bearer {world.tokens['labeler_a']}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
        while (task := http.post(f"/api/projects/{project_id}/tasks/next")).status_code == 200:
            receipt = http.post(f"/api/projects/{project_id}/tasks/{task.json()['task_id']}/answers",
                                json={"answer": {"sentiment": answer}})
            assert receipt.status_code == 200, receipt.text
            done += 1
    return done


def test_a_client_engineer_goes_from_schema_to_training_set(
    world: World, server: ServerProcess, tmp_path: Path
) -> None:
    with sdk(server, world) as client:
        assert client.me().username == "manager_a"
        assert [c.slug for c in client.clients()] == ["acme"]
        acme = client.client("acme")
        assert client.client(acme.id) == acme

        # Schemas as typed objects, YAML text, a file, a dict.
        project = client.create_project("acme", "Movie reviews", typed_schema())
        assert (project.slug, project.client_id) == ("movie-reviews", acme.id)
        assert project.schema["questions"][0]["labels"] == ["positive", "negative"]
        from_yaml = client.create_project(acme, "From YAML", SCHEMA_YAML)
        assert from_yaml.schema["instructions"] == "Is the review positive or negative?"
        (tmp_path / "schema.yaml").write_text(SCHEMA_YAML)
        from_file = client.create_project(acme.id, "From file", str(tmp_path / "schema.yaml"), slug="file")
        from_dict = client.create_project("acme", "From dict", from_file.schema, overlap=2)
        assert from_dict.overlap == 2 and from_dict.schema == from_file.schema
        again = client.create_project("acme", "Movie reviews", typed_schema(), exist_ok=True)
        assert again.id == project.id
        assert {p.slug for p in client.projects("acme")} >= {"movie-reviews", "from-yaml", "file", "from-dict"}
        assert client.project("acme/movie-reviews").id == project.id == client.project(project.id).id

        # Tasks from every kind of source; batches of 3 so that lists go in several requests.
        rows = [{"external_id": f"l{i}", "data": {"text": f"list review {i}"}} for i in range(7)]
        report = project.add_tasks(rows, batch_size=3)
        assert (report.created, report.rows_read, report.batches) == (7, 7, 3)
        frame = pd.DataFrame({"external_id": ["d0", "d1"], "text": ["frame review 0", "frame review 1"],
                              "priority": [5, None]})  # an empty cell is no value, not null
        assert project.add_tasks(frame).created == 2
        dataset = datasets.Dataset.from_dict({"external_id": ["h0", "h1", "h2"], "review": ["a", "b", "c"]})
        assert project.add_tasks(dataset, mapping={"review": "text"}).created == 3
        jsonl = tmp_path / "more.jsonl"
        jsonl.write_text("".join(json.dumps({"external_id": f"j{i}", "text": f"file {i}"}) + "\n" for i in range(2)))
        assert project.add_tasks(jsonl).created == 2
        csv = tmp_path / "more.csv"
        csv.write_text("external_id,text\nc0,csv review\n")
        assert project.add_tasks(str(csv)).created == 1
        assert project.add_tasks(rows).already_present == 7  # idempotent by external_id
        assert project.progress().tasks == 15
        summaries = list(project.tasks())
        assert len(summaries) == 15 and {s.external_id for s in summaries} >= {"l0", "d1", "h2", "j1", "c0"}

        # Suggestions, flat with one model for all, and nested.
        added = project.add_suggestions([{"external_id": f"l{i}", "answer": {"sentiment": "positive"},
                                          "score": 0.7} for i in range(7)], model="clf-v1")
        assert (added.tasks, added.suggestions) == (7, 7)
        nested = project.add_suggestions(pd.DataFrame({
            "external_id": ["d0"], "suggestions": [[{"model": "judge", "answer": {"sentiment": "negative"}}]],
        }))
        assert nested.suggestions == 1

        assert label_everything(server, world, project.id, "negative") == 15

        answers = list(project.iter_answers(page_size=4))
        assert len(answers) == 15 and [a.id for a in answers] == sorted(a.id for a in answers)
        assert all(isinstance(a, lv.sdk.Answer) and a.value == {"sentiment": "negative"} for a in answers)
        assert answers[0].labeler == "labeler_a" and answers[0].submitted_at is not None
        newer = list(project.iter_answers(after_id=answers[9].id))
        assert [a.id for a in newer] == [a.id for a in answers[10:]]
        table = project.answers_dataframe()
        assert len(table) == 15 and set(table["value.sentiment"]) == {"negative"}

        exported = project.export("jsonl", tmp_path / "out" / "reviews.jsonl")  # folders are made as needed
        lines = [json.loads(line) for line in exported.read_text().splitlines()]
        by_id = {line["external_id"]: line for line in lines}
        assert len(lines) == 15 and by_id["l3"]["suggestions"][0]["model"] == "clf-v1"
        assert by_id["d0"]["suggestions"][0]["model"] == "judge"
        assert not list((tmp_path / "out").glob("*.part"))
        aggregated = project.export("aggregated-jsonl", tmp_path / "agg.jsonl")
        assert len(aggregated.read_text().splitlines()) == 15

        training = project.export_dataset(cache_dir=tmp_path / "hf-cache")
        assert isinstance(training, datasets.Dataset) and training.num_rows == 15
        assert sorted(training["external_id"]) == sorted(by_id)
        aggregated_table = project.export_dataset(format="aggregated-parquet", cache_dir=tmp_path / "hf-cache")
        assert aggregated_table.num_rows == 15
        saved = project.export_dataset(format="hf-dataset")  # a zipped save_to_disk directory
        assert saved.num_rows == 15
        assert len(project.export("csv", tmp_path / "labels.csv").read_text().splitlines()) == 16
        with pytest.raises(ValueError, match="use export"):
            project.export_dataset(format="coco")

        labelers = project.quality_report()
        assert isinstance(labelers, pd.DataFrame)
        assert list(labelers["labeler"]) == ["labeler_a"] and int(labelers["answers"].iloc[0]) == 15
        assert labelers.attrs["report"]["answers"] == 15
        agreement = project.quality_report("agreement")
        assert "question" in agreement.columns


def test_a_manager_reads_why_labelers_skipped_tasks_opens_one_and_moves_tasks_up(
    world: World, server: ServerProcess
) -> None:
    with sdk(server, world) as client:
        project = client.create_project("acme", "Skipped reviews", typed_schema())
        project.add_tasks([{"external_id": f"s{i}", "data": {"text": f"review {i}"}} for i in range(3)])
        reasons = ["not English", "", "a duplicate"]
        headers = {"Authorization": f"Bearer {world.tokens['labeler_a']}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
            for reason in reasons:
                task = http.post(f"/api/projects/{project.id}/tasks/next").json()
                skipped = http.post(f"/api/projects/{project.id}/tasks/{task['task_id']}/skip", json={"reason": reason})
                assert skipped.status_code == 204, skipped.text
        skips = list(project.iter_skips(page_size=2))
        assert all(isinstance(s, lv.sdk.Skip) for s in skips)
        assert [s.reason for s in skips] == reasons and {s.labeler for s in skips} == {"labeler_a"}
        assert [s.external_id for s in skips] == ["s0", "s1", "s2"] and skips[0].skipped_at is not None
        assert [s.id for s in project.iter_skips(after_id=skips[0].id)] == [s.id for s in skips[1:]]

        # One task, found by its external id, with what happened to it; the listing by state.
        opened = project.task(external_id="s2")
        assert isinstance(opened, lv.sdk.TaskDetail) and opened.payload == {"text": "review 2"}
        assert opened.state == "open"
        assert [(k.labeler, k.reason) for k in opened.skips] == [("labeler_a", "a duplicate")]
        assert opened.skips[0].skipped_at is not None and opened.answers == [] and opened.leases == []
        assert project.task(opened.id).external_id == "s2"
        assert [t.state for t in project.tasks()] == ["open"] * 3 and list(project.tasks(state="complete")) == []
        with pytest.raises(sdk_errors.NotFoundError, match="'s9'"):
            project.task(external_id="s9")
        # A new priority, all or nothing: the server names the task it does not know.
        with pytest.raises(sdk_errors.NotFoundError, match="'s9'"):
            project.set_priority(3, external_ids=["s1", "s9"])
        assert project.set_priority(3, external_ids=["s1"], task_ids=[opened.id]) == 2
        assert {t.external_id: t.priority for t in project.tasks()} == {"s0": 0, "s1": 3, "s2": 3}
        assert project.ask_more_answers(2, external_ids=["s2"]) == 1
        assert project.task(opened.id).required_answers == 3
        # Tasks nobody answered go, skips and all; the server names what it could not find.
        assert project.remove_tasks(external_ids=["s0", "s1"]) == 2
        assert [t.external_id for t in project.tasks()] == ["s2"]
        with pytest.raises(sdk_errors.NotFoundError, match="'s0'"):
            project.remove_tasks(external_ids=["s0"])


def test_a_labeler_script_works_the_queue_through_the_sdk(world: World, server: ServerProcess) -> None:
    with sdk(server, world) as manager:
        project = manager.create_project("acme", "Scripted reviews", typed_schema()).update(rate_per_answer=10)
        project.add_tasks([{"external_id": f"w{i}", "data": {"text": f"review {i} {'good' if i % 2 else 'bad'}"}}
                           for i in range(5)])
    with sdk(server, world, "labeler_a") as labeler:
        mine = labeler.project(project.id)
        first = mine.next_task()
        assert isinstance(first, lv.sdk.LeasedTask) and first.data["text"].startswith("review")
        assert mine.next_task().task_id == first.task_id  # the open lease again: no hoarding
        receipt = mine.submit(first.task_id, {"sentiment": "positive"}, idempotency_key="first-answer")
        again = mine.submit(first.task_id, {"sentiment": "positive"}, idempotency_key="first-answer")
        assert receipt.created and not again.created and again.answer_id == receipt.answer_id

        seen: list[str] = []

        def answer_for(task: lv.sdk.LeasedTask) -> dict[str, str] | None:
            seen.append(task.data["text"])
            if "review 2" in task.data["text"]:
                return None  # skipped, with the reason below
            return {"sentiment": "positive" if "good" in task.data["text"] else "negative"}

        assert mine.label(answer_for, limit=1) == lv.sdk.LabelingReport(1, 0, "limit")
        with sdk(server, world) as manager:  # the last answer of a limit leased nothing more
            tasks = manager.project(project.id)
            assert [t.id for t in tasks.tasks() if tasks.task(t.id).leases] == []
        report = mine.label(answer_for, skip_reason="cannot tell")
        assert report == lv.sdk.LabelingReport(answered=2, skipped=1, stopped="no_tasks") and len(seen) == 4
        with pytest.raises(sdk_errors.QueueRefusedError) as empty:
            mine.next_task()
        assert empty.value.reason == "no_tasks"
        with pytest.raises(sdk_errors.ConflictError):  # a skip needs a lease
            mine.skip(first.task_id, "too late")
    with sdk(server, world) as manager:
        answers = list(manager.project(project.id).iter_answers())
        assert len(answers) == 4 and {a.labeler for a in answers} == {"labeler_a"}
        by_text = {a.external_id: a.value["sentiment"] for a in answers}
        assert by_text["w1"] == by_text["w3"] == "positive" and by_text["w4"] == "negative"
        assert [(s.external_id, s.reason) for s in manager.project(project.id).iter_skips()] == [("w2", "cannot tell")]
        ledger = list(manager.project(project.id).iter_ledger(page_size=3))
        assert all(isinstance(e, lv.sdk.LedgerEntry) for e in ledger) and ledger[0].created_at is not None
        assert [(e.kind, e.amount, e.username) for e in ledger] == [("answer", 10, "labeler_a")] * 4
        assert {e.answer_id for e in ledger} == {a.id for a in answers}


def test_submit_and_next_brings_the_next_task_or_the_error_next_task_would_raise(
    world: World, server: ServerProcess
) -> None:
    with sdk(server, world) as manager:
        project = manager.create_project("acme", "Chained reviews", typed_schema())
        project.add_tasks([{"external_id": f"c{i}", "data": {"text": f"review {i}"}} for i in range(2)])
    with sdk(server, world, "labeler_a") as labeler:
        mine = labeler.project(project.id)
        first = mine.next_task()
        got = mine.submit_and_next(first.task_id, {"sentiment": "positive"}, idempotency_key="chained")
        assert isinstance(got, lv.sdk.SubmittedAndNext) and got.next_error is None
        assert got.receipt.created and got.receipt.task_id == first.task_id
        assert got.next_task is not None and got.next_task.task_id != first.task_id
        assert mine.next_task().task_id == got.next_task.task_id  # leased to the caller
        again = mine.submit_and_next(first.task_id, {"sentiment": "positive"}, idempotency_key="chained")
        assert not again.receipt.created and again.next_task == got.next_task  # a retry: the same lease
        last = mine.submit_and_next(got.next_task.task_id, {"sentiment": "negative"})
        assert last.receipt.created and last.next_task is None
        assert isinstance(last.next_error, sdk_errors.QueueRefusedError) and last.next_error.reason == "no_tasks"
    with sdk(server, world) as manager:
        assert len(list(manager.project(project.id).iter_answers())) == 2


def test_a_labeler_reads_their_own_ledger_through_the_sdk(world: World, server: ServerProcess) -> None:
    with sdk(server, world) as manager:
        project = manager.create_project("acme", "Paid reviews", typed_schema()).update(rate_per_answer=10)
        project.add_tasks([{"external_id": f"p{i}", "data": {"text": f"review {i}"}} for i in range(2)])
    assert label_everything(server, world, project.id, "positive") == 2
    bonuses = world.services.bonuses
    bonuses.grant(world.operator, world.client_a, project.id, "labeler_a", 300, "steady <b>work</b>")
    bonuses.grant(world.operator, world.client_a, project.id, "reviewer_a", 900, "not yours")
    world.tokens["labeler_read"] = world.services.accounts.issue_token(
        world.operator, "read", for_username="labeler_a", scopes=["read"]).token
    with sdk(server, world, "labeler_read") as labeler:
        mine = list(labeler.project(project.id).iter_my_ledger(page_size=2))
        assert all(isinstance(e, lv.sdk.MyLedgerEntry) for e in mine) and mine[0].created_at is not None
        assert [(e.kind, e.amount, e.currency, e.note) for e in mine] == [
            ("answer", 10, "USD", ""), ("answer", 10, "USD", ""), ("bonus", 300, "USD", "steady <b>work</b>")]
        across = list(labeler.iter_my_ledger("acme", page_size=1))
        assert [e.id for e in across] == [e.id for e in mine] and {e.project for e in across} == {"Paid reviews"}
        assert [e.id for e in labeler.iter_my_ledger("acme", project=project.id, after_id=mine[0].id)] == [
            e.id for e in mine[1:]]
    with sdk(server, world, "labeler_b") as stranger, pytest.raises(sdk_errors.NotFoundError):
        list(stranger.iter_my_ledger(world.client_a))


def test_api_errors_arrive_as_one_hierarchy_with_code_message_and_details(
    world: World, server: ServerProcess
) -> None:
    with sdk(server, world) as client:
        with pytest.raises(sdk_errors.NotFoundError) as missing:
            client.project(10**9)
        assert isinstance(missing.value, errors.NotFound) and isinstance(missing.value, errors.LabelVaultError)
        assert (missing.value.status_code, missing.value.code) == (404, "not_found")
        assert missing.value.request_id

        with pytest.raises(sdk_errors.SchemaInvalidError) as bad_schema:
            client.create_project("acme", "Broken", {"fields": [], "questions": []})
        assert isinstance(bad_schema.value, errors.SchemaInvalid) and bad_schema.value.status_code == 400
        assert bad_schema.value.details and "fields" in bad_schema.value.message

        project = client.create_project("acme", "Errors", typed_schema())
        with pytest.raises(sdk_errors.ConflictError) as duplicate:
            client.create_project("acme", "Errors", typed_schema())
        assert duplicate.value.details == {"field": "slug"}

        rows = [{"external_id": f"e{i}", "text": "fine"} for i in range(4)] + [{"external_id": "bad", "txt": "x"}]
        with pytest.raises(sdk_errors.ImportInvalidError) as rejected:
            project.add_tasks(rows, batch_size=2)
        # Batches 1 and 2 went in; row 5 (row 1 of batch 3) is named by its place in the whole list.
        assert rejected.value.details["errors"][0]["row"] == 5
        assert rejected.value.details["imported_before"] == {"batches": 2, "rows_read": 4, "created": 4}
        assert "row 5:" in rejected.value.message
        skipped = project.add_tasks(rows, skip_invalid=True)
        assert (skipped.already_present, skipped.invalid) == (4, 1)

        with pytest.raises(sdk_errors.InvalidInputError) as bad_suggestion:
            project.add_suggestions([{"external_id": "e0", "model": "m", "answer": {"sentiment": "meh"}}])
        assert bad_suggestion.value.details[0]["item"] == 0

    with sdk(server, world, "labeler_a") as labeler, pytest.raises(sdk_errors.PermissionDeniedError) as denied:
        labeler.create_project("acme", "Not mine", typed_schema())
    assert isinstance(denied.value, errors.PermissionDenied) and denied.value.code == "permission_denied"
    with sdk(server, world, "manager_b") as other, pytest.raises(sdk_errors.NotFoundError):
        list(other.project(project.id).iter_answers())
    with lv.Client(server.url, "lv_not-a-token", progress=False) as stranger, \
            pytest.raises(sdk_errors.NotAuthenticatedError):
        stranger.me()


# ------------------------------------------------------------------------------------------ retries


class FlakyProxy:
    """A real HTTP server in front of the LabelVault server: the first requests of a method and path
    get the failures planned for them (an HTTP status, or "drop" to close the connection unanswered);
    every other request is forwarded as it is."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.plans: dict[tuple[str, str], list[str]] = {}
        self.seen: dict[tuple[str, str], int] = {}
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def _handle(self) -> None:
                path = self.path.split("?")[0]
                key = (self.command, path)
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                proxy.seen[key] = proxy.seen.get(key, 0) + 1
                plan = proxy.plans.get(key)
                if plan:
                    failure = plan.pop(0)
                    if failure == "drop":
                        self.close_connection = True
                        self.connection.close()
                        return
                    if failure == "cut":  # forward, but hang up halfway through the body
                        answer = proxy.forward(self.command, self.path, self.headers, body)
                        self.send_response(answer.status_code)
                        self.send_header("Content-Length", str(len(answer.content)))
                        self.end_headers()
                        self.wfile.write(answer.content[: len(answer.content) // 2])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.close()
                        return
                    status, _, retry_after = failure.partition("/")
                    self.send_response(int(status))
                    if retry_after:
                        self.send_header("Retry-After", retry_after)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                answer = proxy.forward(self.command, self.path, self.headers, body)
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def forward(self, method: str, path: str, headers: Any, body: bytes) -> httpx.Response:
        sent = {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length")}
        return httpx.request(method, self.target + path, headers=sent, content=body, timeout=60)

    def __enter__(self) -> FlakyProxy:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail(self, method: str, path: str, *failures: str) -> None:
        self.plans[(method, path)] = list(failures)


@pytest.mark.parametrize("backend", ["sqlite"])  # retries are the client's business, not the database's
def test_safe_requests_are_retried_with_backoff_and_unsafe_ones_are_not(
    world: World, server: ServerProcess, tmp_path: Path
) -> None:
    with FlakyProxy(server.url) as proxy, \
            lv.Client(proxy.url, world.tokens["manager_a"], progress=False, retries=3, backoff=0.01) as client:
        proxy.fail("GET", "/api/me", "503", "drop", "502")
        assert client.me().username == "manager_a"
        assert proxy.seen[("GET", "/api/me")] == 4

        proxy.fail("GET", "/api/clients", "429/1")
        started = time.monotonic()
        assert [c.slug for c in client.clients()] == ["acme"]
        assert time.monotonic() - started >= 1.0  # Retry-After was waited out, not the 10 ms backoff

        # A create is not idempotent: one attempt, and the 503 is the caller's to see.
        create = f"/api/clients/{world.client_a}/projects"
        proxy.fail("POST", create, "503")
        with pytest.raises(sdk_errors.ServerError) as unavailable:
            client.create_project("acme", "Flaky", typed_schema())
        assert unavailable.value.status_code == 503 and proxy.seen[("POST", create)] == 1
        project = client.create_project("acme", "Flaky", typed_schema())

        # Rows with external ids make an import idempotent, so it is retried; rows without are not.
        imports = f"/api/projects/{project.id}/imports"
        proxy.fail("POST", imports, "504", "drop")
        assert project.add_tasks([{"external_id": "r1", "text": "x"}]).created == 1
        assert proxy.seen[("POST", imports)] == 3
        proxy.fail("POST", imports, "504")
        with pytest.raises(sdk_errors.ServerError):
            project.add_tasks([{"text": "no id"}])
        assert proxy.seen[("POST", imports)] == 4
        assert project.progress().tasks == 1

        # Suggestions replace a model's own, so they are always retried.
        proxy.fail("POST", f"/api/projects/{project.id}/suggestions", "503")
        assert project.add_suggestions([{"external_id": "r1", "model": "m", "answer": {"sentiment": "positive"}}]
                                       ).suggestions == 1

        # A submit carries an idempotency key: answered, its response cut off, sent again, answered once.
        with lv.Client(proxy.url, world.tokens["labeler_a"], progress=False, retries=3, backoff=0.01) as labeler:
            mine = labeler.project(project.id)
            task = mine.next_task()
            answers = f"/api/projects/{project.id}/tasks/{task.task_id}/answers"
            proxy.fail("POST", answers, "cut")
            receipt = mine.submit(task.task_id, {"sentiment": "positive"})
            assert proxy.seen[("POST", answers)] == 2 and not receipt.created  # the second send found the first
            proxy.fail("POST", f"/api/projects/{project.id}/tasks/next", "503")
            with pytest.raises(sdk_errors.QueueRefusedError):  # retried (a next is safe to repeat), then refused
                mine.next_task()
            assert proxy.seen[("POST", f"/api/projects/{project.id}/tasks/next")] == 3
        assert len(list(project.iter_answers())) == 1

        # An export cut off halfway is downloaded again, from the start; no partial file is left.
        proxy.fail("GET", f"/api/projects/{project.id}/export", "cut")
        exported = project.export("jsonl", tmp_path / "cut.jsonl")
        assert json.loads(exported.read_text())["external_id"] == "r1"
        assert proxy.seen[("GET", f"/api/projects/{project.id}/export")] == 2
        assert not list(tmp_path.glob("*.part"))

        # Out of retries: the last failure is raised.
        proxy.fail("GET", "/api/me", "503", "503", "503", "503")
        with pytest.raises(sdk_errors.ServerError):
            client.me()
        proxy.fail("GET", "/api/me", "drop", "drop", "drop", "drop")
        with pytest.raises(sdk_errors.TransportError) as cut:
            client.me()
        assert isinstance(cut.value, errors.LabelVaultError) and "4 attempts" in cut.value.message


# ------------------------------------------------------------------------------------------ packaging


def test_import_labelvault_stays_light_and_the_sdk_loads_no_server_code() -> None:
    code = (
        "import sys, labelvault\n"
        "assert 'httpx' not in sys.modules and 'labelvault.sdk' not in sys.modules\n"
        "client_class = labelvault.Client\n"
        "assert client_class.__module__ == 'labelvault.sdk.client' and labelvault.schema.Label\n"
        "heavy = [m for m in ('sqlalchemy', 'fastapi', 'uvicorn', 'labelvault.storage', 'labelvault.workflow',\n"
        "                     'pandas', 'datasets') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_pandas_and_datasets_are_optional_with_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if not installed
    client = lv.Client("http://127.0.0.1:9", "lv_x", progress=False)
    project = lv.sdk.Project(client, {"id": 1, "client_id": 1, "slug": "p", "name": "p", "overlap": 1,
                                      "status": "active", "schema": {}})
    with pytest.raises(sdk_errors.MissingDependency) as missing:
        project.quality_report()
    assert isinstance(missing.value, ImportError) and "labelvault[sdk]" in str(missing.value)
