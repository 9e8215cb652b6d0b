"""The dashboard at /ui, loaded in headless Chromium (Debian's chromium and chromium-driver,
driven by Selenium): it shows the endpoints and their variants, its charts follow live traffic,
a weight change shows up, events are listed, and it loads nothing from anywhere but berth.
A screenshot is saved to tests/artifacts/dashboard.png."""

import os
import threading
import time

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

from conftest import ROOT, deploy

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture
def browser(tmp_path):
    assert os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER), (
        "the dashboard test needs Debian's chromium and chromium-driver (scripts/test.sh installs them)"
    )
    os.environ["SE_OFFLINE"] = "true"  # Selenium must not try to download a browser or driver
    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1440,900",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    yield driver
    driver.quit()


def wait_for(check, what, timeout=30):
    """Polls `check` until it is truthy. The dashboard redraws its rows as data arrives, so an
    element found by one call may be replaced before it is read: that is "not yet", not failure."""
    deadline = time.time() + timeout
    while True:
        try:
            value = check()
        except StaleElementReferenceException:
            value = None
        if value:
            return value
        assert time.time() < deadline, f"the dashboard never showed {what}"
        time.sleep(0.2)


# Sum of every value the endpoint's invocations chart holds now.
CHART_TOTAL = """
const card = window.berthDashboard && window.berthDashboard.cards.get(arguments[0]);
if (!card || !card.plots.invocations.data) return null;
return card.plots.invocations.data.slice(1).flat().reduce((a, b) => a + (b || 0), 0);
"""


def cell(driver, ep, variant, cls):
    return driver.find_element(By.CSS_SELECTOR, f'#endpoint-{ep} tr[data-variant="{variant}"] td.{cls}').text


def test_dashboard_shows_endpoints_and_follows_live_traffic(berth, sm, runtime, browser):
    ep = deploy(sm, ["Variant1", "Variant2"])
    browser.get(f"{berth.url}/ui")
    card = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, f'#endpoint-{ep}[data-status="InService"]'), "the endpoint")[0]
    rows = card.find_elements(By.CSS_SELECTOR, "tr.variant-row")
    assert [r.get_attribute("data-variant") for r in rows] == ["Variant1", "Variant2"]
    assert cell(browser, ep, "Variant1", "instances") == "1/1"
    assert "50%" in rows[0].text and "ml.m5.large" in rows[0].text
    assert len(card.find_elements(By.CSS_SELECTOR, ".plot canvas")) == 4, "four live charts"
    before = browser.execute_script(CHART_TOTAL, ep)
    assert before == 0, "no traffic yet"

    stop = threading.Event()
    sent = []

    def traffic():
        deadline = time.time() + 30
        while not stop.is_set() and time.time() < deadline:
            runtime.invoke_endpoint(EndpointName=ep, Body=b"x")
            sent.append(1)
            time.sleep(0.005)

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    try:
        first = wait_for(lambda: browser.execute_script(CHART_TOTAL, ep), "traffic in the invocations chart")
        # The charts keep moving while traffic runs.
        wait_for(lambda: browser.execute_script(CHART_TOTAL, ep) > first * 1.5, "the chart growing")
        wait_for(lambda: float(cell(browser, ep, "Variant1", "rps") or 0) > 0, "requests per second")
        wait_for(lambda: cell(browser, ep, "Variant2", "p50") not in ("", "–"), "a latency percentile")
        assert cell(browser, ep, "Variant1", "errors") == "0.0%"

        sm.update_endpoint_weights_and_capacities(
            EndpointName=ep,
            DesiredWeightsAndCapacities=[{"VariantName": "Variant1", "DesiredWeight": 1}, {"VariantName": "Variant2", "DesiredWeight": 3}],
        )
        row = f'#endpoint-{ep} tr[data-variant="Variant1"]'
        wait_for(lambda: "25%" in browser.find_element(By.CSS_SELECTOR, row).text, "the new weights")
        wait_for(
            lambda: any("WeightsChanged" in li.text and ep in li.text for li in browser.find_elements(By.CSS_SELECTOR, "#events li")),
            "the weight change event",
        )
        assert any("InstanceStarted" in li.text for li in browser.find_elements(By.CSS_SELECTOR, "#events li"))
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))
    finally:
        stop.set()
        sender.join()
    assert sent

    # Served by berth alone: every script and style came from the server itself.
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(r => r.name)")
    assert resources and all(r.startswith(berth.url) for r in resources), resources
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors
    assert browser.execute_script("return window.berthDashboard.failures") == 0


def test_dashboard_assets_and_empty_state(berth, browser):
    import requests

    for path, kind in (("/ui", "text/html"), ("/ui/assets/dashboard.js", "text/javascript"), ("/ui/assets/uPlot.min.css", "text/css")):
        r = requests.get(berth.url + path, timeout=10)
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind), path
    assert requests.get(berth.url + "/ui/assets/nope.js", timeout=10).status_code == 404
    # Filtering to an endpoint that is not there shows the hint, not an error.
    browser.get(f"{berth.url}/ui")
    wait_for(lambda: browser.execute_script("return window.berthDashboard.updates") > 0, "an update")
    browser.execute_script("""
        const s = document.querySelector('#endpoint-filter');
        s.append(new Option('gone', 'gone')); s.value = 'gone'; s.dispatchEvent(new Event('change'));
    """)
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#endpoints .empty"), "the empty state")
