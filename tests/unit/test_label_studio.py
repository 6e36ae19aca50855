"""The Label Studio format without a database: the config, the export's shapes, schema inference,
and the conversions that are easy to get wrong (UTF-16 offsets, percent boxes, rotation)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from labelvault.errors import ImportInvalid
from labelvault.io.label_studio import (
    LabelStudioInvalid,
    convert_result,
    identifier,
    infer_mapping,
    parse_label_config,
    read_export,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "label_studio"


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# ---------------------------------------------------------------------------- the labeling config


def test_the_config_gives_controls_with_their_options_and_the_data_keys_objects_show() -> None:
    config = parse_label_config(load("text_project.xml"))
    assert config.objects == {"review_text": "text"}
    sentiment, topics = config.controls["sentiment"], config.controls["topics"]
    assert (sentiment.kind, sentiment.to_name, sentiment.labels, sentiment.multiple, sentiment.required) == (
        "choices", "review_text", ("Positive", "Negative", "Neutral"), False, True)
    assert topics.multiple and topics.labels == ("food", "service", "price")  # nested in a <View>
    assert config.controls["quality"].max_rating == 5
    assert config.controls["entities"].labels == ("PER", "ORG", "LOC")


def test_a_choice_alias_is_the_label_that_results_carry() -> None:
    config = parse_label_config(
        '<View><Text name="t" value="$text"/><Choices name="c" toName="t">'
        '<Choice value="Very good" alias="good"/><Choice value="Bad"/></Choices>'
        '<Polygon name="poly" toName="t"/></View>'
    )
    assert config.controls["c"].labels == ("good", "Bad")
    assert not config.controls["poly"].supported


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("<View><Choices name='a' toName='t'></View>", "label config: not valid XML (mismatched tag at line 1"),
        ('<!DOCTYPE v [<!ENTITY x "y">]><View/>', "DOCTYPE and ENTITY declarations are not allowed"),
        ("<View><Text name='t' value='$text'/></View>", "it has no control tags"),
        ("<View><Rating name='r' toName='t' maxRating='many'/></View>", 'maxRating must be a whole number'),
        ("   ", "label config: it is empty"),
    ],
)
def test_a_bad_config_is_refused_with_the_reason(document: str, expected: str) -> None:
    with pytest.raises(ImportInvalid) as caught:
        parse_label_config(document)
    assert expected in caught.value.message


# ---------------------------------------------------------------------------- the export


def test_annotators_are_read_from_every_form_exports_use() -> None:
    raw = json.dumps([{"id": 1, "data": {"text": "x"}, "annotations": [
        {"id": 1, "completed_by": 7, "result": []},
        {"id": 2, "completed_by": {"id": 8, "email": "eve@example.com"}, "result": []},
        {"id": 3, "completed_by": 9, "created_username": " zoe@example.com, 9", "result": []},
        {"id": 4, "completed_by": "sam@example.com", "result": [], "was_cancelled": True},
    ]}]).encode()
    _, [task] = read_export(raw, None)
    people = [(a.annotator_id, a.annotator_email, a.cancelled) for a in task.annotations]
    assert people == [(7, None, False), (8, "eve@example.com", False), (9, "zoe@example.com", False),
                      (None, "sam@example.com", True)]


def test_one_task_object_is_read_as_a_list_of_one() -> None:
    fmt, tasks = read_export(b'{"id": 5, "data": {"text": "alone"}}', None)
    assert (fmt, [t.id for t in tasks]) == ("json", ["5"])


def test_a_json_min_export_is_regrouped_into_tasks_with_one_annotation_per_record() -> None:
    config = parse_label_config(load("text_project.xml"))
    fmt, tasks = read_export(load("text_project_min.json"), config)
    assert fmt == "json-min"
    assert [(t.id, len(t.annotations)) for t in tasks] == [("101", 2), ("102", 2), ("103", 1)]
    first = tasks[0]
    assert first.data == {"text": "Maria at Trattoria Roma was lovely, but the bill was steep."}
    bob = first.annotations[0]
    assert (bob.annotator_id, bob.id, bob.lead_time) == (2, "2002", 30.25)
    kinds = {(r["from_name"], r["type"]) for r in bob.result}
    assert kinds == {("sentiment", "choices"), ("quality", "rating"), ("entities", "labels")}


# ---------------------------------------------------------------------------- inference


def test_without_a_config_the_schema_is_inferred_from_data_and_results() -> None:
    _, tasks = read_export(load("text_project.json"), None)
    mapping = infer_mapping(tasks, None)
    schema = mapping.schema.to_dict()
    assert [(f["name"], f["kind"]) for f in schema["fields"]] == [("text", "text"), ("source", "text")]
    assert mapping.metadata_keys == ["stars"]
    questions = {q["name"]: q for q in schema["questions"]}
    assert questions["sentiment"]["type"] == "label"
    assert questions["sentiment"]["labels"] == ["Positive", "Neutral", "Negative"]  # as first seen
    assert questions["topics"]["type"] == "multi_label"  # an annotation picked two
    assert (questions["quality"]["min"], questions["quality"]["max"]) == (1, 5)
    assert questions["entities"]["field"] == "text"  # found by the span texts, to_name is review_text
    assert questions["entities"]["allow_overlap"] is True


def test_names_that_are_not_identifiers_are_made_into_distinct_ones() -> None:
    assert identifier("my-tag") == "my_tag"
    assert identifier("1st choice") == "_1st_choice"
    raw = json.dumps([{"id": 1, "data": {"the text": "hello world"}, "annotations": [{"completed_by": 1, "result": [
        {"from_name": "a-b", "to_name": "t", "type": "choices", "value": {"choices": ["x"]}},
        {"from_name": "a_b", "to_name": "t", "type": "choices", "value": {"choices": ["y"]}},
    ]}]}]).encode()
    _, tasks = read_export(raw, None)
    mapping = infer_mapping(tasks, None)
    assert mapping.fields == {"the text": "the_text"}
    assert {k: v.question for k, v in mapping.questions.items()} == {"a-b": "a_b", "a_b": "a_b_2"}


def test_no_supported_results_and_no_config_leaves_nothing_to_infer() -> None:
    _, tasks = read_export(b'[{"id": 1, "data": {"text": "x"}}]', None)
    with pytest.raises(ImportInvalid, match="no choices, rating, textarea, labels or rectanglelabels results"):
        infer_mapping(tasks, None)


# ---------------------------------------------------------------------------- conversions


def _convert(export: list[dict[str, Any]], config: str | None = None) -> dict[str, Any]:
    _, tasks = read_export(json.dumps(export).encode(), parse_label_config(config) if config else None)
    mapping = infer_mapping(tasks, parse_label_config(config) if config else None)
    task = tasks[0]
    payload = {mapping.fields[k]: v for k, v in task.data.items() if k in mapping.fields}
    value, _ = convert_result(mapping, payload, task.annotations[0].result, "here", 0)
    return value


def _box(value: dict[str, Any], **extra: Any) -> list[dict[str, Any]]:
    return [{"id": "b", "from_name": "box", "to_name": "img", "type": "rectanglelabels", "value": value, **extra}]


IMAGE = {"img": "https://example.com/a.png"}


def test_a_box_with_two_labels_becomes_two_boxes_in_fractions() -> None:
    value = _convert([{"id": 1, "data": IMAGE, "annotations": [{"completed_by": 1, "result": _box(
        {"x": 25, "y": 50, "width": 50, "height": 25, "rectanglelabels": ["a", "b"]})}]}])
    assert value == {"box": [{"x": 0.25, "y": 0.5, "w": 0.5, "h": 0.25, "label": "a"},
                             {"x": 0.25, "y": 0.5, "w": 0.5, "h": 0.25, "label": "b"}]}


def test_a_box_rotated_45_degrees_becomes_its_envelope_in_pixels() -> None:
    # 100x100 px square at (400, 100) on an 800x400 image, turned 45 degrees about its top-left corner.
    value = _convert([{"id": 1, "data": IMAGE, "annotations": [{"completed_by": 1, "result": _box(
        {"x": 50, "y": 25, "width": 12.5, "height": 25, "rotation": 45, "rectanglelabels": ["a"]},
        original_width=800, original_height=400)}]}])
    half = 100 / 2**0.5
    assert value["box"][0] == pytest.approx(
        {"x": (400 - half) / 800, "y": 100 / 400, "w": 2 * half / 800, "h": 2 * half / 400, "label": "a"})


def test_a_rotated_box_without_the_image_size_is_refused() -> None:
    with pytest.raises(LabelStudioInvalid, match="a rotated box needs original_width and original_height"):
        _convert([{"id": 1, "data": IMAGE, "annotations": [{"completed_by": 1, "result": _box(
            {"x": 1, "y": 1, "width": 5, "height": 5, "rotation": 30, "rectanglelabels": ["a"]})}]}])


def test_utf16_offsets_after_an_emoji_are_turned_into_character_offsets() -> None:
    text = "🙂🙂 Ada met Bob"
    span = {"start": 9, "end": 12, "text": "met", "labels": ["V"]}  # 2 emoji = 4 UTF-16 units
    value = _convert([{"id": 1, "data": {"text": text}, "annotations": [{"completed_by": 1, "result": [
        {"from_name": "ner", "to_name": "text", "type": "labels", "value": span}]}]}])
    [converted] = value["ner"]
    assert text[converted["start"]:converted["end"]] == "met"
    assert (converted["start"], converted["end"]) == (7, 10)


def test_a_per_region_text_area_is_not_taken_for_a_whole_answer() -> None:
    result = [
        {"id": "r1", "from_name": "ner", "to_name": "text", "type": "labels",
         "value": {"start": 0, "end": 3, "text": "Ada", "labels": ["P"]}},
        {"id": "r1", "from_name": "note", "to_name": "text", "type": "textarea", "value": {"text": ["a name"]}},
    ]
    with pytest.raises(LabelStudioInvalid, match="per-region textarea results are not supported"):
        _convert([{"id": 1, "data": {"text": "Ada met Bob"}, "annotations": [{"completed_by": 1, "result": result}]}])


def test_image_classification_gets_an_image_field_with_or_without_the_config() -> None:
    export = json.dumps([{"id": i, "data": {"photo": f"/data/upload/3/cat-{i}.JPG", "note": "x"}, "annotations": [
        {"completed_by": 1, "result": [{"from_name": "kind", "to_name": "img", "type": "choices",
                                        "value": {"choices": ["cat" if i else "dog"]}}]}]} for i in range(2)]).encode()
    config = parse_label_config('<View><Image name="img" value="$photo"/><Choices name="kind" toName="img">'
                                '<Choice value="cat"/><Choice value="dog"/></Choices></View>')
    for given in (config, None):
        _, tasks = read_export(export, given)
        fields = {f["name"]: f["kind"] for f in infer_mapping(tasks, given).schema.to_dict()["fields"]}
        assert fields["photo"] == "image"
        assert fields.get("note", "text") == "text"


def test_a_config_alone_gives_the_schema_of_tasks_not_labeled_yet() -> None:
    _, tasks = read_export(b'[{"id": 1, "data": {"text": "Ada met Bob"}}]', None)
    mapping = infer_mapping(tasks, parse_label_config(load("text_project.xml")))
    questions = {q["name"]: q for q in mapping.schema.to_dict()["questions"]}
    assert questions["entities"]["field"] == "text" and questions["sentiment"]["labels"] == [
        "Positive", "Negative", "Neutral"]


def test_an_annotation_of_a_deleted_user_is_kept_under_one_deleted_user() -> None:
    config = parse_label_config(load("text_project.xml"))
    records = json.loads(load("text_project_min.json"))
    records[1]["annotator"] = None
    _, tasks = read_export(json.dumps(records).encode(), config)
    assert tasks[0].annotations[1].annotator_key == "deleted"
    _, [task] = read_export(b'[{"id": 1, "data": {"text": "a"}, "annotations": [{"completed_by": null}]}]', None)
    assert (task.annotations[0].annotator_key, task.annotations[0].annotator_id) == ("deleted", None)
