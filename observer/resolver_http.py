"""Names -> UIDs from an OpenChoreo-compatible API (`GET /api/v1/namespaces/{ns}/...` -> `metadata.uid`).

The observer authenticates with OAuth2 client credentials; the token is cached for 90% of its lifetime and
dropped on a 401, after which the call is retried a bounded number of times. UIDs are not cached: a component
deleted and re-created under the same name must resolve to its new UID on the very next query.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import quote

from adapters.protocols import ResolverAuthFailed, ResolverUnavailable, ScopeNotFound
from observer.outbound import OutboundClient, OutboundFailed


class ClientCredentials:
    """A cached OAuth2 client-credentials token."""

    def __init__(self, client: OutboundClient, token_url: str, client_id: str, client_secret: str, scope: str = ""):
        self._client = client
        self._token_url, self._client_id, self._client_secret, self._scope = token_url, client_id, client_secret, scope
        self._token = ""
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self._token_url and self._client_id)

    def drop(self) -> None:
        self._token = ""

    async def token(self) -> str:
        async with self._lock:
            if self._token and time.monotonic() < self._expires_at:
                return self._token
            form = {
                "grant_type": "client_credentials",
                "client_id": self._client_id,
                "client_secret": self._client_secret,
            }
            if self._scope:
                form["scope"] = self._scope
            try:
                response = await self._client.request("POST", self._token_url, form=form)
            except OutboundFailed as exc:
                raise ResolverAuthFailed(f"token request failed: {exc.kind}") from None
            if response.status != 200:
                raise ResolverAuthFailed(f"token endpoint answered {response.status}")
            try:
                body = response.json()
                token = body["access_token"]
            except (ValueError, KeyError, TypeError):
                raise ResolverAuthFailed("token endpoint answered without an access_token") from None
            lifetime = float(body.get("expires_in") or 3600)
            self._token, self._expires_at = token, time.monotonic() + 0.9 * lifetime
            return token


class OpenChoreoResolver:
    def __init__(
        self,
        api_url: str,
        *,
        token_url: str = "",
        client_id: str = "",
        client_secret: str = "",
        scope: str = "",
        timeout_s: float = 30.0,
        max_auth_retry: int = 2,
        verify_tls: bool = True,
    ):
        self._base = api_url.rstrip("/")
        self._client = OutboundClient(timeout_s, verify_tls=verify_tls)
        self._credentials = ClientCredentials(self._client, token_url, client_id, client_secret, scope)
        self._max_auth_retry = max_auth_retry

    async def resolve(
        self, namespace: str, project: str = "", component: str = "", environment: str = ""
    ) -> tuple[str, str, str]:
        """The UIDs of the names given, looked up concurrently. The namespace is looked up only when nothing
        narrower is named, or when a narrower name is missing (to say which is: a name in a namespace that does
        not exist is the namespace's fault): a project found in a namespace proves the namespace exists."""
        namespace_path = f"/api/v1/namespaces/{quote(namespace, safe='')}"
        lookups = [
            ("project", project, "projects"),
            ("component", component, "components"),  # components are unique per namespace: no project in the path
            ("environment", environment, "environments"),
        ]
        if not (project or component or environment):
            await self._uid("namespace", namespace, namespace_path, namespace)
            return "", "", ""
        try:
            uids = await asyncio.gather(
                *(
                    self._uid(kind, name, f"{namespace_path}/{plural}/{quote(name, safe='')}", namespace)
                    if name
                    else _empty()
                    for kind, name, plural in lookups
                )
            )
        except ScopeNotFound:
            await self._uid("namespace", namespace, namespace_path, namespace)
            raise
        return uids[0], uids[1], uids[2]

    async def _uid(self, kind: str, name: str, path: str, namespace: str) -> str:
        for _ in range(self._max_auth_retry + 1):
            headers = {"Accept": "application/json"}
            if self._credentials.enabled:
                headers["Authorization"] = f"Bearer {await self._credentials.token()}"
            try:
                response = await self._client.request("GET", self._base + path, headers=headers)
            except OutboundFailed as exc:
                raise ResolverUnavailable(f"{kind} lookup failed: {exc.kind}") from None
            if response.status == 401:
                self._credentials.drop()
                continue
            if response.status == 404:
                raise ScopeNotFound(kind, name, namespace)
            if response.status != 200:
                raise ResolverUnavailable(f"{kind} lookup answered {response.status}")
            try:
                uid = response.json()["metadata"]["uid"]
            except (ValueError, KeyError, TypeError):
                uid = ""
            if not uid:
                raise ResolverUnavailable(f"{kind} {name!r} has no metadata.uid")
            return str(uid)
        raise ResolverAuthFailed(f"{kind} lookup still unauthorized after {self._max_auth_retry} token refreshes")

    async def aclose(self) -> None:
        await self._client.aclose()


async def _empty() -> str:
    return ""
