"""The dashboard in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, which ``make test`` installs) driven by Selenium against a real
``onyproxy serve`` process. Selenium gets the driver's path, so Selenium Manager never runs
and nothing is downloaded. Screenshots land in the test's tmp dir (``screenshots/``).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait
from serve_process import GatewayProcess

from onyproxy.accounts import create_account
from onyproxy.keys import create_key
from onyproxy.storage import UsageEvent, open_store, utcnow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PEPPER = "browser-test-pepper-0123456789abcdef"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,900")
DESKTOP = (1280, 900)
PHONE = (390, 844)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
                       reason="needs Debian's chromium and chromium-driver (/usr/bin/chromium, "
                              "/usr/bin/chromedriver); `make test` installs them"),
]


@pytest.fixture
def gateway(tmp_path) -> Iterator[GatewayProcess]:
    workdir = tmp_path / "gateway"
    workdir.mkdir()
    process = GatewayProcess({
        "security": {"key_pepper": PEPPER},
        "providers": {"mock": {"type": "mock"}},
        "models": {"mock-small": {"targets": [{"provider": "mock", "model": "mock-small"}]}},
        "pipeline": [{"name": "auth"}, {"name": "routing", "retries": 0, "timeout_s": 5}],
        "privacy": {"policy_version": "2026-01"},
    }, workdir)
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


@pytest.fixture
def browser(tmp_path) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)),
                              options=options)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(downloads)})
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def seed(gateway: GatewayProcess, email: str, role: str = "user") -> tuple[str, str]:
    """An account with a key and a week of usage, written to the gateway's store."""
    async def work() -> tuple[str, str]:
        store = await open_store(f"sqlite:///{gateway.config_path.parent}/onyproxy.db")
        try:
            account = await create_account(store, email=email, name="Ayşe Demir", role=role)
            issued = await create_key(store, account.id, pepper=PEPPER, name="laptop",
                                      owner=True)
            await store.insert_usage_events([
                UsageEvent(request_id=f"req_{account.id}_{day}_{model}", account_id=account.id,
                           key_id=issued.record.id, model=model, provider="mock",
                           input_tokens=1000 * (day + 1), output_tokens=150 * (day + 2),
                           cost_usd=Decimal("0.0125") * (day + 1),
                           created_at=utcnow() - timedelta(days=day))
                for day in range(7) for model in ("gpt-4o", "claude-sonnet")])
            return account.id, issued.secret
        finally:
            await store.close()
    return asyncio.run(work())


class Page:
    """What the tests do with the browser, by what a person sees."""

    def __init__(self, driver: webdriver.Chrome, gateway: GatewayProcess, shots: Path) -> None:
        self.driver = driver
        self.gateway = gateway
        self.shots = shots
        shots.mkdir(exist_ok=True)

    def open(self, path: str) -> None:
        self.driver.get(self.gateway.url(path))

    def find(self, css: str):
        return WebDriverWait(self.driver, 10).until(
            expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css)))

    def all(self, css: str) -> list:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def click(self, css: str) -> None:
        self.find(css).click()

    def wait(self, condition, what: str) -> None:
        """Until ``condition(driver)`` holds (a click's page load may still be under way)."""
        WebDriverWait(self.driver, 10, ignored_exceptions=[StaleElementReferenceException,
                                                           NoSuchElementException]).until(
            condition, f"waiting for {what}")

    def wait_text(self, css: str, text: str) -> None:
        self.wait(lambda d: text in d.find_element(By.CSS_SELECTOR, css).text,
                  f"{text!r} in {css}")

    def wait_gone(self, css: str) -> None:
        self.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, css), f"{css} to go")

    def wait_cookie(self, name: str, present: bool = True) -> None:
        self.wait(lambda d: (name in self.cookies()) == present,
                  f"cookie {name} {'set' if present else 'gone'}")

    def cookies(self) -> dict[str, dict[str, Any]]:
        return {c["name"]: c for c in self.driver.get_cookies()}

    def shot(self, name: str, size: tuple[int, int] = DESKTOP) -> Path:
        self.driver.set_window_size(*size)
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(size[0], max(size[1], min(height + 140, 4000)))
        path = self.shots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(*DESKTOP)
        return path

    def pages_fit_phone(self, paths: list[str]) -> list[str]:
        """The pages wider than a phone's screen (wide tables scroll inside their own box)."""
        self.driver.set_window_size(*PHONE)
        wide = []
        for path in paths:
            self.open(path)
            if not self.driver.execute_script(
                    "return document.documentElement.scrollWidth <= window.innerWidth"):
                wide.append(path)
        self.driver.set_window_size(*DESKTOP)
        return wide

    def unlabelled_inputs(self) -> list[str]:
        return self.driver.execute_script("""
            return [...document.querySelectorAll('input:not([type=hidden]), select')]
              .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
              .map(el => el.outerHTML);""")


@pytest.fixture
def page(browser, gateway, tmp_path) -> Page:
    return Page(browser, gateway, tmp_path / "screenshots")


def test_consent_banner_refuse_then_accept(page: Page):
    page.open("/ui/")
    assert page.find("#consent-banner").is_displayed()
    jar = page.cookies()
    assert "onyproxy_csrf" in jar and jar["onyproxy_csrf"]["httpOnly"]
    assert "onyproxy_analytics" not in jar and "onyproxy_consent" not in jar
    page.shot("signin-with-banner")
    page.shot("signin-with-banner-phone", PHONE)
    page.click("#consent-refuse")
    page.wait_gone("#consent-banner")
    jar = page.cookies()
    assert jar["onyproxy_consent"]["value"] == "v1.f0.a0"
    assert jar["onyproxy_consent"]["sameSite"] == "Lax"
    assert "onyproxy_analytics" not in jar

    page.driver.delete_all_cookies()  # a new visitor
    page.open("/ui/models")
    page.click("#consent-accept")
    page.wait_gone("#consent-banner")
    jar = page.cookies()
    assert jar["onyproxy_consent"]["value"] == "v1.f1.a1"
    assert jar["onyproxy_analytics"]["value"]

    page.open("/ui/privacy")
    page.click("#consent-analytics")  # untick
    page.click("#consent-save")
    page.wait_text("#consent-status", "analytics off")
    assert "onyproxy_analytics" not in page.cookies()


def test_sign_in_usage_keys_finder_export_policy(page: Page, gateway):
    account_id, secret = seed(gateway, "ayse@example.com")
    page.open("/ui/usage")
    page.click("#consent-accept")
    page.wait_gone("#consent-banner")
    page.find("#credential").send_keys(secret)
    page.find("#credential").submit()

    chart = page.find("#chart-tokens svg")
    assert chart.is_displayed() and chart.size["height"] > 100
    assert len(page.all("#chart-tokens rect")) == 14  # 7 days x input/output
    assert "gpt-4o" in page.find("#models-table").text
    assert page.unlabelled_inputs() == []
    page.shot("usage")
    page.shot("usage-phone", PHONE)
    assert page.pages_fit_phone(["/ui/usage", "/ui/keys", "/ui/invoices", "/ui/models",
                                 "/ui/privacy"]) == []

    page.open("/ui/keys")
    page.find("#key-name").send_keys("browser-test")
    page.click("#create-key")
    shown = page.find("#new-key-secret").text
    assert re.fullmatch(r"ony-[A-Za-z0-9_-]{40}", shown)
    page.shot("key-created")
    page.open("/ui/keys")
    assert shown not in page.driver.page_source
    row = next(r for r in page.all("#keys-table tbody tr") if "browser-test" in r.text)
    row.find_element(By.CSS_SELECTOR, "button.danger").click()
    WebDriverWait(page.driver, 5).until(expected_conditions.alert_is_present()).accept()
    page.wait(lambda d: any("browser-test" in r.text and "revoked" in r.text
                            for r in page.all("#keys-table tbody tr")), "the key revoked")
    page.shot("keys-after-revoke")
    page.shot("keys-phone", PHONE)

    page.open("/ui/models")
    page.find("#describe").send_keys("cheap model that reads screenshots and calls tools")
    page.click("#need-tools")
    page.click("#recommend")
    picks = page.find("#recommendations")
    assert "Recommended" in picks.text and "pts" in picks.text
    page.shot("model-finder")
    page.shot("model-finder-phone", PHONE)

    page.open("/ui/privacy")
    assert "You have not accepted it yet." in page.find("#policy-status").text
    page.click("#accept-policy")
    page.wait_text("#policy-status", "You accepted version 2026-01")
    page.click("#export-data")
    exported = wait_for_file(page.shots.parent / "downloads" / f"onyproxy-data-{account_id}.json")
    document = json.loads(exported.read_text())
    assert document["account"]["email"] == "ayse@example.com"
    assert secret not in exported.read_text()
    page.shot("privacy")


def test_admin_sees_security_events(page: Page, gateway):
    _, secret = seed(gateway, "root@example.com", role="admin")
    page.open("/ui/signin")
    page.click("#consent-refuse")
    page.wait_gone("#consent-banner")
    page.find("#credential").send_keys(secret)
    page.find("#credential").submit()
    page.find("#chart-tokens")
    page.open("/ui/keys")
    page.find("#key-name").send_keys("ops")
    page.click("#create-key")
    page.find("#new-key-secret")
    page.open("/ui/admin/security")
    assert "key.create" in page.find("#events-table").text
    page.open("/ui/admin/accounts")
    assert "root@example.com" in page.find("#accounts-table").text
    page.shot("admin-accounts")
    page.click(".who button")  # sign out
    page.wait_cookie("onyproxy_session", present=False)
    page.find("#credential")


def wait_for_file(path: Path, timeout: float = 10) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size > 0:
            return path
        time.sleep(0.1)
    raise AssertionError(f"{path.name} was not downloaded")
