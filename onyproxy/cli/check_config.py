"""``onyproxy check-config``: validate the config file; "ok" or every problem (exit 1)."""

from __future__ import annotations

import argparse

from onyproxy.cli.common import load_or_exit


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("check-config", help="validate the config and exit")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    load_or_exit(args)
    print("ok")
    return 0
