"""The web console in a real headless Chromium against a real `observer up --demo` (authentication off).

Each view is opened by its URL, must show the demo's own data (component names, log lines, span names, the
frontend -> cart -> payments calls with their counts), and is photographed into docs/screenshots/. An incident
acknowledged with the console's button must be acknowledged through the API too. axe-core (vendored in
tests/data, never shipped with the console) runs in each page: no serious or critical violations.
A line sent over OTLP while the page tails must appear over the live tail, and an application instrumented with
the plain OpenTelemetry SDK (no OpenChoreo attribute) must be found by its component name (tests/e2e/console_rig.py
sends both).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import yaml
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver import Chrome as WebDriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement

from devservers.browser import chromium
from devservers.observer import AllInOne, observer_up
from devservers.receivers import SmtpServer
from observer.demo import DEMO_PLATFORM, Workload
from tests.e2e.console_rig import PlainApp, send_json_log

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
AXE = ROOT / "tests" / "data" / "axe.min.js"
WAIT_S = 90  # the demo's history is written while the observer already answers; the first pages may wait for it
RULE = "cart-payment-declines"
SHOP = {"namespace": "demo", "project": "shop", "environment": "production"}
CART = {**SHOP, "component": "cart"}
#: A plain OpenTelemetry application (no OpenChoreo attribute), and the scope its semantic conventions give it.
PLAIN_APP = {"service.name": "plain-shop-api", "service.namespace": "plain", "deployment.environment.name": "staging"}
PLAIN = {"namespace": "plain", "project": "plain", "component": "plain-shop-api", "environment": "staging"}
PLAIN_LINES = ("plain order 41 accepted", "plain order 42 accepted")
PLAIN_ROUTE = "POST /plain-orders"
SENT_WAIT_S = 10  # a line sent while the page is open reaches it in about a second; this bounds the wait


@dataclass(frozen=True)
class Console:
    plane: AllInOne
    driver: WebDriver
    incident_id: str


def _manifest(smtp: SmtpServer) -> str:
    """A log rule on demo/shop/cart/production with incidents on, and one e-mail channel (a real SMTP server)."""
    labels = {
        "openchoreo.dev/namespace": "demo",
        "openchoreo.dev/project": "shop",
        "openchoreo.dev/component": "cart",
        "openchoreo.dev/environment": "production",
        "openchoreo.dev/project-uid": DEMO_PLATFORM["project_uid"],
        "openchoreo.dev/component-uid": DEMO_PLATFORM["components"]["cart"],
        "openchoreo.dev/environment-uid": DEMO_PLATFORM["environments"]["production"],
    }
    docs = [
        {
            "apiVersion": "openchoreo.dev/v1alpha1",
            "kind": "ObservabilityAlertRule",
            "metadata": {"name": RULE, "namespace": "demo", "labels": labels},
            "spec": {
                "name": RULE,
                "severity": "critical",
                "description": "payments declined at checkout",
                "source": {"type": "log", "query": "declined"},
                "condition": {"window": "5m", "interval": "1m", "operator": "gt", "threshold": 1_000_000},
                "actions": {"notifications": {"channels": ["oncall-mail"]}, "incident": {"enabled": True}},
            },
        },
        {
            "apiVersion": "openchoreo.dev/v1alpha1",
            "kind": "ObservabilityAlertsNotificationChannel",
            "metadata": {"name": "oncall-mail", "namespace": "demo"},
            "spec": {
                "environment": "production",
                "type": "email",
                "emailConfig": {
                    "from": "observer@example.org",
                    "to": ["oncall@example.org"],
                    "smtp": {"host": smtp.host, "port": smtp.port},
                },
            },
        },
    ]
    return yaml.safe_dump_all(docs)


def _window(minutes: int = 15) -> dict[str, str]:
    end = datetime.now(UTC) + timedelta(minutes=1)
    return {"startTime": (end - timedelta(minutes=minutes + 1)).isoformat(), "endTime": end.isoformat()}


def _until(what: str, probe: Callable[[], Any], timeout_s: float = WAIT_S) -> Any:
    """Polls `probe` until it returns something truthy, for at most `timeout_s`; the failure names what never
    happened. An element replaced while it was read (the page re-rendered) counts as not yet."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = probe()
        except (StaleElementReferenceException, NoSuchElementException):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {what}")
        time.sleep(0.5)


def _attr(element: WebElement, name: str) -> str:
    return element.get_attribute(name) or ""


def _topology_edges(api: str) -> set[tuple[str, str]]:
    body = {**_window(), "searchScope": SHOP}
    answer = httpx.post(f"{api}/api/v1alpha1/metrics/runtime-topology", json=body, timeout=30).json()
    return {
        (edge["source"].get("component", ""), edge["target"].get("component", ""))
        for edge in answer.get("edges", [])
        if edge.get("metrics", {}).get("requestCount", 0) > 0
    }


def _incidents(api: str) -> list[dict[str, Any]]:
    body = {**_window(), "searchScope": {"namespace": "demo"}, "limit": 100}
    response = httpx.post(f"{api}/api/v1alpha1/incidents/query", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["incidents"]


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    base = tmp_path_factory.mktemp("console")
    data = base / "observer"
    with SmtpServer(base, starttls=False, auth=False) as smtp:
        applied = subprocess.run(
            [sys.executable, "-m", "observer.cli", "rules", "apply", "-f", "-", "--data-dir", str(data)],
            input=_manifest(smtp),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert applied.returncode == 0, applied.stderr
        with observer_up(data, "--demo") as plane:
            fired = httpx.post(
                f"{plane.internal}/api/v1alpha1/alerts/webhook",
                json={"ruleName": RULE, "ruleNamespace": "demo", "alertValue": 7},
                timeout=30,
            )
            assert fired.status_code == 200, fired.text
            incidents = _until("an incident for the fired alert", lambda: _incidents(plane.api))
            _until(
                "frontend -> cart -> payments traffic",
                lambda: {("frontend", "cart"), ("cart", "payments")} <= _topology_edges(plane.api),
            )
            with chromium(log_file=base / "chromedriver.log") as driver:
                yield Console(plane, driver, incidents[0]["incidentId"])


def _open(console: Console, view: str, **params: str) -> None:
    console.driver.get(f"{console.plane.api}/#/{view}?{urlencode(params)}")


def _text_of(driver: WebDriver, css: str) -> str:
    return " ".join(element.text for element in driver.find_elements(By.CSS_SELECTOR, css))


def _wait_text(driver: WebDriver, css: str, *needles: str) -> str:
    def probe() -> str:
        text = _text_of(driver, css)
        return text if all(needle in text for needle in needles) else ""

    try:
        return _until(f"{needles} in {css}", probe)
    except AssertionError:
        shown = driver.find_element(By.ID, "main").text[-1500:]
        raise AssertionError(f"never {needles} in {css}; the page shows:\n{shown}") from None


def _shoot(driver: WebDriver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def _no_console_errors(driver: WebDriver) -> None:
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


def test_the_page_is_served_with_its_headers(console: Console) -> None:
    page = httpx.get(f"{console.plane.api}/", timeout=30)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-cache"
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "default-src 'none'" in csp
    assert "http" not in csp  # auth off: nothing but 'self'
    again = httpx.get(f"{console.plane.api}/", headers={"If-None-Match": page.headers["etag"]}, timeout=30)
    assert again.status_code == 304 and not again.content
    module = httpx.get(f"{console.plane.api}/console/js/main.js", timeout=30)
    assert module.status_code == 200 and module.headers["content-type"] == "text/javascript; charset=utf-8"
    missing = httpx.get(f"{console.plane.api}/console/../app.py", timeout=30)
    assert missing.status_code == 404
    assert set(missing.json()) == {"title", "errorCode", "message"}
    config = httpx.get(f"{console.plane.api}/console/config.json", timeout=30).json()
    assert config["auth"]["enabled"] is False


def test_logs_view_shows_the_components_lines_and_opens_a_trace(console: Console) -> None:
    driver = console.driver
    _open(console, "logs", **CART)
    text = _wait_text(driver, "table.logs tbody", "cart", "/checkout")
    assert "checkout" in text
    first_time = driver.find_element(By.CSS_SELECTOR, "table.logs tbody time")
    assert _attr(first_time, "title").endswith("(UTC)")  # local time shown, UTC on hover
    _shoot(driver, "logs")
    _no_console_errors(driver)

    link = driver.find_element(By.CSS_SELECTOR, "table.logs tbody a[data-trace]")
    trace_id = _attr(link, "data-trace")
    link.click()
    _until("the traces view", lambda: "#/traces" in driver.current_url and f"trace={trace_id}" in driver.current_url)
    _wait_text(driver, ".trace-detail", f"Trace {trace_id}", "Log lines of this trace", "cart")
    _wait_text(driver, ".trace-logs table", "cart")


def test_the_pickers_offer_the_scopes_the_caller_may_query(console: Console) -> None:
    driver = console.driver
    driver.get(f"{console.plane.api}/")  # nothing chosen yet: the first scope of each kind, from /scopes
    _until("log lines of the first component", lambda: driver.find_elements(By.CSS_SELECTOR, "table.logs tbody tr"))
    picked = {key: _attr(driver.find_element(By.NAME, key), "value") for key in ("namespace", "project")}
    assert picked == {"namespace": "demo", "project": "shop"}
    options = driver.find_elements(By.CSS_SELECTOR, "datalist option")
    offered = {_attr(option, "value") for option in options}
    assert {"frontend", "catalog", "cart", "payments", "development", "production"} <= offered


def test_logs_filters_live_in_the_url_and_survive_a_reload(console: Console) -> None:
    driver = console.driver
    _open(console, "logs", **CART)
    _wait_text(driver, "table.logs tbody", "cart")
    phrase = driver.find_element(By.NAME, "phrase")
    phrase.send_keys("checkout", Keys.ENTER)  # Enter submits the form: the keyboard path
    driver.find_element(By.CSS_SELECTOR, "input[name='level'][value='ERROR']").click()
    driver.find_element(By.CSS_SELECTOR, "form.filters button[type='submit']").click()
    _until("the filters in the URL", lambda: "phrase=checkout" in driver.current_url and "ERROR" in driver.current_url)
    driver.refresh()
    _until("the phrase restored", lambda: _attr(driver.find_element(By.NAME, "phrase"), "value") == "checkout")
    assert driver.find_element(By.CSS_SELECTOR, "input[name='level'][value='ERROR']").is_selected()
    _wait_text(driver, "table.logs tbody", "checkout")
    levels = [badge.text for badge in driver.find_elements(By.CSS_SELECTOR, "table.logs tbody .badge.level")]
    assert levels and set(levels) <= {"ERROR", "FATAL"}


def test_live_tail_adds_new_lines(console: Console) -> None:
    driver = console.driver
    _open(console, "logs", **CART, sort="desc")
    _wait_text(driver, "table.logs tbody", "cart")
    newest = _attr(driver.find_element(By.CSS_SELECTOR, "table.logs tbody tr time"), "datetime")
    driver.execute_script("performance.setResourceTimingBufferSize(1000); performance.clearResourceTimings();")
    button = driver.find_element(By.XPATH, "//button[normalize-space()='Live tail']")
    button.click()
    assert _attr(button, "aria-pressed") == "true"
    _until("live=1 in the URL", lambda: "live=1" in driver.current_url)
    _until(
        "a line newer than the newest at the start",
        lambda: _attr(driver.find_element(By.CSS_SELECTOR, "table.logs tbody tr time"), "datetime") > newest,
    )
    queries = driver.execute_script(
        "return performance.getEntriesByType('resource').filter((e) => e.name.endsWith('/api/v1/logs/query')).length"
    )
    assert queries == 0  # the new lines came over the server-sent events, not by asking again
    button.click()
    assert _attr(button, "aria-pressed") == "false"


def test_traces_view_lists_and_shows_a_waterfall(console: Console) -> None:
    driver = console.driver
    _open(console, "traces", **SHOP)
    _wait_text(driver, "table.traces tbody", "GET /checkout")
    _shoot(driver, "traces")
    checkout = driver.find_element(By.XPATH, "//table[contains(@class,'traces')]//a[text()='GET /checkout']")
    checkout.click()
    waterfall = _wait_text(driver, ".waterfall", "GET /checkout", "POST /payments/charge", "payments")
    assert waterfall.index("GET /checkout") < waterfall.index("POST /payments/charge")  # callers first
    spans = driver.find_elements(By.CSS_SELECTOR, ".waterfall button")
    spans[-1].click()
    _wait_text(driver, ".attributes", "Span attributes", "Resource attributes", "openchoreo.dev/component")
    _until("the span in the URL", lambda: "span=" in driver.current_url)
    _wait_text(driver, ".trace-logs", "payments")
    _shoot(driver, "trace")
    assert not _axe(driver)
    _no_console_errors(driver)


def test_metrics_view_draws_resource_and_http_charts(console: Console) -> None:
    driver = console.driver
    _open(console, "metrics", **CART, step="1m")
    text = _wait_text(driver, ".charts", "CPU usage", "Memory usage", "Network", "Disk", "Request rate", "Latency")
    assert "No data" not in text
    lines = driver.find_elements(By.CSS_SELECTOR, ".charts polyline")
    assert len(lines) >= 14 and all(_attr(line, "points") for line in lines)
    _shoot(driver, "metrics")


def test_topology_view_shows_frontend_cart_payments_with_counts(console: Console) -> None:
    driver = console.driver
    _open(console, "topology", **SHOP)
    _wait_text(driver, "table.edges tbody", "frontend", "cart", "payments")
    rows = {
        tuple(cell.text for cell in row.find_elements(By.TAG_NAME, "td"))
        for row in driver.find_elements(By.CSS_SELECTOR, "table.edges tbody tr")
    }
    calls = {(row[0], row[1]): int(row[2]) for row in rows}
    assert calls[("frontend", "cart")] > 0 and calls[("cart", "payments")] > 0
    label = _attr(driver.find_element(By.CSS_SELECTOR, "svg.topology"), "aria-label")
    assert "frontend to cart" in label and "cart to payments" in label and "% err" in label
    assert len(driver.find_elements(By.CSS_SELECTOR, "svg.topology g.node")) >= 4
    _shoot(driver, "topology")


def test_an_incident_acknowledged_in_the_browser_is_acknowledged_in_the_api(console: Console) -> None:
    driver = console.driver
    _open(console, "alerts", namespace="demo")
    _wait_text(driver, "table.alerts", RULE)
    row = f"tr[data-incident='{console.incident_id}']"
    _wait_text(driver, row, "active")
    _shoot(driver, "alerts")
    driver.find_element(By.CSS_SELECTOR, f"{row} button[aria-label^='Acknowledge']").click()
    _wait_text(driver, row, "acknowledged")
    (incident,) = [item for item in _incidents(console.plane.api) if item["incidentId"] == console.incident_id]
    assert incident["status"] == "acknowledged" and "acknowledgedAt" in incident


def test_keyboard_reaches_the_navigation(console: Console) -> None:
    driver = console.driver
    _open(console, "logs", **CART)
    driver.refresh()  # a fresh document: focus starts at its top, not on a control an earlier test used
    _wait_text(driver, "table.logs tbody", "cart")
    ActionChains(driver).send_keys(Keys.TAB).perform()
    assert driver.switch_to.active_element.get_attribute("textContent") == "Skip to content"
    ActionChains(driver).send_keys(Keys.TAB).perform()
    assert driver.switch_to.active_element.get_attribute("textContent") == "Logs"
    ActionChains(driver).send_keys(Keys.TAB, Keys.ENTER).perform()
    _until("the traces view by keyboard", lambda: "#/traces" in driver.current_url)
    _wait_text(driver, "main h2", "Traces")


def _axe(driver: WebDriver) -> list[dict[str, Any]]:
    driver.execute_script(AXE.read_text())
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then((r) => done(JSON.stringify(r.violations)),"
        " (e) => done(JSON.stringify([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}])));"
    )
    return [v for v in json.loads(result) if v.get("impact") in ("serious", "critical")]


@pytest.mark.parametrize(
    ("view", "params", "ready"),
    [
        ("logs", CART, "table.logs tbody tr"),
        ("traces", SHOP, "table.traces tbody tr"),
        ("metrics", CART, ".charts figure"),
        ("topology", SHOP, "table.edges tbody tr"),
        ("alerts", {"namespace": "demo"}, "table.alerts tbody tr"),
    ],
)
def test_no_serious_accessibility_violations(console: Console, view: str, params: dict, ready: str) -> None:
    _open(console, view, **params)
    _until(f"{view} rendered", lambda: console.driver.find_elements(By.CSS_SELECTOR, ready))
    violations = _axe(console.driver)
    assert not violations, [
        (v["id"], v["help"], [node.get("target") for node in v.get("nodes", [])][:3]) for v in violations
    ]


def _log_queries(driver: WebDriver) -> int:
    """How many /api/v1/logs/query requests the page made since its resource timings were last cleared."""
    return driver.execute_script(
        "return performance.getEntriesByType('resource').filter((e) => e.name.endsWith('/api/v1/logs/query')).length"
    )


def test_live_tail_shows_a_line_sent_over_otlp_after_the_page_opened(console: Console) -> None:
    driver = console.driver
    _open(console, "logs", **CART, sort="desc")
    driver.refresh()  # a fresh document: no tail left running by an earlier test
    _wait_text(driver, "table.logs tbody", "cart")
    newest = _attr(driver.find_element(By.CSS_SELECTOR, "table.logs tbody tr time"), "datetime")
    driver.execute_script("performance.setResourceTimingBufferSize(1000); performance.clearResourceTimings();")
    button = driver.find_element(By.XPATH, "//button[normalize-space()='Live tail']")
    button.click()
    _until("live=1 in the URL", lambda: "live=1" in driver.current_url)
    # The tail sees what is ingested after it subscribed: a demo line arriving over it says the stream is open.
    _until(
        "the tail streaming (a demo line newer than the newest at the start)",
        lambda: _attr(driver.find_element(By.CSS_SELECTOR, "table.logs tbody tr time"), "datetime") > newest,
    )
    text = f"live tail probe {uuid.uuid4().hex}"
    pod = Workload(component="cart", environment="production", pod="cart-live-probe-x2k4q", node="demo-worker-1")
    send_json_log(console.plane.otlp, pod.resource_attributes(), text)
    _until(
        f"{text!r} in the table",
        lambda: text in _text_of(driver, "table.logs tbody"),
        timeout_s=SENT_WAIT_S,
    )
    assert _log_queries(driver) == 0  # it came over the server-sent events, not by asking again
    button.click()
    assert _attr(button, "aria-pressed") == "false"


def _plain_app_known(api: str) -> bool:
    """The plain app's lines answer a logs query, and /scopes lists its component (the console reads both)."""
    body = {**_window(), "searchScope": PLAIN}
    logs = httpx.post(f"{api}/api/v1/logs/query", json=body, timeout=30)
    assert logs.status_code == 200, logs.text
    scopes = httpx.get(f"{api}/api/v1alpha1/scopes", timeout=30)
    assert scopes.status_code == 200, scopes.text
    listed = {
        component["name"]
        for namespace in scopes.json()["namespaces"]
        if namespace["name"] == PLAIN["namespace"]
        for project in namespace.get("projects", [])
        for component in project.get("components", [])
    }
    return len(logs.json()["logs"]) >= len(PLAIN_LINES) and PLAIN["component"] in listed


@pytest.fixture(scope="module")
def plain_app(console: Console) -> str:
    """Sends the plain app's requests (a span with a log line each) to the console's observer once it is up;
    returns when the observer answers for them, so a page opened afterwards has them to show."""
    app = PlainApp(console.plane.otlp, PLAIN_APP)
    try:
        for line in PLAIN_LINES:
            app.request(PLAIN_ROUTE, line)
    finally:
        app.close()
    _until("the plain app's lines and name at the observer", lambda: _plain_app_known(console.plane.api))
    return PLAIN["component"]


def test_a_plain_opentelemetry_app_is_found_by_component_name(console: Console, plain_app: str) -> None:
    driver = console.driver
    _open(console, "logs", **PLAIN)
    driver.refresh()  # a fresh document: the scopes are read once per page load, now with the plain app in them
    _wait_text(driver, "table.logs tbody", *PLAIN_LINES)
    picked = {key: _attr(driver.find_element(By.NAME, key), "value") for key in PLAIN}
    assert picked == PLAIN
    _until(
        "the component picker offering the plain app",
        lambda: (
            plain_app in {_attr(option, "value") for option in driver.find_elements(By.CSS_SELECTOR, "datalist option")}
        ),
    )
    _no_console_errors(driver)

    _open(console, "traces", **{key: PLAIN[key] for key in ("namespace", "project", "environment")})
    _wait_text(driver, "table.traces tbody", PLAIN_ROUTE)
