"""Structured logs: one JSON object per line on stderr, with the request id of the request.

What is logged: times, levels, request ids, methods, route templates (``/api/projects/{project_id}``,
never the concrete URL with its query), status codes, durations, user ids, error types. What is
never logged: task payloads, answers, suggestions, tokens, passwords, or SQL parameters (the
engine is built with ``hide_parameters``).
"""

from __future__ import annotations

import contextvars
import json
import logging
import math
import sys
import time
from typing import Any

import orjson

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

# Not written: the record's own attributes, and uvicorn's ``color_message`` (its message with the
# terminal's colour codes, for its own console formatter; ``message`` has the same text plain).
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "color_message"}
# Values orjson writes as json.dumps does; floats only when finite (json writes NaN, orjson null).
_PLAIN = frozenset({str, int, bool, type(None)})


class JsonFormatter(logging.Formatter):
    """One JSON object a line: what ``json.dumps(entry, default=str)`` writes, without the spaces after
    separators. orjson writes the lines of plain values in ASCII (nearly all, at a tenth of the
    cost); json.dumps every other line, so that no value is written differently and no line lost."""

    def __init__(self) -> None:
        super().__init__()
        self._second: tuple[int, str] = (-1, "")  # one tuple: threads swap it whole

    def _time(self, created: float) -> str:
        # As datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"), which rounds
        # to the microsecond half to even; the second's text is made once a second.
        fraction, whole = math.modf(created)
        micros = round(fraction * 1e6)
        if not 0 <= micros < 1_000_000:
            whole, micros = whole + micros // 1_000_000, micros % 1_000_000
        second = self._second
        if second[0] != whole:
            second = (int(whole), time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
            self._second = second
        return f"{second[1]}.{micros // 1000:03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = request_id.get()
        if rid:
            entry["request_id"] = rid
        plain = True
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
                if type(value) not in _PLAIN and (type(value) is not float or not math.isfinite(value)):
                    plain = False
        if record.exc_info and record.exc_info[0] is not None:
            # The type and where it came from; the traceback text has no local values.
            entry["error"] = record.exc_info[0].__name__
            entry["traceback"] = self.formatException(record.exc_info)
        if plain:
            try:
                line = orjson.dumps(entry)
            except TypeError:  # an integer beyond 64 bits, a lone surrogate: json.dumps writes them
                pass
            else:
                if line.isascii():  # json.dumps escapes the rest, and stderr may not be UTF-8
                    return line.decode()
        return json.dumps(entry, default=str, separators=(",", ":"))


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).disabled = True
    logging.getLogger("alembic").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
