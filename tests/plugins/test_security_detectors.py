"""The security plugin's detectors, each driven by an injected clock."""

from __future__ import annotations

import pytest

from plugins.security.bursts import BurstDetector
from plugins.security.config import AuthFailuresConfig, ManyIpsConfig, SpikeConfig
from plugins.security.findings import Cooldown, Finding
from plugins.security.spike import SpikeDetector
from plugins.security.spread import SpreadDetector


class Clock:
    """Seconds that move only when the test says so; starts on a minute boundary."""

    def __init__(self) -> None:
        self.now = 600_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def spikes(clock: Clock, **options) -> SpikeDetector:
    return SpikeDetector(SpikeConfig(**{"factor": 10, "min_requests_per_minute": 20,
                                        "min_tokens_per_minute": 10_000, **options}), clock)


def steady(detector: SpikeDetector, clock: Clock, per_minute: int, minutes: int,
           key: str = "key_a") -> list[Finding]:
    """``per_minute`` requests spread evenly over each of ``minutes`` minutes."""
    found = []
    for _ in range(minutes):
        for _ in range(per_minute):
            clock.now += 60 / per_minute
            if (finding := detector.request(key)) is not None:
                found.append(finding)
    return found


# usage spikes ------------------------------------------------------------------------------
def test_a_new_keys_first_burst_below_the_floor_is_no_spike(clock):
    detector = spikes(clock)
    found = [detector.request("key_new") for _ in range(20)]  # 20 in the same second
    assert found == [None] * 20
    assert detector.baseline("key_new") is None


def test_a_new_key_above_the_floor_is_a_spike_with_no_baseline_yet(clock):
    detector = spikes(clock)
    found = [detector.request("key_new") for _ in range(21)]
    assert found[:20] == [None] * 20
    spike = found[20]
    assert spike is not None and spike.kind == "usage_spike" and spike.key_id == "key_new"
    assert spike.evidence == {"measure": "requests", "per_minute": 21.0,
                              "baseline_per_minute": None, "factor": 10, "floor": 20.0,
                              "threshold": 20.0}
    assert "no baseline yet" in spike.reason


def test_the_baseline_learns_the_keys_usual_rate(clock):
    detector = spikes(clock)
    assert steady(detector, clock, per_minute=6, minutes=5) == []
    assert detector.baseline("key_a") < 2  # an average that starts at zero: no history yet
    assert steady(detector, clock, per_minute=6, minutes=120) == []
    assert detector.baseline("key_a") == pytest.approx(6, abs=0.5)


def test_a_sudden_rise_far_above_the_baseline_is_a_spike(clock):
    detector = spikes(clock, min_requests_per_minute=5)
    steady(detector, clock, per_minute=3, minutes=120)
    clock.now += 1
    found = [detector.request("key_a") for _ in range(40)]
    spike = next(f for f in found if f is not None)
    assert spike.evidence["baseline_per_minute"] == pytest.approx(3, abs=0.3)
    assert spike.evidence["threshold"] == pytest.approx(30, abs=3)
    assert spike.evidence["per_minute"] > spike.evidence["threshold"]


def test_rising_up_to_factor_times_the_baseline_is_no_spike(clock):
    detector = spikes(clock, min_requests_per_minute=5)
    steady(detector, clock, per_minute=4, minutes=120)
    assert steady(detector, clock, per_minute=30, minutes=1) == []  # below 10 x 4


def test_a_new_busy_key_is_judged_by_the_floor_until_it_has_a_history(clock):
    detector = spikes(clock, min_requests_per_minute=20)
    early = steady(detector, clock, per_minute=50, minutes=15)
    assert early and all(f.evidence["threshold"] < 50 for f in early)
    # Then by factor x its own rate: 50 a minute is normal for this key.
    assert steady(detector, clock, per_minute=50, minutes=60) == []
    assert detector.baseline("key_a") > 20


def test_idle_minutes_do_not_erase_what_is_normal_for_a_key(clock):
    detector = spikes(clock, min_requests_per_minute=5)
    steady(detector, clock, per_minute=10, minutes=120)
    learned = detector.baseline("key_a")
    clock.now += 8 * 3600  # a quiet night
    assert steady(detector, clock, per_minute=10, minutes=2) == []
    assert detector.baseline("key_a") == pytest.approx(learned, abs=0.5)


def test_a_burst_straddling_a_minute_boundary_is_not_split(clock):
    detector = spikes(clock)
    clock.now += 50  # 10 s before the minute ends
    assert [detector.request("key_a") for _ in range(15)] == [None] * 15
    clock.now += 15  # 5 s into the next minute: the sliding estimate still holds those 15
    found = [detector.request("key_a") for _ in range(10)]
    assert any(f is not None for f in found)


def test_a_long_spike_raises_the_baseline_only_gradually(clock):
    detector = spikes(clock, min_requests_per_minute=5)
    steady(detector, clock, per_minute=2, minutes=120)
    before = detector.baseline("key_a")
    steady(detector, clock, per_minute=600, minutes=1)
    clock.now += 60
    detector.request("key_a")  # folds the spike minute, capped at the threshold
    assert detector.baseline("key_a") < before + 2.0 / 61 * 10 * before + 0.5


def test_tokens_spike_on_their_own_floor(clock):
    detector = spikes(clock, min_tokens_per_minute=10_000)
    assert detector.tokens("key_a", 9_000) is None
    assert detector.tokens("key_a", 0) is None
    spike = detector.tokens("key_a", 2_000)
    assert spike is not None and spike.evidence["measure"] == "tokens"


def test_keys_are_counted_apart_and_the_table_is_bounded(clock):
    detector = SpikeDetector(SpikeConfig(min_requests_per_minute=5), clock, max_keys=3)
    for key in ("a", "b", "c", "d"):
        assert [detector.request(key) for _ in range(5)] == [None] * 5
    assert detector.baseline("a") is None and len(detector._keys) == 3


# many addresses ----------------------------------------------------------------------------
def spread(clock: Clock, max_ips: int = 3, window_s: float = 60) -> SpreadDetector:
    return SpreadDetector(ManyIpsConfig(max_ips=max_ips, window_s=window_s), clock)


def test_a_key_from_a_few_addresses_is_fine(clock):
    detector = spread(clock)
    for _ in range(50):
        for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
            clock.now += 1
            assert detector.seen("key_a", ip) is None


def test_a_key_from_more_addresses_than_allowed_at_once_is_a_finding(clock):
    detector = spread(clock, max_ips=3)
    for ip in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
        assert detector.seen("key_a", ip) is None
    finding = detector.seen("key_a", "198.51.100.4")
    assert finding is not None and finding.kind == "many_ips" and finding.key_id == "key_a"
    assert finding.evidence == {"distinct_ips": 4, "max_ips": 3, "window_s": 60}
    assert "198.51.100" not in finding.reason  # addresses never leave the detector


def test_addresses_leave_the_window_after_their_last_use(clock):
    detector = spread(clock, max_ips=2, window_s=60)
    detector.seen("key_a", "a")
    detector.seen("key_a", "b")
    clock.now += 61
    assert detector.seen("key_a", "c") is None  # a and b went quiet a minute ago
    assert detector.seen("key_a", "d") is None
    assert detector.seen("key_a", "e") is not None


def test_the_addresses_kept_per_key_stay_bounded(clock):
    detector = spread(clock, max_ips=3)
    for n in range(1000):
        detector.seen("key_a", f"203.0.113.{n % 250}.{n}")
    assert len(detector._keys["key_a"]) <= 4


def test_each_key_has_its_own_addresses(clock):
    detector = spread(clock, max_ips=2)
    for key in ("key_a", "key_b", "key_c"):
        assert detector.seen(key, "1.1.1.1") is None
        assert detector.seen(key, "2.2.2.2") is None


# failed authentication bursts --------------------------------------------------------------
def bursts(clock: Clock, threshold: int = 5, window_s: float = 60) -> BurstDetector:
    return BurstDetector(AuthFailuresConfig(threshold=threshold, window_s=window_s), clock)


def test_failures_below_the_threshold_are_no_burst(clock):
    detector = bursts(clock)
    assert [detector.failed("198.51.100.7") for _ in range(4)] == [None] * 4


def test_threshold_failures_within_the_window_are_a_burst(clock):
    detector = bursts(clock, threshold=5)
    for _ in range(4):
        clock.now += 5
        assert detector.failed("198.51.100.7") is None
    finding = detector.failed("198.51.100.7")
    assert finding is not None and finding.kind == "auth_failures"
    assert finding.client == "198.51.100.7" and finding.key_id is None
    assert finding.evidence == {"failures": 5, "threshold": 5, "window_s": 60}


def test_slow_failures_never_add_up_to_a_burst(clock):
    detector = bursts(clock, threshold=3, window_s=60)
    for _ in range(20):
        clock.now += 31
        assert detector.failed("198.51.100.7") is None


def test_addresses_are_counted_apart(clock):
    detector = bursts(clock, threshold=3)
    for n in range(2):
        for ip in ("a", "b", "c"):
            assert detector.failed(ip) is None, (n, ip)


# cooldown ----------------------------------------------------------------------------------
def test_one_incident_is_reported_once_per_cooldown(clock):
    cooldown = Cooldown(600, clock)
    finding = Finding(kind="many_ips", reason="", key_id="key_a")
    assert cooldown.admit(finding)
    clock.now += 599
    assert not cooldown.admit(finding)
    assert cooldown.admit(Finding(kind="usage_spike", reason="", key_id="key_a"))
    assert cooldown.admit(Finding(kind="many_ips", reason="", key_id="key_b"))
    clock.now += 1
    assert cooldown.admit(finding)


def test_the_cooldown_table_is_bounded(clock):
    cooldown = Cooldown(600, clock, max_entries=10)
    for n in range(100):
        cooldown.admit(Finding(kind="auth_failures", reason="", client=f"ip{n}"))
    assert len(cooldown._until) <= 10
