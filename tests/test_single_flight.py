"""SingleFlight: one load per key at a time, shared by every caller waiting for it."""

from __future__ import annotations

import asyncio
import gc

from onyproxy.single_flight import SingleFlight


async def test_callers_of_one_key_share_one_load_and_other_keys_get_their_own():
    flights: SingleFlight[str, str] = SingleFlight()
    started: list[str] = []
    gate = asyncio.Event()

    async def load(key: str) -> str:
        started.append(key)
        await gate.wait()
        return f"value of {key}"

    waiting = [asyncio.ensure_future(flights.run(k, lambda k=k: load(k))) for k in "aaab"]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiting) == ["value of a"] * 3 + ["value of b"]
    assert started == ["a", "b"]
    assert await flights.run("a", lambda: load("a")) == "value of a"  # done: loads again
    assert started == ["a", "b", "a"]


async def test_a_cancelled_caller_does_not_cancel_the_load_for_the_others():
    flights: SingleFlight[str, int] = SingleFlight()
    gate = asyncio.Event()

    async def load() -> int:
        await gate.wait()
        return 7

    leaving = asyncio.ensure_future(flights.run("k", load))
    staying = asyncio.ensure_future(flights.run("k", load))
    await asyncio.sleep(0)
    leaving.cancel()
    await asyncio.sleep(0)
    gate.set()
    assert await staying == 7
    assert leaving.cancelled()


async def test_a_failed_load_reaches_every_waiter_and_is_retrieved():
    flights: SingleFlight[str, int] = SingleFlight()
    reported: list[dict] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: reported.append(ctx))

    async def load() -> int:
        await asyncio.sleep(0)
        raise RuntimeError("store down")

    results = await asyncio.gather(flights.run("k", load), flights.run("k", load),
                                   return_exceptions=True)
    assert [type(r) for r in results] == [RuntimeError, RuntimeError]
    # A load whose every waiter left still has its exception retrieved: asyncio reports none
    # as "never retrieved" when the future is collected.
    gone = asyncio.ensure_future(flights.run("x", load))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0.01)
    assert gone.cancelled()
    del gone
    gc.collect()
    assert reported == []
