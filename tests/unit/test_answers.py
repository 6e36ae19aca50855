"""Strict answer validation against a project schema."""

from __future__ import annotations

from typing import Any

import pytest

from labelvault.domain.answers import PAYLOAD_READING_TYPES, answer_validator, validate_answer, validate_suggestion
from labelvault.domain.payloads import validate_suggestion_values
from labelvault.domain.schema import ProjectSchema, parse_schema
from labelvault.errors import AnswerInvalid, InvalidInput

SCHEMA = parse_schema(
    """
fields:
  - {name: prompt, kind: text}
  - {name: responses, kind: candidates}
  - {name: photo, kind: image, required: false}
questions:
  - {name: sentiment, type: label, labels: [pos, neg, neutral]}
  - {name: topics, type: multi_label, labels: [sports, politics, science], min_selected: 1, max_selected: 2}
  - {name: stars, type: rating, min: 1, max: 5}
  - {name: order, type: ranking, field: responses}
  - {name: better, type: preference, field: responses, strength_levels: 3}
  - {name: rewrite, type: text, min_length: 2, max_length: 20, required: false}
  - {name: entities, type: span, field: prompt, labels: [PER, ORG]}
  - {name: objects, type: bbox, field: photo, labels: [car, person], required: false}
  - name: quality
    type: rubric
    criteria:
      - {name: clarity, type: rating, min: 1, max: 7}
      - {name: comment, type: text, required: false}
"""
)

PAYLOAD: dict[str, Any] = {
    "prompt": "Alice works at Acme.",  # 20 characters
    "responses": ["first", {"id": "b", "text": "second"}, "third"],
    "photo": "file:cat.png",
}

GOOD: dict[str, Any] = {
    "sentiment": "pos",
    "topics": ["science", "sports"],
    "stars": 4,
    "order": [2, 0, 1],
    "better": {"choice": "a", "strength": 2},
    "entities": [
        {"start": 15, "end": 19, "label": "ORG"},
        {"start": 0, "end": 5, "label": "PER", "text": "Alice"},
    ],
    "quality": {"clarity": 6},
}


def answer_with(**changes: Any) -> dict[str, Any]:
    return {**GOOD, **changes}


def rejection(
    answer: Any, payload: dict[str, Any] | None = None, schema: ProjectSchema = SCHEMA, **kwargs: Any
) -> AnswerInvalid:
    with pytest.raises(AnswerInvalid) as caught:
        validate_answer(schema, PAYLOAD if payload is None else payload, answer, **kwargs)
    return caught.value


def reason_for(question: str, value: Any, payload: dict[str, Any] | None = None) -> str:
    """The single problem reported when only ``question`` has the given value."""
    error = rejection(answer_with(**{question: value}), payload)
    assert len(error.details) == 1, error.details
    assert error.details[0]["question"] == question
    assert f'question "{question}"' in error.message
    return error.details[0]["message"]


# --------------------------------------------------------------------------- the whole document


def test_a_complete_answer_is_accepted_and_normalized() -> None:
    result = validate_answer(SCHEMA, PAYLOAD, GOOD)

    assert result["sentiment"] == "pos"
    assert result["topics"] == ["sports", "science"]  # schema order
    assert result["entities"] == [  # sorted by position
        {"start": 0, "end": 5, "label": "PER", "text": "Alice"},
        {"start": 15, "end": 19, "label": "ORG"},
    ]
    assert result["quality"] == {"clarity": 6}
    assert "rewrite" not in result and "objects" not in result


def test_answer_invalid_is_an_invalid_input_error_with_a_stable_code() -> None:
    error = rejection(answer_with(stars=9))

    assert isinstance(error, InvalidInput)
    assert error.code == "answer_invalid" and error.http_status == 400


def test_an_answer_that_is_not_a_mapping_is_refused() -> None:
    error = rejection(["pos"])

    assert error.message == "an answer must be a mapping of question names to values, got list"


def test_unknown_question_names_are_refused_and_the_known_ones_listed() -> None:
    error = rejection(answer_with(mood="happy"))

    assert error.details == [
        {
            "question": "mood",
            "message": 'unknown question "mood"; expected one of "sentiment", "topics", "stars", "order", '
            '"better", "rewrite", "entities", "objects", "quality"',
        }
    ]


def test_required_questions_must_be_answered() -> None:
    answer = dict(GOOD)
    del answer["stars"]
    error = rejection(answer)

    assert error.details == [{"question": "stars", "message": "an answer is required"}]
    assert error.message == 'question "stars": an answer is required'


def test_a_null_value_counts_as_not_answered() -> None:
    assert rejection(answer_with(stars=None)).details == [
        {"question": "stars", "message": "an answer is required"}
    ]
    assert "rewrite" not in validate_answer(SCHEMA, PAYLOAD, answer_with(rewrite=None))


def test_a_partial_answer_may_leave_required_questions_out() -> None:
    assert validate_answer(SCHEMA, PAYLOAD, {"stars": 3}, partial=True) == {"stars": 3}


def test_a_partial_answer_still_refuses_unknown_questions_and_bad_values() -> None:
    error = rejection({"mood": "x", "stars": 0}, partial=True)

    assert [d["question"] for d in error.details] == ["mood", "stars"]


def test_every_failure_is_listed_in_details_and_the_message_summarizes() -> None:
    error = rejection(answer_with(sentiment="x", stars=True, order=[0], rewrite="y", extra=1))

    assert [d["question"] for d in error.details] == ["sentiment", "stars", "order", "rewrite", "extra"]
    assert error.message.startswith('question "sentiment": unknown label "x"')
    assert error.message.endswith("; and 2 more")


def test_the_compiled_validator_is_cached_per_schema() -> None:
    assert answer_validator(SCHEMA) is answer_validator(SCHEMA)


# --------------------------------------------------------------------------- label


def test_a_label_answer_must_be_one_of_the_labels() -> None:
    error = rejection(answer_with(sentiment="happy"))

    assert (
        error.message
        == 'question "sentiment": unknown label "happy"; expected one of "pos", "neg", "neutral"'
    )


@pytest.mark.parametrize("value", [1, True, ["pos"], {"label": "pos"}])
def test_a_label_answer_must_be_text(value: Any) -> None:
    assert reason_for("sentiment", value).startswith(
        'expected one of the labels ("pos", "neg", "neutral"), got'
    )


def test_label_matching_is_exact() -> None:
    assert reason_for("sentiment", "Pos").startswith('unknown label "Pos"')


# --------------------------------------------------------------------------- multi_label


def test_a_multi_label_answer_accepts_a_selection_within_bounds() -> None:
    assert validate_answer(SCHEMA, PAYLOAD, answer_with(topics=["politics"]))["topics"] == ["politics"]


def test_a_multi_label_answer_refuses_unknown_and_repeated_labels() -> None:
    assert reason_for("topics", ["sports", "art"]).startswith('unknown label "art"; expected any of "sports"')
    assert reason_for("topics", ["sports", "sports"]) == 'label "sports" is selected twice'


def test_a_multi_label_answer_respects_min_and_max_selected() -> None:
    assert reason_for("topics", []) == "0 labels selected, at least 1 required"
    assert reason_for("topics", ["sports", "politics", "science"]) == "3 labels selected, at most 2 allowed"


@pytest.mark.parametrize("value", ["sports", {"sports": True}, [1]])
def test_a_multi_label_answer_must_be_a_list_of_text(value: Any) -> None:
    assert reason_for("topics", value).startswith("expected")


# --------------------------------------------------------------------------- rating


@pytest.mark.parametrize("value", [1, 3, 5])
def test_a_rating_within_the_scale_is_accepted(value: int) -> None:
    assert validate_answer(SCHEMA, PAYLOAD, answer_with(stars=value))["stars"] == value


def test_a_rating_outside_the_scale_is_refused() -> None:
    assert reason_for("stars", 6) == "rating 6 is outside the scale 1..5"
    assert reason_for("stars", 0) == "rating 0 is outside the scale 1..5"


@pytest.mark.parametrize(("value", "shown"), [(True, "true"), (3.0, "3"), (3.5, "3.5"), ("3", '"3"')])
def test_a_rating_must_be_a_whole_number_not_a_boolean_float_or_text(value: Any, shown: str) -> None:
    assert reason_for("stars", value) == f"expected a whole number from 1 to 5, got {shown}"


# --------------------------------------------------------------------------- ranking


def test_a_ranking_that_orders_every_candidate_is_accepted() -> None:
    assert validate_answer(SCHEMA, PAYLOAD, answer_with(order=[1, 2, 0]))["order"] == [1, 2, 0]


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ([0, 1], "2 ranked"),
        ([0, 1, 1], "index 1 appears twice"),
        ([0, 1, 3], "index 3 is out of range 0..2"),
        ([0, 1, 2, 3], "index 3 is out of range 0..2"),
        ([-1, 0, 1], "index -1 is out of range 0..2"),
    ],
)
def test_ranking_must_be_a_permutation_of_the_candidates(value: list[int], detail: str) -> None:
    assert reason_for("order", value) == f"ranking is not a permutation of the 3 candidates ({detail})"


@pytest.mark.parametrize("value", [[0, True, 2], [0, 1.0, 2], ["0", "1", "2"]])
def test_ranking_items_must_be_whole_number_indices(value: list[Any]) -> None:
    assert reason_for("order", value).startswith("ranking items must be candidate indices")


def test_a_ranking_needs_the_candidates_in_the_task() -> None:
    error = rejection(GOOD, {**PAYLOAD, "responses": None})

    assert {
        "question": "order",
        "message": 'the task has no candidates in field "responses"',
    } in error.details


# --------------------------------------------------------------------------- preference


def test_a_preference_with_choice_and_strength_is_accepted() -> None:
    result = validate_answer(SCHEMA, PAYLOAD, answer_with(better={"choice": "b", "strength": 3}))

    assert result["better"] == {"choice": "b", "strength": 3}


def test_a_tie_needs_no_strength_and_refuses_one() -> None:
    assert validate_answer(SCHEMA, PAYLOAD, answer_with(better={"choice": "tie"}))["better"] == {
        "choice": "tie"
    }
    assert reason_for("better", {"choice": "tie", "strength": 1}) == "a tie has no strength"


def test_a_preference_choice_must_be_a_b_or_tie() -> None:
    assert (
        reason_for("better", {"choice": "A", "strength": 1}) == 'choice must be "a" or "b" or "tie", got "A"'
    )
    assert reason_for("better", "a").startswith("expected a mapping with a choice")


def test_a_preference_strength_is_required_and_bounded_when_the_question_asks_for_it() -> None:
    assert reason_for("better", {"choice": "a"}) == "strength is required (a whole number from 1 to 3)"
    assert (
        reason_for("better", {"choice": "a", "strength": 4})
        == "strength must be a whole number from 1 to 3, got 4"
    )
    assert reason_for("better", {"choice": "a", "strength": True}).endswith("got true")


def test_a_preference_refuses_unknown_keys() -> None:
    assert reason_for("better", {"choice": "a", "strength": 1, "why": "x"}) == (
        'unknown key "why" (allowed: choice, strength)'
    )


def test_ties_are_refused_when_the_question_does_not_allow_them() -> None:
    schema = parse_schema(
        {
            "fields": [{"name": "responses", "kind": "candidates"}],
            "questions": [{"name": "better", "type": "preference", "field": "responses", "allow_tie": False}],
        }
    )
    payload = {"responses": ["x", "y"]}

    assert validate_answer(schema, payload, {"better": {"choice": "b"}}) == {"better": {"choice": "b"}}
    error = rejection({"better": {"choice": "tie"}}, payload, schema)
    assert error.message == 'question "better": a tie is not allowed for this question; choose "a" or "b"'
    error = rejection({"better": {"choice": "a", "strength": 1}}, payload, schema)
    assert error.details[0]["message"] == "this question asks for no strength"


def test_a_preference_needs_two_candidates_in_the_task() -> None:
    payload = {**PAYLOAD, "responses": ["only"]}
    error = rejection(answer_with(order=[0]), payload)

    assert error.details == [
        {
            "question": "better",
            "message": 'the task has 1 candidate in field "responses"; a preference needs 2',
        }
    ]


# --------------------------------------------------------------------------- text


def test_a_text_answer_within_bounds_is_accepted_as_is() -> None:
    assert validate_answer(SCHEMA, PAYLOAD, answer_with(rewrite="  ok  "))["rewrite"] == "  ok  "


def test_a_text_answer_must_respect_the_length_bounds() -> None:
    assert reason_for("rewrite", "x" * 21) == "text too long: 21 characters, at most 20"
    assert reason_for("rewrite", "x") == "text too short: 1 characters, at least 2"


def test_the_default_text_limit_is_ten_thousand_characters() -> None:
    error = rejection(answer_with(quality={"clarity": 1, "comment": "x" * 12001}))

    assert error.details == [
        {"question": "quality.comment", "message": "text too long: 12001 characters, at most 10000"}
    ]


@pytest.mark.parametrize("value", [5, True, ["a", "b"]])
def test_a_text_answer_must_be_text(value: Any) -> None:
    assert reason_for("rewrite", value).startswith("expected text, got")


# --------------------------------------------------------------------------- span


def test_an_empty_span_list_means_nothing_to_mark() -> None:
    assert validate_answer(SCHEMA, PAYLOAD, answer_with(entities=[]))["entities"] == []


def test_a_span_outside_the_text_is_refused() -> None:
    spans = [{"start": 0, "end": 5, "label": "PER"}, {"start": 6, "end": 11, "label": "ORG"}]
    spans.append({"start": 15, "end": 21, "label": "ORG"})

    assert reason_for("entities", spans) == "span 2 [15, 21) is outside the text of 20 characters"


@pytest.mark.parametrize(
    ("span", "reason"),
    [
        (
            {"start": 5, "end": 5, "label": "PER"},
            "span 0 [5, 5) is empty or reversed (start must be less than end)",
        ),
        (
            {"start": 6, "end": 2, "label": "PER"},
            "span 0 [6, 2) is empty or reversed (start must be less than end)",
        ),
        (
            {"start": -1, "end": 2, "label": "PER"},
            "span 0 [-1, 2) starts before the text (start must be at least 0)",
        ),
        ({"end": 2, "label": "PER"}, 'span 0 is missing "start"'),
        ({"start": 0, "end": 2}, 'span 0 is missing "label"'),
        ({"start": 0, "end": True, "label": "PER"}, "span 0 end must be a whole number, got true"),
        ({"start": 0.0, "end": 2, "label": "PER"}, "span 0 start must be a whole number, got 0"),
        (
            {"start": 0, "end": 2, "label": "LOC"},
            'span 0 has unknown label "LOC"; expected one of "PER", "ORG"',
        ),
        ({"start": 0, "end": 2, "label": "PER", "score": 1}, 'span 0 has unknown key "score"'),
        ({"start": 0, "end": 5, "label": "PER", "text": "alice"}, 'span 0 text "alice" does not match'),
        ("0:5", 'span 0 must be a mapping with start, end and label, got "0:5"'),
    ],
)
def test_a_malformed_span_is_refused_with_its_index(span: Any, reason: str) -> None:
    assert reason_for("entities", [span]).startswith(reason)


def test_overlapping_spans_are_refused_unless_allowed() -> None:
    spans = [{"start": 0, "end": 10, "label": "PER"}, {"start": 6, "end": 19, "label": "ORG"}]

    assert reason_for("entities", spans).startswith("span 1 [6, 19) overlaps span 0 [0, 10)")

    schema = parse_schema(
        {
            "fields": [{"name": "prompt", "kind": "text"}],
            "questions": [
                {
                    "name": "entities",
                    "type": "span",
                    "field": "prompt",
                    "labels": ["PER", "ORG"],
                    "allow_overlap": True,
                }
            ],
        }
    )
    assert len(validate_answer(schema, PAYLOAD, {"entities": spans})["entities"]) == 2
    error = rejection({"entities": [*spans, spans[0]]}, schema=schema)
    assert error.details[0]["message"] == "span 2 duplicates span 0"


def test_adjacent_spans_do_not_overlap() -> None:
    spans = [{"start": 5, "end": 15, "label": "ORG"}, {"start": 0, "end": 5, "label": "PER"}]

    assert len(validate_answer(SCHEMA, PAYLOAD, answer_with(entities=spans))["entities"]) == 2


def test_spans_need_the_text_field_in_the_task() -> None:
    spans = [{"start": 0, "end": 5, "label": "PER"}]

    assert (
        reason_for("entities", spans, {**PAYLOAD, "prompt": 7})
        == 'the task has no text in field "prompt" to mark spans in'
    )


# --------------------------------------------------------------------------- bbox


def test_boxes_inside_the_image_are_accepted_and_rounding_noise_is_clamped() -> None:
    boxes = [
        {"x": 0, "y": 0, "w": 1, "h": 1, "label": "car"},
        {"x": -1e-12, "y": 0.5, "w": 0.5, "h": 0.5 + 1e-12, "label": "person"},
    ]
    result = validate_answer(SCHEMA, PAYLOAD, answer_with(objects=boxes))["objects"]

    assert result[0] == {"x": 0.0, "y": 0.0, "w": 1.0, "h": 1.0, "label": "car"}
    assert result[1] == {"x": 0.0, "y": 0.5, "w": 0.5, "h": 0.5, "label": "person"}


@pytest.mark.parametrize(
    ("box", "reason"),
    [
        ({"x": 0.5, "y": 0, "w": 0.7, "h": 0.5}, "box 0 is outside the image: x + w = 1.2 > 1"),
        ({"x": 0, "y": 0.6, "w": 0.5, "h": 0.5}, "box 0 is outside the image: y + h = 1.1 > 1"),
        ({"x": -0.1, "y": 0, "w": 0.5, "h": 0.5}, "box 0 is outside the image: x = -0.1 < 0"),
        ({"x": 0, "y": 1.5, "w": 0.5, "h": 0.5}, "box 0 is outside the image: y = 1.5 > 1"),
        ({"x": 0, "y": 0, "w": 0, "h": 0.5}, "box 0 has no area: w = 0 (must be greater than 0)"),
        ({"x": 0, "y": 0, "w": 0.5, "h": -0.1}, "box 0 has no area: h = -0.1 (must be greater than 0)"),
        ({"x": True, "y": 0, "w": 0.5, "h": 0.5}, "box 0 x must be a number from 0 to 1, got true"),
        ({"x": float("nan"), "y": 0, "w": 0.5, "h": 0.5}, "box 0 x must be a number from 0 to 1, got nan"),
        ({"x": "0", "y": 0, "w": 0.5, "h": 0.5}, 'box 0 x must be a number from 0 to 1, got "0"'),
        ({"y": 0, "w": 0.5, "h": 0.5}, 'box 0 is missing "x"'),
    ],
)
def test_a_bad_box_is_refused_with_its_index(box: dict[str, Any], reason: str) -> None:
    assert reason_for("objects", [{**box, "label": "car"}]) == reason


def test_a_box_needs_a_known_label_and_no_extra_keys() -> None:
    box = {"x": 0, "y": 0, "w": 0.5, "h": 0.5}

    assert reason_for("objects", [{**box, "label": "dog"}]) == (
        'box 0 has unknown label "dog"; expected one of "car", "person"'
    )
    assert reason_for("objects", [box]) == 'box 0 is missing "label"'
    assert reason_for("objects", [{**box, "label": "car", "angle": 3}]).startswith(
        'box 0 has unknown key "angle"'
    )
    assert reason_for("objects", {"boxes": []}) == "expected a list of boxes, got a mapping"


# --------------------------------------------------------------------------- rubric


def test_a_rubric_answer_is_validated_criterion_by_criterion() -> None:
    result = validate_answer(SCHEMA, PAYLOAD, answer_with(quality={"clarity": 7, "comment": "fine"}))

    assert result["quality"] == {"clarity": 7, "comment": "fine"}


def test_rubric_failures_name_the_rubric_and_the_criterion() -> None:
    error = rejection(answer_with(quality={"clarity": 8}))

    assert error.message == 'question "quality.clarity": rating 8 is outside the scale 1..7'
    assert error.details == [{"question": "quality.clarity", "message": "rating 8 is outside the scale 1..7"}]


def test_a_rubric_requires_its_required_criteria_and_refuses_unknown_ones() -> None:
    error = rejection(answer_with(quality={"depth": 3}))

    assert error.details == [
        {
            "question": "quality.depth",
            "message": 'unknown criterion "depth" in rubric "quality"; expected one of "clarity", "comment"',
        },
        {"question": "quality.clarity", "message": "an answer is required"},
    ]


def test_a_partial_rubric_answer_may_leave_criteria_out() -> None:
    assert validate_answer(SCHEMA, PAYLOAD, {"quality": {}}, partial=True) == {"quality": {}}


def test_a_rubric_answer_must_be_a_mapping() -> None:
    assert reason_for("quality", [6]) == "expected a mapping of criterion names to values, got a list"


# --------------------------------------------------------------------------- suggestions


def test_a_suggestion_is_a_partial_answer() -> None:
    assert validate_suggestion(SCHEMA, PAYLOAD, {"sentiment": "neg"}) == {"sentiment": "neg"}
    with pytest.raises(AnswerInvalid, match='unknown label "bad"'):
        validate_suggestion(SCHEMA, PAYLOAD, {"sentiment": "bad"})


def test_suggestion_values_can_be_checked_without_the_payload() -> None:
    suggestion = {"order": [1, 0], "entities": [{"start": 0, "end": 500, "label": "PER"}]}

    assert validate_suggestion_values(SCHEMA, suggestion)["order"] == [1, 0]
    with pytest.raises(AnswerInvalid, match="ranking is not a permutation of the 2 candidates"):
        validate_suggestion_values(SCHEMA, {"order": [1, 1]})
    with pytest.raises(AnswerInvalid, match="outside the text of 20 characters"):
        validate_suggestion_values(SCHEMA, suggestion, PAYLOAD)


class _ReadsRecorded(dict):  # type: ignore[type-arg]
    """A payload that notes which fields the checks read."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)


def test_the_validator_says_truly_whether_its_checks_read_the_payload() -> None:
    """A submit opens the task only when ``reads_payload``: a check that read the payload of a
    question type not in PAYLOAD_READING_TYPES would then see None and skip what it checks."""
    readers = set()
    for question in SCHEMA.questions:
        fields = [{"name": "prompt", "kind": "text"}, {"name": "responses", "kind": "candidates"},
                  {"name": "photo", "kind": "image", "required": False}]
        single = parse_schema({"fields": fields, "questions": [question.model_dump(exclude_none=True)]})
        payload = _ReadsRecorded(PAYLOAD)
        answer = {question.name: GOOD[question.name]} if question.name in GOOD else {}
        validator = answer_validator(single)
        validator(payload, answer)
        if payload.read:
            readers.add(question.type)
        assert validator.reads_payload == bool(payload.read), question.name
    assert readers == PAYLOAD_READING_TYPES
    assert answer_validator(SCHEMA).reads_payload
