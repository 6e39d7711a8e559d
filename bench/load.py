"""The load generator: fixed concurrency, bounded in requests and in time, in its own process.

``python -m bench.load '<json spec>'`` prints one JSON result line. The spec::

    {"url": "http://127.0.0.1:P/v1/chat/completions", "headers": {...},
     "mode": "json" | "stream" | "mixed", "concurrency": 16,
     "requests": 20000, "duration_s": 3.0, "warmup_s": 0.5}

``concurrency`` workers each send one request at a time over a keep-alive pool of that size.
Requests that start during the warm-up are sent but not measured; the run stops at
``requests`` sent or ``duration_s`` (warm-up included), whichever comes first. Latency is
until the whole answer was read; a stream's TTFB is until its first body bytes (the first
event). A non-200 answer, a transport error, or a stream that does not end in ``[DONE]`` is
an error.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

PROMPT = ("You are a helpful assistant. Summarise the following text in one sentence: "
          "the quick brown fox jumps over the lazy dog, again and again, until it is tired.")


def request_body(stream: bool, model: str = "gpt-bench") -> bytes:
    return orjson.dumps({"model": model, "stream": stream, "max_tokens": 64,
                         "messages": [{"role": "system", "content": "Be brief."},
                                      {"role": "user", "content": PROMPT}]})


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    ttfbs: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    done_in_window: int = 0
    last_done: float = 0.0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def one(session: aiohttp.ClientSession, url: str, body: bytes, stream: bool,
              tally: Tally, measured: bool) -> None:
    start = time.perf_counter()
    ttfb = None
    try:
        async with session.post(url, data=body) as resp:
            if not stream:
                await resp.read()
            else:
                tail = b""
                async for piece in resp.content.iter_any():
                    if ttfb is None:
                        ttfb = time.perf_counter() - start
                    tail = (tail + piece)[-32:]
            if resp.status != 200:
                tally.error(f"http_{resp.status}")
                return
            if stream and b"[DONE]" not in tail:
                tally.error("stream_incomplete")
                return
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        tally.error(type(exc).__name__)
        return
    end = time.perf_counter()
    if measured:
        tally.latencies.append(end - start)
        if ttfb is not None:
            tally.ttfbs.append(ttfb)
        tally.done_in_window += 1
        tally.last_done = end


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    concurrency = int(spec["concurrency"])
    mode = spec.get("mode", "json")
    limit = int(spec.get("requests", 10_000))
    duration = float(spec.get("duration_s", 3.0))
    warmup = float(spec.get("warmup_s", 0.5))
    bodies = {False: request_body(False), True: request_body(True)}
    headers = {"content-type": "application/json", **spec.get("headers", {})}
    tally = Tally()
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout,
                                     cookie_jar=aiohttp.DummyCookieJar()) as session:
        t0 = time.perf_counter()
        window_start = t0 + warmup
        deadline = t0 + duration

        async def worker() -> None:
            while tally.sent < limit:
                now = time.perf_counter()
                if now >= deadline:
                    return
                n = tally.sent
                tally.sent += 1
                stream = mode == "stream" or (mode == "mixed" and n % 2 == 1)
                await one(session, spec["url"], bodies[stream], stream, tally,
                          measured=now >= window_start or warmup == 0)

        if warmup == 0:
            window_start = t0
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        t_end = time.perf_counter()
    window = max(1e-9, (tally.last_done or t_end) - window_start)
    return summarise(tally, window, t_end - t0, mode, concurrency)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile in milliseconds, ``None`` without values."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return round(ordered[index] * 1000, 3)


def summarise(tally: Tally, window: float, elapsed: float, mode: str,
              concurrency: int) -> dict[str, Any]:
    result = {
        "mode": mode, "concurrency": concurrency, "sent": tally.sent,
        "measured": len(tally.latencies), "errors": sum(tally.errors.values()),
        "error_kinds": tally.errors, "elapsed_s": round(elapsed, 3),
        "window_s": round(window, 3), "rps": round(tally.done_in_window / window, 1),
        "p50_ms": percentile(tally.latencies, 50), "p90_ms": percentile(tally.latencies, 90),
        "p99_ms": percentile(tally.latencies, 99),
    }
    if tally.ttfbs:
        result.update(ttfb_p50_ms=percentile(tally.ttfbs, 50),
                      ttfb_p90_ms=percentile(tally.ttfbs, 90),
                      ttfb_p99_ms=percentile(tally.ttfbs, 99))
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m bench.load '<json spec>'", file=sys.stderr)
        return 2
    from bench.loop import run as run_loop

    results: list[dict[str, Any]] = []

    async def go() -> None:
        results.append(await run(orjson.loads(argv[0])))

    run_loop(go)
    print(orjson.dumps(results[0]).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
