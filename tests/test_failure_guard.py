"""The core's count of failed sign-ins: per address and key prefix, bounded, clock injected."""

from onyproxy.failure_guard import FailureGuard, FailurePolicy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_table_is_bounded_and_drops_idle_entries_first():
    clock = Clock()
    guard = FailureGuard(FailurePolicy(max=2, window_s=10, block_s=100), clock=clock,
                         max_entries=3)
    guard.fail("192.0.2.1")
    guard.fail("192.0.2.1")  # blocked: kept while the block lasts
    guard.fail("192.0.2.2")
    clock.now += 20  # 192.0.2.2's failure has left the window
    for number in range(3, 5):
        guard.fail(f"192.0.2.{number}")
    assert len(guard) == 3
    assert guard.blocked_for("192.0.2.1") == 80  # the idle entry went, not the block
    assert guard.blocked_for("192.0.2.2") == 0


def test_a_key_prefix_is_counted_across_addresses_and_junk_only_by_address():
    guard = FailureGuard(FailurePolicy(max=2), clock=Clock())
    guard.fail("203.0.113.1", "ony-AAAAAAAA" + "x" * 32)
    guard.fail("203.0.113.2", "ony-AAAAAAAA" + "y" * 32)
    assert guard.blocked_for("203.0.113.3", "ony-AAAAAAAA" + "z" * 32) == 300
    assert guard.blocked_for("203.0.113.3", "ony-BBBBBBBB" + "z" * 32) == 0
    guard.fail("203.0.113.4", "not-a-key")
    guard.fail("203.0.113.5", "not-a-key")
    assert guard.blocked_for("203.0.113.6", "not-a-key") == 0


async def test_failed_waits_the_delay_then_answers_429_once_blocked():
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
    guard = FailureGuard(FailurePolicy(max=3, delay_s=0.25), clock=Clock(), sleep=sleep)
    assert [await guard.failed("192.0.2.9", None) for _ in range(3)] == [None, None, None]
    assert slept == [0.25]  # the third failure blocks instead of waiting
    refusal = await guard.failed("192.0.2.9", None)
    assert refusal is not None and (refusal.status, refusal.headers) == (
        429, {"retry-after": "300"})
