"""Logging that cannot leak content: structured lines, and crash reports without messages.

Exception messages may quote what they failed on (an upstream body, a JSON fragment of a prompt),
so crash reports keep the exception type and the stack, never ``str(exc)``.
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Any

import orjson

log = logging.getLogger("onyproxy")


def safe_exception(exc: BaseException) -> str:
    """Type and stack of ``exc``, without its message or the messages of its causes."""
    frames = traceback.extract_tb(exc.__traceback__)
    stack = "".join(traceback.format_list(frames))
    return f"{type(exc).__module__}.{type(exc).__qualname__} (message withheld)\n{stack}"


def log_crash(where: str, exc: BaseException) -> None:
    """Log an unexpected exception without anything it might quote."""
    log.error("unexpected %s in %s\n%s", type(exc).__name__, where, safe_exception(exc))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        return orjson.dumps(line, default=str).decode()


def setup_logging(level: str = "info") -> None:
    """Send every log line to stderr as JSON; silence aiohttp's access log (it logs URLs)."""
    import time

    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter()
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").disabled = True
