"""Task payloads checked against a schema's fields."""

from __future__ import annotations

import time
from typing import Any

import pytest

from labelvault.domain.payloads import (
    PayloadValidator,
    candidate_ids,
    candidate_texts,
    normalize_candidates,
    payload_validator,
    validate_payload,
)
from labelvault.domain.schema import parse_schema
from labelvault.errors import InvalidInput, PayloadInvalid

SCHEMA = parse_schema(
    {
        "fields": [
            {"name": "prompt", "kind": "text"},
            {"name": "notes", "kind": "markdown", "required": False},
            {"name": "photo", "kind": "image", "required": False},
            {"name": "conversation", "kind": "chat", "required": False},
            {"name": "responses", "kind": "candidates", "required": False},
        ],
        "questions": [{"name": "order", "type": "ranking", "field": "responses"}],
    }
)

PREFERENCE_SCHEMA = parse_schema(
    {
        "fields": [{"name": "pair", "kind": "candidates"}],
        "questions": [
            {
                "name": "quality",
                "type": "rubric",
                "criteria": [{"name": "better", "type": "preference", "field": "pair"}],
            }
        ],
    }
)


def rejection(payload: Any, schema: Any = SCHEMA) -> PayloadInvalid:
    with pytest.raises(PayloadInvalid) as caught:
        validate_payload(schema, payload)
    return caught.value


def reason_for(field: str, value: Any) -> str:
    error = rejection({"prompt": "hi", field: value})
    assert error.details == [{"field": field, "message": error.message}]
    return error.message


# --------------------------------------------------------------------------- accepted payloads


def test_a_payload_with_every_field_kind_is_returned_unchanged() -> None:
    payload = {
        "prompt": "Translate this",
        "notes": "**bold**",
        "photo": "https://images.example/cat.png",
        "conversation": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello", "name": "bot"},
            {"role": "tool", "content": "{}"},
        ],
        "responses": ["plain", {"id": "r2", "text": "rich", "model": "m-1"}, {"text": "no id"}],
    }

    assert validate_payload(SCHEMA, payload) is payload


def test_unknown_keys_are_kept_for_templates_and_exports() -> None:
    payload = {"prompt": "hi", "source": "crawl", "meta": {"lang": "en"}}

    assert validate_payload(SCHEMA, payload) == {"prompt": "hi", "source": "crawl", "meta": {"lang": "en"}}


def test_optional_fields_may_be_missing_or_null() -> None:
    validate_payload(SCHEMA, {"prompt": "hi", "photo": None, "responses": None})


def test_images_may_be_urls_paths_or_file_references() -> None:
    for reference in ["https://x.example/a.jpg", "images/a.jpg", "/data/a.jpg", "file:abc123"]:
        validate_payload(SCHEMA, {"prompt": "hi", "photo": reference})


def test_the_compiled_validator_is_cached_per_schema() -> None:
    assert payload_validator(SCHEMA) is payload_validator(SCHEMA)
    assert isinstance(payload_validator(SCHEMA), PayloadValidator)


# --------------------------------------------------------------------------- rejected payloads


def test_payload_invalid_is_an_invalid_input_error_with_a_stable_code() -> None:
    error = rejection({})

    assert isinstance(error, InvalidInput)
    assert error.code == "payload_invalid" and error.http_status == 400


def test_a_payload_must_be_a_mapping() -> None:
    assert rejection(["hi"]).message == "a task payload must be a mapping of field names to values, got list"


def test_a_required_field_must_be_present() -> None:
    assert rejection({"notes": "x"}).message == 'field "prompt" is required but missing'
    assert rejection({"prompt": None}).message == 'field "prompt" is required but missing'


@pytest.mark.parametrize(
    ("value", "got"), [(42, "number"), (True, "boolean"), (["a"], "list"), ({"t": 1}, "mapping")]
)
def test_a_text_field_must_hold_text(value: Any, got: str) -> None:
    assert rejection({"prompt": value}).message == f'field "prompt": expected text, got {got}'


def test_a_markdown_field_must_hold_text() -> None:
    assert reason_for("notes", 3.5) == 'field "notes": expected text, got number'


@pytest.mark.parametrize("value", [5, "", "   ", ["a.png"]])
def test_an_image_field_must_hold_a_non_empty_reference(value: Any) -> None:
    assert reason_for("photo", value).startswith(
        'field "photo": expected an image URL, path or file: reference'
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("hello", "expected a chat (a list of messages), got text"),
        ([], "expected a chat with at least 1 message, got an empty list"),
        (["hi"], "message 0 must be a mapping with role and content, got text"),
        (
            [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}],
            'message 1 has role "bot"; expected one of',
        ),
        ([{"content": "a"}], "message 0 has no role"),
        ([{"role": "user"}], "message 0 has no content"),
        ([{"role": "user", "content": ["part"]}], "message 0 content must be text, got list"),
    ],
)
def test_a_chat_field_must_hold_messages_with_known_roles(value: Any, reason: str) -> None:
    assert reason_for("conversation", value).startswith(f'field "conversation": {reason}')


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("one", "expected candidates (a list), got text"),
        ([], "expected at least 1 candidate, got 0"),
        (["a", 3], "candidate 1 must be text or a mapping with text, got number"),
        ([{"id": "x"}], "candidate 0 has no text"),
        ([{"text": 1}], "candidate 0 text must be text, got number"),
        ([{"text": "a", "id": 7}], "candidate 0 id must be text, got number"),
        ([{"text": "a", "model": 7}], "candidate 0 model must be text, got number"),
        (
            [{"id": "x", "text": "a"}, {"id": "x", "text": "b"}],
            'candidate ids must be unique ("x" appears twice)',
        ),
    ],
)
def test_a_candidates_field_must_hold_texts_or_candidate_mappings(value: Any, reason: str) -> None:
    assert reason_for("responses", value) == f'field "responses": {reason}'


def test_candidates_compared_by_a_preference_need_an_a_and_a_b() -> None:
    validate_payload(PREFERENCE_SCHEMA, {"pair": ["a", "b"]})
    error = rejection({"pair": ["only"]}, PREFERENCE_SCHEMA)

    assert error.message == 'field "pair": expected at least 2 candidates, got 1'


def test_every_bad_field_is_listed_in_details() -> None:
    error = rejection({"notes": 1, "photo": 2, "conversation": 3, "responses": 4})

    assert [d["field"] for d in error.details] == ["prompt", "notes", "photo", "conversation", "responses"]
    assert error.message.startswith('field "prompt" is required but missing; field "notes": expected text')
    assert error.message.endswith("; and 2 more")


# --------------------------------------------------------------------------- candidate helpers


def test_candidate_helpers_give_ids_texts_and_models() -> None:
    value = ["first", {"id": "b", "text": "second", "model": "m"}, {"text": "third"}]

    assert candidate_ids(value) == ["0", "b", "2"]
    assert candidate_texts(value) == ["first", "second", "third"]
    assert normalize_candidates(value) == [
        {"id": "0", "text": "first", "model": None},
        {"id": "b", "text": "second", "model": "m"},
        {"id": "2", "text": "third", "model": None},
    ]


# --------------------------------------------------------------------------- speed


def test_validating_a_typical_row_takes_a_few_microseconds() -> None:
    validate = payload_validator(SCHEMA)
    row = {
        "prompt": "hello world",
        "notes": "ctx",
        "responses": ["a", {"id": "b", "text": "b"}],
        "external_id": "e",
    }
    rows = 20_000

    started = time.perf_counter()
    for _ in range(rows):
        validate(row)
    per_row = (time.perf_counter() - started) / rows

    # Import aims at 50,000 rows/s all included (20 µs a row); validation must be a small part.
    assert per_row < 10e-6
