"""The release pass: one ReleaseBinding made true in its planes, and what was seen written back on its status.

Per binding (CPN §1, plan §4 "What is pushed where" and "Status comes back by re-listing"):
1. gather its inputs from the store (Component, the Workload of the component, Project, Environment, the data plane
   and observability plane of the environment) and render them (controlplane/render): the data-plane release
   (Namespace, files ConfigMap, Deployment, Service) and the observability-plane release (the alert-rule CRs, after
   the ensured Namespace);
2. per target plane, through a PlaneClient: server-side apply every object in render order (field owner
   `renderedrelease-controller`, forced); list the release's tracked kinds by its tracking selector; delete, in
   reverse kind order, what the plane holds under that selector but was not rendered (an `Undeploy` binding renders
   nothing, so everything goes); the listed objects give each rendered object's health;
3. conditions `ResourcesApplied` (True Applied | False ApplyFailed | PlaneDisconnected | RenderFailed),
   `Available` (the Deployment's health, "2/2 replicas available") and `Ready`, each with observedGeneration; the
   status is written only when it changed (see conditions.py).
Namespaces are ensured, never pruned (they carry no tracking labels). A plane in backoff is not called: its
bindings report PlaneDisconnected until the plane's next attempt. The observability plane is needed only when
rules were rendered: a binding without rules does not turn PlaneDisconnected because that plane is away.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controlplane.errors import ApiError, NotFound
from controlplane.proxy_client import PlaneClient, PlaneRef, PlaneRequestFailed, PlaneUnavailable, Transport
from controlplane.reconcile import conditions as c
from controlplane.reconcile.planes import Backoff, data_plane, describe, fetch, observability_plane, plane_ref
from controlplane.render.dataplane import render_release
from controlplane.render.errors import RenderError
from controlplane.render.health import HEALTHY, PROGRESSING, UNKNOWN, health_of
from controlplane.render.labels import (
    RELEASE_CONTROLLER,
    TARGET_DATAPLANE,
    TARGET_OBSERVABILITYPLANE,
    RenderedRelease,
    is_tracked,
)
from controlplane.render.observability import default_channel_name, observability_namespace, render_alert_rules
from controlplane.store import Store

log = logging.getLogger(__name__)

#: The tracked kinds each release may hold, in apply order (pruning walks them backwards).
RELEASE_KINDS: Mapping[str, tuple[str, ...]] = {
    TARGET_DATAPLANE: ("ConfigMap", "Deployment", "Service"),
    TARGET_OBSERVABILITYPLANE: ("ObservabilityAlertRule",),
}
_PAGE = 1000


@dataclass(frozen=True)
class Target:
    """One release bound for one plane: what to apply (in order) and which tracked kinds to re-list and prune."""

    plane: PlaneRef
    release: RenderedRelease
    objects: list[dict[str, Any]]
    kinds: tuple[str, ...]
    required: bool  # whether the binding's condition waits for this plane


@dataclass(frozen=True)
class Plan:
    """A binding's rendered releases."""

    binding: dict[str, Any]
    targets: list[Target]


@dataclass(frozen=True)
class Observed:
    """One rendered object as re-listed from its plane."""

    kind: str
    namespace: str
    name: str
    health: str
    message: str


@dataclass
class Outcome:
    """What one pass over a binding found: the ResourcesApplied reason and message, the observed objects, and
    whether to come back soon (something progressing) or when a plane's backoff ends."""

    reason: str
    message: str
    observed: list[Observed] = field(default_factory=list)
    retry_at: float | None = None

    @property
    def progressing(self) -> bool:
        """Some rendered object has not converged (or could not be seen)."""
        return any(item.health in (PROGRESSING, UNKNOWN) for item in self.observed)

    @property
    def deployment(self) -> Observed | None:
        """The Deployment of the data-plane release, when one was rendered and seen."""
        return next((item for item in self.observed if item.kind == "Deployment"), None)


class ApplyFailed(Exception):
    """The plane refused a call of the pass; the message names the object."""


def _all(store: Store, kind: str, namespace: str, **filters: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = store.list(kind, namespace, filters=filters, limit=_PAGE, cursor=cursor)
        items += page.items
        if not page.next_cursor:
            return items
        cursor = page.next_cursor


def plan_release(store: Store, binding: dict[str, Any]) -> Plan:
    """Gather a binding's inputs and render its releases (sync: store reads). NotFound names a missing input;
    RenderError a document that cannot become objects."""
    spec = binding.get("spec") or {}
    owner = spec.get("owner") or {}
    namespace = str(binding["metadata"]["namespace"])
    component_name = str(owner.get("componentName") or "")
    why = f"the owner of ReleaseBinding '{binding['metadata']['name']}'"
    component = fetch(store, "Component", namespace, component_name, why)
    project = fetch(store, "Project", namespace, str(owner.get("projectName") or ""), why)
    environment = fetch(
        store, "Environment", namespace, str(spec.get("environment") or ""), "the binding's environment"
    )
    undeploy = spec.get("state", "Active") == "Undeploy"
    workloads = _all(store, "Workload", namespace, component=component_name)
    if not workloads and not undeploy:
        raise NotFound(f"no Workload of Component '{component_name}' in namespace '{namespace}'")
    workload = workloads[0] if workloads else {}
    dataplane = data_plane(store, environment)
    targets = [
        Target(
            plane_ref(dataplane),
            RenderedRelease.of(binding, TARGET_DATAPLANE),
            render_release(component, workload, binding, environment, project),
            RELEASE_KINDS[TARGET_DATAPLANE],
            required=True,
        )
    ]
    observability = observability_plane(store, namespace, dataplane)
    if observability is not None:
        channels = _all(store, "ObservabilityAlertsNotificationChannel", namespace)
        rules = render_alert_rules(
            component,
            binding,
            environment,
            project,
            dataplane=dataplane,
            default_channel=default_channel_name(channels, str(spec.get("environment") or "")),
        )
        objects: list[dict[str, Any]] = []
        if rules:
            objects.append(
                observability_namespace(
                    namespace, environment=str(spec.get("environment") or ""), project=str(owner.get("projectName"))
                )
            )
            objects += rules
        targets.append(
            Target(
                plane_ref(observability),
                RenderedRelease.of(binding, TARGET_OBSERVABILITYPLANE),
                objects,
                RELEASE_KINDS[TARGET_OBSERVABILITYPLANE],
                required=bool(rules),
            )
        )
    return Plan(binding, targets)


def where(kind: str, namespace: str, name: str) -> str:
    """`Deployment ns/name`, or `Namespace name` for a cluster-scoped object."""
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def _key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    metadata = obj.get("metadata") or {}
    return str(obj.get("kind")), str(metadata.get("namespace") or ""), str(metadata.get("name"))


async def sync_target(client: PlaneClient, target: Target) -> list[Observed]:
    """Apply, re-list, prune (module docstring, step 2). PlaneUnavailable propagates; any refusal of the plane
    is ApplyFailed naming the object."""
    for obj in target.objects:
        kind, namespace, name = _key(obj)
        try:
            await client.apply(obj, RELEASE_CONTROLLER)
        except PlaneRequestFailed as exc:
            raise ApplyFailed(f"apply {where(kind, namespace, name)}: {exc}") from exc
    rendered = {_key(obj) for obj in target.objects if is_tracked(obj)}
    # the release's kinds, plus any tracked kind a template rendered beyond them (never the ensured Namespace)
    tracked_kinds = dict.fromkeys(_key(obj)[0] for obj in target.objects if is_tracked(obj))
    extra = [kind for kind in tracked_kinds if kind not in target.kinds]
    kinds = [*target.kinds, *extra]
    live: dict[tuple[str, str, str], dict[str, Any]] = {}
    stale: list[tuple[str, str, str]] = []
    for kind in kinds:
        try:
            items = await client.list(kind, target.release.selector())
        except PlaneRequestFailed as exc:
            if exc.status == 404 and not any(key[0] == kind for key in rendered):
                continue  # the kind is not served there (e.g. no alert-rule CRD) and we put nothing of it there
            raise ApplyFailed(f"list {kind}: {exc}") from exc
        for item in items:
            key = _key(item)
            if key in rendered:
                live[key] = item
            else:
                stale.append(key)
    for kind, namespace, name in reversed(stale):
        try:
            await client.delete(kind, namespace, name)
        except PlaneRequestFailed as exc:
            raise ApplyFailed(f"prune {where(kind, namespace, name)}: {exc}") from exc
        log.info("pruned %s from %s", where(kind, namespace, name), describe(client.plane))
    observed = []
    for key in (_key(obj) for obj in target.objects if is_tracked(obj)):  # in render order
        found = live.get(key)
        health, message = health_of(found) if found is not None else (UNKNOWN, "not found after apply")
        observed.append(Observed(*key, health, message))
    return observed


async def apply_plan(transport: Transport, backoff: Backoff, plan: Plan, timeout: float) -> Outcome:
    """Every target of the plan in turn; the outcome is the first failure of a required plane, else Applied."""
    observed: list[Observed] = []
    failures: list[tuple[str, str]] = []
    retry_at: float | None = None
    applied = 0
    for target in plan.targets:
        plane = target.plane
        blocked = backoff.blocked_until(plane)
        if blocked is not None:
            retry_at = blocked if retry_at is None else min(retry_at, blocked)
            if target.required:
                failures.append((c.PLANE_DISCONNECTED, f"{describe(plane)} is not connected; retrying"))
            continue
        try:
            observed += await sync_target(PlaneClient(transport, plane, timeout), target)
        except PlaneUnavailable as exc:
            backoff.failed(plane)
            due = backoff.blocked_until(plane)
            retry_at = due if retry_at is None or (due is not None and due < retry_at) else retry_at
            log.info("plane %s unavailable: %s", describe(plane), exc)
            if target.required:
                failures.append((c.PLANE_DISCONNECTED, f"{describe(plane)} is not connected; retrying"))
            continue
        except ApplyFailed as exc:
            backoff.succeeded(plane)
            failures.append((c.APPLY_FAILED, f"{describe(plane)}: {exc}"))
            continue
        backoff.succeeded(plane)
        applied += len(target.objects)
    if failures:
        reason = failures[0][0]
        return Outcome(reason, "; ".join(message for _, message in failures), observed, retry_at)
    planes = ", ".join(describe(t.plane) for t in plan.targets if t.objects)
    message = f"{applied} objects applied to {planes}" if applied else "nothing to apply (undeployed)"
    return Outcome(c.APPLIED, message, observed, retry_at)


def binding_conditions(binding: Mapping[str, Any], outcome: Outcome) -> list[dict[str, Any]]:
    """ResourcesApplied, Available and Ready for what the pass found (module docstring, step 3)."""
    generation = int((binding.get("metadata") or {}).get("generation") or 0)
    undeploy = (binding.get("spec") or {}).get("state", "Active") == "Undeploy"
    if outcome.reason == c.APPLIED:
        applied = c.condition(c.RESOURCES_APPLIED, c.TRUE, c.APPLIED, outcome.message, generation)
        deployment = outcome.deployment
        if deployment is None:
            reason = "Undeployed" if undeploy else "NoDeployment"
            text = "the binding is in state Undeploy" if undeploy else "no Deployment was rendered"
            available = c.condition(c.AVAILABLE, c.FALSE, reason, text, generation)
        elif deployment.health == HEALTHY:
            available = c.condition(c.AVAILABLE, c.TRUE, "Available", deployment.message, generation)
        else:
            available = c.condition(c.AVAILABLE, c.FALSE, deployment.health, deployment.message, generation)
    else:
        applied = c.condition(c.RESOURCES_APPLIED, c.FALSE, outcome.reason, outcome.message, generation)
        available = c.condition(c.AVAILABLE, c.UNKNOWN, outcome.reason, "the data plane was not observed", generation)
    if applied["status"] == c.TRUE and available["status"] == c.TRUE:
        ready = c.condition(c.READY, c.TRUE, "Ready", "resources applied and available", generation)
    else:
        blocking = applied if applied["status"] != c.TRUE else available
        ready = c.condition(c.READY, c.FALSE, blocking["reason"], blocking["message"], generation)
    return [applied, available, ready]


def record_status(store: Store, binding: Mapping[str, Any], outcome: Outcome) -> bool:
    """Write the binding's new status when it differs from the stored one; True when written. A binding deleted
    meanwhile is not an error (the sweep takes care of its objects)."""
    metadata = binding["metadata"]
    generation = int(metadata.get("generation") or 0)
    status = c.with_conditions(binding.get("status"), binding_conditions(binding, outcome), generation, c.now_rfc3339())
    if status == (binding.get("status") or {}):
        return False
    try:
        store.put_status("ReleaseBinding", metadata["namespace"], metadata["name"], status)
    except NotFound:
        return False
    return True


async def reconcile_release(
    store: Store, transport: Transport, backoff: Backoff, namespace: str, name: str, timeout: float
) -> Outcome | None:
    """One pass over one binding (module docstring); None when the binding no longer exists."""
    binding = await asyncio.to_thread(store.get, "ReleaseBinding", namespace, name)
    if binding is None:
        return None
    try:
        plan = await asyncio.to_thread(plan_release, store, binding)
    except (ApiError, RenderError) as exc:
        outcome = Outcome(c.RENDER_FAILED, str(exc))
    else:
        outcome = await apply_plan(transport, backoff, plan, timeout)
    await asyncio.to_thread(record_status, store, binding, outcome)
    return outcome
