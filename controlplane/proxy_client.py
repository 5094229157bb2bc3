"""A small Kubernetes client for one remote plane, carried by the cluster gateway's tunnel.

The reconcilers speak to a plane only through this: server-side apply, list by labels, get and delete, each one
HTTP request framed as upstream's `HTTPTunnelRequest` and sent in-process to an agent of the plane (the same path
the internal `/api/proxy/...` endpoint takes, without the HTTP hop). Every object kind the control plane renders
has its REST location in `RESOURCES`; nothing else can be addressed, so a rendering mistake cannot reach into
arbitrary APIs of a plane.
"""

from __future__ import annotations

import json
import urllib.parse
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from tunnel.frames import TunnelRequest, TunnelResponse

TIMEOUT_S = 30.0  # upstream's per-request proxy timeout
LIST_PAGE = 500
MAX_LIST_PAGES = 40


@dataclass(frozen=True)
class Resource:
    """Where one Kubernetes kind lives in the REST API."""

    api_version: str
    plural: str
    namespaced: bool

    def path(self, namespace: str = "", name: str = "") -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{urllib.parse.quote(namespace, safe='')}"
        base += f"/{self.plural}"
        return f"{base}/{urllib.parse.quote(name, safe='')}" if name else base


RESOURCES: Mapping[str, Resource] = {
    "Namespace": Resource("v1", "namespaces", namespaced=False),
    "Service": Resource("v1", "services", namespaced=True),
    "ConfigMap": Resource("v1", "configmaps", namespaced=True),
    "Secret": Resource("v1", "secrets", namespaced=True),
    "Deployment": Resource("apps/v1", "deployments", namespaced=True),
    "ObservabilityAlertRule": Resource("openchoreo.dev/v1alpha1", "observabilityalertrules", namespaced=True),
}


class PlaneUnavailable(Exception):
    """No agent of the plane answered: not connected, timed out, or the tunnel refused the call."""


class PlaneRequestFailed(Exception):
    """The plane's Kubernetes API answered with an error other than the ones the caller expects."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class Transport(Protocol):
    """The gateway, seen from a caller in the same process (controlplane/gateway)."""

    async def send(
        self, plane_type: str, plane_id: str, cr_key: str, request: TunnelRequest, timeout: float
    ) -> TunnelResponse: ...


@dataclass(frozen=True)
class PlaneRef:
    """One plane resource, as the gateway addresses it: type, planeID and the CR key (`ns/name`, `/name`)."""

    plane_type: str
    plane_id: str
    cr_key: str


class PlaneClient:
    """Kubernetes calls into one plane. Errors: PlaneUnavailable (retry later), PlaneRequestFailed (the plane
    refused; the message is the Kubernetes Status message)."""

    def __init__(self, transport: Transport, plane: PlaneRef, timeout: float = TIMEOUT_S) -> None:
        self._transport = transport
        self.plane = plane
        self._timeout = timeout

    async def apply(self, obj: Mapping[str, Any], field_manager: str) -> dict[str, Any]:
        """Server-side apply with forced ownership, as upstream's controllers do."""
        resource = RESOURCES[obj["kind"]]
        metadata = obj["metadata"]
        path = resource.path(metadata.get("namespace", ""), metadata["name"])
        query = urllib.parse.urlencode({"fieldManager": field_manager, "force": "true"})
        answer = await self._call(
            "PATCH", path, query, json.dumps(obj).encode(), content_type="application/apply-patch+yaml"
        )
        return self._json(answer)

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The live object, or None when it does not exist."""
        answer = await self._call("GET", RESOURCES[kind].path(namespace, name))
        return None if answer.status_code == 404 else self._json(answer)

    async def list(self, kind: str, label_selector: str, namespace: str = "") -> list[dict[str, Any]]:
        """Every object of `kind` carrying the labels (in every namespace unless one is named), read in pages of
        LIST_PAGE following the API server's `continue` token, at most MAX_LIST_PAGES pages (PlaneRequestFailed
        beyond: a list that large is not something a release or a sweep should act on half-read)."""
        resource = RESOURCES[kind]
        items: list[dict[str, Any]] = []
        token = ""
        for _ in range(MAX_LIST_PAGES):
            params = {"labelSelector": label_selector, "limit": str(LIST_PAGE)}
            if token:
                params["continue"] = token
            page = self._json(await self._call("GET", resource.path(namespace), urllib.parse.urlencode(params)))
            for item in page.get("items") or []:
                item.setdefault("apiVersion", resource.api_version)  # a list answer leaves these out of its items
                item.setdefault("kind", kind)
                items.append(item)
            token = str((page.get("metadata") or {}).get("continue") or "")
            if not token:
                return items
        raise PlaneRequestFailed(
            507, f"more than {LIST_PAGE * MAX_LIST_PAGES} {resource.plural} match {label_selector}"
        )

    async def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Deletes the object; False when it was already gone (a finished delete either way)."""
        answer = await self._call("DELETE", RESOURCES[kind].path(namespace, name), "propagationPolicy=Background")
        if answer.status_code == 404:
            return False
        self._json(answer)
        return True

    async def _call(
        self, method: str, path: str, query: str = "", body: bytes = b"", content_type: str = ""
    ) -> TunnelResponse:
        headers = {"Accept": ["application/json"]}
        if content_type:
            headers["Content-Type"] = [content_type]
        request = TunnelRequest(
            request_id=str(uuid.uuid4()),
            target="k8s",
            method=method,
            path=path,
            query=query,
            headers=headers,
            body=body,
        )
        plane = self.plane
        try:
            answer = await self._transport.send(plane.plane_type, plane.plane_id, plane.cr_key, request, self._timeout)
        except (OSError, TimeoutError, ConnectionError) as exc:
            raise PlaneUnavailable(f"{plane.plane_type}/{plane.plane_id}: {exc}") from exc
        if answer.error is not None and answer.status_code in (0, 502, 503, 504):
            raise PlaneUnavailable(f"{plane.plane_type}/{plane.plane_id}: {answer.error.message}")
        return answer

    @staticmethod
    def _json(answer: TunnelResponse) -> dict[str, Any]:
        try:
            document = json.loads(answer.body) if answer.body else {}
        except ValueError:
            document = {}
        if answer.status_code >= 400:
            message = document.get("message") if isinstance(document, dict) else None
            raise PlaneRequestFailed(answer.status_code, str(message or answer.body[:200].decode(errors="replace")))
        if not isinstance(document, dict):
            raise PlaneRequestFailed(answer.status_code, "the plane answered something other than a JSON object")
        return document
