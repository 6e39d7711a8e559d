"""Keys and tokens masked wherever they might be written: access records and every log line.

The shapes themselves are core knowledge (:mod:`onyproxy.secret_mask`); this module puts them
on every log handler. Masking is idempotent: a record passing several filters is masked once.
"""

from __future__ import annotations

import logging

from onyproxy.secret_mask import mask_secrets, scrub

__all__ = ["Installed", "SecretFilter", "install_filter", "mask_secrets", "remove_filter",
           "scrub"]


class SecretFilter(logging.Filter):
    """Masks secrets in a log record before any handler formats it.

    Installed on handlers, so it sees records of every logger in the process, including
    libraries that were never meant to print a key. It never drops a record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True  # a broken format string is the handler's to report, not ours
        masked = mask_secrets(message)
        if masked is not message:
            record.msg, record.args = masked, None
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            scrub(fields)
        if record.exc_info and not record.exc_text:
            # Formatted now, so the cached text handlers reuse is the masked one.
            record.exc_text = mask_secrets(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = mask_secrets(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_secrets(record.stack_info)
        return True


Installed = tuple[SecretFilter, list[logging.Handler]]


def install_filter() -> Installed:
    """Put a new :class:`SecretFilter` on every handler of the root logger.

    Each caller gets its own filter and removes only that one, so two gateways in one process
    (tests) do not undo each other; masking is idempotent, so a line filtered twice is fine.
    """
    secret_filter = SecretFilter()
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(secret_filter)
    return secret_filter, handlers


def remove_filter(installed: Installed | None) -> None:
    """Undo one :func:`install_filter`."""
    if installed is not None:
        secret_filter, handlers = installed
        for handler in handlers:
            handler.removeFilter(secret_filter)
