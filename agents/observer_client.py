"""The observability-plane agent's client of the observer's internal port: the alert-rule API (contract notes
§1.10, driven as OpenChoreo's rule controller drives it, §4.2), and our resource endpoints for whole rule CRs and
notification channels (observer/alerting/resource_api.py).

Why a client of its own: the agent lives in the plane beside the observer and talks to it over HTTP only, so it
keeps working whether the observer runs in the same pod or elsewhere, and with or without a control plane.
Every call is bounded (a total timeout, a capped answer body); any answer the caller did not ask for is an
`ObserverError` carrying the status and the observer's `message`, so the reconciler can tell a permanent refusal
(4xx) from one worth retrying.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp

DEFAULT_TIMEOUT_S = 10.0  # upstream's controller: 10 s per call
#: The largest answer read; the rule API's answers are a few hundred bytes.
MAX_ANSWER_BYTES = 1024 * 1024
RULES = "/api/v1alpha1/alerts/sources/{type}/rules"
CHANNELS = "/api/v1alpha1/alerts/notification-channels/{namespace}/{name}"
RULE_RESOURCES = "/api/v1alpha1/alerts/rule-resources/{namespace}/{name}"


class ObserverError(Exception):
    """The observer answered with a status the call does not accept (0: it could not be reached at all)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"observer answered {status}: {message}" if status else f"observer unreachable: {message}")
        self.status = status
        self.message = message

    @property
    def permanent(self) -> bool:
        """A refusal of the request itself (4xx but 408/429): sending it again changes nothing."""
        return 400 <= self.status < 500 and self.status not in (408, 429)


@dataclass(frozen=True)
class RuleSync:
    """AlertingRuleSyncResponse: what the observer did with a rule and where its backend holds it."""

    action: str
    status: str
    rule_logical_id: str
    rule_backend_id: str
    last_synced_at: str

    @classmethod
    def from_answer(cls, body: Mapping[str, Any]) -> RuleSync:
        def text(key: str) -> str:
            value = body.get(key)
            return value if isinstance(value, str) else ""

        return cls(text("action"), text("status"), text("ruleLogicalId"), text("ruleBackendId"), text("lastSyncedAt"))


class ObserverPort(Protocol):
    """What the alert-rule reconciler needs of the observer (agents/alert_rules.py takes any of these): the HTTP
    client below, or an in-process adapter when agent and observer share a process. Failures are ObserverError,
    answers RuleSync, as the client's methods document."""

    async def put_rule_resource(self, namespace: str, name: str, cr: Mapping[str, Any]) -> RuleSync: ...

    async def delete_rule_resource(self, namespace: str, name: str) -> bool: ...

    async def upsert_rule(self, source_type: str, name: str, payload: Mapping[str, Any]) -> RuleSync: ...

    async def delete_rule(self, source_type: str, name: str) -> bool: ...

    async def put_channel(
        self, namespace: str, name: str, channel: Mapping[str, Any], secrets: Mapping[str, str]
    ) -> None: ...

    async def delete_channel(self, namespace: str, name: str) -> None: ...


class ObserverClient:
    """One aiohttp session to the observer's internal base URL; `token` is OBSERVER_INTERNAL_TOKEN, if set."""

    def __init__(self, base_url: str, *, token: str = "", timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ObserverClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        return self._session

    async def _call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, decoded JSON answer or None); ObserverError(0, ...) when the observer cannot be reached."""
        try:
            async with self._client().request(method, self.base_url + path, json=body) as response:
                raw = b""
                while chunk := await response.content.read(64 * 1024):
                    raw += chunk
                    if len(raw) > MAX_ANSWER_BYTES:
                        raise ObserverError(response.status, f"answer larger than {MAX_ANSWER_BYTES} bytes")
                try:
                    decoded = json.loads(raw) if raw else None
                except ValueError:
                    decoded = None
                return response.status, decoded
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ObserverError(0, f"{type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _refused(status: int, body: Any) -> ObserverError:
        message = body.get("message") if isinstance(body, dict) else None  # upstream reads the `message` key
        return ObserverError(status, message if isinstance(message, str) else "no message")

    # ------------------------------------------------------------------------------------------- rules

    async def upsert_rule(self, source_type: str, name: str, payload: Mapping[str, Any]) -> RuleSync:
        """GET-first upsert (§4.2): a rule the observer has is PUT (200), one it lacks is POSTed (201)."""
        item = f"{RULES.format(type=quote(source_type, safe=''))}/{quote(name, safe='')}"
        status, body = await self._call("GET", item)
        if status == 200:
            status, body = await self._call("PUT", item, dict(payload))
            expected = 200
        elif status == 404:
            status, body = await self._call("POST", RULES.format(type=quote(source_type, safe="")), dict(payload))
            expected = 201
        else:
            raise self._refused(status, body)
        if status != expected or not isinstance(body, dict):
            raise self._refused(status, body)
        return RuleSync.from_answer(body)

    async def delete_rule(self, source_type: str, name: str) -> bool:
        """Removes the rule; True when it was there, False when it was already gone (404: done too)."""
        item = f"{RULES.format(type=quote(source_type, safe=''))}/{quote(name, safe='')}"
        status, body = await self._call("DELETE", item)
        if status == 404:
            return False
        if 200 <= status < 300:
            return True
        raise self._refused(status, body)

    # ------------------------------------------------------------------------------------------- rule CRs

    async def put_rule_resource(self, namespace: str, name: str, cr: Mapping[str, Any]) -> RuleSync:
        """Stores the whole ObservabilityAlertRule CR (channels, severity and description included, which the rule
        API cannot carry) and answers what the observer's sync of it did; one call, created (201) or not (200)."""
        path = RULE_RESOURCES.format(namespace=quote(namespace, safe=""), name=quote(name, safe=""))
        status, body = await self._call("PUT", path, dict(cr))
        if status not in (200, 201) or not isinstance(body, dict):
            raise self._refused(status, body)
        return RuleSync.from_answer(body)

    async def delete_rule_resource(self, namespace: str, name: str) -> bool:
        """Removes the rule of the CR; True when it was there, False when it was already gone (404: done too)."""
        path = RULE_RESOURCES.format(namespace=quote(namespace, safe=""), name=quote(name, safe=""))
        status, body = await self._call("DELETE", path)
        if status == 404:
            return False
        if 200 <= status < 300:
            return True
        raise self._refused(status, body)

    # ------------------------------------------------------------------------------------------- channels

    async def put_channel(
        self, namespace: str, name: str, channel: Mapping[str, Any], secrets: Mapping[str, str]
    ) -> None:
        """Stores the channel's CR document and its Secret's values (replacing what was there)."""
        path = CHANNELS.format(namespace=quote(namespace, safe=""), name=quote(name, safe=""))
        status, body = await self._call("PUT", path, {"channel": dict(channel), "secrets": dict(secrets)})
        if not 200 <= status < 300:
            raise self._refused(status, body)

    async def delete_channel(self, namespace: str, name: str) -> None:
        """Removes the channel and its Secret's values; a channel already gone is fine (404 included)."""
        path = CHANNELS.format(namespace=quote(namespace, safe=""), name=quote(name, safe=""))
        status, body = await self._call("DELETE", path)
        if status != 404 and not 200 <= status < 300:
            raise self._refused(status, body)
