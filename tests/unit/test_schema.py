"""Project schema documents: parsing YAML/JSON/dicts and the errors people see."""

from __future__ import annotations

import json
from typing import Any

import pytest

from labelvault.domain.schema import (
    BboxQuestion,
    FieldKind,
    LabelQuestion,
    ProjectSchema,
    QuestionType,
    RatingQuestion,
    RubricQuestion,
    parse_schema,
)
from labelvault.errors import InvalidInput, SchemaInvalid

FULL_YAML = """
instructions: |
  # Guidelines
  Be kind.
fields:
  - {name: prompt, kind: text, title: Prompt}
  - {name: article, kind: markdown, required: false}
  - {name: photo, kind: image, required: false}
  - {name: conversation, kind: chat, required: false}
  - {name: responses, kind: candidates}
questions:
  - {name: sentiment, type: label, labels: [pos, neg, neutral], help: Overall tone}
  - {name: topics, type: multi_label, labels: [sports, politics], max_selected: 2}
  - {name: stars, type: rating, min: 1, max: 5}
  - {name: order, type: ranking, field: responses}
  - {name: better, type: preference, field: responses, allow_tie: false, strength_levels: 3}
  - {name: rewrite, type: text, min_length: 1, max_length: 500, required: false}
  - {name: entities, type: span, field: article, labels: [PER, ORG], allow_overlap: true}
  - {name: objects, type: bbox, field: photo, labels: [car]}
  - name: quality
    type: rubric
    criteria:
      - {name: clarity, type: rating, min: 1, max: 7}
      - {name: safe, type: label, labels: [yes_, no_]}
"""


def minimal(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "fields": [{"name": "prompt", "kind": "text"}],
        "questions": [{"name": "sentiment", "type": "label", "labels": ["pos", "neg"]}],
    }
    document.update(overrides)
    return document


def schema_error(document: Any) -> SchemaInvalid:
    with pytest.raises(SchemaInvalid) as caught:
        parse_schema(document)
    return caught.value


# --------------------------------------------------------------------------- accepted documents


def test_a_yaml_document_with_every_field_kind_and_question_type_parses() -> None:
    schema = parse_schema(FULL_YAML)

    assert [spec.kind for spec in schema.fields] == list(FieldKind)
    assert {question.type for question in schema.questions} == set(QuestionType)
    assert schema.instructions is not None and schema.instructions.startswith("# Guidelines")
    assert schema.field("prompt").title == "Prompt"
    assert schema.field("article").required is False
    better = schema.question("better")
    assert better.type == "preference" and better.allow_tie is False and better.strength_levels == 3


def test_a_json_document_parses_the_same_as_yaml() -> None:
    from_yaml = parse_schema(FULL_YAML)
    from_json = parse_schema(json.dumps(from_yaml.to_dict(), indent="\t"))  # tabs: not valid YAML

    assert from_json == from_yaml


def test_bytes_and_dicts_are_accepted_too() -> None:
    assert parse_schema(FULL_YAML.encode()) == parse_schema(FULL_YAML)
    assert parse_schema(minimal()).question_names == ["sentiment"]


def test_to_dict_is_json_and_round_trips() -> None:
    schema = parse_schema(FULL_YAML)
    data = schema.to_dict()

    assert json.loads(json.dumps(data)) == data
    assert parse_schema(data) == schema
    assert list(data["questions"][0])[:2] == ["name", "type"]


def test_defaults_are_filled_in() -> None:
    schema = parse_schema(
        minimal(
            questions=[
                {"name": "note", "type": "text"},
                {"name": "tags", "type": "multi_label", "labels": ["a"]},
            ]
        )
    )
    note, tags = schema.questions

    assert note.required is True and note.min_length == 0 and note.max_length == 10_000
    assert tags.min_selected == 0 and tags.max_selected is None
    assert schema.fields[0].required is True


def test_lookup_helpers_find_fields_and_questions_by_name_and_kind() -> None:
    schema = parse_schema(FULL_YAML)

    assert schema.has_field("photo") and not schema.has_field("nope")
    assert schema.has_question("stars") and not schema.has_question("nope")
    assert [q.name for q in schema.label_questions()] == ["sentiment", "topics"]
    assert [spec.name for spec in schema.fields_of_kind(FieldKind.TEXT, "markdown")] == ["prompt", "article"]
    assert [q.name for q in schema.questions_of_type("bbox")] == ["objects"]
    assert ("quality.clarity", schema.question("quality").criterion("clarity")) in list(
        schema.iter_questions()
    )
    with pytest.raises(KeyError, match="nope"):
        schema.question("nope")
    with pytest.raises(KeyError, match="nope"):
        schema.field("nope")


def test_question_models_can_be_built_directly_in_python() -> None:
    schema = ProjectSchema(
        fields=[{"name": "photo", "kind": "image"}],
        questions=[
            LabelQuestion(name="ok", labels=["yes", "no"]),
            BboxQuestion(name="boxes", field="photo", labels=["car"]),
            RubricQuestion(name="grade", criteria=[RatingQuestion(name="score", min=0, max=10)]),
        ],
    )

    assert schema.question("grade").criteria[0].max == 10


def test_the_memo_builds_derived_objects_once_per_schema() -> None:
    schema = parse_schema(minimal())
    calls: list[int] = []

    def build(s: ProjectSchema) -> int:
        calls.append(1)
        return len(s.questions)

    assert schema.memo("count", build) == 1
    assert schema.memo("count", build) == 1
    assert len(calls) == 1
    assert parse_schema(minimal()) == schema  # the cache does not affect equality


# --------------------------------------------------------------------------- document-level errors


def test_schema_invalid_is_an_invalid_input_error_with_a_stable_code() -> None:
    error = schema_error("fields: [")

    assert isinstance(error, InvalidInput)
    assert error.code == "schema_invalid" and error.http_status == 400


def test_broken_yaml_is_reported_with_its_line() -> None:
    error = schema_error("fields:\n  - name: prompt\n    kind: [text\nquestions: []\n")

    assert "not valid YAML" in error.message
    assert "line" in error.message


def test_broken_json_is_reported_with_its_line_and_column() -> None:
    error = schema_error('{"fields": [\n  {"name": "prompt",, }\n]}')

    assert "not valid JSON" in error.message
    assert "line 2" in error.message


def test_an_empty_document_is_refused() -> None:
    assert "empty" in schema_error("   \n").message


def test_a_document_that_is_not_a_mapping_is_refused() -> None:
    assert "must be a mapping" in schema_error("- a\n- b\n").message
    assert "got list" in schema_error("[1, 2]").message


def test_bytes_that_are_not_utf8_are_refused() -> None:
    assert "UTF-8" in schema_error(b"fields: \xff\xfe").message


def test_unknown_top_level_keys_are_refused_with_the_allowed_keys() -> None:
    error = schema_error(minimal(guidelines="x"))

    assert 'unknown key "guidelines"' in error.message
    assert "instructions" in error.message


def test_fields_and_questions_must_not_be_empty() -> None:
    error = schema_error(minimal(fields=[], questions=[]))

    assert "fields must have at least 1 item" in error.message
    assert "questions must have at least 1 item" in error.message
    assert {d["loc"] for d in error.details} == {"fields", "questions"}


def test_missing_fields_are_reported_as_required() -> None:
    error = schema_error({"questions": minimal()["questions"]})

    assert error.message == "fields is required"


def test_several_problems_are_all_listed_in_details() -> None:
    error = schema_error(
        minimal(
            questions=[
                {"name": "a", "type": "rating", "min": 5, "max": 1},
                {"name": "b", "type": "label", "labels": ["x"]},
                {"name": "c", "type": "text", "min_length": 9, "max_length": 2},
                {"name": "d", "type": "label"},
            ]
        )
    )

    assert error.message.startswith("schema has 4 problems")
    assert "and 1 more" in error.message
    assert [d["loc"] for d in error.details] == [
        "questions[0]",
        "questions[1].labels",
        "questions[2]",
        "questions[3].labels",
    ]
    assert all(set(d) == {"loc", "message"} for d in error.details)


# --------------------------------------------------------------------------- field errors


def test_duplicate_field_names_are_refused() -> None:
    error = schema_error(
        minimal(fields=[{"name": "prompt", "kind": "text"}, {"name": "prompt", "kind": "image"}])
    )

    assert error.message == 'fields must have unique names ("prompt" appears twice)'


def test_an_unknown_field_kind_names_the_field_and_the_allowed_kinds() -> None:
    error = schema_error(minimal(fields=[{"name": "clip", "kind": "video"}]))

    assert error.message.startswith(
        "fields[0] (clip): kind must be one of text, markdown, image, chat, candidates"
    )
    assert '"video"' in error.message
    assert error.details[0]["loc"] == "fields[0].kind"


@pytest.mark.parametrize("name", ["1st", "has space", "dash-ed", "", "x" * 65, "ünïcode"])
def test_field_names_must_be_identifiers(name: str) -> None:
    error = schema_error(minimal(fields=[{"name": name, "kind": "text"}]))

    assert "name must be an identifier" in error.message


def test_a_64_character_identifier_is_fine() -> None:
    parse_schema(minimal(fields=[{"name": "_" + "a" * 63, "kind": "text"}]))


def test_field_flags_must_be_real_booleans() -> None:
    error = schema_error(minimal(fields=[{"name": "prompt", "kind": "text", "required": "no"}]))

    assert error.message == 'fields[0] (prompt): required must be true or false, got "no"'


# --------------------------------------------------------------------------- question errors


def test_duplicate_question_names_are_refused() -> None:
    error = schema_error(
        minimal(
            questions=[
                {"name": "sentiment", "type": "label", "labels": ["a", "b"]},
                {"name": "sentiment", "type": "text"},
            ]
        )
    )

    assert error.message == 'questions must have unique names ("sentiment" appears twice)'


def test_duplicate_labels_are_named_with_the_question_and_position() -> None:
    error = schema_error(
        minimal(questions=[{"name": "sentiment", "type": "label", "labels": ["pos", "neg", "pos"]}])
    )

    assert error.message == 'questions[0] (sentiment): labels must be unique ("pos" appears twice)'
    assert error.details == [{"loc": "questions[0].labels", "message": error.message}]


def test_a_label_question_needs_two_labels() -> None:
    error = schema_error(minimal(questions=[{"name": "sentiment", "type": "label", "labels": ["pos"]}]))

    assert error.message == "questions[0] (sentiment): labels must have at least 2 items, got 1"


@pytest.mark.parametrize(
    ("label", "reason"),
    [("", "must not be empty"), ("   ", "must not be blank"), (" pos", "must not start or end with spaces")],
)
def test_labels_must_not_be_empty_or_padded(label: str, reason: str) -> None:
    error = schema_error(minimal(questions=[{"name": "s", "type": "label", "labels": ["neg", label]}]))

    assert error.message.startswith(f"questions[0] (s): labels[1] {reason}")


def test_yaml_yes_and_no_labels_get_a_hint_to_quote_them() -> None:
    error = schema_error(
        "fields: [{name: t, kind: text}]\nquestions: [{name: ok, type: label, labels: [yes, no]}]\n"
    )

    assert "questions[0] (ok): labels[0] must be text, got boolean (put it in quotes)" in error.message


def test_an_unknown_question_type_lists_the_known_ones() -> None:
    error = schema_error(minimal(questions=[{"name": "pick", "type": "choice", "labels": ["a", "b"]}]))

    assert error.message.startswith(
        'questions[0] (pick): unknown question type "choice"; expected one of label'
    )
    assert "bbox" in error.message


def test_a_question_without_a_type_is_refused() -> None:
    error = schema_error(minimal(questions=[{"name": "pick", "labels": ["a", "b"]}]))

    assert error.message.startswith("questions[0] (pick): type is required")


def test_a_question_that_is_not_a_mapping_is_refused() -> None:
    error = schema_error(minimal(questions=["sentiment"]))

    assert error.message == "questions[0] must be a mapping, got text"


def test_unknown_question_keys_are_refused_with_the_allowed_keys() -> None:
    error = schema_error(
        minimal(questions=[{"name": "stars", "type": "rating", "min": 1, "max": 5, "step": 1}])
    )

    assert error.message.startswith('questions[0] (stars): unknown key "step"')
    assert "min" in error.message and "max" in error.message


def test_a_misspelt_key_that_equals_a_type_name_is_still_reported_as_unknown() -> None:
    error = schema_error(minimal(questions=[{"name": "note", "type": "text", "text": "x"}]))

    assert error.message.startswith('questions[0] (note): unknown key "text"')
    assert error.details[0]["loc"] == "questions[0].text"


def test_a_rating_scale_must_go_up() -> None:
    error = schema_error(minimal(questions=[{"name": "stars", "type": "rating", "min": 5, "max": 5}]))

    assert error.message == "questions[0] (stars): min (5) must be less than max (5)"


def test_a_rating_scale_spans_at_most_100() -> None:
    parse_schema(minimal(questions=[{"name": "stars", "type": "rating", "min": -50, "max": 50}]))
    error = schema_error(minimal(questions=[{"name": "stars", "type": "rating", "min": 0, "max": 101}]))

    assert "questions[0] (stars)" in error.message and "too wide" in error.message


@pytest.mark.parametrize("bad", [True, 1.5, "5"])
def test_rating_bounds_must_be_whole_numbers_not_booleans_or_text(bad: Any) -> None:
    error = schema_error(minimal(questions=[{"name": "stars", "type": "rating", "min": 0, "max": bad}]))

    assert error.message.startswith("questions[0] (stars): max must be a whole number")


def test_text_bounds_must_be_ordered() -> None:
    error = schema_error(
        minimal(questions=[{"name": "why", "type": "text", "min_length": 10, "max_length": 5}])
    )

    assert error.message == "questions[0] (why): min_length (10) must be at most max_length (5)"


def test_text_bounds_must_not_be_negative() -> None:
    error = schema_error(minimal(questions=[{"name": "why", "type": "text", "min_length": -1}]))

    assert error.message == "questions[0] (why): min_length must be at least 0, got -1"


def test_multi_label_selection_bounds_must_be_possible() -> None:
    too_many = schema_error(
        minimal(questions=[{"name": "tags", "type": "multi_label", "labels": ["a", "b"], "min_selected": 3}])
    )
    crossed = schema_error(
        minimal(
            questions=[
                {
                    "name": "tags",
                    "type": "multi_label",
                    "labels": ["a", "b"],
                    "min_selected": 2,
                    "max_selected": 1,
                }
            ]
        )
    )

    assert too_many.message == "questions[0] (tags): min_selected (3) is more than the 2 labels"
    assert crossed.message == "questions[0] (tags): max_selected (1) must be at least min_selected (2)"


def test_preference_strength_levels_must_be_between_2_and_10() -> None:
    base = {"name": "pref", "type": "preference", "field": "responses"}
    fields = [{"name": "responses", "kind": "candidates"}]

    error = schema_error(minimal(fields=fields, questions=[{**base, "strength_levels": 1}]))
    assert error.message == "questions[0] (pref): strength_levels must be at least 2, got 1"
    error = schema_error(minimal(fields=fields, questions=[{**base, "strength_levels": 11}]))
    assert error.message == "questions[0] (pref): strength_levels must be at most 10, got 11"


# --------------------------------------------------------------------------- field references


def test_a_dangling_field_reference_is_refused_with_the_known_fields() -> None:
    error = schema_error(minimal(questions=[{"name": "order", "type": "ranking", "field": "answers"}]))

    assert error.message == (
        'questions[0] (order): field "answers" does not exist '
        '(a ranking question needs a candidates field; fields are "prompt")'
    )
    assert error.details[0]["loc"] == "questions[0].field"


@pytest.mark.parametrize(
    ("question", "needs"),
    [
        ({"name": "marks", "type": "span", "field": "photo", "labels": ["A"]}, "a text or markdown field"),
        ({"name": "boxes", "type": "bbox", "field": "prompt", "labels": ["car"]}, "an image field"),
        ({"name": "order", "type": "ranking", "field": "prompt"}, "a candidates field"),
        ({"name": "pref", "type": "preference", "field": "photo"}, "a candidates field"),
    ],
)
def test_a_field_reference_of_the_wrong_kind_is_refused(question: dict[str, Any], needs: str) -> None:
    fields = [{"name": "prompt", "kind": "text"}, {"name": "photo", "kind": "image"}]
    error = schema_error(minimal(fields=fields, questions=[question]))

    assert error.message.startswith(f'questions[0] ({question["name"]}): field "{question["field"]}" is a')
    assert error.message.endswith(f"needs {needs}")


def test_span_questions_may_point_at_markdown_fields() -> None:
    schema = parse_schema(
        minimal(
            fields=[{"name": "doc", "kind": "markdown"}],
            questions=[{"name": "marks", "type": "span", "field": "doc", "labels": ["A"]}],
        )
    )

    assert schema.question("marks").field == "doc"


def test_every_bad_reference_is_listed() -> None:
    error = schema_error(
        minimal(
            questions=[
                {"name": "a", "type": "ranking", "field": "x"},
                {"name": "b", "type": "bbox", "field": "prompt", "labels": ["car"]},
            ]
        )
    )

    assert [d["loc"] for d in error.details] == ["questions[0].field", "questions[1].field"]


# --------------------------------------------------------------------------- rubrics


def test_rubric_criteria_errors_name_the_rubric_and_the_criterion() -> None:
    error = schema_error(
        minimal(
            questions=[
                {
                    "name": "quality",
                    "type": "rubric",
                    "criteria": [
                        {"name": "clarity", "type": "rating", "min": 1, "max": 5},
                        {"name": "tone", "type": "label", "labels": ["warm", "warm"]},
                    ],
                }
            ]
        )
    )

    assert (
        error.message
        == 'questions[0] (quality).criteria[1] (tone): labels must be unique ("warm" appears twice)'
    )
    assert error.details[0]["loc"] == "questions[0].criteria[1].labels"


def test_rubric_criteria_names_must_be_unique() -> None:
    criteria = [{"name": "c", "type": "text"}, {"name": "c", "type": "text"}]
    error = schema_error(minimal(questions=[{"name": "quality", "type": "rubric", "criteria": criteria}]))

    assert error.message == 'questions[0] (quality): criteria must have unique names ("c" appears twice)'


def test_rubrics_do_not_nest() -> None:
    inner = {"name": "inner", "type": "rubric", "criteria": [{"name": "c", "type": "text"}]}
    error = schema_error(minimal(questions=[{"name": "outer", "type": "rubric", "criteria": [inner]}]))

    assert (
        error.message == "questions[0] (outer).criteria[0] (inner): "
        "a rubric criterion cannot be a rubric itself (rubrics do not nest)"
    )


def test_a_rubric_needs_at_least_one_criterion() -> None:
    error = schema_error(minimal(questions=[{"name": "quality", "type": "rubric", "criteria": []}]))

    assert error.message == "questions[0] (quality): criteria must have at least 1 item, got 0"


def test_rubric_criteria_field_references_are_checked() -> None:
    criteria = [{"name": "boxes", "type": "bbox", "field": "prompt", "labels": ["car"]}]
    error = schema_error(minimal(questions=[{"name": "quality", "type": "rubric", "criteria": criteria}]))

    assert error.message.startswith(
        'questions[0] (quality).criteria[0] (boxes): field "prompt" is a text field'
    )
    assert error.details[0]["loc"] == "questions[0].criteria[0].field"


def test_copies_and_unpickled_schemas_do_not_share_derived_state() -> None:
    import copy
    import pickle

    from labelvault.domain.schema import FieldSpec

    schema = parse_schema(
        minimal(fields=[{"name": "prompt", "kind": "text"}, {"name": "extra", "kind": "text"}])
    )
    assert schema.has_field("extra")
    trimmed = schema.model_copy(update={"fields": [FieldSpec(name="prompt", kind="text")]})
    restored = pickle.loads(pickle.dumps(schema))

    assert not trimmed.has_field("extra")
    assert restored == schema and restored.has_field("extra")
    assert copy.deepcopy(schema).memo("k", lambda s: "fresh") == "fresh"
