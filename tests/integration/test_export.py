"""Exporting a project on real databases: round trip with answers, batching, access, the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from labelvault.cli.main import app as cli_app
from labelvault.errors import InvalidInput, NotFound, PermissionDenied
from labelvault.io.exporter import ExportService
from tests.conftest import World

SCHEMA = {
    "fields": [{"name": "text", "kind": "text"}],
    "questions": [{"name": "sentiment", "type": "label", "labels": ["positive", "negative", "neutral"]}],
}


@pytest.fixture
def project(world: World) -> int:
    return world.services.projects.create(
        world.actors["manager_a"], world.client_a, slug="reviews", name="Reviews", schema=SCHEMA, overlap=1
    ).id


def lines(chunks: Any) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in b"".join(chunks).splitlines()]


def export(world: World, project: int, who: str = "manager_a", **kw: Any) -> list[dict[str, Any]]:
    return lines(world.services.exports.export(world.actors[who], world.client_a, project, **kw).chunks)


def test_an_export_returns_every_task_with_its_data_suggestions_and_answers(world: World, project: int) -> None:
    rows = [
        {"external_id": "r1", "priority": 1, "data": {"text": "I love it"}, "metadata": {"batch": 7},
         "suggestions": [{"model": "clf", "answer": {"sentiment": "positive"}, "score": 0.8}]},
        {"external_id": "r2", "data": {"text": "It broke"}},
    ]
    world.services.imports.import_rows(world.operator, world.client_a, project, rows)
    labeler = world.actors["labeler_a"]
    leased = world.services.labeling.next_task(labeler, world.client_a, project)
    answer_value = {"sentiment": "positive"}
    receipt = world.services.labeling.submit(labeler, world.client_a, project, leased.task_id, answer_value)

    first, second = export(world, project)
    assert first["external_id"] == "r1" and first["id"] == leased.task_id
    assert first["priority"] == 1
    assert first["data"] == {"text": "I love it"}
    assert first["metadata"] == {"batch": 7}
    assert first["suggestions"] == [{"model": "clf", "answer": {"sentiment": "positive"}, "score": 0.8}]
    assert first["created_at"].endswith("+00:00")
    (answer,) = first["answers"]
    assert answer["id"] == receipt.answer_id
    assert answer["labeler_id"] == labeler.user_id and answer["labeler"] == "labeler_a"
    assert answer["value"] == {"sentiment": "positive"}
    assert answer["status"] in {"submitted", "accepted"}  # accepted at once when nobody reviews
    assert answer["started_at"] <= answer["submitted_at"]
    assert answer["time_spent_ms"] == receipt.time_spent_ms
    assert second["external_id"] == "r2"
    assert (second["answers"], second["suggestions"], second["metadata"]) == ([], [], None)


def test_every_answer_of_a_task_is_exported_with_its_labeler(world: World, project: int) -> None:
    world.services.imports.import_rows(world.operator, world.client_a, project, [{"text": "x", "overlap": 2}])
    accounts = world.services.accounts
    accounts.create_user(world.operator, "second_labeler", None)
    accounts.grant_role(world.operator, world.client_a, "second_labeler", "labeler")
    for username, value in (("labeler_a", "positive"), ("second_labeler", "negative")):
        actor = accounts.actor_by_username(username)
        leased = world.services.labeling.next_task(actor, world.client_a, project)
        world.services.labeling.submit(actor, world.client_a, project, leased.task_id, {"sentiment": value})
    (task,) = export(world, project)
    assert [(a["labeler"], a["value"]["sentiment"]) for a in task["answers"]] == [
        ("labeler_a", "positive"), ("second_labeler", "negative")
    ]


def test_a_large_project_comes_out_in_batches_each_task_once_in_id_order(world: World, project: int) -> None:
    rows = [{"external_id": f"t{i:03d}", "text": f"n{i}"} for i in range(23)]
    world.services.imports.import_rows(world.operator, world.client_a, project, rows)
    done: list[int] = []
    stream = ExportService(world.services.uow_factory, batch_size=5).export(
        world.operator, world.client_a, project, progress=done.append
    )
    chunks = list(stream.chunks)
    assert len(chunks) == 5
    tasks = lines(chunks)
    assert [t["external_id"] for t in tasks] == [r["external_id"] for r in rows]
    assert [t["id"] for t in tasks] == sorted(t["id"] for t in tasks)
    assert done == [5, 10, 15, 20, 23]
    assert stream.tasks == 23 and stream.filename == f"reviews-{project}.jsonl"


def test_an_empty_project_exports_nothing(world: World, project: int) -> None:
    assert export(world, project) == []


def test_an_export_in_progress_does_not_block_writers(world: World, project: int) -> None:
    rows = [{"text": f"n{i}"} for i in range(10)]
    world.services.imports.import_rows(world.operator, world.client_a, project, rows)
    stream = ExportService(world.services.uow_factory, batch_size=4).export(world.operator, world.client_a, project)
    chunks = iter(stream.chunks)
    first = next(chunks)
    # Mid-export, an import writes (on SQLite it would wait for the lock if the export held one).
    report = world.services.imports.import_rows(world.operator, world.client_a, project, [{"text": "late"}])
    assert report.created == 1
    rest = b"".join(chunks)
    assert len(lines([first, rest])) == 11  # keyset pagination also picks up the task added behind it


def test_exports_of_another_client_stay_apart(world: World, project: int) -> None:
    other = world.services.projects.create(world.operator, world.client_b, slug="theirs", name="t", schema=SCHEMA).id
    world.services.imports.import_rows(world.operator, world.client_b, other, [{"text": "globex secret"}])
    world.services.imports.import_rows(world.operator, world.client_a, project, [{"text": "acme data"}])
    assert [t["data"]["text"] for t in export(world, project)] == ["acme data"]


def test_a_labeler_may_not_export_and_is_refused_before_any_byte(world: World, project: int) -> None:
    with pytest.raises(PermissionDenied):
        world.services.exports.export(world.actors["labeler_a"], world.client_a, project)


def test_an_export_is_witnessed_in_the_audit_log(world: World, project: int) -> None:
    world.services.imports.import_rows(world.operator, world.client_a, project, [{"text": "a"}, {"text": "b"}])
    export(world, project)
    with pytest.raises(PermissionDenied):
        world.services.exports.export(world.actors["viewer_a"], world.client_a, project)
    entries = [orjson.loads(line) for line in world.services.audit.trail(world.client_a)]
    granted = [e for e in entries if e["action"] == "project.exported"]
    assert [(e["actor"], e["details"]) for e in granted] == [("manager_a", {"format": "jsonl", "tasks": 2})]
    denied = [e for e in entries if e["action"] == "project.export"]
    assert [(e["actor"], e["outcome"]) for e in denied] == [("viewer_a", "denied")]


def test_another_clients_manager_is_told_the_project_does_not_exist(world: World, project: int) -> None:
    with pytest.raises(NotFound):
        world.services.exports.export(world.actors["manager_b"], world.client_a, project)


def test_an_unknown_export_format_is_refused(world: World, project: int) -> None:
    with pytest.raises(InvalidInput, match="unknown export format 'xml'"):
        world.services.exports.export(world.operator, world.client_a, project, format="xml")


# ---------------------------------------------------------------------------- CLI


@pytest.fixture
def cli(world: World) -> CliRunner:
    settings = world.services.settings
    env = {"LABELVAULT_HOME": str(settings.home), "LABELVAULT_DATABASE_URL": settings.resolved_database_url}
    return CliRunner(env=env)


def test_the_cli_exports_to_a_file(cli: CliRunner, world: World, project: int, tmp_path: Path) -> None:
    world.services.imports.import_rows(world.operator, world.client_a, project, [{"text": "a"}, {"text": "b"}])
    target = tmp_path / "out.jsonl"
    result = cli.invoke(cli_app, ["export", "acme/reviews", "--out", str(target)])
    assert result.exit_code == 0, result.output
    assert f"exported 2 tasks of acme/reviews to {target}" in result.stdout
    assert [t["data"]["text"] for t in lines([target.read_bytes()])] == ["a", "b"]
    assert not (tmp_path / "out.jsonl.part").exists()


def test_the_cli_exports_to_standard_output(cli: CliRunner, world: World, project: int) -> None:
    world.services.imports.import_rows(world.operator, world.client_a, project, [{"text": "a"}])
    result = cli.invoke(cli_app, ["export", str(project), "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    assert [t["data"] for t in lines([result.stdout_bytes])] == [{"text": "a"}]


def test_the_cli_refuses_an_unknown_format_in_one_line(cli: CliRunner, world: World, project: int) -> None:
    result = cli.invoke(cli_app, ["export", "acme/reviews", "--format", "xml"])
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: unknown export format 'xml'; expected one of jsonl")
