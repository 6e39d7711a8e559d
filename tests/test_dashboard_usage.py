"""The usage page: charts and tables per day and per model, its JSON, and the SVG geometry."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

from dashboard_fixtures import open_dashboard

from onyproxy.dashboard.charts import Series, bar_chart, column_chart, compact, nice_ceiling
from onyproxy.dashboard.consent import PREFS_COOKIE
from onyproxy.storage import UsageEvent, utcnow


def event(n: int, account: str, model: str, *, days_ago: int = 0, cost: str = "0.0015",
          tokens: tuple[int, int] = (1000, 200)) -> UsageEvent:
    return UsageEvent(request_id=f"req_{account}_{n}", account_id=account, key_id=None,
                      model=model, provider="mock", input_tokens=tokens[0],
                      output_tokens=tokens[1], cost_usd=Decimal(cost),
                      created_at=utcnow() - timedelta(days=days_ago))


async def with_usage(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    person = await ui.person()
    other = await ui.person("bob@example.com")
    account = person.account.id
    await ui.gw.store.insert_usage_events([
        event(1, account, "gpt-4o"), event(2, account, "gpt-4o", days_ago=1),
        event(3, account, "claude-sonnet", days_ago=1, cost="0.01", tokens=(3000, 500)),
        event(4, account, "gpt-4o", days_ago=40),  # outside the default 30 days
        event(5, other.account.id, "secret-model", cost="9"),
    ])
    await ui.sign_in(person.secret)
    return ui, person


async def test_usage_shows_charts_and_tables_for_the_account(aiohttp_client, tmp_path):
    ui, _ = await with_usage(aiohttp_client, tmp_path)
    html = await (await ui.client.get("/ui/usage")).text()
    for chart in ("chart-tokens", "chart-requests", "chart-cost", "chart-models"):
        assert f'id="{chart}"' in html
    assert html.count("<svg") == 4
    assert 'role="img"' in html
    assert re.search(r'<rect class="series-0"[^>]*><title>[^<]*gpt-4o: \$0\.0030', html)
    assert "<strong>3</strong> requests" in html
    assert "$0.0130" in html  # 0.0015 + 0.0015 + 0.01, exact
    assert "secret-model" not in html  # another account's usage


async def test_the_usage_json_holds_exact_decimals_and_every_day(aiohttp_client, tmp_path):
    ui, _ = await with_usage(aiohttp_client, tmp_path)
    data = await (await ui.client.get("/ui/api/usage?days=7")).json()
    assert len(data["days"]) == 7
    assert data["total"]["cost_usd"] == "0.0130"
    assert data["total"]["requests"] == 3
    assert [m["model"] for m in data["models"]] == ["claude-sonnet", "gpt-4o"]
    assert data["days"][-1]["requests"] == 1 and data["days"][-2]["requests"] == 2
    wide = await (await ui.client.get("/ui/api/usage?days=90")).json()
    assert wide["total"]["requests"] == 4


async def test_an_account_without_usage_sees_empty_charts(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    person = await ui.person()
    await ui.sign_in(person.secret)
    html = await (await ui.client.get("/ui/usage")).text()
    assert "No usage in this period yet." in html
    assert "<svg" not in html


async def test_the_period_is_remembered_only_with_functional_consent(aiohttp_client, tmp_path):
    ui, _ = await with_usage(aiohttp_client, tmp_path)
    response = await ui.client.get("/ui/usage?days=7")
    assert PREFS_COOKIE not in response.cookies
    await ui.post("/ui/consent", {"choice": "all"})
    response = await ui.client.get("/ui/usage?days=7")
    assert response.cookies[PREFS_COOKIE].value == "days=7"
    html = await (await ui.client.get("/ui/usage")).text()
    assert '<option value="7" selected>' in html


async def test_model_names_are_escaped_in_charts_and_tables(aiohttp_client, tmp_path):
    ui = await open_dashboard(aiohttp_client, tmp_path)
    person = await ui.person()
    await ui.gw.store.insert_usage_events([event(1, person.account.id, "<script>x</script>")])
    await ui.sign_in(person.secret)
    html = await (await ui.client.get("/ui/usage")).text()
    assert "<script>x" not in html
    assert "&lt;script&gt;" in html


def test_axis_tops_are_round_numbers():
    assert [nice_ceiling(v) for v in (0, 0.7, 1, 3, 7, 12, 2400)] == [1, 1, 1, 5, 10, 20, 2500]
    assert compact(1_500_000) == "1.5M" and compact(999) == "999"


def test_columns_stack_the_series_within_the_plot():
    chart = column_chart("t", ["2026-01-01", "2026-01-02"],
                         [Series("in", [10, 0]), Series("out", [10, 5])], compact)
    first_in, first_out, second_out = chart.rects
    assert first_out.y + first_out.height == first_in.y  # stacked on top
    assert second_out.series == 1
    assert chart.legend == ["in", "out"]
    assert [label.text for label in chart.x_labels] == ["01-01", "01-02"]
    assert min(r.y for r in chart.rects) >= 12


def test_bars_scale_to_the_largest_value():
    chart = bar_chart("t", ["a", "b"], [4.0, 2.0], compact)
    assert chart.rects[0].width == 2 * chart.rects[1].width
    assert not chart.empty
    assert bar_chart("t", [], [], compact).empty


def test_count_axes_keep_whole_numbers():
    chart = column_chart("t", ["a"], [Series("requests", [2])], compact, whole=True)
    assert [label.text for label in chart.y_labels] == ["0", "1", "2", "3", "4"]
