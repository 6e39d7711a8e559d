"""``onyproxy models list|recommend``: the model catalog, filtered and scored.

``list`` prints every catalog model (or those passing the filters); ``recommend`` prints the
best few for a need: ``--needs tools,vision --max-input-price 1 --min-context 128000``, and
optionally ``--describe "cheap vision model for receipts"`` read by the keyword rules of
:mod:`onyproxy.catalog_recommend`. Each recommendation shows its score per criterion.
"""

from __future__ import annotations

import argparse
from decimal import Decimal

from onyproxy.catalog import catalog_path, load_catalog
from onyproxy.catalog_recommend import (
    WEIGHTS,
    Recommendation,
    parse_need,
    recommend,
    recommendation_record,
)
from onyproxy.catalog_search import (
    Entry,
    Filters,
    entries,
    entry_record,
    parse_needs,
    parse_usd,
    search,
)
from onyproxy.cli.common import fail, load_or_exit
from onyproxy.cli.store_session import note, print_json, print_table
from onyproxy.config import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="the model catalog: list, recommend")
    commands = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = commands.add_parser("list", help="catalog models (filters optional)")
    _filter_options(listing)
    listing.set_defaults(func=_list)
    rec = commands.add_parser("recommend", help="the best models for a need, with scores")
    _filter_options(rec)
    rec.add_argument("--describe", metavar="TEXT", default="",
                     help="the need in words, e.g. 'cheap model for long documents'")
    rec.add_argument("--priority", choices=sorted(WEIGHTS),
                     help="what counts most (default: from --describe, else balanced)")
    rec.add_argument("--limit", type=int, default=3, help="how many (default 3)")
    rec.set_defaults(func=_recommend)


def _filter_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-input-price", metavar="USD", help="per 1M input tokens")
    parser.add_argument("--max-output-price", metavar="USD", help="per 1M output tokens")
    parser.add_argument("--min-context", type=int, metavar="TOKENS")
    parser.add_argument("--needs", metavar="A,B",
                        help="tools, vision, pdf, audio, video, embeddings")
    parser.add_argument("--provider", help="openai, anthropic, gemini, mock")
    parser.add_argument("--region", help="e.g. eu, tr, us (a provider's region in the config)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _list(args: argparse.Namespace) -> int:
    found = search(_entries(args), _filters(args))
    if args.json:
        print_json({"data": [entry_record(e) for e in found]})
        return 0
    print_table(["MODEL", "PROVIDER", "INPUT $/1M", "OUTPUT $/1M", "CONTEXT", "CAN", "SERVED AS"],
                [_row(e) for e in found])
    return 0


def _recommend(args: argparse.Namespace) -> int:
    need = parse_need(args.describe, _filters(args), args.priority)
    picks = recommend(_entries(args), need, max(1, args.limit))
    if args.json:
        print_json({"need": {"text": need.text, "priority": need.priority,
                             "recognised": list(need.recognised)},
                    "data": [recommendation_record(p) for p in picks]})
        return 0
    if need.recognised:
        note(f"read from the description: {', '.join(need.recognised)}")
    if not picks:
        note("no catalog model meets these needs; relax a filter")
        return 1
    for rank, pick in enumerate(picks, 1):
        _print_pick(rank, pick, need.priority)
    return 0


def _entries(args: argparse.Namespace) -> list[Entry]:
    config = load_or_exit(args)
    try:
        return entries(load_catalog(catalog_path(config)), config)
    except ConfigError as exc:
        fail("\n".join(exc.problems))
        raise AssertionError("unreachable") from None


def _filters(args: argparse.Namespace) -> Filters:
    try:
        return Filters(max_input_price=_usd(args.max_input_price, "--max-input-price"),
                       max_output_price=_usd(args.max_output_price, "--max-output-price"),
                       min_context=args.min_context, needs=parse_needs(args.needs),
                       provider=args.provider, region=args.region)
    except ValueError as exc:
        fail(f"--needs: {exc}")
        raise AssertionError("unreachable") from None


def _usd(value: str | None, flag: str) -> Decimal | None:
    try:
        return parse_usd(value)
    except ValueError as exc:
        fail(f"{flag}: {exc}")
        raise AssertionError("unreachable") from None


def _row(e: Entry) -> list:
    return [e.name, e.info.provider, e.input_price, e.output_price,
            f"{e.info.context_window:,}" if e.info.context_window else None,
            ",".join(sorted(e.capabilities)), ",".join(e.served_as)]


def _print_pick(rank: int, pick: Recommendation, priority: str) -> None:
    e = pick.entry
    print(f"{rank}. {e.name} ({e.info.provider})  score {pick.score:g}/100  [{priority}]")
    print(f"   ${e.input_price} in / ${e.output_price} out per 1M tokens; "
          f"context {e.info.context_window or '?'}; {e.info.description}")
    for c in pick.criteria:
        print(f"   {c.name:<9} {c.points:5.1f} pts  (weight {c.weight:g}) {c.note}")
