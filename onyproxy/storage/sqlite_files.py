"""The SQLite database's files on disk: readable by the gateway's user alone.

The database holds personal data (emails, names, phone numbers, client IP addresses), so its
folder is created 0700 and the file 0600 before SQLite opens it; SQLite gives the ``-wal`` and
``-shm`` files the main file's permissions. Files left more open by an older version (which
created them 0644) are tightened at every open.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

#: The files of one database: the main file, the write-ahead log and its shared-memory index.
SUFFIXES = ("", "-wal", "-shm", "-journal")

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def prepare_files(path: str) -> None:
    """Create ``path``'s folder and an empty database file with private permissions, or tighten
    the permissions of the files that exist."""
    target = Path(path)
    if not target.parent.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.parent.chmod(FOLDER_MODE)  # mkdir's mode is subject to the umask; be exact
    # O_CREAT with a mode: the file never exists with wider permissions, not even briefly.
    os.close(os.open(target, os.O_RDWR | os.O_CREAT, FILE_MODE))
    for suffix in SUFFIXES:
        tighten(Path(f"{path}{suffix}"))


def tighten(file: Path) -> None:
    """Drop group and other permissions from ``file`` when it exists and is ours to change."""
    try:
        mode = file.stat().st_mode & 0o777
    except FileNotFoundError:
        return
    if mode & 0o077:
        # Another user's file: SQLite will report what it cannot open.
        with contextlib.suppress(PermissionError):
            file.chmod(mode & 0o700)
