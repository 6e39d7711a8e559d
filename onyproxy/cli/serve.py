"""``onyproxy serve``: run the gateway."""

from __future__ import annotations

import argparse

from onyproxy.cli.common import fail, load_or_exit
from onyproxy.logs import setup_logging


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="run the gateway")
    parser.add_argument("--host", help="override server.host")
    parser.add_argument("--port", type=int, help="override server.port")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from onyproxy.server import StartupError, serve

    config = load_or_exit(args)
    setup_logging(config.logging.level)
    server = config.server
    if args.host or args.port:
        server = replace(server, host=args.host or server.host, port=args.port or server.port)
        config = replace(config, server=server)
    try:
        serve(config)
    except StartupError as exc:
        fail(f"cannot start: {exc}")
    return 0
