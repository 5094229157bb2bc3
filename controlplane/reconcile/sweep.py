"""Finalizer-free delete: objects in a plane whose owner has left the store are removed (plan §4).

The API deletes a ReleaseBinding or a channel at once, with no finalizer holding it, so nothing is told to clean
up. Instead this sweep walks every plane CR the store knows and, through that plane's agent, lists what our two
controllers put there:
- objects labelled `openchoreo.dev/managed-by=renderedrelease-controller`: kept while a ReleaseBinding in the
  store yields their `openchoreo.dev/rendered-release-uid` (one uid per binding and target plane, labels.py);
- ConfigMaps and Secrets labelled `app.kubernetes.io/managed-by=observabilityalertsnotificationchannel-controller`:
  kept while a channel of that namespace and name (`openchoreo.dev/notification-channel-name`) exists.
Everything else of those is deleted (404 = already done). Namespaces carry neither label and are never touched.
The plane is listed BEFORE the owners are read, so an object applied by a binding created meanwhile is never
taken for an orphan. A plane that does not answer is skipped and counted a failure in the backoff; the next sweep
tries again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from controlplane.proxy_client import PlaneClient, PlaneRef, PlaneRequestFailed, PlaneUnavailable, Transport
from controlplane.reconcile.channels import CHANNEL_KIND
from controlplane.reconcile.planes import PLANE_KINDS, Backoff, describe, plane_ref
from controlplane.reconcile.releases import RELEASE_KINDS, where
from controlplane.render.labels import (
    CHANNEL_CONTROLLER,
    LABEL_APP_MANAGED_BY,
    LABEL_MANAGED_BY,
    LABEL_NOTIFICATION_CHANNEL,
    LABEL_RELEASE_UID,
    RELEASE_CONTROLLER,
    TARGET_DATAPLANE,
    TARGET_OBSERVABILITYPLANE,
    RenderedRelease,
    sanitize_label_value,
)
from controlplane.store import Store

log = logging.getLogger(__name__)

#: What each plane type may hold of ours, listed and deleted in this order (dependents before what they use);
#: only these are listed, so an agent's RBAC (CPN §1: no Services on an observability plane) is never exceeded.
RELEASE_SWEPT_KINDS: Mapping[str, tuple[str, ...]] = {
    "dataplane": tuple(reversed(RELEASE_KINDS[TARGET_DATAPLANE])),
    "observabilityplane": tuple(reversed(RELEASE_KINDS[TARGET_OBSERVABILITYPLANE])),
}
CHANNEL_SWEPT_KINDS: Mapping[str, tuple[str, ...]] = {"observabilityplane": ("Secret", "ConfigMap")}
_PAGE = 1000


def _every(store: Store, kind: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = store.list(kind, None, limit=_PAGE, cursor=cursor)
        items += page.items
        if not page.next_cursor:
            return items
        cursor = page.next_cursor


def known_planes(store: Store) -> list[PlaneRef]:
    """Every plane CR in the store, as the gateway addresses it (each once)."""
    planes: dict[PlaneRef, None] = {}
    for kind in PLANE_KINDS:
        for document in _every(store, kind):
            planes[plane_ref(document)] = None
    return list(planes)


def release_owners(store: Store) -> set[str]:
    """The rendered-release uids of every binding in the store (both target planes)."""
    owners: set[str] = set()
    for binding in _every(store, "ReleaseBinding"):
        for target in (TARGET_DATAPLANE, TARGET_OBSERVABILITYPLANE):
            owners.add(RenderedRelease.of(binding, target).uid)
    return owners


def channel_owners(store: Store) -> set[tuple[str, str]]:
    """(namespace, channel label value) of every channel in the store."""
    return {
        (str(ch["metadata"]["namespace"]), sanitize_label_value(str(ch["metadata"]["name"])))
        for ch in _every(store, CHANNEL_KIND)
    }


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _namespace(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "")


async def _listed(client: PlaneClient, kinds: tuple[str, ...], selector: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for kind in kinds:
        try:
            found += await client.list(kind, selector)
        except PlaneRequestFailed as exc:
            if exc.status != 404:  # 404: the kind is not served by this plane (no alert-rule CRD)
                log.warning("sweep: listing %s in %s failed: %s", kind, describe(client.plane), exc)
    return found


async def sweep_plane(store: Store, client: PlaneClient) -> int:
    """Delete the orphans in one plane; returns how many were deleted. PlaneUnavailable propagates."""
    plane_type = client.plane.plane_type
    releases = await _listed(
        client, RELEASE_SWEPT_KINDS.get(plane_type, ()), f"{LABEL_MANAGED_BY}={RELEASE_CONTROLLER}"
    )
    channels = await _listed(
        client, CHANNEL_SWEPT_KINDS.get(plane_type, ()), f"{LABEL_APP_MANAGED_BY}={CHANNEL_CONTROLLER}"
    )
    release_uids = await asyncio.to_thread(release_owners, store)
    channel_keys = await asyncio.to_thread(channel_owners, store)
    orphans = [obj for obj in releases if _labels(obj).get(LABEL_RELEASE_UID) not in release_uids]
    orphans += [
        obj
        for obj in channels
        if (_namespace(obj), _labels(obj).get(LABEL_NOTIFICATION_CHANNEL, "")) not in channel_keys
    ]
    deleted = 0
    for obj in orphans:
        kind, namespace, name = str(obj["kind"]), _namespace(obj), str(obj["metadata"]["name"])
        try:
            if await client.delete(kind, namespace, name):
                deleted += 1
                log.info("sweep: deleted orphan %s from %s", where(kind, namespace, name), describe(client.plane))
        except PlaneRequestFailed as exc:
            log.warning(
                "sweep: deleting %s from %s failed: %s", where(kind, namespace, name), describe(client.plane), exc
            )
    return deleted


async def sweep(store: Store, transport: Transport, backoff: Backoff, timeout: float) -> int:
    """One sweep over every plane the store knows (module docstring); returns how many orphans were deleted."""
    planes = await asyncio.to_thread(known_planes, store)
    backoff.forget_except(set(planes))
    deleted = 0
    for plane in planes:
        if backoff.blocked_until(plane) is not None:
            continue
        try:
            deleted += await sweep_plane(store, PlaneClient(transport, plane, timeout))
        except PlaneUnavailable as exc:
            backoff.failed(plane)
            log.info("sweep: %s unavailable: %s", describe(plane), exc)
        else:
            backoff.succeeded(plane)
    return deleted
