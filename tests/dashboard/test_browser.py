"""The dashboard in real headless Chromium, against a real API over the seeded Coinbase hour.

The chart is read back from the page itself: the data plotly.js drew (``_fullData`` of the graph div, typed
arrays decoded) and its SVG (that the RSI and MACD panels have drawn lines).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from infra.local.servers import ApiServer, DashboardServer, basic_authorization
from tests.dashboard.seed import BTC, SKL, Seeded, write_bar
from tickflow.settings import reveal

pytestmark = pytest.mark.browser

T = TypeVar("T")

FIGURE_JS = """
const gd = document.querySelector('#chart .js-plotly-plot');
if (!gd || !gd._fullData) { return null; }
return {
  traces: gd._fullData.map(t => ({
    type: t.type, name: t.name,
    x: t.x ? Array.from(t.x) : [],
    y: t.y ? Array.from(t.y) : [],
    close: t.close ? Array.from(t.close) : [],
  })),
  annotations: (gd.layout.annotations || []).map(a => a.text),
};
"""

# Non-empty line paths drawn in a subplot (x3y3: RSI, x4y4: MACD).
DRAWN_LINES_JS = """
return Array.from(document.querySelectorAll('#chart g.' + arguments[0] + ' path.js-line'))
  .filter(p => (p.getAttribute('d') || '').length > 20).length;
"""

BADGES_JS = "return Array.from(document.querySelectorAll('#anomalies tbody .badge')).map(b => b.textContent);"


def wait_for(driver: webdriver.Chrome, check: Callable[[], T | None], timeout: float = 20.0) -> T:
    """The first truthy result of ``check`` (polled); AssertionError with what the page shows on timeout."""
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda _: check())
    except TimeoutException:
        raise AssertionError(f"timed out after {timeout} s; the page shows: {describe(driver)}") from None


def describe(driver: webdriver.Chrome) -> str:
    """The controls' values, the candles (count, first and last time) and the notice, for failure messages."""
    selected = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".pills .selected, #symbol-value")]
    trace = candles(driver)
    shown = f"{len(trace['x'])} candles {trace['x'][0]}..{trace['x'][-1]}" if trace else "no candles"
    return f"controls {selected}; {shown}; notice {notice_text(driver)!r}"


def figure(driver: webdriver.Chrome) -> dict[str, Any] | None:
    return driver.execute_script(FIGURE_JS)


def candles(driver: webdriver.Chrome) -> dict[str, Any] | None:
    """The candlestick trace the page shows (x as ``YYYY-MM-DD HH:MM:SS`` strings, close)."""
    shown = figure(driver)
    if not shown:
        return None
    return next((t for t in shown["traces"] if t["name"] == "OHLC"), None)


def expected_x(bars: pd.DataFrame) -> list[str]:
    return list(bars["window_start"].dt.tz_convert("UTC").dt.strftime("%Y-%m-%d %H:%M:%S"))


def shows(driver: webdriver.Chrome, bars: pd.DataFrame) -> dict[str, Any] | None:
    """The candle trace once it equals ``bars`` (times and closes), else None."""
    trace = candles(driver)
    if trace is None:
        return None
    x = [value.replace("T", " ")[:19] for value in trace["x"]]
    return trace if x == expected_x(bars) and trace["close"] == list(bars["close"]) else None


def severe_console_entries(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def element(driver: webdriver.Chrome, by: str, selector: str) -> WebElement:
    """The element once the page has rendered it."""
    return wait_for(driver, lambda: driver.find_elements(by, selector))[0]


def click_pill(driver: webdriver.Chrome, group: str, value: str) -> None:
    element(driver, By.XPATH, f"//div[@id='{group}']//label[.//input[@value='{value}']]").click()


def choose_symbol(driver: webdriver.Chrome, symbol: str) -> None:
    element(driver, By.ID, "symbol").click()
    element(driver, By.CSS_SELECTOR, "input.dash-dropdown-search").send_keys(symbol)
    element(
        driver, By.XPATH, f"//label[contains(@class, 'dash-dropdown-option')][.//input[@value='{symbol}']]"
    ).click()
    wait_for(driver, lambda: driver.find_element(By.ID, "symbol-value").text == symbol)


def notice_text(driver: webdriver.Chrome) -> str:
    element = driver.find_element(By.ID, "notice")
    return element.text if element.is_displayed() else ""


@pytest.fixture
def page(browser: webdriver.Chrome, dashboard_server: DashboardServer) -> webdriver.Chrome:
    """A freshly loaded dashboard (defaults: first listed symbol BTC-USD, 1m, 6H)."""
    if dashboard_server.auth is not None:  # auth is on: every request of the page carries the login
        key = reveal(dashboard_server.settings.api_keys[0])
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd(
            "Network.setExtraHTTPHeaders", {"headers": {"Authorization": basic_authorization(key)}}
        )
    browser.get(dashboard_server.url)
    browser.get_log("browser")  # forget earlier pages' entries
    return browser


def test_page_loads_without_console_errors_and_draws_every_panel(
    page: webdriver.Chrome, seeded: Seeded, artifacts: Path
) -> None:
    hour = seeded.bars[(BTC, "1m")]
    wait_for(page, lambda: shows(page, hour))
    shown = figure(page)
    assert shown is not None
    names = {t["name"] for t in shown["traces"]}
    assert {"OHLC", "VWAP", "Bollinger (20, 2)", "Volume", "RSI 14", "MACD", "Signal", "Histogram"} <= names
    assert "Predicted close" in names and "Anomaly" in names
    traces = {t["name"]: t for t in shown["traces"]}
    # the prediction: the seeded naive model's next closes (the last 6 closes, one bar later) and its band
    assert traces["Predicted close"]["y"] == list(hour["close"].iloc[-6:])
    assert traces["Prediction band"]["y"] == pytest.approx(list(hour["close"].iloc[-6:] * 0.999))
    # Bollinger (20, 2): lower (the legend trace) and upper around the middle wherever the window is full
    ind = seeded.indicators[(BTC, "1m")]
    lower, upper = traces["Bollinger (20, 2)"]["y"], traces["BB upper"]["y"]
    full = ind["bb_lower"].notna().to_numpy()
    assert sum(v is not None for v in lower) == full.sum() > 0
    assert all(lo < up for lo, up, ok in zip(lower, upper, full, strict=True) if ok)
    # drawn in the candle panel: Bollinger upper, lower, middle, VWAP and the predicted close at least
    assert wait_for(page, lambda: page.execute_script(DRAWN_LINES_JS, "xy")) >= 5
    assert wait_for(page, lambda: page.execute_script(DRAWN_LINES_JS, "x3y3")) >= 1  # RSI
    assert wait_for(page, lambda: page.execute_script(DRAWN_LINES_JS, "x4y4")) >= 2  # MACD and signal
    rsi = next(t for t in shown["traces"] if t["name"] == "RSI 14")
    assert rsi["y"][-1] == pytest.approx(seeded.indicators[(BTC, "1m")]["rsi_14"].iloc[-1])
    health = wait_for(page, lambda: page.find_element(By.ID, "health").text)
    assert "ready" in health and "unreachable" in health  # the API answers; the dead metrics port is named
    table = wait_for(page, lambda: page.find_elements(By.CSS_SELECTOR, "#anomalies tbody tr"))
    assert len(table) == min((seeded.anomalies["symbol"] == BTC).sum(), 50) > 0
    assert "LIVE" in page.find_element(By.ID, "status").text
    assert f"{hour['close'].iloc[-1]:,.2f}" in page.find_element(By.ID, "quote").text
    page.save_screenshot(str(artifacts / "dashboard.png"))
    assert severe_console_entries(page) == []


@pytest.mark.parametrize(("interval", "count"), [("1m", 60), ("5m", 12), ("15m", 4)])
def test_interval_switch_shows_the_hours_candles(
    page: webdriver.Chrome, seeded: Seeded, interval: str, count: int
) -> None:
    wait_for(page, lambda: candles(page))
    click_pill(page, "range", "1H")
    click_pill(page, "interval", interval)
    expected = seeded.bars[(BTC, interval)]
    assert len(expected) == count
    trace = wait_for(page, lambda: shows(page, expected))
    assert len(trace["x"]) == count
    assert severe_console_entries(page) == []


def test_symbol_switch_changes_the_figure_and_says_what_is_missing(
    page: webdriver.Chrome, seeded: Seeded, artifacts: Path
) -> None:
    wait_for(page, lambda: shows(page, seeded.bars[(BTC, "1m")]))
    choose_symbol(page, SKL)
    click_pill(page, "interval", "5m")
    wait_for(page, lambda: shows(page, seeded.bars[(SKL, "5m")]))
    choose_symbol(page, "ETH-USD")
    assert wait_for(page, lambda: "No bars yet for ETH-USD 5m" in (figure(page) or {}).get("annotations", []))
    assert candles(page) is None
    click_pill(page, "interval", "15m")
    assert wait_for(
        page, lambda: "No bars yet for ETH-USD 15m" in (figure(page) or {}).get("annotations", [])
    )
    page.save_screenshot(str(artifacts / "dashboard-empty.png"))
    assert severe_console_entries(page) == []


def test_a_new_bar_appears_live(
    page: webdriver.Chrome, seeded: Seeded, dashboard_server: DashboardServer, artifacts: Path
) -> None:
    everything = seeded.bars[(SKL, "1m")]
    choose_symbol(page, SKL)
    wait_for(page, lambda: shows(page, everything.iloc[:-1]))
    write_bar(dashboard_server.settings, seeded.held_back)
    trace = wait_for(page, lambda: shows(page, everything), timeout=10)  # no click: the live refresh
    assert len(trace["x"]) == len(everything)
    page.save_screenshot(str(artifacts / "dashboard-live.png"))
    assert severe_console_entries(page) == []


def test_api_outage_shows_a_notice_and_keeps_the_chart(
    page: webdriver.Chrome, seeded: Seeded, api_server: ApiServer, artifacts: Path
) -> None:
    hour = seeded.bars[(BTC, "1m")]
    wait_for(page, lambda: shows(page, hour))
    api_server.stop()
    try:
        assert "API unreachable" in wait_for(page, lambda: notice_text(page))
        assert "STALE" in page.find_element(By.ID, "status").text
        assert shows(page, hour)  # the cached bars stay on screen
        wait_for(page, lambda: "down" in page.find_element(By.ID, "health").text)
        page.save_screenshot(str(artifacts / "dashboard-api-down.png"))
    finally:
        api_server.start()
    wait_for(page, lambda: notice_text(page) == "" and "LIVE" in page.find_element(By.ID, "status").text)
    assert shows(page, hour)
    assert severe_console_entries(page) == []


def test_the_anomaly_table_filters_by_severity(
    page: webdriver.Chrome, seeded: Seeded, artifacts: Path
) -> None:
    wait_for(page, lambda: shows(page, seeded.bars[(BTC, "1m")]))
    ours = seeded.anomalies[seeded.anomalies["symbol"] == BTC]
    severity = ours["severity"].value_counts().index[0]
    element(page, By.ID, "anomaly-severities").click()
    element(
        page,
        By.XPATH,
        f"//div[@id='anomaly-severities']/following::label[contains(@class, 'dash-dropdown-option')]"
        f"[.//input[@value='{severity}']] | //label[contains(@class, 'dash-dropdown-option')]"
        f"[.//input[@value='{severity}']]",
    ).click()

    def badges() -> list[str] | None:
        shown = page.execute_script(BADGES_JS)  # atomically: the table is re-rendered every refresh
        return shown if shown and set(shown) == {severity} else None

    assert len(wait_for(page, badges)) == min((ours["severity"] == severity).sum(), 50)
    assert "no status from `tickflow ml serve`" in page.find_element(By.ID, "health").text  # its state card
    page.save_screenshot(str(artifacts / "dashboard-anomaly-filter.png"))
    assert severe_console_entries(page) == []
