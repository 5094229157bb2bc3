"""The README's walk-through, end to end, with every piece a real process: the control plane (API + gateway +
reconcilers), a data-plane agent and an observability-plane agent (each with its own ServiceAccount and CA, in
separate namespaces of one kube-apiserver), the observer, and a webhook receiver.

`observer apply -f` of docs/walkthrough/ (filled in with this run's CAs and URLs) creates the Namespace, planes,
Environment, Project, channel, Component with its alert-rule trait, Workload and ReleaseBinding. Then: the
Deployment and Service appear in the data plane with the identity and tracking labels; the ObservabilityAlertRule
appears in the observability plane and turns Ready once the agent synced it into the observer; logs matching it,
sent to the observer's OTLP port, fire it and the receiver gets the notification; the binding's status, and the
rule's status in its live tree (`.../k8sresources/tree`), are read back through the control plane's API;
`observer delete component` removes what it rendered from both planes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
from kubernetes import client as k8s

from controlplane.render.labels import (
    LABEL_MANAGED_BY,
    LABEL_RELEASE_NAME,
    LABEL_RELEASE_UID,
    RELEASE_CONTROLLER,
    RenderedRelease,
)
from devservers.kube import KubeServer
from devservers.planes import (
    BINDING,
    CHANNEL,
    COMPONENT,
    OBSERVER_TOKEN,
    RULE,
    TRAIT_INSTANCE,
    Platform,
    binding_conditions,
    dataplane_namespace,
    fire_until_notified,
    identity_labels,
    platform,
    read_or_none,
    read_rule,
    rule_ready,
    until,
)
from devservers.receivers import WebhookReceiver

NAMESPACE = "acme"  # the walk-through's own


async def test_the_walkthrough_deploys_alerts_notifies_and_deletes(tmp_path: Path, kube_api: KubeServer) -> None:
    async with WebhookReceiver() as hook:
        with platform(tmp_path, kube_api) as rig, rig.dataplane_agent(), rig.observability_agent() as obs_agent:
            await _walk(rig, hook, obs_agent.output)


async def _walk(rig: Platform, hook: WebhookReceiver, obs_log: Callable[[], str]) -> None:
    control, api = rig.control, rig.kube_client()
    apps, core = k8s.AppsV1Api(api), k8s.CoreV1Api(api)
    dp_namespace = dataplane_namespace(NAMESPACE)

    def state() -> str:
        return f"binding: {binding_conditions(control, NAMESPACE)}\ncontrol plane:\n{control.output()[-3000:]}"

    manifests = rig.walkthrough(namespace=NAMESPACE, webhook_url=f"{hook.url}/alerts")
    applied = await asyncio.to_thread(rig.observer_cli, "apply", "-f", str(manifests))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    for line in (
        f"namespace/{NAMESPACE} created",
        "observabilityplane.openchoreo.dev/laptop-obs created",
        "dataplane.openchoreo.dev/laptop created",
        f"component.openchoreo.dev/{COMPONENT} created",
        f"releasebinding.openchoreo.dev/{BINDING} created",
        f"observabilityalertsnotificationchannel.openchoreo.dev/{CHANNEL} created",
    ):
        assert line in applied.stdout, applied.stdout

    # The data plane: the Deployment and the Service, with the names, the UIDs and the tracking labels.
    labels = identity_labels(control, NAMESPACE)
    binding = control.get("ReleaseBinding", NAMESPACE, BINDING)
    assert binding is not None
    release = RenderedRelease.of(binding, "dataplane")
    deployment = await until(lambda: read_or_none(apps.read_namespaced_deployment, COMPONENT, dp_namespace), state)
    service = await until(lambda: read_or_none(core.read_namespaced_service, COMPONENT, dp_namespace), state)
    for rendered in (deployment, service):
        assert rendered.metadata.labels.items() >= labels.items()
        assert rendered.metadata.labels[LABEL_MANAGED_BY] == RELEASE_CONTROLLER
        assert rendered.metadata.labels[LABEL_RELEASE_UID] == release.uid
        assert rendered.metadata.labels[LABEL_RELEASE_NAME] == BINDING
    assert [port.port for port in service.spec.ports] == [8080]
    assert deployment.spec.replicas == 1

    # The binding's status, through the control plane's API (pods never run here: applied, not available).
    applied_condition = await until(
        lambda: (
            binding_conditions(control, NAMESPACE).get("ResourcesApplied", {}).get("reason") == "Applied"
            and binding_conditions(control, NAMESPACE)["ResourcesApplied"]
        ),
        state,
    )
    assert applied_condition["status"] == "True"
    available = binding_conditions(control, NAMESPACE)["Available"]
    assert available["status"] == "False" and available["message"].endswith("0/1 replicas available")
    listed = httpx.get(f"{control.url}/api/v1/namespaces/{NAMESPACE}/releasebindings", timeout=10).json()
    assert [item["metadata"]["name"] for item in listed["items"]] == [BINDING]
    assert listed["items"][0]["status"]["conditions"]

    # The observability plane: the rule CR (named after the binding and the trait instance), synced by its agent.
    rule = await until(lambda: rule_ready(found := read_rule(api, NAMESPACE)) and found,
                       lambda: f"the rule never became Ready: {read_rule(api, NAMESPACE)}\n{obs_log()[-3000:]}")  # fmt: skip
    assert rule["spec"]["name"] == TRAIT_INSTANCE and rule["spec"]["severity"] == "critical"
    assert rule["spec"]["actions"]["notifications"]["channels"] == [CHANNEL]  # the environment's default channel
    assert rule["metadata"]["labels"]["openchoreo.dev/component-uid"] == labels["openchoreo.dev/component-uid"]
    assert rule["metadata"]["labels"][LABEL_MANAGED_BY] == RELEASE_CONTROLLER
    assert rule["metadata"]["labels"][LABEL_RELEASE_UID] == RenderedRelease.of(binding, "observabilityplane").uid
    assert rule["status"]["backendMonitorId"]
    # ... and the same status through the control plane: the binding's live tree, read through the gateway.
    tree = httpx.get(
        f"{control.url}/api/v1/namespaces/{NAMESPACE}/releasebindings/{BINDING}/k8sresources/tree", timeout=30
    )
    assert tree.status_code == 200, tree.text
    releases = {release["targetPlane"]: release for release in tree.json()["renderedReleases"]}
    [rule_node] = [n for n in releases["observabilityplane"]["nodes"] if n["kind"] == "ObservabilityAlertRule"]
    assert rule_node["name"] == RULE and rule_node["uid"] == rule["metadata"]["uid"]
    assert rule_node["object"]["status"]["phase"] == "Ready"
    assert rule_node["object"]["status"]["backendMonitorId"] == rule["status"]["backendMonitorId"]
    kinds_in_dataplane = {n["kind"]: n for n in releases["dataplane"]["nodes"]}
    assert kinds_in_dataplane["Deployment"]["uid"] == deployment.metadata.uid
    assert kinds_in_dataplane["Service"]["uid"] == service.metadata.uid

    internal = httpx.Client(base_url=rig.observer.internal, headers={"Authorization": f"Bearer {OBSERVER_TOKEN}"})
    with internal:
        assert internal.get(f"/api/v1alpha1/alerts/sources/log/rules/{RULE}").status_code == 200

        # Matching logs fire it; the channel (rendered by the control plane, synced by the agent) gets the alert.
        await fire_until_notified(rig.observer, hook, labels)
        payload = hook.requests[0].json()
        assert hook.requests[0].path == "/alerts"
        assert payload["alertName"] == TRAIT_INSTANCE and payload["alertSeverity"] == "critical"
        assert payload["notificationChannels"] == [CHANNEL] and float(payload["alertValue"]) > 3

        # Delete the component: the binding and workload go with it, and so does everything they rendered.
        deleted = await asyncio.to_thread(rig.observer_cli, "delete", "component", COMPONENT, "-n", NAMESPACE)
        assert deleted.returncode == 0, deleted.stdout + deleted.stderr
        assert control.get("ReleaseBinding", NAMESPACE, BINDING) is None
        assert control.get("Workload", NAMESPACE, f"{COMPONENT}-workload") is None
        await until(
            lambda: (
                read_or_none(apps.read_namespaced_deployment, COMPONENT, dp_namespace) is None
                and read_or_none(core.read_namespaced_service, COMPONENT, dp_namespace) is None
            ),
            state,
        )
        await until(lambda: read_rule(api, NAMESPACE) is None, "the rule CR stayed in the observability plane")
        await until(
            lambda: internal.get(f"/api/v1alpha1/alerts/sources/log/rules/{RULE}").status_code == 404,
            "the observer kept the rule",
        )
    # What the component did not render stays: the shared namespace and the environment's channel.
    assert read_or_none(core.read_namespace, dp_namespace) is not None
    assert read_or_none(core.read_namespaced_config_map, CHANNEL, NAMESPACE) is not None
    api.close()
