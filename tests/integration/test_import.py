"""Importing tasks on real databases: formats, idempotency, rejection, access, memory, the CLI."""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from labelvault.cli.main import app as cli_app
from labelvault.errors import ImportInvalid, NotFound, PermissionDenied
from labelvault.io.importer import ImportService
from tests.conftest import World

SCHEMA = {
    "fields": [
        {"name": "text", "kind": "text"},
        {"name": "chat", "kind": "chat", "required": False},
    ],
    "questions": [{"name": "sentiment", "type": "label", "labels": ["positive", "negative", "neutral"]}],
}


@pytest.fixture
def project(world: World) -> int:
    return world.services.projects.create(
        world.actors["manager_a"], world.client_a, slug="reviews", name="Reviews", schema=SCHEMA, overlap=2
    ).id


def jsonl(rows: list[Any]) -> bytes:
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def import_file(world: World, project: int, source: Any, **kw: Any):  # type: ignore[no-untyped-def]
    return world.services.imports.import_file(world.actors["manager_a"], world.client_a, project, source, **kw)


def task_count(world: World, project: int) -> int:
    return world.services.projects.progress(world.operator, world.client_a, project)["tasks"]


def exported(world: World, project: int) -> list[dict[str, Any]]:
    export = world.services.exports.export(world.operator, world.client_a, project)
    return [orjson.loads(line) for line in b"".join(export.chunks).splitlines()]


# ---------------------------------------------------------------------------- formats


def test_a_jsonl_file_becomes_tasks_that_a_labeler_is_shown(world: World, project: int, tmp_path: Path) -> None:
    rows = [
        {"external_id": "r1", "data": {"text": "I love it"}, "priority": 5,
         "suggestions": [{"model": "clf-v1", "answer": {"sentiment": "positive"}, "score": 0.9}]},
        {"external_id": "r2", "data": {"text": "It broke"}},
    ]
    report = import_file(world, project, write(tmp_path / "tasks.jsonl", jsonl(rows)))
    assert (report.format, report.rows_read, report.created, report.already_present, report.invalid) == (
        "jsonl", 2, 2, 0, 0
    )
    leased = world.services.labeling.next_task(world.actors["labeler_a"], world.client_a, project)
    assert leased.payload == {"text": "I love it"}  # the higher priority first
    assert leased.suggestions == [{"model": "clf-v1", "answer": {"sentiment": "positive"}, "score": 0.9}]


def test_a_csv_file_reads_json_columns_numbers_and_metadata(world: World, project: int, tmp_path: Path) -> None:
    content = (
        b"external_id,text,chat,priority,overlap,metadata\n"
        b'c1,Hello,"[{""role"": ""user"", ""content"": ""hi""}]",3,1,"{""source"": ""mail""}"\n'
        b"c2,Second,,,,\n"
    )
    report = import_file(world, project, write(tmp_path / "tasks.csv", content))
    assert report.created == 2
    tasks = {t["external_id"]: t for t in exported(world, project)}
    assert tasks["c1"]["data"] == {"text": "Hello", "chat": [{"role": "user", "content": "hi"}]}
    assert tasks["c1"]["priority"] == 3
    assert tasks["c1"]["metadata"] == {"source": "mail"}
    assert tasks["c2"]["data"] == {"text": "Second"} and tasks["c2"]["metadata"] is None
    summaries = {t.external_id: t for t in world.services.tasks.list(world.operator, world.client_a, project)[0]}
    assert summaries["c1"].required_answers == 1  # the row's overlap
    assert summaries["c2"].required_answers == 2  # the project's


def test_a_parquet_file_with_nested_columns_is_imported(world: World, project: int, tmp_path: Path) -> None:
    table = pa.table(
        {
            "external_id": ["p1", "p2"],
            "text": ["one", "two"],
            "chat": [[{"role": "user", "content": "hello"}], None],
            "priority": [1, 2],
            "suggestions": [[{"model": "m", "answer": {"sentiment": "neutral"}, "score": 0.25}], None],
        }
    )
    path = tmp_path / "tasks.parquet"
    pq.write_table(table, path)
    report = import_file(world, project, path)
    assert report.created == 2
    tasks = {t["external_id"]: t for t in exported(world, project)}
    assert tasks["p1"]["data"]["chat"] == [{"role": "user", "content": "hello"}]
    assert tasks["p1"]["suggestions"] == [{"model": "m", "answer": {"sentiment": "neutral"}, "score": 0.25}]
    assert tasks["p2"]["suggestions"] == []


def test_a_stream_without_a_name_needs_the_format(world: World, project: int) -> None:
    report = import_file(world, project, io.BytesIO(b'{"text": "a"}\n'), format="jsonl")
    assert report.created == 1


def test_columns_can_be_mapped_onto_schema_fields(world: World, project: int, tmp_path: Path) -> None:
    path = write(tmp_path / "reviews.csv", b"id,review\nm1,Nice blender\n")
    report = import_file(world, project, path, mapping={"id": "external_id", "review": "text"})
    assert report.created == 1
    assert exported(world, project)[0]["external_id"] == "m1"
    assert exported(world, project)[0]["data"] == {"text": "Nice blender"}


# ---------------------------------------------------------------------------- idempotency


def test_importing_the_same_file_again_creates_nothing(world: World, project: int, tmp_path: Path) -> None:
    path = write(tmp_path / "tasks.jsonl", jsonl([{"external_id": f"t{i}", "text": f"n{i}"} for i in range(30)]))
    first = import_file(world, project, path)
    again = import_file(world, project, path)
    assert (first.created, first.already_present) == (30, 0)
    assert (again.created, again.already_present) == (0, 30)
    assert task_count(world, project) == 30


def test_a_grown_file_adds_only_the_new_rows(world: World, project: int) -> None:
    rows = [{"external_id": f"t{i}", "text": f"n{i}"} for i in range(10)]
    world.services.imports.import_rows(world.operator, world.client_a, project, rows[:6])
    report = world.services.imports.import_rows(world.operator, world.client_a, project, rows)
    assert (report.created, report.already_present) == (4, 6)
    assert task_count(world, project) == 10


def test_an_external_id_twice_in_one_file_keeps_the_first_row(world: World, project: int) -> None:
    rows = [{"external_id": "x", "text": "first"}, {"external_id": "x", "text": "second"}]
    report = world.services.imports.import_rows(world.operator, world.client_a, project, rows)
    assert (report.created, report.already_present) == (1, 1)
    assert exported(world, project)[0]["data"] == {"text": "first"}


def test_rows_without_external_id_are_always_new(world: World, project: int) -> None:
    rows = [{"text": "a"}, {"text": "a"}]
    world.services.imports.import_rows(world.operator, world.client_a, project, rows)
    world.services.imports.import_rows(world.operator, world.client_a, project, rows)
    assert task_count(world, project) == 4


def test_the_same_external_id_in_another_project_is_another_task(world: World, project: int) -> None:
    other = world.services.projects.create(world.operator, world.client_a, slug="other", name="o", schema=SCHEMA).id
    for project_id in (project, other):
        report = world.services.imports.import_rows(world.operator, world.client_a, project_id, [
            {"external_id": "same", "text": "a"}
        ])
        assert report.created == 1


# ---------------------------------------------------------------------------- bad rows


def test_one_bad_row_rejects_the_whole_import_and_names_line_and_field(
    world: World, project: int, tmp_path: Path
) -> None:
    rows: list[Any] = [{"external_id": f"t{i}", "data": {"text": f"n{i}"}} for i in range(20)]
    rows[16] = {"external_id": "t16", "data": {"text": 42}}
    path = write(tmp_path / "tasks.jsonl", jsonl(rows))
    service = ImportService(world.services.uow_factory, batch_size=5)  # bad row after three written batches
    with pytest.raises(ImportInvalid) as caught:
        service.import_file(world.actors["manager_a"], world.client_a, project, path)
    error = caught.value
    assert 'line 17: field "text": expected text, got number' in error.message
    assert error.details["errors"] == [
        {"line": 17, "field": "text", "message": 'line 17: field "text": expected text, got number'}
    ]
    assert error.details["invalid"] == 1
    assert task_count(world, project) == 0


def test_broken_json_and_wrong_types_are_reported_per_line(world: World, project: int, tmp_path: Path) -> None:
    content = b'{"text": "ok"}\n{"text": \n[1, 2]\n{"text": "x", "priority": "high"}\n'
    with pytest.raises(ImportInvalid) as caught:
        import_file(world, project, write(tmp_path / "t.jsonl", content))
    errors = caught.value.details["errors"]
    assert [(e["line"], e["field"]) for e in errors] == [(2, None), (3, None), (4, "priority")]
    assert errors[0]["message"].startswith("line 2: not valid JSON")
    assert errors[2]["message"] == 'line 4: field "priority": expected a whole number, got "high"'


def test_csv_errors_name_the_data_row(world: World, project: int, tmp_path: Path) -> None:
    content = b'text,chat\nfine,\nbad,"[{""role"": ""robot"", ""content"": ""x""}]"\n'
    with pytest.raises(ImportInvalid) as caught:
        import_file(world, project, write(tmp_path / "t.csv", content))
    assert caught.value.details["errors"][0]["row"] == 2
    assert 'row 2: field "chat": message 0 has role "robot"' in caught.value.message


def test_the_list_of_bad_rows_is_capped_and_says_how_many_more(world: World, project: int) -> None:
    rows = [{"text": i} for i in range(250)]
    with pytest.raises(ImportInvalid) as caught:
        world.services.imports.import_rows(world.operator, world.client_a, project, rows)
    details = caught.value.details
    assert details["invalid"] == 250
    assert len(details["errors"]) == 100
    assert details["errors_omitted"] == 150
    assert "250 bad rows" in caught.value.message


def test_skip_invalid_writes_the_valid_rows_and_reports_the_others(world: World, project: int) -> None:
    rows = [
        {"external_id": "a", "text": "fine"},
        {"external_id": "b", "text": None},
        {"external_id": "c", "text": "ok"},
    ]
    report = world.services.imports.import_rows(world.operator, world.client_a, project, rows, skip_invalid=True)
    assert (report.rows_read, report.created, report.invalid) == (3, 2, 1)
    assert report.errors == [{"row": 2, "field": "text", "message": 'row 2: field "text" is required but missing'}]
    assert sorted(t["external_id"] for t in exported(world, project)) == ["a", "c"]


def test_a_bad_suggestion_is_a_bad_row(world: World, project: int) -> None:
    rows = [{"text": "a", "suggestions": [{"model": "m", "answer": {"sentiment": "ecstatic"}}]}]
    with pytest.raises(ImportInvalid, match=r'row 1: field "suggestions\[0\].answer": question "sentiment"'):
        world.services.imports.import_rows(world.operator, world.client_a, project, rows)


# ---------------------------------------------------------------------------- storage


def test_task_content_is_stored_encrypted(world: World, project: int) -> None:
    rows = [{"external_id": "s1", "text": "the secret recipe", "metadata": {"origin": "confidential-memo"},
             "suggestions": [{"model": "m", "answer": {"sentiment": "neutral"}}]}]
    world.services.imports.import_rows(world.operator, world.client_a, project, rows)
    # Raw SQL in the client's own transaction (on PostgreSQL, row-level security needs its scope).
    with world.services.uow_factory.for_client(world.client_a) as uow:
        payload, metadata, suggestions = uow.session.connection().execute(
            text("SELECT payload, metadata, suggestions FROM tasks WHERE external_id = 's1'")
        ).one()
    for blob in (payload, metadata, suggestions):
        assert blob is not None
        assert b"secret" not in bytes(blob) and b"confidential" not in bytes(blob) and b"neutral" not in bytes(blob)


def test_progress_is_reported_after_each_batch(world: World, project: int) -> None:
    seen: list[int] = []
    service = ImportService(world.services.uow_factory, batch_size=4)
    service.import_rows(world.operator, world.client_a, project, [{"text": str(i)} for i in range(10)],
                        progress=seen.append)
    assert seen == [4, 8, 10]


def peak_memory_of_import(world: World, project: int, path: Path) -> int:
    service = ImportService(world.services.uow_factory, batch_size=1000)
    tracemalloc.start()
    try:
        report = service.import_file(world.operator, world.client_a, project, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.invalid == 0
    return peak


def test_memory_stays_flat_however_large_the_file(world: World, project: int, tmp_path: Path) -> None:
    def generate(name: str, rows: int) -> Path:
        path = tmp_path / f"{name}.jsonl"
        with path.open("wb") as out:
            for i in range(rows):
                out.write(orjson.dumps({"external_id": f"{name}-{i:06d}", "data": {"text": f"row {i} of a file"}}))
                out.write(b"\n")
        return path

    small = peak_memory_of_import(world, project, generate("small", 3_000))
    large = peak_memory_of_import(world, project, generate("large", 30_000))
    # Holding the 27,000 extra rows would take about 12 MB more (about 450 bytes each, parsed).
    assert large - small < 3_000_000, f"peak {small:,} bytes for 3,000 rows, {large:,} for 30,000"


def audit_entries(world: World, action: str) -> list[dict[str, Any]]:
    entries = [orjson.loads(line) for line in world.services.audit.trail(world.client_a)]
    return [e for e in entries if e["action"] == action]


def test_an_import_is_witnessed_in_the_audit_log_with_its_counts(world: World, project: int) -> None:
    rows = [{"external_id": "a", "text": "secret words"}, {"external_id": "a", "text": "again"}]
    world.services.imports.import_rows(world.actors["manager_a"], world.client_a, project, rows)
    (entry,) = audit_entries(world, "tasks.imported")
    assert entry["actor"] == "manager_a" and entry["object_id"] == str(project) and entry["outcome"] == "ok"
    assert entry["details"] == {"format": "rows", "rows_read": 2, "created": 1, "already_present": 1, "invalid": 0}
    assert b"secret words" not in b"".join(world.services.audit.trail(world.client_a))


def test_a_rejected_import_leaves_no_entry_and_a_refused_one_is_recorded_as_denied(
    world: World, project: int
) -> None:
    with pytest.raises(ImportInvalid):
        world.services.imports.import_rows(world.operator, world.client_a, project, [{"text": 1}])
    assert audit_entries(world, "tasks.imported") == []
    with pytest.raises(PermissionDenied):
        world.services.imports.import_rows(world.actors["labeler_a"], world.client_a, project, [{"text": "a"}])
    (denied,) = audit_entries(world, "tasks.import")
    assert (denied["actor"], denied["outcome"]) == ("labeler_a", "denied")


# ---------------------------------------------------------------------------- access


def test_a_labeler_may_not_import(world: World, project: int) -> None:
    with pytest.raises(PermissionDenied):
        world.services.imports.import_rows(world.actors["labeler_a"], world.client_a, project, [{"text": "a"}])
    with pytest.raises(PermissionDenied):
        world.services.imports.authorize(world.actors["viewer_a"], world.client_a, project)


def test_another_clients_manager_is_told_the_project_does_not_exist(world: World, project: int) -> None:
    with pytest.raises(NotFound):
        world.services.imports.import_rows(world.actors["manager_b"], world.client_a, project, [{"text": "a"}])
    with pytest.raises(NotFound):
        world.services.imports.authorize(world.actors["manager_b"], world.client_a, project)
    assert task_count(world, project) == 0


# ---------------------------------------------------------------------------- CLI


@pytest.fixture
def cli(world: World) -> CliRunner:
    settings = world.services.settings
    env = {"LABELVAULT_HOME": str(settings.home), "LABELVAULT_DATABASE_URL": settings.resolved_database_url}
    return CliRunner(env=env)


def test_the_cli_imports_a_file_and_prints_a_summary(
    cli: CliRunner, world: World, project: int, tmp_path: Path
) -> None:
    path = write(tmp_path / "tasks.jsonl", jsonl([{"external_id": f"t{i}", "text": "x"} for i in range(3)]))
    result = cli.invoke(cli_app, ["import", "acme/reviews", str(path)])
    assert result.exit_code == 0, result.output
    assert "3 rows read, 3 created, 0 already present, 0 invalid" in result.stdout
    again = cli.invoke(cli_app, ["import", str(project), str(path)])
    assert "0 created, 3 already present" in again.stdout


def test_the_cli_fails_with_one_line_naming_the_bad_line(
    cli: CliRunner, world: World, project: int, tmp_path: Path
) -> None:
    path = write(tmp_path / "tasks.jsonl", b'{"text": "fine"}\n{"text": 3}\n')
    result = cli.invoke(cli_app, ["import", "acme/reviews", str(path)])
    assert result.exit_code == 1
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith("error: import rejected, nothing was written (1 bad row)")
    assert 'line 2: field "text": expected text, got number' in first
    assert task_count(world, project) == 0


def test_the_cli_skips_bad_rows_on_request_and_lists_them(
    cli: CliRunner, world: World, project: int, tmp_path: Path
) -> None:
    path = write(tmp_path / "tasks.csv", b"id,review\na,good\nb,\n")
    mapping = ["--map", "id=external_id", "--map", "review=text"]
    result = cli.invoke(cli_app, ["import", "acme/reviews", str(path), "--skip-invalid", *mapping])
    assert result.exit_code == 0, result.output
    assert "1 created" in result.stdout and "1 invalid" in result.stdout
    assert 'row 2: field "text" is required but missing' in result.stderr


def test_the_cli_names_an_unknown_project(cli: CliRunner, tmp_path: Path, world: World) -> None:
    path = write(tmp_path / "tasks.jsonl", b'{"text": "a"}\n')
    result = cli.invoke(cli_app, ["import", "acme/nope", str(path)])
    assert result.exit_code == 1
    assert "project acme/nope not found" in result.stderr
