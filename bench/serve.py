"""``onyproxy`` with a hot-path switch flipped: no uvloop, no orjson, or under cProfile.

``python -m bench.serve [--no-uvloop] [--no-orjson] [--profile FILE] -- <onyproxy args>``
changes only what the switch names, before the gateway is imported, then runs the ordinary CLI
(``onyproxy.cli.main``). With ``--profile`` the event loop thread is profiled until the gateway
stops (SIGTERM), and the stats are written to FILE for :mod:`pstats`.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    parser.add_argument("--no-uvloop", action="store_true", help="the stdlib asyncio loop")
    parser.add_argument("--no-orjson", action="store_true", help="stdlib json (bench.stdjson)")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile here at exit")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="-- then onyproxy's arguments")
    args = parser.parse_args(argv)
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    if args.no_uvloop:
        sys.modules["uvloop"] = None  # type: ignore[assignment]  # import uvloop -> ImportError
    if args.no_orjson:
        from bench import stdjson

        sys.modules["orjson"] = stdjson  # type: ignore[assignment]
    from onyproxy.cli import main as onyproxy_main

    if not args.profile:
        return onyproxy_main(rest)
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        return onyproxy_main(rest)
    finally:
        profiler.disable()
        profiler.dump_stats(args.profile)


if __name__ == "__main__":
    sys.exit(main())
