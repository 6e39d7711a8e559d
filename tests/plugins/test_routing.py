"""The routing plugin's strategies and circuit breaker, driven with hand-built Exchanges."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from types import SimpleNamespace

import pytest
import yaml

from onyproxy.config import ConfigError, parse_config
from onyproxy.config.model import ModelConfig, TargetConfig
from onyproxy.errors import GatewayError
from onyproxy.exchange import Attempt, Exchange
from plugins.routing import Plugin
from plugins.routing.plugin import CircuitConfig, RetryBudgetConfig, RoutingConfig

A = TargetConfig(provider="a", model="m-a")
B = TargetConfig(provider="b", model="m-b")
C = TargetConfig(provider="c", model="m-c")


class ManualClock:
    """A monotonic clock that only moves when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordedMetrics:
    """The metrics calls the plugin makes, as ``(method, *args)`` tuples."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def circuit_shed(self, model: str) -> None:
        self.calls.append(("circuit_shed", model))

    def retry_refused(self, provider: str, reason: str) -> None:
        self.calls.append(("retry_refused", provider, reason))


def make_plugin(strategy: str = "fallback", targets=(A, B, C), *, seed: int = 7,
                clock: ManualClock | None = None, budget: RetryBudgetConfig | None = None,
                **circuit) -> Plugin:
    models = {"m": ModelConfig(targets=list(targets), strategy=strategy)}
    gateway = SimpleNamespace(config=SimpleNamespace(models=models), metrics=RecordedMetrics())
    config = RoutingConfig(circuit=CircuitConfig(**{"failures": 3, "window_s": 30,
                                                    "cooldown_s": 10, **circuit}),
                           retry_budget=budget or RetryBudgetConfig())
    return Plugin(config, gateway, rng=random.Random(seed), clock=clock or ManualClock())


def exchange(targets=(A, B, C)) -> Exchange:
    return Exchange(request_id="req_test", surface="openai", shape="openai", operation="chat",
                    path="/v1/chat/completions", headers={}, query={}, client_ip=None,
                    user_agent=None, model="m", targets=list(targets))


async def routed(plugin: Plugin, targets=(A, B, C)) -> Exchange:
    ex = exchange(targets)
    await plugin.on_request(ex)
    return ex


def report(ex: Exchange, target: TargetConfig, status: int | None = 200,
           error: str | None = None, duration_s: float = 0.1) -> None:
    """What the forwarder does when an attempt ends."""
    attempt = Attempt(provider=target.provider, model=target.model, started=0.0,
                      duration_s=duration_s, status=status, error=error)
    ex.attempts.append(attempt)
    for listener in ex.on_attempt:
        listener(attempt)


async def fail(plugin: Plugin, target: TargetConfig, times: int = 1, status: int = 500) -> None:
    for _ in range(times):
        ex = await routed(plugin)
        report(ex, target, status=status, error="http")
        await plugin.on_complete(ex)


def providers(ex: Exchange) -> list[str]:
    return [t.provider for t in ex.targets]


# --- strategies ---------------------------------------------------------------------------


async def test_fallback_keeps_config_order_and_sets_the_policy():
    plugin = make_plugin("fallback")
    ex = await routed(plugin)
    assert providers(ex) == ["a", "b", "c"]
    assert ex.policy.retries == 2 and ex.policy.timeout_s == 600


async def test_round_robin_rotates_one_step_per_request_keeping_the_rest_as_fallbacks():
    plugin = make_plugin("round_robin")
    orders = [providers(await routed(plugin)) for _ in range(4)]
    assert orders == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]


async def test_round_robin_spreads_first_picks_exactly_evenly():
    plugin = make_plugin("round_robin")
    firsts = Counter([(await routed(plugin)).targets[0].provider for _ in range(300)])
    assert firsts == {"a": 100, "b": 100, "c": 100}


async def test_weighted_first_pick_follows_the_weights():
    heavy = TargetConfig(provider="a", model="m-a", weight=3)
    light = TargetConfig(provider="b", model="m-b", weight=1)
    plugin = make_plugin("weighted", targets=(heavy, light), seed=1234)
    firsts = Counter()
    for _ in range(4000):
        ex = await routed(plugin, targets=(heavy, light))
        assert sorted(providers(ex)) == ["a", "b"]  # the other one stays as the fallback
        firsts[ex.targets[0].provider] += 1
    # Seeded, so the count is fixed; the band (±5 points around 75%) only guards the intent.
    assert 0.70 < firsts["a"] / 4000 < 0.80


async def test_least_latency_tries_unmeasured_targets_first_then_the_fastest():
    plugin = make_plugin("least_latency")
    ex = await routed(plugin)
    assert providers(ex) == ["a", "b", "c"]  # nothing measured yet: config order
    report(ex, A, duration_s=0.9)
    report(ex, B, duration_s=0.2)
    assert providers(await routed(plugin)) == ["c", "b", "a"]  # c untried, then fastest
    ex = await routed(plugin)
    report(ex, C, status=502, error="connection", duration_s=0.001)
    assert providers(await routed(plugin)) == ["b", "a", "c"]  # a fast failure is no latency


async def test_least_latency_is_a_moving_average_not_the_last_sample():
    plugin = make_plugin("least_latency", targets=(A, B))
    ex = await routed(plugin, targets=(A, B))
    report(ex, A, duration_s=1.0)
    report(ex, B, duration_s=0.5)
    report(ex, A, duration_s=0.1)  # one quick answer does not undo a slow history
    assert plugin.latency.average("a/m-a") == pytest.approx(0.3 * 0.1 + 0.7 * 1.0)
    assert providers(await routed(plugin, targets=(A, B))) == ["b", "a"]


# --- circuit breaker ----------------------------------------------------------------------


async def test_circuit_opens_after_n_failures_within_the_window():
    plugin = make_plugin()
    await fail(plugin, A, times=2)
    assert plugin.circuit_states()["a/m-a"] == "closed"
    assert providers(await routed(plugin)) == ["a", "b", "c"]
    await fail(plugin, A)
    assert plugin.circuit_states()["a/m-a"] == "open"
    assert providers(await routed(plugin)) == ["b", "c"]


async def test_failures_older_than_the_window_do_not_count():
    clock = ManualClock()
    plugin = make_plugin(clock=clock)
    await fail(plugin, A, times=2)
    clock.now += 31
    await fail(plugin, A, times=2)
    assert plugin.circuit_states()["a/m-a"] == "closed"


@pytest.mark.parametrize("status, error", [(429, "http"), (503, "http"), (504, "timeout"),
                                           (502, "connection")])
async def test_retryable_failures_count(status, error):
    plugin = make_plugin(failures=1)
    ex = await routed(plugin)
    report(ex, A, status=status, error=error)
    assert plugin.circuit_states()["a/m-a"] == "open"


async def test_a_client_error_does_not_count_against_the_target():
    plugin = make_plugin(failures=1)
    await fail(plugin, A, status=400)
    assert plugin.circuit_states()["a/m-a"] == "closed"


async def test_half_open_after_cooldown_admits_one_trial_then_closes_on_success():
    clock = ManualClock()
    plugin = make_plugin(clock=clock)
    await fail(plugin, A, times=3)
    clock.now += 9.9
    assert providers(await routed(plugin)) == ["b", "c"]
    clock.now += 0.2
    assert plugin.circuit_states()["a/m-a"] == "half_open"
    trial = await routed(plugin)
    assert providers(trial) == ["a", "b", "c"]
    assert providers(await routed(plugin)) == ["b", "c"]  # one trial at a time
    report(trial, A, status=200)
    assert plugin.circuit_states()["a/m-a"] == "closed"
    assert providers(await routed(plugin)) == ["a", "b", "c"]


async def test_a_failed_trial_opens_the_circuit_for_another_cooldown():
    clock = ManualClock()
    plugin = make_plugin(clock=clock)
    await fail(plugin, A, times=3)
    clock.now += 10
    trial = await routed(plugin)
    report(trial, A, status=500, error="http")
    assert plugin.circuit_states()["a/m-a"] == "open"
    clock.now += 9
    assert providers(await routed(plugin)) == ["b", "c"]
    clock.now += 1
    assert plugin.circuit_states()["a/m-a"] == "half_open"


async def test_a_trial_never_tried_is_given_back_when_the_exchange_ends():
    clock = ManualClock()
    plugin = make_plugin("fallback", targets=(B, A), clock=clock)
    await fail(plugin, A, times=3)
    clock.now += 10
    trial = await routed(plugin, targets=(B, A))
    report(trial, B, status=200)  # b answered, so a was never tried
    assert providers(await routed(plugin, targets=(B, A))) == ["b"]
    await plugin.on_complete(trial)
    assert providers(await routed(plugin, targets=(B, A))) == ["b", "a"]


async def test_a_lost_trial_expires_after_a_cooldown():
    clock = ManualClock()
    plugin = make_plugin(clock=clock)
    await fail(plugin, A, times=3)
    clock.now += 10
    await routed(plugin)  # takes the trial and never reports (e.g. cancelled)
    assert providers(await routed(plugin)) == ["b", "c"]
    clock.now += 10
    assert providers(await routed(plugin)) == ["a", "b", "c"]


async def test_when_every_circuit_is_open_the_call_is_shed_until_the_next_trial():
    clock = ManualClock()
    plugin = make_plugin(clock=clock)
    await fail(plugin, B, times=3)
    clock.now += 2
    await fail(plugin, A, times=3)
    clock.now += 2
    await fail(plugin, C, times=3)
    with pytest.raises(GatewayError) as shed:
        await routed(plugin)
    assert shed.value.status == 503 and shed.value.code == "circuit_open"
    assert shed.value.headers == {"retry-after": "6"}  # b's cool-down ends first, in 6 s
    assert "'m'" in shed.value.message
    assert plugin.gateway.metrics.calls == [("circuit_shed", "m")]
    clock.now += 6
    assert providers(await routed(plugin)) == ["b"]  # b's half-open trial


async def test_concurrent_callers_get_one_trial_per_target_and_the_rest_are_shed():
    clock = ManualClock()
    plugin = make_plugin(targets=(A, B), clock=clock)
    await fail(plugin, A, times=3)
    await fail(plugin, B, times=3)
    clock.now += 10
    results = await asyncio.gather(*[routed(plugin, targets=(A, B)) for _ in range(20)],
                                   return_exceptions=True)
    admitted = [providers(r) for r in results if isinstance(r, Exchange)]
    shed = [r for r in results if isinstance(r, GatewayError)]
    assert admitted == [["a", "b"]]  # the first caller holds both trials
    assert len(shed) == 19 and {e.headers["retry-after"] for e in shed} == {"10"}


async def test_a_stream_that_breaks_counts_as_a_failure():
    plugin = make_plugin(failures=1)
    ex = await routed(plugin)
    report(ex, A, status=200)
    ex.provider, ex.provider_model = "a", "m-a"
    ex.error = GatewayError(502, "api_error", "broke off", code="upstream_stream_error")
    await plugin.on_complete(ex)
    assert plugin.circuit_states()["a/m-a"] == "open"


async def test_circuit_state_is_reported_per_target():
    plugin = make_plugin()
    await fail(plugin, A, times=3)
    ex = await routed(plugin)
    report(ex, B, status=200)
    assert plugin.circuit_states() == {"a/m-a": "open", "b/m-b": "closed"}


# --- retry budget -------------------------------------------------------------------------


async def calls(plugin: Plugin, target: TargetConfig, count: int) -> None:
    """``count`` requests whose one try at ``target`` answered."""
    for _ in range(count):
        ex = await routed(plugin)
        report(ex, target, status=200)
        await plugin.on_complete(ex)


def granted(plugin: Plugin, target: TargetConfig, wanted: int = 100) -> int:
    return sum(plugin.may_retry(target) for _ in range(wanted))


async def test_a_lone_call_still_gets_its_retries():
    plugin = make_plugin()
    await calls(plugin, A, 1)
    assert granted(plugin, A) == 3  # min_retries


async def test_retries_are_capped_at_a_share_of_the_calls_of_the_window():
    plugin = make_plugin(failures=1000)
    await calls(plugin, A, 50)
    assert granted(plugin, A) == 10  # 20 % of 50
    assert granted(plugin, B) == 3  # per target: b has its own (minimum) budget
    refused = [c for c in plugin.gateway.metrics.calls if c[0] == "retry_refused"]
    assert refused == [("retry_refused", "a", "budget")] * 90 + \
        [("retry_refused", "b", "budget")] * 97


async def test_a_retry_counts_when_granted_not_as_a_call():
    plugin = make_plugin(failures=1000)
    ex = await routed(plugin)
    for _ in range(3):  # one call, then three retries at the same target
        report(ex, A, status=500, error="http")
    assert granted(plugin, A) == 3


async def test_the_budget_window_slides():
    clock = ManualClock()
    plugin = make_plugin(clock=clock, failures=1000,
                         budget=RetryBudgetConfig(ratio=0.5, window_s=10, min_retries=1))
    await calls(plugin, A, 10)
    assert granted(plugin, A) == 5
    clock.now += 5
    await calls(plugin, A, 4)
    assert granted(plugin, A) == 2  # 14 calls: 7 retries in all
    clock.now += 5.5  # the first ten calls and five retries left the window
    assert granted(plugin, A) == 0  # 4 calls and 2 retries left in it: no room
    await calls(plugin, A, 4)
    assert granted(plugin, A) == 2  # 8 calls: room for 4 retries, 2 taken
    clock.now += 11
    assert granted(plugin, A) == 1  # nothing left in the window: the minimum


async def test_no_retry_at_a_target_whose_circuit_is_open():
    plugin = make_plugin()
    await calls(plugin, A, 10)
    await fail(plugin, A, times=3)
    assert granted(plugin, A, wanted=1) == 0
    assert plugin.gateway.metrics.calls[-1] == ("retry_refused", "a", "circuit_open")


async def test_the_routing_policy_asks_the_plugin_before_each_retry():
    plugin = make_plugin()
    ex = await routed(plugin)
    assert ex.policy.may_retry == plugin.may_retry


# --- config -------------------------------------------------------------------------------


def gateway_yaml(routing: dict) -> str:
    return yaml.safe_dump({
        "providers": {"mock": {"type": "mock"}},
        "models": {"m": {"strategy": "round_robin",
                         "targets": [{"provider": "mock", "model": "x", "weight": 2}]}},
        "pipeline": [{"name": "routing", **routing}],
    })


def test_circuit_options_are_read_from_the_pipeline_entry():
    config = parse_config(gateway_yaml({"circuit": {"failures": 2, "cooldown_s": 5}}),
                          "gateway.yaml", {})
    (spec,) = config.plugins
    assert spec.config.circuit == CircuitConfig(failures=2, window_s=30, cooldown_s=5)
    assert config.models["m"].strategy == "round_robin"


def test_unknown_circuit_option_names_its_key_path():
    with pytest.raises(ConfigError) as caught:
        parse_config(gateway_yaml({"circuit": {"failure": 2}}), "gateway.yaml", {})
    assert "circuit.failure" in str(caught.value)


def test_retry_budget_options_are_read_and_checked():
    config = parse_config(gateway_yaml({"retry_budget": {"ratio": 0.5, "min_retries": 0}}),
                          "gateway.yaml", {})
    (spec,) = config.plugins
    assert spec.config.retry_budget == RetryBudgetConfig(ratio=0.5, window_s=10, min_retries=0)
    with pytest.raises(ConfigError) as caught:
        parse_config(gateway_yaml({"retry_budget": {"ratio": 1.5}}), "gateway.yaml", {})
    assert "retry_budget.ratio" in str(caught.value)
