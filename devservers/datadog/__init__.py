"""A local Datadog for the tests: the documented request and response shapes of the endpoints the Observer's
Datadog backend calls, answered from what the fake's own intake received.

    fake = start_datadog()                 # a free loopback port, served from a background thread
    fake.url, fake.api_key, fake.app_key   # point the adapter (or the official client) here
    fake.fail("/api/v2/logs/events/search", status=429, count=3, retry_after=2)
    fake.fail("*", status=503, seconds=60) # an outage
    fake.reset(); fake.stop()

Endpoints: logs intake (`/api/v2/logs`), logs search (`/api/v2/logs/events/search`), metrics intake
(`/api/v2/series`), timeseries query (`/api/v2/query/timeseries`), OTLP/HTTP traces intake (`/v1/traces`),
spans search (`/api/v2/spans/events/search`), monitors (`/api/v1/monitor[/{id}]`, `/api/v1/monitor/validate`), the
Webhooks integration (`/api/v1/integration/webhooks/configuration/webhooks[/{name}]`) and, on `trigger`, the
webhook deliveries a monitor's state change causes (`webhooks.py`); the GET twins of both searches
(`/api/v2/logs/events`, `/api/v2/spans/events`), which `links.next` points at.
In Datadog the logs intake and the OTLP intake live on other hosts (`http-intake.logs.{site}`, `otlp.{site}`);
here one base URL serves all. Module map: `app.py` (routes, auth, faults), `models.py` (bodies checked with the
official client's models), `query.py` (search syntax), `paging.py` (time bounds, cursors), `logs.py`,
`metrics.py`, `traces.py`, `monitors.py`, `webhooks.py`, `store.py`, `faults.py`.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import httpx

from devservers.datadog.app import Fake, build_app
from devservers.local import serving

API_KEY = "fake-dd-api-key"
APP_KEY = "fake-dd-application-key"


@dataclass
class DatadogFake:
    """Handle on a running fake: where it is, its keys, and the test controls (`/_fake/*`)."""

    url: str
    api_key: str
    app_key: str
    state: Fake
    _server: AbstractContextManager[str]
    _http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self._http = httpx.Client(base_url=self.url, timeout=10)

    def reset(self) -> None:
        """Forget everything received, the monitors, injected failures, limits and request counts."""
        self._http.post("/_fake/reset").raise_for_status()

    def fail(
        self,
        path: str = "*",
        status: int = 503,
        *,
        count: int | None = None,
        seconds: float | None = None,
        retry_after: int | None = None,
    ) -> None:
        """The next `count` requests to `path` (default 1), or all of them for `seconds`, answer `status`."""
        body = {"path": path, "status": status, "count": count, "seconds": seconds, "retry_after": retry_after}
        self._http.post("/_fake/fail", json=body).raise_for_status()

    def limit(self, name: str, limit: int, period: int = 3600) -> None:
        """Sets rate limit `name` (logs_query, spans_query, timeseries_query, monitors)."""
        self._http.post("/_fake/limit", json={"name": name, "limit": limit, "period": period}).raise_for_status()

    def partial(self, count: int = 1) -> None:
        """The next `count` searches answer `meta.status: timeout` with a warning and a shorter page."""
        self._http.post("/_fake/partial", json={"count": count}).raise_for_status()

    def trigger(
        self, monitor_id: int, transition: str = "Triggered", *, value: float | None = None, scope: str = ""
    ) -> list[dict[str, Any]]:
        """Monitor `monitor_id` changes state as Datadog would report it: each webhook its message mentions
        (`@webhook-<name>`) is sent its payload. Returns per webhook the payload sent and each attempt's status."""
        body = {"monitor_id": monitor_id, "transition": transition, "value": value, "scope": scope}
        answer = self._http.post("/_fake/trigger", json=body, timeout=120)
        answer.raise_for_status()
        deliveries: list[dict[str, Any]] = answer.json()["deliveries"]
        return deliveries

    def received(self) -> dict[str, Any]:
        """What the intakes hold: logs and spans as search answers render them, metric points."""
        answer: dict[str, Any] = self._http.get("/_fake/received").json()
        return answer

    def stats(self) -> dict[str, Any]:
        """Counts of what is held, and requests per path."""
        answer: dict[str, Any] = self._http.get("/_fake/stats").json()
        return answer

    def stop(self) -> None:
        self._http.close()
        with contextlib.suppress(Exception):
            self._server.__exit__(None, None, None)


def start_datadog(api_key: str = API_KEY, app_key: str = APP_KEY, port: int | None = None) -> DatadogFake:
    """Starts the fake on a free loopback port (or `port`) in a background thread; `stop()` ends it."""
    state = Fake(api_key, app_key)
    server = serving(build_app(state), port=port)
    url = server.__enter__()
    return DatadogFake(url, api_key, app_key, state, server)
