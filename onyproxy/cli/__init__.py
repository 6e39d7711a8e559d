"""The ``onyproxy`` command. Each subcommand lives in its own module with a ``register``.

To add one: write ``onyproxy/cli/<name>.py`` with ``register(subparsers)`` that adds a parser
and sets ``func`` (a function of the parsed args returning an exit status), and list it in
``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

COMMANDS = ["serve", "check_config", "version", "quickstart", "accounts", "keys", "models",
            "retention", "subject", "audit", "notify", "usage", "invoices"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onyproxy", description="The onyproxy AI gateway.")
    parser.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"onyproxy.cli.{name}").register(subparsers)
    _accept_config_anywhere(parser)
    return parser


CONFIG_HELP = ("gateway YAML (default: $ONYPROXY_CONFIG, else config/gateway.yaml if it exists, "
               "else the default shipped with onyproxy)")


def _accept_config_anywhere(parser: argparse.ArgumentParser) -> None:
    """``onyproxy serve --config F`` as well as ``onyproxy --config F serve``: every
    subcommand (at any depth) takes the option too. Its default is "not given", so an option
    after the subcommand wins and its absence keeps the one given before."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                sub.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                                 help=CONFIG_HELP)
                _accept_config_anywhere(sub)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _reader_went_away()


def _reader_went_away() -> int:
    """The reader of a listing left early (``onyproxy keys list | head``): stop quietly, as
    ``ls`` and ``grep`` do. Later writes (the interpreter flushing stdout at exit) go to
    /dev/null, so no second error is printed either."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
