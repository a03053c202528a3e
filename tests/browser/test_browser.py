"""The dashboard in a real browser (Debian's chromium through Playwright, headless).

The app is served by waitress on 127.0.0.1 (a free port) over a store holding the Xiaobai
camera's setup and two-way talk, replayed as if now. The tests log in, see the devices and
alerts, rename a device, acknowledge an alert, watch a page refresh itself, switch to French,
check that the strict CSP is never violated, and save a screenshot of every page into
tests/artifacts/ (gitignored). In CI a missing chromium fails the tests.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboard.serve import make_server
from tests.conftest import require_tool
from tests.test_dashboard import CAMERA, PASSWORD, make_app, replayed_store

ARTIFACTS = Path(__file__).parents[1] / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("browser")
    store = replayed_store(state)
    server = make_server(make_app(state, store), "127.0.0.1:0")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield {"url": server.url.rstrip("/"), "store": store}
    server.close()
    thread.join(5)
    store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = require_tool("chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, served: dict[str, Any]) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(10000)
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security" in m.text else 0)
    page.on("request", lambda r: violations.append(r.url) if "127.0.0.1" not in r.url else 0)
    page.goto(served["url"] + "/login")
    page.screenshot(path=str(_shot("login")), full_page=True)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(served["url"] + "/")
    yield page
    context.close()
    assert not violations, f"CSP violations or requests leaving the box: {violations}"


def _shot(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / f"dashboard-{name}.png"


def test_home_devices_and_device_pages(page: Any, served: dict[str, Any]) -> None:
    assert page.locator("h1").inner_text() == "What your devices did"
    assert page.get_by_text("Mi Home camera chuangmi.camera.060a02").first.is_visible()
    assert page.locator("svg.bars rect.foreign").count() >= 1
    page.screenshot(path=str(_shot("home")), full_page=True)
    page.click("nav >> text=Devices")
    assert page.locator("table.devices tbody tr").count() == 2
    page.screenshot(path=str(_shot("devices")), full_page=True)
    page.click(f"a[href='/devices/{CAMERA}']")
    assert page.locator("svg.timeline rect.burst.audio").count() >= 1
    page.screenshot(path=str(_shot("device")), full_page=True)


def test_rename_a_device(page: Any, served: dict[str, Any]) -> None:
    page.goto(served["url"] + "/devices")
    row = page.locator("tr", has_text=CAMERA)
    row.locator("summary").click()
    row.locator("input[name=label]").fill("Baby monitor")
    row.get_by_role("button", name="Rename").click()
    page.wait_for_url(served["url"] + "/devices")
    assert page.get_by_text("Name saved.").is_visible()
    assert page.locator("a.device-name", has_text="Baby monitor").is_visible()
    assert served["store"].device(CAMERA)["label"] == "Baby monitor"


def test_acknowledge_an_alert(page: Any, served: dict[str, Any]) -> None:
    page.goto(served["url"] + "/alerts")
    page.screenshot(path=str(_shot("alerts")), full_page=True)
    before = page.locator("li.alert").count()
    first = page.locator("li.alert").first
    title = first.locator("strong").inner_text()
    first.get_by_role("button", name="Mark as seen").click()
    assert page.get_by_text("Alert marked as seen.").is_visible()
    assert page.locator("li.alert").count() == before - 1
    seen = [a for a in served["store"].alerts() if a["acknowledged"]]
    assert [a["title"] for a in seen] == [title]


def test_pages_refresh_themselves_when_the_store_changes(page: Any, served: dict[str, Any]) -> None:
    page.goto(served["url"] + "/alerts")
    count = page.locator("li.alert").count()
    page.wait_for_timeout(600)  # the first poll records the stamp
    alert = next(a for a in served["store"].alerts() if not a["acknowledged"])
    served["store"].acknowledge_alert(alert["id"])
    expect = pytest.importorskip("playwright.sync_api").expect
    expect(page.locator("li.alert")).to_have_count(count - 1, timeout=12000)


def test_other_pages(page: Any, served: dict[str, Any]) -> None:
    for name, path, heading in (
        ("rules", "/rules", "Rules"),
        ("settings", "/settings", "Settings"),
        ("about", "/about", "About the sample captures"),
    ):
        page.goto(served["url"] + path)
        assert page.locator("h1").inner_text() == heading
        page.screenshot(path=str(_shot(name)), full_page=True)
    page.goto(served["url"] + "/report")
    assert page.locator("h1").inner_text() == "What your connected devices did"
    page.screenshot(path=str(_shot("report")), full_page=True)


def test_switch_to_french(page: Any, served: dict[str, Any]) -> None:
    page.click("text=Français")
    page.wait_for_url(re.compile(r".*/$"))
    assert page.locator("h1").inner_text() == "Ce qu\u2019ont fait vos appareils"
    assert page.locator("html").get_attribute("lang") == "fr"
    page.screenshot(path=str(_shot("home-fr")), full_page=True)
    page.click("nav >> text=Appareils")
    assert page.get_by_text("Pourquoi nous le pensons").count() == 0
    assert page.get_by_role("columnheader", name="Ce qui nous le fait penser").is_visible()
    page.screenshot(path=str(_shot("devices-fr")), full_page=True)
    page.goto(served["url"] + "/report")
    assert page.get_by_text("Ce que vous pouvez faire").is_visible()
    page.screenshot(path=str(_shot("report-fr")), full_page=True)
