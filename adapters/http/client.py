"""One adapter's HTTP client: the contract's calls, checked against its spec on the way out and the way in,
and what goes wrong mapped to our failures (adapters/http/errors.py, adapters/protocols.py).

No credentials are sent (OpenChoreo's observer sends none to its adapters). Every call is bounded: the
adapter's timeout (OpenChoreo's `*_ADAPTER_TIMEOUT`), MAX_RESPONSE_BYTES of answer, a pool of MAX_CONNECTIONS.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from adapters.http.errors import (
    NOTICE_HEADER,
    AdapterConflict,
    AdapterError,
    AdapterNotFound,
    AdapterNotImplemented,
    error_parts,
    notice,
)
from adapters.http_contract import specs
from adapters.http_contract.wire import INVALID_CURSOR_CODE
from adapters.protocols import BackendUnavailable, InvalidCursor

MAX_RESPONSE_BYTES = 32 * 1024 * 1024
MAX_CONNECTIONS = 32
HEALTH_PATHS = ("/healthz", "/health")


class AdapterClient:
    """Calls one adapter (`base_url`, e.g. http://logs-adapter:9098) of one signal's contract."""

    def __init__(self, signal: specs.Signal, base_url: str, timeout_s: float) -> None:
        self.signal = signal
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _pool(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self.timeout, connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS)
            )
        return self._session

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        request_schema: str = "",
        response_schema: str = "",
    ) -> Any:
        """The adapter's JSON answer to one call, validated as `response_schema`; raises on any non-2xx."""
        if body is not None and request_schema:
            try:
                specs.check(self.signal, request_schema, body, f"request to the {self.signal} adapter")
            except specs.ContractViolation as exc:
                raise AdapterError(0, "", str(exc)) from None
        url = self.base_url + path
        try:
            async with self._pool().request(method, url, json=body) as response:
                raw = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    raw += chunk
                    if len(raw) > MAX_RESPONSE_BYTES:
                        break
                status, headers = response.status, response.headers
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BackendUnavailable(f"{self.signal} adapter at {self.base_url}: {type(exc).__name__}") from None
        if len(raw) > MAX_RESPONSE_BYTES:
            raise AdapterError(status, "", f"answer larger than {MAX_RESPONSE_BYTES} bytes")
        for value in headers.getall(NOTICE_HEADER, []):
            notice(self.base_url, value)
        answer = _json(raw)
        if status >= 300:
            raise _failure(self.signal, self.base_url, status, answer, headers.get("Retry-After", ""))
        if response_schema:
            try:
                specs.check(self.signal, response_schema, answer, f"{self.signal} adapter answer")
            except specs.ContractViolation as exc:
                raise AdapterError(status, "", str(exc)) from None
        return answer

    async def health_path(self) -> str:
        """Which health path answers 200 (`/healthz` for tracing, metrics and the AWS adapters, `/health` for the
        other logs adapters: http-adapters-notes §4.1), or "" when neither does or the adapter is unreachable.
        OpenChoreo's observer never calls it (only probes do); it is for diagnostics."""
        for path in HEALTH_PATHS:
            try:
                async with self._pool().get(self.base_url + path) as response:
                    if response.status == 200:
                        return path
            except (aiohttp.ClientError, TimeoutError):
                return ""
        return ""

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _json(raw: bytes | bytearray) -> Any:
    try:
        return json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        return None


def _failure(signal: str, base_url: str, status: int, answer: Any, retry_after: str) -> Exception:
    code, message = error_parts(answer)
    if status == 501:
        return AdapterNotImplemented(status, code, message or f"not implemented by the {signal} adapter")
    if status == 404:
        return AdapterNotFound(status, code, message)
    if status == 409:
        return AdapterConflict(status, code, message)
    if status == 400 and code == INVALID_CURSOR_CODE:
        return InvalidCursor(message)
    if status >= 500 or status == 429:
        unavailable = BackendUnavailable(f"{signal} adapter at {base_url} answered {status}: {message}")
        if retry_after.isdigit():
            unavailable.retry_after_s = float(retry_after)  # type: ignore[attr-defined]
        return unavailable
    return AdapterError(status, code, message)
