"""The channel pass: one ObservabilityAlertsNotificationChannel -> its ConfigMap + Secret in the observability plane.

The plane is the channel's environment's (Environment -> data plane -> observability plane, planes.py). The
objects are render_channel's (OCN §2.5 keys), after the ensured Namespace named after the channel's namespace,
all server-side applied with field owner `observabilityalertsnotificationchannel-controller` (CPN §1). Secret
values the channel references are read from the store through a `SecretLookup` and never logged.

The channel CRD has no status fields (its status schema is an empty object, and the store rejects unknown
fields), so the outcome is returned and logged, not written back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from controlplane.errors import ApiError, NotFound
from controlplane.proxy_client import PlaneClient, PlaneRef, PlaneRequestFailed, PlaneUnavailable, Transport
from controlplane.reconcile import conditions as c
from controlplane.reconcile.planes import Backoff, data_plane, describe, fetch, observability_plane, plane_ref
from controlplane.reconcile.releases import where
from controlplane.render.errors import RenderError
from controlplane.render.labels import CHANNEL_CONTROLLER
from controlplane.render.observability import observability_namespace, render_channel
from controlplane.store import Store

log = logging.getLogger(__name__)

CHANNEL_KIND = "ObservabilityAlertsNotificationChannel"

SecretLookup = Callable[[str, str, str], "str | None"]
"""(namespace, secret name, key) -> the decoded value, None when the Secret or the key is missing."""


def store_secrets(store: Store) -> SecretLookup:
    """Secret values from the store's v1 Secrets (`Store.secret_value`); a missing Secret or key reads as None
    (the render then names the channel field at fault)."""
    return store.secret_value


def secret_refs(spec: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Every (secret name, key) a channel spec references."""
    auth = ((spec.get("emailConfig") or {}).get("smtp") or {}).get("auth") or {}
    for part in ("username", "password"):
        ref = (auth.get(part) or {}).get("secretKeyRef")
        if ref:
            yield str(ref.get("name", "")), str(ref.get("key", ""))
    for source in ((spec.get("webhookConfig") or {}).get("headers") or {}).values():
        ref = ((source or {}).get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            yield str(ref.get("name", "")), str(ref.get("key", ""))


@dataclass(frozen=True)
class ChannelPlan:
    plane: PlaneRef
    objects: list[dict[str, Any]]


@dataclass(frozen=True)
class ChannelOutcome:
    """ResourcesApplied's reason (conditions.py) and a message; `retry_at` when the plane is backing off."""

    reason: str
    message: str
    retry_at: float | None = None


def plan_channel(store: Store, channel: dict[str, Any], secrets: SecretLookup) -> ChannelPlan:
    """The plane and the objects of a channel (sync: store reads). NotFound / RenderError when it cannot be."""
    namespace = str(channel["metadata"]["namespace"])
    spec = channel.get("spec") or {}
    environment = fetch(
        store, "Environment", namespace, str(spec.get("environment") or ""), "the channel's environment"
    )
    dataplane = data_plane(store, environment)
    observability = observability_plane(store, namespace, dataplane)
    if observability is None:
        raise NotFound(f"the data plane of Environment '{environment['metadata']['name']}' has no observability plane")
    decoded: dict[str, dict[str, str]] = {}
    for name, key in secret_refs(spec):
        value = secrets(namespace, name, key)
        if value is not None:
            decoded.setdefault(name, {})[key] = value
    objects = [observability_namespace(namespace), *render_channel(channel, decoded)]
    return ChannelPlan(plane_ref(observability), objects)


async def reconcile_channel(
    store: Store,
    transport: Transport,
    backoff: Backoff,
    namespace: str,
    name: str,
    timeout: float,
    secrets: SecretLookup,
) -> ChannelOutcome | None:
    """One pass over one channel; None when it no longer exists."""
    channel = await asyncio.to_thread(store.get, CHANNEL_KIND, namespace, name)
    if channel is None:
        return None
    try:
        plan = await asyncio.to_thread(plan_channel, store, channel, secrets)
    except (ApiError, RenderError) as exc:
        return ChannelOutcome(c.RENDER_FAILED, str(exc))
    blocked = backoff.blocked_until(plan.plane)
    if blocked is not None:
        return ChannelOutcome(c.PLANE_DISCONNECTED, f"{describe(plan.plane)} is not connected; retrying", blocked)
    client = PlaneClient(transport, plan.plane, timeout)
    for obj in plan.objects:
        metadata = obj["metadata"]
        try:
            await client.apply(obj, CHANNEL_CONTROLLER)
        except PlaneUnavailable:
            backoff.failed(plan.plane)
            message = f"{describe(plan.plane)} is not connected; retrying"
            return ChannelOutcome(c.PLANE_DISCONNECTED, message, backoff.blocked_until(plan.plane))
        except PlaneRequestFailed as exc:
            backoff.succeeded(plan.plane)
            target = where(str(obj["kind"]), str(metadata.get("namespace") or ""), str(metadata["name"]))
            return ChannelOutcome(c.APPLY_FAILED, f"{describe(plan.plane)}: apply {target}: {exc}")
    backoff.succeeded(plan.plane)
    return ChannelOutcome(c.APPLIED, f"{len(plan.objects)} objects applied to {describe(plan.plane)}")
