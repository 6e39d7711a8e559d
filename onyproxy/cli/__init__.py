"""The ``onyproxy`` command. Each subcommand lives in its own module with a ``register``.

To add one: write ``onyproxy/cli/<name>.py`` with ``register(subparsers)`` that adds a parser
and sets ``func`` (a function of the parsed args returning an exit status), and list it in
``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ["serve", "check_config", "version", "quickstart", "accounts", "keys", "models",
            "retention", "subject", "audit", "notify", "usage", "invoices"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onyproxy", description="The onyproxy AI gateway.")
    parser.add_argument("--config", metavar="FILE",
                        help="gateway YAML (default: $ONYPROXY_CONFIG or config/gateway.yaml)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"onyproxy.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
