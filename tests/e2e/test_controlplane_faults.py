"""The control plane's faults, on the walk-through with every piece a real process (devservers/planes.py):

- the data plane's agent killed (SIGKILL) while the control plane applies a new binding through it: the binding
  reports the plane disconnected, and converges once a new agent process dials in;
- a Deployment deleted by hand in the data plane is put back by the next resync (RECONCILE_INTERVAL=2);
- the control plane stopped for 60 s: the observability plane goes on without it (its agent keeps reconciling
  rule edits into the observer, the observer keeps evaluating and a rule fires and notifies), the agents keep
  redialling, and when the control plane is started again they reconnect and it restores the plane's drift.

Every wait is on a condition; the one fixed wait is the 60 s outage the issue names.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from kubernetes import client as k8s

from controlplane.render.labels import LABEL_MANAGED_BY, RELEASE_CONTROLLER
from devservers.kube import KubeServer
from devservers.planes import (
    COMPONENT,
    DATA_PLANE,
    OBSERVABILITY_PLANE,
    RULE,
    RULE_GROUP,
    RULE_PLURAL,
    RULE_VERSION,
    TRAIT_INSTANCE,
    ControlPlane,
    Platform,
    agent_connection,
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

OUTAGE_S = 60.0  # the issue's: the control plane is down this long


def applied_reason(control: ControlPlane, namespace: str) -> str:
    return str(binding_conditions(control, namespace).get("ResourcesApplied", {}).get("reason", ""))


def connected(control: ControlPlane, namespace: str) -> bool:
    """Both planes' CRs say an agent is connected (the gateway's status write-back)."""
    return bool(
        agent_connection(control, "DataPlane", namespace, DATA_PLANE).get("connected")
        and agent_connection(control, "ObservabilityPlane", namespace, OBSERVABILITY_PLANE).get("connected")
    )


def apply_walkthrough(rig: Platform, manifests: Path, *, without_binding: bool = False) -> None:
    files = sorted(manifests.glob("*.yaml"))
    if without_binding:
        files = [path for path in files if "releasebinding" not in path.name]
    flags = [item for path in files for item in ("-f", str(path))]
    applied = rig.observer_cli("apply", *flags)
    assert applied.returncode == 0, applied.stdout + applied.stderr


async def test_an_agent_killed_mid_apply_and_restarted_lets_the_binding_converge(
    tmp_path: Path, kube_api: KubeServer
) -> None:
    namespace = "kill"
    dp_namespace = dataplane_namespace(namespace)
    with platform(tmp_path, kube_api) as rig, rig.observability_agent():
        control, api = rig.control, rig.kube_client()
        apps, core = k8s.AppsV1Api(api), k8s.CoreV1Api(api)
        manifests = rig.walkthrough(namespace=namespace, webhook_url="http://127.0.0.1:9/alerts")
        with rig.dataplane_agent("dp-agent-1") as first:
            await asyncio.to_thread(apply_walkthrough, rig, manifests, without_binding=True)
            await until(lambda: connected(control, namespace), lambda: f"agents never connected:\n{first.output()}")
            # The binding arrives and the control plane starts applying it; the agent dies at its first object.
            await asyncio.to_thread(apply_walkthrough, rig, manifests)
            await until(
                lambda: read_or_none(apps.read_namespaced_deployment, COMPONENT, dp_namespace),
                lambda: f"no Deployment before the kill:\n{control.output()[-3000:]}",
            )
            assert first.kill() == -9
        await until(lambda: applied_reason(control, namespace) == "PlaneDisconnected",
                    lambda: f"the binding never said its plane was away: {binding_conditions(control, namespace)}")  # fmt: skip
        message = binding_conditions(control, namespace)["ResourcesApplied"]["message"]
        assert f"dataplane/{DATA_PLANE}" in message and "not connected" in message

        with rig.dataplane_agent("dp-agent-2") as second:
            await until(lambda: applied_reason(control, namespace) == "Applied",
                        lambda: f"the binding did not converge: {binding_conditions(control, namespace)}\n"
                                f"{second.output()[-2000:]}\n{control.output()[-3000:]}")  # fmt: skip
            assert second.connects() == 1
            deployment = read_or_none(apps.read_namespaced_deployment, COMPONENT, dp_namespace)
            service = read_or_none(core.read_namespaced_service, COMPONENT, dp_namespace)
            assert deployment is not None and service is not None
            assert deployment.metadata.labels[LABEL_MANAGED_BY] == RELEASE_CONTROLLER
            assert binding_conditions(control, namespace)["ResourcesApplied"]["status"] == "True"
            await _remove(rig, namespace)
        api.close()


async def test_a_deployment_deleted_by_hand_is_restored(tmp_path: Path, kube_api: KubeServer) -> None:
    namespace = "drift"
    dp_namespace = dataplane_namespace(namespace)
    with platform(tmp_path, kube_api, reconcile_interval=2) as rig, rig.dataplane_agent(), rig.observability_agent():
        control, api = rig.control, rig.kube_client()
        apps = k8s.AppsV1Api(api)
        manifests = rig.walkthrough(namespace=namespace, webhook_url="http://127.0.0.1:9/alerts")
        await asyncio.to_thread(apply_walkthrough, rig, manifests)
        first = await until(lambda: read_or_none(apps.read_namespaced_deployment, COMPONENT, dp_namespace),
                            lambda: f"no Deployment:\n{control.output()[-3000:]}")  # fmt: skip
        await until(lambda: applied_reason(control, namespace) == "Applied", "the binding never applied")

        apps.delete_namespaced_deployment(COMPONENT, dp_namespace)
        restored = await until(
            lambda: (
                (d := read_or_none(apps.read_namespaced_deployment, COMPONENT, dp_namespace)) is not None
                and d.metadata.uid != first.metadata.uid
                and d
            ),
            lambda: f"the Deployment was not restored:\n{control.output()[-3000:]}",
        )
        assert restored.metadata.labels == first.metadata.labels
        assert restored.spec.template.spec.containers[0].image == first.spec.template.spec.containers[0].image
        await _remove(rig, namespace)
        api.close()


async def test_the_observability_plane_keeps_evaluating_and_notifying_while_the_control_plane_is_down(
    tmp_path: Path, kube_api: KubeServer
) -> None:
    namespace = "outage"
    async with WebhookReceiver() as hook:
        with (
            platform(tmp_path, kube_api, reconcile_interval=2) as rig,
            rig.dataplane_agent() as dp_agent,
            rig.observability_agent() as obs_agent,
        ):
            control, api = rig.control, rig.kube_client()
            custom = k8s.CustomObjectsApi(api)
            manifests = rig.walkthrough(namespace=namespace, webhook_url=f"{hook.url}/alerts")
            await asyncio.to_thread(apply_walkthrough, rig, manifests)
            await until(lambda: rule_ready(read_rule(api, namespace), 1),
                        lambda: f"the rule never became Ready:\n{obs_agent.output()[-3000:]}")  # fmt: skip
            await until(lambda: connected(control, namespace), "the agents never connected")
            labels = identity_labels(control, namespace)

            control.stop()
            down_since = time.monotonic()
            # The observability plane's own loop goes on: an edit made there reaches the observer, and the
            # observer evaluates the edited rule and notifies.
            await asyncio.to_thread(
                custom.patch_namespaced_custom_object, RULE_GROUP, RULE_VERSION, namespace, RULE_PLURAL, RULE,
                {"spec": {"severity": "warning"}},
            )  # fmt: skip
            await until(lambda: rule_ready(read_rule(api, namespace), 2),
                        lambda: f"the edit was not synced:\n{obs_agent.output()[-3000:]}")  # fmt: skip
            await fire_until_notified(rig.observer, hook, labels)
            payload = hook.requests[0].json()
            assert payload["alertName"] == TRAIT_INSTANCE and payload["alertSeverity"] == "warning"
            assert not control.running()
            await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_since)))  # the 60 s
            for agent in (dp_agent, obs_agent):
                assert agent.process.poll() is None, agent.output()[-2000:]
                assert agent.failed_dials() > 0, "the agent never tried the stopped control plane"
                assert agent.connects() == 1

            control.start()
            await until(lambda: dp_agent.connects() == 2 and obs_agent.connects() == 2,
                        lambda: f"the agents did not come back:\n{dp_agent.output()[-1500:]}\n"
                                f"{obs_agent.output()[-1500:]}")  # fmt: skip
            await until(lambda: connected(control, namespace), "the plane CRs never showed the agents again")
            # Back in charge: the control plane puts its rendering over the edit made while it was away.
            await until(lambda: (read_rule(api, namespace) or {}).get("spec", {}).get("severity") == "critical",
                        lambda: f"the rule's drift was not restored:\n{control.output()[-3000:]}")  # fmt: skip
            await until(lambda: rule_ready(read_rule(api, namespace), 3), "the restored rule was not synced")
            await until(lambda: applied_reason(control, namespace) == "Applied",
                        lambda: f"the binding stayed {binding_conditions(control, namespace)}")  # fmt: skip
            await _remove(rig, namespace)
            api.close()


async def _remove(rig: Platform, namespace: str) -> None:
    """Delete the component and wait until its objects left the planes, so the shared kube-apiserver is left as
    found (the next test has its own rig, whose sweep must not meet this one's objects)."""
    deleted = await asyncio.to_thread(rig.observer_cli, "delete", "component", COMPONENT, "-n", namespace)
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    api = rig.kube_client()
    apps = k8s.AppsV1Api(api)
    try:
        await until(
            lambda: (
                read_or_none(apps.read_namespaced_deployment, COMPONENT, dataplane_namespace(namespace)) is None
                and read_rule(api, namespace) is None
            ),
            "the deleted component's objects stayed",
        )
    finally:
        api.close()
