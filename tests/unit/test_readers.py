"""Readers and the row format: files to records, records to tasks, and errors a person can act on."""

from __future__ import annotations

import io

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labelvault.domain.schema import parse_schema
from labelvault.errors import ImportInvalid, InvalidInput
from labelvault.io.readers import CsvReader, JsonlReader, ParquetReader, Unreadable, infer_format
from labelvault.io.rows import RowInvalid, RowParser, parse_field_map

SCHEMA = parse_schema(
    {
        "fields": [
            {"name": "text", "kind": "text"},
            {"name": "chat", "kind": "chat", "required": False},
            {"name": "responses", "kind": "candidates", "required": False},
        ],
        "questions": [
            {"name": "sentiment", "type": "label", "labels": ["positive", "negative"]},
            {"name": "stars", "type": "rating", "min": 1, "max": 5, "required": False},
        ],
    }
)


def records(reader) -> list[tuple[int, object]]:  # type: ignore[no-untyped-def]
    return list(reader.rows())


def parser(**kw: object) -> RowParser:
    return RowParser(SCHEMA, default_overlap=kw.pop("overlap", 1), **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("name", "expected"),
    [("tasks.jsonl", "jsonl"), ("TASKS.NDJSON", "jsonl"), ("a.csv", "csv"), ("x/y.parquet", "parquet")],
)
def test_the_format_comes_from_the_file_name(name: str, expected: str) -> None:
    assert infer_format(name) == expected


def test_an_explicit_format_wins_and_a_media_type_is_a_fallback() -> None:
    assert infer_format("data.txt", explicit="CSV") == "csv"
    assert infer_format(None, media_type="application/x-ndjson; charset=utf-8") == "jsonl"


def test_an_unknown_format_is_refused_with_the_choices() -> None:
    with pytest.raises(InvalidInput, match="jsonl, csv, parquet"):
        infer_format("data.txt")
    with pytest.raises(InvalidInput, match="unknown import format 'xml'"):
        infer_format("data.jsonl", explicit="xml")


# ---------------------------------------------------------------------------- JSONL


def test_jsonl_lines_keep_their_numbers_and_blank_lines_are_skipped() -> None:
    text = b'{"data": {"text": "a"}}\n\n{"data": {"text": "b"}}\n'
    got = records(JsonlReader(io.BytesIO(text)))
    assert [number for number, _ in got] == [1, 3]
    assert got[1][1] == {"data": {"text": "b"}}


def test_broken_json_becomes_an_unreadable_line_with_the_column() -> None:
    got = records(JsonlReader(io.BytesIO(b'{"data": {"text": "a"}}\n{"data": {"text": }\n')))
    number, record = got[1]
    assert number == 2
    assert isinstance(record, Unreadable)
    assert "not valid JSON" in record.reason and "column 19" in record.reason


def test_jsonl_records_come_one_at_a_time() -> None:
    text = b"".join(orjson.dumps({"text": str(i)}) + b"\n" for i in range(3))
    rows = JsonlReader(io.BytesIO(text)).rows()
    assert next(rows) == (1, {"text": "0"})
    assert next(rows) == (2, {"text": "1"})


def test_a_byte_order_mark_does_not_break_the_first_line() -> None:
    got = records(JsonlReader(io.BytesIO(b'\xef\xbb\xbf{"text": "a"}\n')))
    assert got == [(1, {"text": "a"})]


# ---------------------------------------------------------------------------- CSV


def test_csv_rows_are_numbered_from_the_first_data_row_and_empty_cells_are_missing() -> None:
    text = b"external_id,text,priority\nt1,hello,\nt2,\"with, comma\",3\n"
    got = records(CsvReader(io.BytesIO(text)))
    assert got == [
        (1, {"external_id": "t1", "text": "hello"}),
        (2, {"external_id": "t2", "text": "with, comma", "priority": "3"}),
    ]


def test_a_csv_row_with_the_wrong_number_of_values_is_unreadable() -> None:
    got = records(CsvReader(io.BytesIO(b"text,priority\na,1,extra\n")))
    assert got[0][0] == 1
    assert isinstance(got[0][1], Unreadable)
    assert "3 values but the header has 2 columns" in got[0][1].reason


def test_a_csv_header_naming_a_column_twice_is_refused() -> None:
    with pytest.raises(ImportInvalid, match='column "text" appears twice'):
        records(CsvReader(io.BytesIO(b"text,text\na,b\n")))


def test_the_csv_reader_leaves_the_callers_stream_open() -> None:
    stream = io.BytesIO(b"text\na\n")
    records(CsvReader(stream))
    assert not stream.closed


def test_csv_that_is_not_utf8_names_the_row() -> None:
    with pytest.raises(ImportInvalid, match="not UTF-8"):
        records(CsvReader(io.BytesIO(b"text\n\xff\xfe\n")))


# ---------------------------------------------------------------------------- Parquet


def parquet_bytes(table: pa.Table, row_group_size: int | None = None) -> io.BytesIO:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=row_group_size)
    buffer.seek(0)
    return buffer


def test_parquet_rows_keep_nested_columns_as_mappings_and_lists() -> None:
    table = pa.table(
        {
            "text": ["a", "b"],
            "chat": [[{"role": "user", "content": "hi"}], None],
            "priority": [1, None],
        }
    )
    got = records(ParquetReader(parquet_bytes(table), batch_size=10))
    assert got == [
        (1, {"text": "a", "chat": [{"role": "user", "content": "hi"}], "priority": 1}),
        (2, {"text": "b"}),
    ]


def test_parquet_rows_are_numbered_across_row_groups_and_record_batches() -> None:
    table = pa.table({"text": [str(i) for i in range(25)]})
    got = records(ParquetReader(parquet_bytes(table, row_group_size=10), batch_size=4))
    assert [n for n, _ in got] == list(range(1, 26))
    assert got[24] == (25, {"text": "24"})


def test_a_file_that_is_not_parquet_is_refused() -> None:
    with pytest.raises(ImportInvalid, match="not a readable Parquet file"):
        records(ParquetReader(io.BytesIO(b"text\nhello\n"), batch_size=10))


# ---------------------------------------------------------------------------- rows


def test_a_nested_row_becomes_a_task() -> None:
    row = parser()(
        {"external_id": "t1", "priority": 2, "overlap": 3, "data": {"text": "hi"}, "metadata": {"src": "x"}}
    )
    assert row == ("t1", 2, 3, {"text": "hi"}, {"src": "x"}, None, 0.0)


def test_a_flat_row_takes_the_fields_from_the_top_level() -> None:
    _, _, required_answers, data, *_ = parser(overlap=2)({"external_id": "t1", "text": "hi", "extra": 1})
    assert data == {"text": "hi", "extra": 1}
    assert required_answers == 2


def test_a_payload_problem_names_the_field() -> None:
    with pytest.raises(RowInvalid) as caught:
        parser()({"data": {"text": 17}})
    assert caught.value.field == "text"
    assert caught.value.message == 'field "text": expected text, got number'


def test_a_missing_required_field_is_named() -> None:
    with pytest.raises(RowInvalid, match='field "text" is required but missing'):
        parser()({"data": {"chat": [{"role": "user", "content": "x"}]}})


@pytest.mark.parametrize(
    ("row", "field", "words"),
    [
        ({"text": "a", "priority": "high"}, "priority", 'expected a whole number, got "high"'),
        ({"text": "a", "priority": True}, "priority", "expected a whole number, got true"),
        ({"text": "a", "overlap": 0}, "overlap", "must be between 1 and 100, got 0"),
        ({"text": "a", "external_id": ["x"]}, "external_id", "expected text, got list"),
        ({"text": "a", "external_id": "x" * 201}, "external_id", "1 to 200 characters"),
        ({"text": "a", "metadata": [1]}, "metadata", "expected a mapping, got list"),
        ({"data": {"text": "a"}, "prority": 1}, "prority", "unknown key"),
        ({"data": "a"}, "data", "expected a mapping of field names to values, got text"),
    ],
)
def test_wrong_row_keys_are_named_with_the_reason(row: dict, field: str, words: str) -> None:
    with pytest.raises(RowInvalid) as caught:
        parser()(row)
    assert caught.value.field == field
    assert words in caught.value.message


def test_a_row_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(RowInvalid, match="expected a JSON object with the task's data, got list"):
        parser()([1, 2])


def test_suggestions_are_validated_and_the_uncertainty_comes_from_the_best_score() -> None:
    *_, suggestions, uncertainty = parser()(
        {
            "data": {"text": "a"},
            "suggestions": [
                {"model": "m1", "answer": {"sentiment": "positive"}, "score": 0.7},
                {"model": "m2", "answer": {"stars": 4}, "score": 0.9},
            ],
        }
    )
    assert suggestions == [
        {"model": "m1", "answer": {"sentiment": "positive"}, "score": 0.7},
        {"model": "m2", "answer": {"stars": 4}, "score": 0.9},
    ]
    assert uncertainty == pytest.approx(0.1)


def test_suggestions_without_scores_leave_the_uncertainty_at_zero() -> None:
    *_, suggestions, uncertainty = parser()(
        {"data": {"text": "a"}, "suggestions": [{"model": "m", "answer": {"sentiment": "negative"}}]}
    )
    assert uncertainty == 0.0
    assert suggestions == [{"model": "m", "answer": {"sentiment": "negative"}, "score": None}]


@pytest.mark.parametrize(
    ("suggestions", "field", "words"),
    [
        ([{"model": "m", "answer": {"sentiment": "meh"}}], "suggestions[0].answer", 'question "sentiment"'),
        ([{"answer": {"sentiment": "positive"}}], "suggestions[0].model", "got missing"),
        ([{"model": "m", "answer": {}, "score": 1.5}], "suggestions[0].score", "from 0 to 1, got 1.5"),
        ([{"model": "m", "answer": {}, "confidence": 1}], "suggestions[0]", 'unknown key "confidence"'),
        ({"model": "m"}, "suggestions", "expected a list of suggestions, got mapping"),
    ],
)
def test_bad_suggestions_name_the_suggestion_and_the_problem(suggestions: object, field: str, words: str) -> None:
    with pytest.raises(RowInvalid) as caught:
        parser()({"data": {"text": "a"}, "suggestions": suggestions})
    assert caught.value.field == field
    assert words in caught.value.message


def test_tabular_rows_read_numbers_and_json_from_text() -> None:
    _, priority, required_answers, data, metadata, _, uncertainty = parser(tabular=True)(
        {
            "text": "a",
            "priority": "5",
            "overlap": "2",
            "chat": '[{"role": "user", "content": "hi"}]',
            "metadata": '{"k": 1}',
            "suggestions": '[{"model": "m", "answer": {"sentiment": "positive"}, "score": 0.5}]',
        }
    )
    assert priority == 5 and required_answers == 2
    assert data["chat"] == [{"role": "user", "content": "hi"}]
    assert metadata == {"k": 1}
    assert uncertainty == 0.5


def test_broken_json_text_in_a_tabular_cell_names_the_column() -> None:
    with pytest.raises(RowInvalid, match=r'field "chat": not valid JSON'):
        parser(tabular=True)({"text": "a", "chat": "[{"})


def test_text_that_looks_like_json_is_not_decoded_outside_tabular_sources() -> None:
    with pytest.raises(RowInvalid, match='field "chat": expected a chat'):
        parser()({"text": "a", "chat": "[]"})


def test_a_field_map_renames_columns_onto_schema_fields() -> None:
    mapping = parse_field_map(["review=text", "id=external_id"])
    external_id, _, _, data, *_ = parser(mapping=mapping)({"id": "r1", "review": "great"})
    assert external_id == "r1"
    assert data == {"text": "great"}


def test_a_field_map_onto_an_unknown_field_is_refused() -> None:
    with pytest.raises(InvalidInput, match='"review" is mapped to "body", which is neither a field'):
        parser(mapping={"review": "body"})
    with pytest.raises(InvalidInput, match="column=field"):
        parse_field_map(["review"])
