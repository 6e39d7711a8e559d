"""The key pepper: the server-side secret API keys are HMAC'd with (``security.key_pepper``).

The gateway and the CLI resolve it the same way, so a key the CLI issues works in the gateway:

- ``security.key_pepper`` set: that value.
- empty, SQLite in a file: a pepper generated once and kept in ``key_pepper`` next to the
  database file (mode 0600), logged plainly when it is created. Without that file no existing
  key works, so it refuses to create a new one for a database that already holds keys.
- empty, SQLite ``:memory:``: a pepper for this process only (the keys die with it anyway).
- empty, MongoDB: refused. Several gateways and the CLI share that database; each would make
  up a different pepper and none would accept the others' keys.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from dataclasses import replace
from pathlib import Path

from onyproxy.config.model import GatewayConfig
from onyproxy.storage import StorageError, Store, url_scheme

log = logging.getLogger("onyproxy.pepper")

PEPPER_FILE = "key_pepper"
_MIN_LENGTH = 16
_GENERATE_HINT = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


class PepperError(StorageError):
    """No usable pepper; the message says what to set. A :class:`StorageError` so start-up
    reports it like any other storage problem (a message, no traceback)."""


def pepper_path(storage_url: str) -> Path | None:
    """Where the generated pepper of a SQLite store lives (``None``: no file for this URL)."""
    from onyproxy.storage.sqlite import path_from_url

    if url_scheme(storage_url) != "sqlite":
        return None
    db = path_from_url(storage_url)
    return None if db == ":memory:" else Path(db).parent / PEPPER_FILE


async def resolve_pepper(config: GatewayConfig, store: Store) -> str:
    """The pepper this config means (see the module docs); raises :class:`PepperError`."""
    configured = config.security.key_pepper
    if configured:
        if len(configured) < _MIN_LENGTH:
            raise PepperError(f"security.key_pepper is shorter than {_MIN_LENGTH} characters; "
                              f"use a long random secret, e.g. {_GENERATE_HINT}")
        return configured
    scheme = url_scheme(config.storage.url)
    if scheme != "sqlite":
        raise PepperError(
            "security.key_pepper is empty: with MongoDB every gateway and the CLI must share "
            "one pepper, so it cannot be generated here. Set it (e.g. ONYPROXY_KEY_PEPPER) to "
            f"a long random secret, e.g. {_GENERATE_HINT}")
    path = pepper_path(config.storage.url)
    if path is None:
        return secrets.token_urlsafe(32)  # an in-memory store: its keys die with the process
    existing = read_pepper_file(path)
    if existing is not None:
        return existing
    if await _holds_keys(store):
        raise PepperError(
            f"security.key_pepper is empty and {path} is missing, but the database already "
            f"holds API keys made with a pepper: restore that file (or set "
            f"security.key_pepper to the pepper they were made with)")
    return _create_pepper_file(path)


async def with_pepper(config: GatewayConfig, store: Store) -> GatewayConfig:
    """``config`` with ``security.key_pepper`` set to the resolved pepper.

    The gateway and the CLI continue with this config, so everything after start-up reads the
    one effective pepper from ``config.security.key_pepper``.
    """
    pepper = await resolve_pepper(config, store)
    return replace(config, security=replace(config.security, key_pepper=pepper))


def read_pepper_file(path: Path) -> str | None:
    """The pepper kept in ``path``; ``None`` when there is no such file."""
    try:
        text = path.read_text(encoding="utf-8").strip()
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PepperError(f"cannot read the key pepper file {path}: {exc.strerror}") from None
    if len(text) < _MIN_LENGTH:
        raise PepperError(f"the key pepper file {path} is empty or truncated; restore it, or "
                          f"set security.key_pepper")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("the key pepper file %s is readable by other users; chmod 600 it", path)
    return text


def _create_pepper_file(path: Path) -> str:
    """Write a new pepper with mode 0600, atomically: when gateway workers and the CLI race,
    one file wins and every process reads that one."""
    pepper = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{PEPPER_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(pepper + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.link(temp, path)  # fails if another process got there first
    except FileExistsError:
        return read_pepper_file(path) or pepper
    except OSError as exc:
        raise PepperError(f"cannot create the key pepper file {path}: {exc.strerror}") from None
    finally:
        temp.unlink(missing_ok=True)
    log.warning("security.key_pepper is empty: generated a key pepper and saved it in %s "
                "(mode 0600). API keys are hashed with it; keep that file with the database "
                "and back it up together, or set security.key_pepper yourself.", path)
    return pepper


async def _holds_keys(store: Store) -> bool:
    offset = 0
    while accounts := await store.list_accounts(limit=500, offset=offset):
        for account in accounts:
            if await store.list_keys(account.id):
                return True
        offset += len(accounts)
    return False
