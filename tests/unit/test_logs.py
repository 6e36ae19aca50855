"""JsonFormatter: one JSON object a line, the same values json.dumps(entry, default=str) would write."""

from __future__ import annotations

import io
import json
import logging
import math
import sys
import uuid
from datetime import UTC, datetime

import pytest

from labelvault import logs


def reference(record: logging.LogRecord) -> str:
    """The formatter as it was before orjson: what every line must still mean."""
    entry = {
        "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname.lower(),
        "logger": record.name,
        "message": record.getMessage(),
    }
    rid = logs.request_id.get()
    if rid:
        entry["request_id"] = rid
    entry.update({k: v for k, v in vars(record).items() if k not in logs._RESERVED and not k.startswith("_")})
    if record.exc_info and record.exc_info[0] is not None:
        entry["error"] = record.exc_info[0].__name__
        entry["traceback"] = logging.Formatter().formatException(record.exc_info)
    return json.dumps(entry, default=str)


def record(msg: str = "request", extra: dict | None = None, exc_info: object = None,
           level: int = logging.INFO) -> logging.LogRecord:
    return logging.getLogger("labelvault.test").makeRecord(
        "labelvault.test", level, __file__, 1, msg, (), exc_info, None, extra)  # type: ignore[arg-type]


class Opaque:
    def __str__(self) -> str:
        return "opaque-thing"


EXTRAS = [
    {"method": "POST", "route": "/api/projects/{project_id}/tasks/next", "status": 200, "duration_ms": 0.42},
    {"status": 503, "ok": False, "nothing": None, "count": -7, "big": 2**70},
    {"when": datetime(2024, 5, 1, 12, 0, tzinfo=UTC), "id": uuid.UUID(int=5), "thing": Opaque()},
    {"ratio": math.nan, "limit": math.inf},
    {"nested": {"a": [1, 2.5, "x"], 3: "int key"}, "pair": (1, 2)},
    {"who": "café ☕", "control": "tab\tnew\nline\x01"},
    {"surrogate": "\ud800"},
    {"time": "an extra field named like ours"},
]


@pytest.mark.parametrize("extra", EXTRAS, ids=lambda e: ",".join(e))
def test_every_line_means_what_json_dumps_with_default_str_wrote(extra: dict) -> None:
    token = logs.request_id.set("0123456789abcdef0123456789abcdef")
    try:
        rec = record(extra=extra)
        line, expected = logs.JsonFormatter().format(rec), reference(rec)
    finally:
        logs.request_id.reset(token)
    assert "\n" not in line and line.isascii()
    if any(isinstance(v, float) and not math.isfinite(v) for v in extra.values()):
        assert line == expected.replace(": ", ":").replace(", ", ",")  # NaN and Infinity as json writes them
    else:
        assert json.loads(line) == json.loads(expected)
        assert list(json.loads(line)) == list(json.loads(expected))  # the same fields, in order


def test_an_unserialisable_value_is_written_as_its_str() -> None:
    line = json.loads(logs.JsonFormatter().format(record(extra={"thing": Opaque(), "day": datetime(2024, 5, 1)})))
    assert line["thing"] == "opaque-thing"
    assert line["day"] == "2024-05-01 00:00:00"  # str(), as before: not orjson's own date format


def test_an_exception_gives_its_type_and_traceback() -> None:
    try:
        raise KeyError("missing")
    except KeyError:
        rec = record("request failed", extra={"status": 500}, exc_info=sys.exc_info(), level=logging.ERROR)
    line = json.loads(logs.JsonFormatter().format(rec))
    assert line["level"] == "error" and line["status"] == 500 and line["error"] == "KeyError"
    assert line["traceback"].startswith("Traceback (most recent call last):")
    assert "raise KeyError" in line["traceback"]
    assert line == json.loads(reference(rec))


def test_the_request_id_is_written_only_inside_a_request() -> None:
    assert "request_id" not in json.loads(logs.JsonFormatter().format(record()))
    token = logs.request_id.set("trace-42")
    try:
        assert json.loads(logs.JsonFormatter().format(record()))["request_id"] == "trace-42"
    finally:
        logs.request_id.reset(token)


@pytest.mark.parametrize("created", [
    0.0, 1.0005, 1714564800.0, 1714564800.9994999, 1714564800.9995, 1714564800.9999995, 1714564859.99999951,
    1714564799.0000004, 4102444799.999999, 1714564800.1234565,
])
def test_the_time_is_utc_iso_with_milliseconds_as_datetime_writes_it(created: float) -> None:
    rec = record()
    rec.created = created
    formatter = logs.JsonFormatter()
    formatter.format(record())  # another second in the formatter's cache first
    expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    assert json.loads(formatter.format(rec))["time"] == expected


def test_lines_reach_the_stream_whole_through_a_handler() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("labelvault.test.stream")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        logger.info("plain", extra={"status": 200})
        logger.warning("odd", extra={"thing": Opaque(), "ratio": math.nan})
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["plain", "odd"]
    assert json.loads(lines[1])["thing"] == "opaque-thing"


def test_uvicorns_coloured_copy_of_its_message_is_left_out() -> None:
    """uvicorn logs ``color_message`` beside ``msg`` for its own console: terminal escape codes
    that would otherwise land in every JSON line of a server's start and stop."""
    rec = logging.getLogger("uvicorn.error").makeRecord(
        "uvicorn.error", logging.INFO, __file__, 1, "Started server process [%d]", (42,), None, None,
        {"color_message": "Started server process [\x1b[36m%d\x1b[0m]"})
    line = logs.JsonFormatter().format(rec)
    assert "\\u001b" not in line and "color_message" not in line
    assert json.loads(line)["message"] == "Started server process [42]"
