"""What the commands that work on the store share: opening it with the gateway's pepper,
turning domain errors into one line on stderr, the audit actor, and printing records.

The CLI opens the configured store itself, so it works while the gateway runs (SQLite in WAL
mode lets several processes write; MongoDB is shared anyway) and when it does not.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from onyproxy.accounts import ValidationError
from onyproxy.cli.common import fail, load_or_exit
from onyproxy.config import GatewayConfig
from onyproxy.pepper import PepperError, with_pepper
from onyproxy.privacy.anchor import open_audit
from onyproxy.storage import (
    AuditEntry,
    ConflictError,
    NotFoundError,
    StorageError,
    Store,
    open_store,
)

Work = Callable[[GatewayConfig, Store], Awaitable[int]]


def run_on_store(args: argparse.Namespace, work: Work) -> int:
    """Run ``work(config, store)`` with the config's pepper resolved; errors exit with 1."""
    config = load_or_exit(args)
    try:
        return asyncio.run(_session(config, work))
    except ValidationError as exc:
        fail(f"{exc.field}: {exc.message}")
    except ConflictError as exc:
        fail(exc.message)
    except NotFoundError as exc:
        fail(f"no {exc.kind} {exc.ident!r}")
    except PepperError as exc:
        fail(str(exc))
    except StorageError as exc:
        fail(f"storage: {exc}")
    return 1


async def _session(config: GatewayConfig, work: Work) -> int:
    # The same retention options as the gateway: MongoDB TTL indexes are (re)declared on open.
    retention = config.retention
    store = await open_store(config.storage.url,
                             retention_days=retention.usage_events_days,
                             billing_retention_days=retention.billing_years * 366)
    try:
        config = await with_pepper(config, store)
        await open_audit(store, config)  # new entries sealed with the audit key
        return await work(config, store)
    finally:
        await store.close()


def actor() -> str:
    """``cli:<os user>``, the audit log's name for whoever ran the command."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): the uid still says who
        user = f"uid{os.getuid()}"
    return f"cli:{user}"


async def audit(store: Store, action: str, target: str | None, **details: Any) -> None:
    """Append a CLI write to the audit log; ``details`` hold no secret and no content."""
    await store.append_audit(AuditEntry(actor=actor(), action=action, target=target,
                                        details=details))


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Columns padded to their widest cell; ``-`` for empty cells."""
    cells = [[("-" if value in (None, "") else str(value)) for value in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
              .rstrip())


def print_fields(record: dict[str, Any]) -> None:
    """``name: value`` lines of a record, nested mappings flattened with dots."""
    for name, value in _flatten(record):
        print(f"{name}: {'-' if value in (None, '') else value}")


def _flatten(record: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    lines: list[tuple[str, Any]] = []
    for name, value in record.items():
        if isinstance(value, dict):
            lines += _flatten(value, f"{prefix}{name}.")
        elif isinstance(value, list):
            lines.append((prefix + name, ", ".join(map(str, value))))
        else:
            lines.append((prefix + name, value))
    return lines


def note(message: str) -> None:
    """A line for the person at the terminal, on stderr, so stdout stays what scripts read."""
    print(message, file=sys.stderr)
