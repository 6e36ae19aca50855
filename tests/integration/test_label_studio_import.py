"""Moving over from Label Studio, on real databases: each result type becomes the right answer or
suggestion, the history (who, when, how long, skips) survives, re-imports change nothing, bad
files are rejected whole, and the CLI says so with its exit code."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from labelvault.cli.main import app as cli_app
from labelvault.errors import Conflict, ImportInvalid, NotFound, PermissionDenied, QueueRefused
from labelvault.io.label_studio_import import LabelStudioReport, NewProject
from labelvault.storage.models import Answer, AuditEntry, LedgerEntry, Membership, Project, Skip, Task, User
from labelvault.workflow.content import open_answer_values, open_task_content
from labelvault.workflow.labeling import skip_reason
from tests.conftest import World

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "label_studio"
TEXT_EXPORT = FIXTURES / "text_project.json"
TEXT_CONFIG = (FIXTURES / "text_project.xml").read_bytes()
TEXT_MIN = FIXTURES / "text_project_min.json"
IMAGE_EXPORT = FIXTURES / "image_project.json"
IMAGE_CONFIG = (FIXTURES / "image_project.xml").read_bytes()


def import_ls(world: World, source: Any, *, who: str = "manager_a", **kw: Any) -> LabelStudioReport:
    if "project" not in kw and "new_project" not in kw:
        kw["new_project"] = NewProject(slug="reviews", name="Reviews")
    return world.services.label_studio.import_export(world.actors[who], world.client_a, source, **kw)


def stored(world: World, project_id: int) -> dict[str, dict[str, Any]]:
    """Per external id: payload, suggestions, metadata-free counters, and answers by username."""
    out: dict[str, dict[str, Any]] = {}
    with world.services.uow_factory.for_client(world.client_a) as uow:
        tasks = uow.session.scalars(select(Task).where(Task.project_id == project_id).order_by(Task.id)).all()
        for task in tasks:
            payload, suggestions = open_task_content(uow, task)
            answers = uow.session.scalars(select(Answer).where(Answer.task_id == task.id).order_by(Answer.id)).all()
            values = open_answer_values(uow, list(answers))
            names = {u.id: u.username for u in uow.session.scalars(select(User))}
            skips = uow.session.scalars(select(Skip).where(Skip.task_id == task.id)).all()
            assert task.external_id is not None
            out[task.external_id] = {
                "payload": payload, "suggestions": suggestions, "answer_count": task.answer_count,
                "open_slots": task.open_slots, "required": task.required_answers, "review_state": task.review_state,
                "answers": {names[a.user_id]: v for a, v in zip(answers, values, strict=True)},
                "rows": {names[a.user_id]: a for a in answers},
                "skips": {names[s.user_id]: skip_reason(uow, s) for s in skips},
            }
    return out


def schema_of(world: World, project_id: int) -> dict[str, Any]:
    return world.services.projects.get(world.operator, world.client_a, project_id).schema.to_dict()


# ---------------------------------------------------------------------------- text: choices, rating, textarea, spans


def test_a_text_export_with_its_config_becomes_a_project_with_every_answer_and_suggestion(world: World) -> None:
    report = import_ls(world, TEXT_EXPORT, config=TEXT_CONFIG, new_project=NewProject("reviews", "Reviews", 2))
    assert (report.format, report.tasks_read, report.tasks_created, report.answers_created) == ("json", 4, 4, 4)
    assert (report.skips_created, report.annotations_superseded, report.suggestions_created) == (1, 1, 3)
    assert report.accounts == ["ls:acme:user-1", "ls:acme:user-2"]
    assert report.project_id is not None

    schema = schema_of(world, report.project_id)
    # With a config, the fields are what its object tags show; other data keys are kept as metadata.
    assert schema["fields"] == [{"name": "text", "kind": "text", "required": True}]
    assert report.mapping["metadata_keys"] == ["source", "stars"]
    questions = {q["name"]: q for q in schema["questions"]}
    assert questions["sentiment"] == {"name": "sentiment", "type": "label", "required": True,
                                      "labels": ["Positive", "Negative", "Neutral"]}
    assert questions["topics"]["type"] == "multi_label"
    assert questions["topics"]["labels"] == ["food", "service", "price"]
    assert (questions["quality"]["type"], questions["quality"]["min"], questions["quality"]["max"]) == ("rating", 1, 5)
    assert questions["summary"]["type"] == "text"
    assert questions["entities"]["type"] == "span" and questions["entities"]["labels"] == ["PER", "ORG", "LOC"]
    assert questions["entities"]["field"] == "text"

    tasks = stored(world, report.project_id)
    first = tasks["101"]
    assert first["payload"]["text"].startswith("Maria at Trattoria Roma")
    alice = first["answers"]["ls:acme:user-1"]
    assert alice == {
        "sentiment": "Positive",
        "topics": ["service", "price"],  # schema order
        "quality": 4,
        "summary": "Nice staff, expensive.",
        "entities": [{"start": 0, "end": 5, "label": "PER", "text": "Maria"},
                     {"start": 9, "end": 23, "label": "ORG", "text": "Trattoria Roma"}],
    }
    assert first["answers"]["ls:acme:user-2"] == {
        "sentiment": "Neutral", "quality": 3,
        "entities": [{"start": 9, "end": 23, "label": "LOC", "text": "Trattoria Roma"}],
    }
    assert first["suggestions"] == [{
        "model": "sentiment-bert-v2", "score": 0.87,
        "answer": {"sentiment": "Positive", "entities": [{"start": 0, "end": 5, "label": "PER", "text": "Maria"}]},
    }]
    # Two answers and an overlap of 2: complete, nothing left for the queue, not sent to review.
    assert (first["answer_count"], first["open_slots"], first["review_state"]) == (2, 0, "done")

    # Task 102: alice annotated twice (the later one is kept), bob cancelled: a skip.
    second = tasks["102"]
    assert second["answers"] == {"ls:acme:user-1": {
        "sentiment": "Negative", "topics": ["food", "service"], "quality": 2,
        "entities": [{"start": 40, "end": 52, "label": "ORG", "text": "Bella Napoli"}],
    }}
    assert second["skips"] == {"ls:acme:user-2": "cancelled in Label Studio"}
    assert (second["answer_count"], second["open_slots"], second["review_state"]) == (1, 1, "none")

    # Task 103: offsets counted in UTF-16 units by Label Studio land on the right characters.
    third = tasks["103"]
    bob = third["answers"]["ls:acme:user-2"]
    text = third["payload"]["text"]
    assert [text[s["start"]:s["end"]] for s in bob["entities"]] == ["Luigi's", "Naples"]
    assert bob["summary"] == "Pizza place\nworth it"

    # Task 104: no annotations, one prediction; the whole overlap is open.
    assert tasks["104"]["answers"] == {} and tasks["104"]["open_slots"] == 2
    assert tasks["104"]["suggestions"][0]["answer"] == {"sentiment": "Neutral"}


def test_the_annotators_history_survives_as_inactive_imported_accounts(world: World) -> None:
    report = import_ls(world, TEXT_EXPORT, config=TEXT_CONFIG)
    assert report.project_id is not None
    row = stored(world, report.project_id)["101"]["rows"]["ls:acme:user-1"]
    assert row.created_at == datetime(2025, 3, 10, 10, 15, 2, 123456, tzinfo=UTC)
    assert row.time_spent_ms == 42500
    assert row.created_at - row.started_at == timedelta(milliseconds=42500)
    assert row.status == "accepted" and row.idempotency_key == f"ls:{report.project_id}:2001"
    with world.services.uow_factory.for_client(world.client_a) as uow:
        user = uow.users.by_username("ls:acme:user-1")
        assert user is not None
        assert (user.is_active, user.password_hash, user.is_operator) == (False, None, False)
        assert "alice@example.com" in user.display_name
        roles = uow.session.scalars(select(Membership.role).where(Membership.user_id == user.id)).all()
        assert roles == ["labeler"]
        # Nothing was paid for history done elsewhere.
        assert uow.session.scalars(select(LedgerEntry)).first() is None


def test_the_work_of_deleted_label_studio_users_is_kept_under_one_account(world: World) -> None:
    def deleted(tasks: list[dict[str, Any]]) -> None:
        for annotation in tasks[0]["annotations"]:
            annotation["completed_by"] = None
            annotation.pop("created_username")

    report = import_ls(world, _export_with(deleted), config=TEXT_CONFIG)
    assert report.project_id is not None and "ls:acme:deleted-user" in report.accounts
    # One person as far as LabelVault can tell: the later of the two annotations is kept.
    answers = stored(world, report.project_id)["101"]["answers"]
    assert list(answers) == ["ls:acme:deleted-user"] and answers["ls:acme:deleted-user"]["sentiment"] == "Neutral"


def test_imported_accounts_leave_with_the_client_at_offboarding(world: World, tmp_path: Path) -> None:
    import_ls(world, TEXT_EXPORT, config=TEXT_CONFIG)
    world.services.accounts.create_user(world.operator, "ls:globex:user-1", None)  # another client's name
    result = world.services.offboarding.offboard(world.operator, world.client_a, tmp_path / "bundle")
    assert result.deleted["imported_accounts"] == 2
    with world.services.uow_factory.system() as uow:
        left = set(uow.session.scalars(select(User.username).where(User.username.like("ls:%"))))
    assert left == {"ls:globex:user-1"}
    # The history itself left in the bundle, under the same names.
    assert '"username":"ls:acme:user-1"' in (tmp_path / "bundle" / "members.jsonl").read_text()


def test_an_import_is_written_to_the_audit_log_with_counts_never_content(world: World) -> None:
    report = import_ls(world, TEXT_EXPORT, config=TEXT_CONFIG)
    world.services.audit.sequence()
    with world.services.uow_factory.system() as uow:
        rows = uow.session.scalars(select(AuditEntry).where(AuditEntry.client_id == world.client_a)).all()
    actions = [row.action for row in rows]
    assert actions.count("user.created") == 2 and actions.count("project.created") == 1
    entry = json.loads(next(row.entry for row in rows if row.action == "label_studio.imported"))
    assert entry["details"]["answers_created"] == report.answers_created == 4
    assert "Maria" not in json.dumps(entry) and "alice" not in json.dumps(entry)


def test_ground_truth_annotations_can_make_gold_tasks_with_their_answer(world: World) -> None:
    report = import_ls(world, TEXT_EXPORT, config=TEXT_CONFIG, ground_truth_as_gold=True)
    assert report.gold_tasks_created == 1 and report.project_id is not None
    items, total = world.services.gold.list(world.operator, world.client_a, report.project_id)
    assert total == 1
    item = items[0]
    assert (item.external_id, item.answers) == ("102", 1)
    assert item.gold == {"sentiment": "Negative", "topics": ["food", "service"], "quality": 2,
                                "entities": [{"start": 40, "end": 52, "label": "ORG", "text": "Bella Napoli"}]}
    task = stored(world, report.project_id)["102"]
    assert (task["required"], task["open_slots"]) == (0, 0)  # the queue mixes it in by the gold rate only
    plain = import_ls(world, TEXT_EXPORT, config=TEXT_CONFIG, new_project=NewProject("plain", "Plain"))
    assert plain.gold_tasks_created == 0


def test_imported_history_feeds_the_quality_report_and_the_export(world: World) -> None:
    report = import_ls(world, TEXT_EXPORT, config=TEXT_CONFIG, new_project=NewProject("reviews", "Reviews", 2))
    assert report.project_id is not None
    quality = world.services.quality.report(world.operator, world.client_a, report.project_id)
    assert "sentiment" in json.dumps(quality)
    labelers = world.services.quality.labelers(world.operator, world.client_a, report.project_id)
    assert {"ls:acme:user-1", "ls:acme:user-2"} <= {row["labeler"] for row in labelers}
    export = world.services.exports.export(world.operator, world.client_a, report.project_id)
    lines = b"".join(export.chunks).splitlines()
    assert len(lines) == 4 and b"ls:acme:user-1" in b"".join(lines)


# ---------------------------------------------------------------------------- images: rectanglelabels


def test_boxes_in_percent_become_fractions_and_rotated_boxes_their_envelope(world: World) -> None:
    report = import_ls(world, IMAGE_EXPORT, new_project=NewProject("street", "Street"))  # no config: inferred
    assert report.project_id is not None
    schema = schema_of(world, report.project_id)
    assert {"name": "image_url", "kind": "image", "required": True} in schema["fields"]
    question = schema["questions"][0]
    assert (question["name"], question["type"], question["field"]) == ("objects", "bbox", "image_url")
    assert question["labels"] == ["Car", "Person", "Bicycle"]

    tasks = stored(world, report.project_id)
    carol = tasks["9001"]["answers"]["ls:acme:user-5"]["objects"]
    assert carol[0] == pytest.approx({"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.4, "label": "Car"})
    assert carol[1] == pytest.approx({"x": 0.625, "y": 0.1, "w": 0.05, "h": 0.25, "label": "Person"})
    # Rotated 90 degrees about its top-left corner on a 1280x720 image: 128x72 px becomes 72x128 px.
    rotated = tasks["9001"]["answers"]["ls:acme:user-6"]["objects"][1]
    assert rotated == pytest.approx({"x": 568 / 1280, "y": 0.5, "w": 72 / 1280, "h": 128 / 720, "label": "Bicycle"})
    # x + width = 100.00000000000001 percent is clamped to the image.
    edge = tasks["9002"]["answers"]["ls:acme:user-5"]["objects"][0]
    assert edge["x"] + edge["w"] <= 1.0 and edge["w"] == pytest.approx(1.0)

    suggestion = tasks["9001"]["suggestions"][0]
    assert (suggestion["model"], suggestion["score"]) == ("yolov8-street-2024-10", 0.91)
    assert suggestion["answer"]["objects"][0]["label"] == "Car"
    # A score on another scale is not guessed at, and an empty model_version gets a name.
    assert tasks["9002"]["suggestions"][0]["model"] == "label-studio"
    assert tasks["9002"]["suggestions"][0]["score"] is None


def test_the_config_names_the_image_field_and_keeps_unlabelled_data_as_metadata(world: World) -> None:
    report = import_ls(world, IMAGE_EXPORT, config=IMAGE_CONFIG, new_project=NewProject("street", "Street"))
    assert report.mapping["fields"] == {"image_url": "image_url"}
    assert report.mapping["metadata_keys"] == ["camera"]


# ---------------------------------------------------------------------------- JSON-MIN


def test_a_json_min_export_with_the_config_gives_the_same_latest_answers(world: World) -> None:
    full = import_ls(world, TEXT_EXPORT, config=TEXT_CONFIG)
    short = import_ls(world, TEXT_MIN, config=TEXT_CONFIG, new_project=NewProject("reviews-min", "Min"))
    assert short.format == "json-min" and short.project_id is not None and full.project_id is not None
    a, b = stored(world, full.project_id), stored(world, short.project_id)
    for external_id in ("101", "102", "103"):
        assert b[external_id]["answers"] == a[external_id]["answers"]


def test_a_json_min_export_without_the_config_is_refused_with_the_reason(world: World) -> None:
    with pytest.raises(ImportInvalid, match=r"JSON-MIN export.*give the labeling config"):
        import_ls(world, TEXT_MIN)


# ---------------------------------------------------------------------------- idempotency and existing projects


def test_importing_the_same_export_again_changes_nothing(world: World) -> None:
    first = import_ls(world, TEXT_EXPORT, config=TEXT_CONFIG)
    assert first.project_id is not None
    before = stored(world, first.project_id)
    again = import_ls(world, TEXT_EXPORT, config=TEXT_CONFIG, project="reviews")
    assert (again.tasks_created, again.tasks_already_present) == (0, 4)
    assert (again.answers_created, again.answers_already_present, again.skips_created) == (0, 4, 0)
    assert (again.accounts_created, again.suggestions_created) == (0, 0)
    after = stored(world, first.project_id)
    assert {k: (v["answers"], v["answer_count"], v["open_slots"]) for k, v in after.items()} == {
        k: (v["answers"], v["answer_count"], v["open_slots"]) for k, v in before.items()
    }


def test_the_queue_offers_only_tasks_whose_imported_answers_fall_short_of_the_overlap(world: World) -> None:
    report = import_ls(world, TEXT_EXPORT, config=TEXT_CONFIG, new_project=NewProject("reviews", "R", 2))
    assert report.project_id is not None
    with world.services.uow_factory.for_client(world.client_a) as uow:
        external = {t.id: t.external_id for t in uow.session.scalars(select(Task))}
    offered = []
    labeler = world.actors["labeler_a"]
    while True:
        try:
            leased = world.services.labeling.next_task(labeler, world.client_a, report.project_id)
        except QueueRefused:
            break
        offered.append(external[leased.task_id])
        world.services.labeling.skip(labeler, world.client_a, report.project_id, leased.task_id)
    assert sorted(offered) == ["102", "103", "104"]  # 101 has its two answers already


def test_a_later_export_adds_only_the_new_annotations_and_counts_them_toward_overlap(world: World) -> None:
    first = import_ls(world, TEXT_EXPORT, config=TEXT_CONFIG, new_project=NewProject("reviews", "R", 2))
    assert first.project_id is not None
    later = json.loads(TEXT_EXPORT.read_text())
    extra = copy.deepcopy(later[3])
    later[3]["annotations"] = [{
        "id": 2100, "completed_by": 3, "created_username": " erin@example.com, 3", "was_cancelled": False,
        "ground_truth": False, "created_at": "2025-04-01T10:00:00Z", "lead_time": 5,
        "result": [{"id": "x1", "from_name": "sentiment", "to_name": "review_text", "type": "choices",
                    "value": {"choices": ["Neutral"]}}],
    }]
    later.append({**extra, "id": 105, "annotations": []})
    report = import_ls(world, json.dumps(later).encode(), project=str(first.project_id))
    assert (report.tasks_created, report.tasks_already_present, report.answers_created) == (1, 4, 1)
    assert report.accounts_created == 1
    task = stored(world, first.project_id)["104"]
    assert task["answers"] == {"ls:acme:user-3": {"sentiment": "Neutral"}}
    assert (task["answer_count"], task["open_slots"]) == (1, 1)


def test_an_existing_project_must_have_a_question_for_every_result(world: World) -> None:
    world.services.projects.create(
        world.actors["manager_a"], world.client_a, slug="plain", name="Plain",
        schema={"fields": [{"name": "text", "kind": "text"}],
                "questions": [{"name": "sentiment", "type": "label", "labels": ["Positive", "Negative", "Neutral"]}]},
    )
    with pytest.raises(ImportInvalid, match=r'tasks\[0\] \(id 101\).*\(topics\): the project has no question "topics"'):
        import_ls(world, TEXT_EXPORT, project="plain")


def test_an_existing_project_with_a_fitting_schema_takes_the_import(world: World) -> None:
    dry = import_ls(world, TEXT_EXPORT, config=TEXT_CONFIG, dry_run=True)
    project = world.services.projects.create(
        world.actors["manager_a"], world.client_a, slug="made-by-hand", name="By hand", schema=dry.mapping["schema"],
    )
    report = import_ls(world, TEXT_EXPORT, project="made-by-hand")
    assert (report.project_created, report.tasks_created, report.answers_created) == (False, 4, 4)
    assert stored(world, project.id)["101"]["answers"]["ls:acme:user-2"]["sentiment"] == "Neutral"


# ---------------------------------------------------------------------------- bad input: nothing half-written


def _export_with(change: Any) -> bytes:
    tasks = json.loads(TEXT_EXPORT.read_text())
    change(tasks)
    return json.dumps(tasks).encode()


def _nothing_written(world: World) -> None:
    with world.services.uow_factory.for_client(world.client_a) as uow:
        assert uow.session.scalars(select(Project).where(Project.slug == "reviews")).first() is None
        assert uow.session.scalars(select(Task)).first() is None
        assert uow.users.by_username("ls:acme:user-1") is None


def test_an_unknown_label_names_the_task_annotation_and_result_and_writes_nothing(world: World) -> None:
    def bad(tasks: list[dict[str, Any]]) -> None:
        tasks[2]["annotations"][0]["result"][0]["value"]["choices"] = ["Meh"]

    with pytest.raises(ImportInvalid) as caught:
        import_ls(world, _export_with(bad), config=TEXT_CONFIG)
    message = caught.value.message
    assert message.startswith("Label Studio import rejected, nothing was written (1 bad task)")
    assert 'tasks[2] (id 103).annotations[0] (id 2006): question "sentiment": unknown label "Meh"' in message
    assert caught.value.details["errors"][0]["task"] == 2
    _nothing_written(world)


def test_a_span_whose_text_does_not_match_the_task_is_refused(world: World) -> None:
    def bad(tasks: list[dict[str, Any]]) -> None:
        tasks[0]["annotations"][0]["result"][4]["value"]["start"] = 1

    with pytest.raises(ImportInvalid, match=r"annotations\[0\] \(id 2001\)\.result\[4\] \(entities\): span \[1, 5\) "
                                            r'text "Maria" does not match'):
        import_ls(world, _export_with(bad), config=TEXT_CONFIG)
    _nothing_written(world)


def test_an_unsupported_result_type_is_refused_by_name_unless_skipped(world: World) -> None:
    def polygon(tasks: list[dict[str, Any]]) -> None:
        tasks[0]["annotations"][1]["result"].append({
            "id": "poly", "from_name": "shape", "to_name": "review_text", "type": "polygonlabels",
            "value": {"points": [[1, 2], [3, 4], [5, 1]], "polygonlabels": ["x"]}})

    export = _export_with(polygon)
    with pytest.raises(ImportInvalid, match=r'result\[3\] \(shape\): result type "polygonlabels" is not supported'):
        import_ls(world, export)
    _nothing_written(world)
    report = import_ls(world, export, skip_unsupported=True)
    assert report.results_dropped == 1 and report.answers_created == 4


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"[{\"id\": 1, ", "Label Studio export: not valid JSON"),
        (b"{\"tasks\": 3}", "tasks[0]: the task has no id"),
        (b"[]", "Label Studio export: it holds no tasks"),
        (b"[{\"id\": 1, \"data\": \"x\"}]", "tasks[0] (id 1): data must be an object, got text"),
        (b"[{\"id\": 1, \"data\": {\"text\": \"a\"}, \"annotations\": [{\"result\": 3}]}]",
         "tasks[0] (id 1).annotations[0]: result must be a list, got number"),
    ],
)
def test_a_broken_file_is_refused_with_where_and_why(world: World, content: bytes, expected: str) -> None:
    with pytest.raises(ImportInvalid) as caught:
        import_ls(world, content, config=TEXT_CONFIG)
    assert expected in caught.value.message
    _nothing_written(world)


def test_a_broken_config_is_refused(world: World) -> None:
    with pytest.raises(ImportInvalid, match=r"label config: not valid XML .* line 1"):
        import_ls(world, TEXT_EXPORT, config=b"<View><Choices name='a' toName='t'></View>")
    with pytest.raises(ImportInvalid, match="DOCTYPE and ENTITY declarations are not allowed"):
        import_ls(world, TEXT_EXPORT, config=b'<!DOCTYPE x [<!ENTITY a "b">]><View/>')


def test_an_existing_slug_or_a_real_account_with_an_imported_name_is_a_conflict(world: World) -> None:
    import_ls(world, TEXT_EXPORT, config=TEXT_CONFIG)
    with pytest.raises(Conflict, match="exists already"):
        import_ls(world, TEXT_EXPORT, config=TEXT_CONFIG)
    world.services.accounts.create_user(world.operator, "ls:acme:user-5", "a-real-password-1")
    with pytest.raises(Conflict, match="not an imported Label Studio account"):
        import_ls(world, IMAGE_EXPORT, new_project=NewProject("street", "Street"))


# ---------------------------------------------------------------------------- access


def test_only_a_manager_of_the_client_may_import(world: World) -> None:
    with pytest.raises(PermissionDenied):
        import_ls(world, TEXT_EXPORT, who="labeler_a")
    with pytest.raises(NotFound):
        import_ls(world, TEXT_EXPORT, who="manager_b")
    _nothing_written(world)


def test_a_dry_run_reports_the_schema_and_counts_and_writes_nothing(world: World) -> None:
    report = import_ls(world, TEXT_EXPORT, config=TEXT_CONFIG, dry_run=True)
    assert report.dry_run and report.answers_created == 4 and report.accounts_created == 2
    assert [q["name"] for q in report.mapping["schema"]["questions"]] == [
        "sentiment", "topics", "quality", "summary", "entities"]
    _nothing_written(world)


# ---------------------------------------------------------------------------- CLI


@pytest.fixture
def cli(world: World) -> CliRunner:
    settings = world.services.settings
    env = {"LABELVAULT_HOME": str(settings.home), "LABELVAULT_DATABASE_URL": settings.resolved_database_url}
    return CliRunner(env=env)


def test_the_cli_dry_run_prints_the_inferred_schema_and_exits_zero(cli: CliRunner, world: World) -> None:
    result = cli.invoke(cli_app, ["import-label-studio", "acme", str(IMAGE_EXPORT), "--new-project", "street",
                                  "--dry-run"])
    assert result.exit_code == 0, result.output
    assert '"type": "bbox"' in result.stdout and "rectanglelabels objects -> question objects (bbox)" in result.stdout
    assert "would import image_project.json (json) into street (new project): 2 tasks read" in result.stdout
    _nothing_written(world)


def test_the_cli_imports_then_finds_everything_present(cli: CliRunner, world: World, tmp_path: Path) -> None:
    config = tmp_path / "config.xml"
    config.write_bytes(TEXT_CONFIG)
    args = ["import-label-studio", "acme", str(TEXT_EXPORT), "--config", str(config)]
    result = cli.invoke(cli_app, [*args, "--new-project", "reviews", "--overlap", "2"])
    assert result.exit_code == 0, result.output
    assert "4 tasks read, 4 created (0 gold), 0 already present; 4 answers" in result.stdout
    again = cli.invoke(cli_app, [*args, "--project", "reviews"])
    assert again.exit_code == 0, again.output
    assert "0 created (0 gold), 4 already present; 0 answers (4 already present" in again.stdout


def test_the_cli_fails_with_one_line_naming_the_place_and_exit_code_one(
    cli: CliRunner, world: World, tmp_path: Path
) -> None:
    broken = tmp_path / "export.json"
    broken.write_bytes(_export_with(lambda tasks: tasks[1]["annotations"][2]["result"][2]["value"].update(rating=9)))
    config = tmp_path / "config.xml"
    config.write_bytes(TEXT_CONFIG)
    result = cli.invoke(cli_app, ["import-label-studio", "acme", str(broken), "--config", str(config),
                                  "--new-project", "reviews"])
    assert result.exit_code == 1
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith("error: Label Studio import rejected, nothing was written")
    assert 'tasks[1] (id 102).annotations[2] (id 2005): question "quality": rating 9 is outside the scale' in first
    _nothing_written(world)
    neither = cli.invoke(cli_app, ["import-label-studio", "acme", str(TEXT_EXPORT)])
    assert neither.exit_code == 1 and "give --project SLUG or --new-project SLUG" in neither.stderr
