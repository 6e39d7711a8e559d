"""``python -m bench``: onyproxy against a bare aiohttp proxy and no proxy, in one run.

See ``bench/README.md``. Modes: the benchmark (default), ``--soak``, ``--profile``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import report
from bench.gateways import (
    STANDARD,
    GatewaySpec,
    Target,
    direct,
    full_pipeline,
    start_bare,
    start_gateway,
    start_redis,
    start_upstream,
)
from bench.hotspots import profile_gateway, profile_table
from bench.matrix import Entry, Limits, Scenario, medians, run_matrix
from bench.procs import Child
from bench.sampling import find_py_spy, sample_gateway, sampling_tables
from bench.soak import soak, soak_table

MAIN_TARGETS = ["direct", "bare", "empty", "full"]
VARIANTS = {  # name: what differs from "empty" / "full"
    f"{base}-{name}": replace(spec, pipeline=base)
    for base in ("empty", "full")
    for name, spec in (("noaccesslog", GatewaySpec(access_log=False)),
                       ("asyncio", GatewaySpec(uvloop=False)),
                       ("stdjson", GatewaySpec(orjson=False)))
}
# What each plugin costs: the full pipeline with that one plugin left out.
VARIANTS.update({f"full-no{name}": GatewaySpec(without=(name,)) for name in STANDARD})
VARIANT_SCENARIOS = [Scenario("json", 1), Scenario("json", 64), Scenario("stream", 64)]
WORKER_SCENARIOS = [Scenario("json", 64), Scenario("stream", 64)]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="development run: 1 run of 1 s per cell, no variants, no workers")
    p.add_argument("--runs", type=int, help="runs per cell, medians reported (default 3)")
    p.add_argument("--duration", type=float, help="seconds per cell incl. warm-up (default 3)")
    p.add_argument("--warmup", type=float, help="unmeasured seconds at the start of a cell")
    p.add_argument("--requests", type=int, default=60_000, help="request cap per cell")
    p.add_argument("--concurrency", default="1,16,64", help="comma-separated (default 1,16,64)")
    p.add_argument("--modes", default="json,stream", help="json,stream")
    p.add_argument("--targets", default=",".join(MAIN_TARGETS),
                   help="subset of direct,bare,empty,full")
    p.add_argument("--variants", action=argparse.BooleanOptionalAction, default=None,
                   help="hot-path variants of empty and full: no access log, no uvloop, "
                        "no orjson; full without each plugin in turn")
    p.add_argument("--workers", action=argparse.BooleanOptionalAction, default=None,
                   help="server.workers 1 vs 2 (unpinned)")
    p.add_argument("--baseline", metavar="DIR", action="append", default=[],
                   help="also run empty@DIR and full@DIR from the source tree in DIR (A/B; "
                        "repeatable; DIR needs onyproxy/, plugins/, bench/, config/)")
    p.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                   help="taskset: upstream + load generator on CPU 0, the proxy on CPU 1")
    p.add_argument("--soak", action="store_true", help="soak the full pipeline instead")
    p.add_argument("--soak-requests", type=int, default=100_000)
    p.add_argument("--soak-every", type=int, default=10_000)
    p.add_argument("--soak-concurrency", type=int, default=16)
    p.add_argument("--profile", action="store_true", help="cProfile the full pipeline instead")
    p.add_argument("--profile-seconds", type=float, default=8.0, help="per mode")
    p.add_argument("--profile-pipeline", choices=("empty", "full"), default="full")
    p.add_argument("--profile-modes", default="json,stream")
    p.add_argument("--sampler", choices=("auto", "py-spy", "cprofile"), default="auto",
                   help="--profile with py-spy when it is found (auto), or cProfile")
    p.add_argument("--py-spy", metavar="PATH", help="the py-spy binary (default: on PATH)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    args = p.parse_args(argv)
    args.runs = args.runs or (1 if args.quick else 3)
    args.duration = args.duration or (1.0 if args.quick else 3.0)
    args.warmup = args.warmup if args.warmup is not None else (0.25 if args.quick else 0.5)
    args.variants = (not args.quick) if args.variants is None else args.variants
    args.workers = (not args.quick) if args.workers is None else args.workers
    return args


def layout(pin: bool) -> tuple[str | None, str | None]:
    """(cores of upstream and load generator, cores of the proxy under test)."""
    if pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return "0", "1"
    return None, None


def unpin(target_pids: list[int]) -> None:
    every = set(range(os.cpu_count() or 1))
    for pid in target_pids:
        os.sched_setaffinity(pid, every)


class Bench:
    """The processes of one run; everything started is stopped in :meth:`close`."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="onyproxy-bench-"))
        self.load_cores, self.proxy_cores = layout(args.pin)
        self.started: list[Target] = []
        self.others: list[Child] = []  # helpers such as redis-server
        self.upstream_child, self.upstream = start_upstream(self.workdir, self.load_cores)

    def gateway(self, name: str, spec: GatewaySpec, cores: str | None) -> Target:
        target = start_gateway(name, spec, self.upstream, self.workdir / name, cores)
        self.started.append(target)
        return target

    def bare(self, cores: str | None) -> Target:
        target = start_bare(self.upstream, self.workdir, cores)
        self.started.append(target)
        return target

    def close(self) -> None:
        for target in self.started:
            target.stop()
        for child in self.others:
            child.stop()
        self.upstream_child.stop()
        if self.args.keep:
            print(f"kept {self.workdir}", file=sys.stderr)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


def benchmark(args: argparse.Namespace, bench: Bench) -> dict[str, Any]:
    limits = Limits(args.duration, args.warmup, args.requests)
    scenarios = [Scenario(m, int(c)) for m in args.modes.split(",")
                 for c in args.concurrency.split(",")]
    wanted = args.targets.split(",")
    targets: dict[str, Target] = {}
    if "direct" in wanted:
        targets["direct"] = direct(bench.upstream)
    if "bare" in wanted:
        targets["bare"] = bench.bare(bench.proxy_cores)
    for name in ("empty", "full"):
        if name in wanted:
            targets[name] = bench.gateway(name, GatewaySpec(pipeline=name), bench.proxy_cores)
    for tree in args.baseline:
        tag = Path(tree).name
        for name in ("empty", "full"):
            if name in wanted:
                spec = GatewaySpec(pipeline=name, tree=str(Path(tree).resolve()))
                targets[f"{name}@{tag}"] = bench.gateway(f"{name}@{tag}", spec,
                                                         bench.proxy_cores)
    entries = [Entry(t, scenarios) for t in targets.values()]
    variant_scenarios = [s for s in VARIANT_SCENARIOS if s in scenarios]
    if args.variants and variant_scenarios:
        for name, spec in VARIANTS.items():
            if spec.pipeline not in wanted:
                continue
            entries.append(Entry(bench.gateway(name, spec, bench.proxy_cores),
                                 variant_scenarios, "variant"))
    print(f"bench: {len(entries)} targets, {args.runs} runs, {args.duration:g} s per cell, "
          f"pinning: {bench.load_cores or 'none'} / {bench.proxy_cores or 'none'}",
          file=sys.stderr)
    raw = run_matrix(entries, args.runs, limits, bench.load_cores)
    cells = medians(raw)
    labels = [s.label for s in scenarios]
    out: dict[str, Any] = {
        "cells": cells,
        "raw": [{"target": t, "scenario": sc, "results": r} for (t, sc), r in raw.items()],
        "table": report.main_table(cells, list(targets), labels),
        "checks": report.target_checks(cells),
        "notes": {name: t.notes for name, t in targets.items()},
    }
    if args.variants and variant_scenarios:
        out["variant_table"] = "\n\n".join(
            report.variant_table(cells, base, [v for v in VARIANTS if v.startswith(base + "-")],
                                 [s.label for s in variant_scenarios])
            for base in ("empty", "full") if base in wanted)
    if args.workers:
        out.update(workers(args, bench, limits, targets.get("bare")))
    return out


def workers(args: argparse.Namespace, bench: Bench, limits: Limits,
            bare: Target | None) -> dict[str, Any]:
    """server.workers 1 vs 2 with nothing pinned: workers need every core they can get.

    The memory rate-limit backend refuses workers > 1, so both use Redis (a local
    redis-server) when one is installed, else both run without the ratelimit plugin.
    """
    pids = [bench.upstream_child.pid] + ([bare.child.pid] if bare and bare.child else [])
    unpin(pids)
    redis = start_redis(bench.workdir)
    if redis is not None:
        bench.others.append(redis[0])
        spec, note = GatewaySpec(redis_url=redis[1]), "ratelimit on a local redis-server"
    else:
        spec, note = GatewaySpec(without=("ratelimit",)), "no ratelimit (no redis-server)"
    entries = [Entry(bare, WORKER_SCENARIOS)] if bare else []
    for n in (1, 2):
        target = bench.gateway(f"full-w{n}", replace(spec, workers=n), None)
        entries.append(Entry(target, WORKER_SCENARIOS, "workers"))
    print("bench: workers 1 vs 2, unpinned", file=sys.stderr)
    raw = run_matrix(entries, args.runs, limits, None)
    cells = medians(raw)
    rows = ["| scenario | target | req/s | x full-w1 | p50 ms | p99 ms | CPU µs/req "
            "| RSS MB (all processes) |", "|---|---|---|---|---|---|---|---|"]
    for scenario in WORKER_SCENARIOS:
        one = cells.get(("full-w1", scenario.label), {}).get("rps")
        for entry in entries:
            cell = cells[(entry.target.name, scenario.label)]
            ratio = f"{cell['rps'] / one:.2f}" if one else "-"
            rows.append(f"| {scenario.label} | {entry.target.name} | {cell['rps']:.0f} | {ratio} "
                        f"| {cell['p50_ms']} | {cell['p99_ms']} | {cell['cpu_us']} "
                        f"| {cell['rss_mb']} |")
    per_worker = {e.target.name: e.target.child.worker_rss_mb()
                  for e in entries if e.target.child}
    return {"workers_cells": cells, "workers_table": "\n".join(rows),
            "workers_raw": [{"target": t, "scenario": sc, "results": r}
                            for (t, sc), r in raw.items()],
            "workers_rss_per_process_mb": per_worker, "workers_note": note}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    present, missing = full_pipeline()
    bench = Bench(args)
    result: dict[str, Any] = {"started": started, "machine": report.machine(),
                              "argv": sys.argv[1:] if argv is None else argv,
                              "pinning": {"upstream_and_load": bench.load_cores,
                                          "proxy": bench.proxy_cores},
                              "full_pipeline": present, "missing_plugins": missing}
    kind = "soak" if args.soak else "profile" if args.profile else "bench"
    try:
        if args.soak:
            target = bench.gateway("full", GatewaySpec(), bench.proxy_cores)
            result["soak"] = soak(target, args.soak_requests, args.soak_every,
                                  args.soak_concurrency, bench.load_cores)
        elif args.profile and args.sampler != "cprofile" and find_py_spy(args.py_spy):
            result["profile"] = sample_gateway(
                find_py_spy(args.py_spy), bench.upstream, bench.workdir, bench.proxy_cores,
                bench.load_cores, args.profile_seconds, args.profile_pipeline,
                tuple(args.profile_modes.split(",")))
        elif args.profile:
            if args.sampler == "py-spy":
                raise SystemExit("py-spy not found: pip install py-spy, or pass --py-spy PATH")
            result["profile"] = profile_gateway(
                bench.upstream, bench.workdir, bench.proxy_cores, bench.load_cores,
                args.profile_seconds, args.profile_pipeline, tuple(args.profile_modes.split(",")))
        else:
            result.update(benchmark(args, bench))
    finally:
        bench.close()
    result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    print_report(kind, result)
    result["cells"] = report.keyed(result.get("cells", {}))
    result["workers_cells"] = report.keyed(result.get("workers_cells", {}))
    print(f"\nJSON: {report.save(result, kind)}")
    return 0


def print_report(kind: str, result: dict[str, Any]) -> None:
    m = result["machine"]
    print(f"\n## onyproxy bench ({kind}), {result['started']}\n")
    print(f"{m['nproc']} CPUs ({m.get('cpu')}), Python {m['python']}, aiohttp {m['aiohttp']}, "
          f"uvloop {m['uvloop']}, orjson {m['orjson']}; pinning {result['pinning']}")
    missing = ", ".join(result["missing_plugins"]) or "none"
    print(f"full pipeline: {', '.join(result['full_pipeline'])}; missing: {missing}\n")
    if kind == "soak":
        print(soak_table(result["soak"]))
    elif kind == "profile":
        prof = result["profile"]
        if prof.get("sampler") == "py-spy":
            print(f"{prof['requests']} requests ({', '.join(prof['modes'])}, c16) to the "
                  f"{prof['pipeline']} pipeline, sampled by py-spy\n")
            print(sampling_tables(prof))
            return
        print(f"{prof['requests']} requests ({', '.join(prof['modes'])}, c16) to the "
              f"{prof['pipeline']} pipeline under cProfile\n\n### by own time\n")
        print(profile_table(prof["by_tottime"], prof["requests"]))
        print("\n### by cumulative time\n")
        print(profile_table(prof["by_cumtime"], prof["requests"]))
    else:
        print(result["table"])
        print("\n### targets\n")
        for item in result["checks"]:
            print(f"- {item['text']}")
        if "variant_table" in result:
            print("\n### hot-path variants (same runs)\n")
            print(result["variant_table"])
        if "workers_table" in result:
            print(f"\n### server.workers (unpinned; {result['workers_note']})\n")
            print(result["workers_table"])
            print(f"\nRSS per process (supervisor first): {result['workers_rss_per_process_mb']}")


if __name__ == "__main__":
    sys.exit(main())
