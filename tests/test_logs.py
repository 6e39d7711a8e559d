"""Log lines: one JSON object each, UTC time with milliseconds, no message of an exception."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime

from onyproxy.logs import JsonFormatter, log_crash


def line_of(record: logging.LogRecord, formatter: JsonFormatter) -> dict:
    return json.loads(formatter.format(record))


def record_at(ms: int, msg: str = "request", **fields) -> logging.LogRecord:
    """A record made ``ms`` milliseconds after the epoch."""
    record = logging.LogRecord("onyproxy.access", logging.INFO, __file__, 1, msg, (), None)
    record.created, record.msecs = ms / 1000, ms % 1000
    if fields:
        record.fields = fields
    return record


def test_a_line_has_utc_time_level_logger_message_and_fields():
    formatter = JsonFormatter()
    at = int(datetime(2026, 11, 25, 16, 4, 5, tzinfo=UTC).timestamp()) * 1000 + 678
    line = line_of(record_at(at, status=200, model="gpt-4o"), formatter)
    assert line == {"ts": "2026-11-25T16:04:05.678Z", "level": "info",
                    "logger": "onyproxy.access", "msg": "request", "status": 200,
                    "model": "gpt-4o"}


def test_the_time_is_right_across_second_boundaries():
    """The formatter reuses the text of the current second; the next second gets its own."""
    formatter = JsonFormatter()
    base = int(datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()) * 1000
    stamps = [line_of(record_at(base + offset), formatter)["ts"]
              for offset in (1, 999, 1000, 1500, 250)]
    assert stamps == ["2026-12-31T23:59:59.001Z", "2026-12-31T23:59:59.999Z",
                      "2027-01-01T00:00:00.000Z", "2027-01-01T00:00:00.500Z",
                      "2026-12-31T23:59:59.250Z"]


def test_a_crash_report_keeps_the_type_and_stack_but_not_the_message():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("onyproxy")
    logger.addHandler(handler)
    try:
        try:
            prompt = "my secret plans"
            raise ValueError(f"the prompt was: {prompt}")
        except ValueError as exc:
            log_crash("test", exc)
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["level"] == "error" and "ValueError" in line["msg"]
    assert "test_logs.py" in line["msg"] and "secret plans" not in stream.getvalue()
