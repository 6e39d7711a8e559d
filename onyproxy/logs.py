"""Logging that cannot leak content: structured lines, and crash reports without messages.

Exception messages may quote what they failed on (an upstream body, a JSON fragment of a prompt),
so crash reports keep the exception type and the stack, never ``str(exc)``.
"""

from __future__ import annotations

import logging
import sys
import time
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

    _second = -1
    _stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": self._timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        return orjson.dumps(line, default=str).decode()

    def _timestamp(self, record: logging.LogRecord) -> str:
        # strftime once per second: the access log writes a line per request.
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int(record.msecs):03d}Z"


def setup_logging(level: str = "info") -> None:
    """Send every log line to stderr as JSON; silence aiohttp's access log (it logs URLs)."""
    # No line shows the caller's file, thread or process: don't pay to collect them for every
    # record (the logging HOWTO's "Optimization" section).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").disabled = True
