"""``onyproxy version``."""

from __future__ import annotations

import argparse

from onyproxy import __version__


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("version", help="print the version")
    parser.set_defaults(func=lambda args: print(f"onyproxy {__version__}") or 0)
