"""The admin page in a real headless browser (Debian's ``chromium`` + ``chromium-driver``, driven
by Selenium) against a running daemon and the simulators: it refuses without credentials,
loads with them, search finds the link, the link's history shows the writes the scenario made,
and a ticket subject carrying an XSS payload renders as text (no alert, no element made).

Without chromium the test skips with the reason; with ``CI=true`` or
``SYNCD_REQUIRE_BROWSER=1`` (``.ci/run`` sets it and installs chromium) it fails instead."""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Iterator

import pytest

from syncd.runtime import App
from syncd.sandbox import World, build_world
from syncd.testing import Observer, quiet, wait_for

from .conftest import enable_admin

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
XSS = "<img src=x onerror=alert(1)><script>alert(2)</script>"


def _browser_required() -> bool:
    return (os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
            or os.environ.get("SYNCD_REQUIRE_BROWSER") == "1")


def _unavailable(why: str) -> None:
    if _browser_required():
        pytest.fail(f"{why} (required: CI=true or SYNCD_REQUIRE_BROWSER=1)")
    pytest.skip(f"{why}; apt-get install chromium chromium-driver (CI installs them and fails without)")


@pytest.fixture
def browser() -> Iterator[Any]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if shutil.which(p) is None]
    if missing:
        _unavailable(f"no headless browser: {', '.join(missing)} absent")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (the test extra: pip install -e '.[test]')")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})   # to read the answers' status codes
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--disable-extensions", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)   # no driver download
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def world(tmp_path) -> Iterator[World]:
    w = build_world(tmp_path / "world", zendesk_poll=3600, jira_poll=3600, intercom_poll=3600)
    yield w
    w.stop()


def _statuses(driver: Any, url: str) -> list[int]:
    """The status of every answer to ``url`` the browser got since the last call."""
    found = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.responseReceived" and message["params"]["response"]["url"] == url:
            found.append(message["params"]["response"]["status"])
    return found


def _navigate(driver: Any, act: Any) -> None:
    """Do ``act`` (a click that loads a page) and wait until the new page replaced the old one."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait
    old = driver.find_element(By.TAG_NAME, "html")
    act()
    WebDriverWait(driver, 15).until(expected_conditions.staleness_of(old))
    WebDriverWait(driver, 15).until(lambda d: d.execute_script("return document.readyState") == "complete")


def _search(driver: Any, text: str) -> list[Any]:
    """Type ``text`` into the search box as a person would, submit, and return the result rows."""
    from selenium.webdriver.common.by import By
    box = driver.find_element(By.ID, "q")
    box.clear()
    box.send_keys(text)
    _navigate(driver, lambda: driver.find_element(By.ID, "search").click())
    assert driver.find_element(By.ID, "q").get_attribute("value") == text
    return driver.find_elements(By.CSS_SELECTOR, "#links tr")[1:]


def _no_alert(driver: Any) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    try:
        text = driver.switch_to.alert.text
    except NoAlertPresentException:
        return
    raise AssertionError(f"an alert opened: {text!r}")


def test_admin_page_in_a_real_browser(world: World, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    port, token = enable_admin(world)
    daemon = App.build(world.settings())
    daemon.start()
    try:
        look = Observer(world)
        z, j = world.zendesk, world.jira
        ticket = z.create_ticket(XSS, "The subject is an attack; the page must show it as text.")
        z.agent_set(ticket, add_tags=["jira_escalate"])
        key = wait_for(lambda: look.ticket(ticket).fields.get(f"custom:{world.field_id(9001)}"))
        assert key, "escalation did not happen"
        quiet(world, daemon)
        z.agent_set(ticket, priority="high")
        assert wait_for(lambda: look.issue(key).fields.get("priority") == "High")
        comment_id = j.engineer_comment(key, f"Engineer pasted {XSS}")
        quiet(world, daemon)
        base = f"http://127.0.0.1:{port}"

        # 1. No credentials: refused (Chromium waits for credentials it will not get), nothing shown.
        browser.get(base + "/links")
        assert _statuses(browser, base + "/links") == [401]
        assert not browser.find_elements(By.ID, "q") and "Links" not in browser.page_source

        # 2. With the token (sent as a bearer header by the browser on every request).
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Bearer {token}"}})
        browser.get(base + "/")
        assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Overview")
        assert _statuses(browser, base + "/") == [200]
        assert token not in browser.page_source

        # 3. Search by ticket, then by issue key: the link is found.
        _navigate(browser, lambda: browser.find_element(By.LINK_TEXT, "Links").click())
        rows = _search(browser, f"zendesk:{ticket}")
        assert len(rows) == 1 and f"zendesk:{ticket}" in rows[0].text and key in rows[0].text
        rows = _search(browser, key.lower())
        assert len(rows) == 1 and f"zendesk:{ticket}" in rows[0].text
        _navigate(browser, lambda: rows[0].find_element(By.TAG_NAME, "a").click())

        # 4. The link's history shows the scenario's writes.
        assert browser.find_element(By.TAG_NAME, "h1").text.endswith(f"zendesk:{ticket} ↔ {key}")
        history = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#history tr.entry")]
        assert any("create" in r and f"created for zendesk:{ticket}: {XSS}" in r for r in history), history
        assert any("field:priority" in r and "Medium → High" in r and "rule priority" in r for r in history), history
        assert any("comment" in r and f"{comment_id} →" in r and "webhook:jira" in r for r in history), history
        assert any("escalation: the issue was created for this item" in r for r in history), history
        base_rows = browser.find_element(By.ID, "base").text
        assert "priority high High" in base_rows

        # 5. The payload is text: visible literally, no element made from it, no alert.
        assert XSS in browser.find_element(By.ID, "history").text
        assert browser.find_elements(By.CSS_SELECTOR, "main img, main script") == []
        _no_alert(browser)
        assert browser.execute_script("return document.querySelectorAll('img[src=x]').length") == 0
    finally:
        daemon.stop()
