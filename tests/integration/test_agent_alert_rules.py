"""The observability-plane agent's reconciler against a real kube-apiserver (with the ObservabilityAlertRule CRD) and
a real observer (`observer up`, its internal port behind OBSERVER_INTERNAL_TOKEN): a CR becomes a rule in the
observer and its status says so, through our rule-resources endpoint and through upstream's rule API alike; an
edit updates it; a delete removes it (also one made while the agent was down, through the finalizer); a channel
ConfigMap + Secret becomes a channel with its secret values; a rule synced by the agent keeps its channels,
severity and description, so its firing reaches the channel's receiver; the agent runs with upstream's agent
ClusterRole plus the one rule it adds; and the observer's rule-resources and channel endpoints are strict and
idempotent."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from sqlalchemy import select

from agents.alert_rules import FINALIZER, ObserverApi, run_alert_rules
from agents.channels import CHANNEL_LABEL
from agents.observer_client import ObserverClient
from agents.rules import GROUP, PLURAL, VERSION
from collectors.kubernetes.watch import api_client
from devservers.kube import KubeServer, TcpRelay
from devservers.kube_accounts import mint_token, write_kubeconfig
from devservers.observer import AllInOne, observer_up
from devservers.receivers import WebhookReceiver
from observer.alerting.db import open_engine
from observer.alerting.resources import ResourceStore
from observer.alerting.tables import alert_entries

CRD = Path(__file__).parent.parent / "data" / "controlplane" / "openchoreo.dev_observabilityalertrules.yaml"
TOKEN = "agent-test-internal-token-0123456789"
GUARD = 60.0  # a bound on waiting, not a timing assertion
UIDS = {
    "openchoreo.dev/component-uid": "11111111-1111-4111-8111-111111111111",
    "openchoreo.dev/project-uid": "22222222-2222-4222-8222-222222222222",
    "openchoreo.dev/environment-uid": "33333333-3333-4333-8333-333333333333",
}


@pytest.fixture(scope="module")
def observer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AllInOne, Path]]:
    data_dir = tmp_path_factory.mktemp("agent-observer") / "data"
    with observer_up(data_dir, env={"OBSERVER_INTERNAL_TOKEN": TOKEN}) as running:
        yield running, data_dir


@pytest.fixture(scope="module")
def api(kube_api: KubeServer) -> Iterator[k8s.ApiClient]:
    client = kube_api.api_client()
    extensions = k8s.ApiextensionsV1Api(client)
    try:
        extensions.create_custom_resource_definition(yaml.safe_load(CRD.read_text()))
    except ApiException as exc:
        if exc.status != 409:
            raise
    name = f"{PLURAL}.{GROUP}"
    for _ in range(600):
        crd = extensions.read_custom_resource_definition(name)
        conditions = (crd.status.conditions if crd.status else None) or []
        if any(c.type == "Established" and c.status == "True" for c in conditions):
            break
        time.sleep(0.1)
    yield client
    client.close()


@pytest.fixture
def namespace(api: k8s.ApiClient) -> str:
    name = f"agent-{uuid.uuid4().hex[:8]}"
    k8s.CoreV1Api(api).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    return name


async def eventually(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    """Polls `check` until it returns something truthy; fails after GUARD seconds saying `what` never happened."""
    deadline = asyncio.get_running_loop().time() + GUARD
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.1)


#: Upstream's agent ClusterRole in the observability plane (control-plane notes §1, from the chart's
#: cluster-agent/clusterrole.yaml).
UPSTREAM_AGENT_RULES: list[dict[str, Any]] = [
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "patch"]},
    {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get", "patch", "update"]},
    {"apiGroups": [""], "resources": ["secrets", "configmaps", "namespaces"], "verbs": ["*"]},
    {"apiGroups": [""], "resources": ["pods", "events"], "verbs": ["get", "list"]},
    {"apiGroups": ["openchoreo.dev"], "resources": ["observabilityalertrules"], "verbs": ["*"]},
]
#: What the agent needs beyond upstream's agent ClusterRole (devservers/kube_accounts.py): it writes the rule CRs'
#: status, which upstream's controller (a ServiceAccount of its own) does in upstream's plane.
AGENT_EXTRA_RULES: list[dict[str, Any]] = [
    {"apiGroups": [GROUP], "resources": [f"{PLURAL}/status"], "verbs": ["get", "patch", "update"]},
]


@asynccontextmanager
async def agent(
    api: k8s.ApiClient,
    observer: AllInOne,
    url: str = "",
    resync_s: float = 600.0,
    observer_api: ObserverApi = "resources",
) -> AsyncIterator[None]:
    stop = asyncio.Event()
    async with ObserverClient(url or observer.internal, token=TOKEN) as client:
        task = asyncio.create_task(run_alert_rules(api, client, stop, resync_s=resync_s, observer_api=observer_api))
        try:
            yield
        finally:
            stop.set()
            await asyncio.wait_for(task, GUARD)


def rule_cr(namespace: str, name: str, threshold: int = 10, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ObservabilityAlertRule",
        "metadata": {"name": name, "namespace": namespace, "labels": UIDS if labels is None else labels},
        "spec": {
            "name": "errors",
            "severity": "warning",
            "source": {"type": "log", "query": "error"},
            "condition": {"window": "5m", "interval": "1m", "operator": "gt", "threshold": threshold},
            "actions": {"notifications": {"channels": ["mail"]}},
        },
    }


async def kube(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(call, *args, **kwargs)


async def read_cr(api: k8s.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return await kube(
            k8s.CustomObjectsApi(api).get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


async def observer_rule(observer: AllInOne, name: str, token: str = TOKEN) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.get(f"{observer.internal}/api/v1alpha1/alerts/sources/log/rules/{name}") as response:
            return response.status, await response.json(content_type=None)


def synced(cr: dict[str, Any] | None, generation: int) -> bool:
    status = (cr or {}).get("status") or {}
    return status.get("observedGeneration") == generation and status.get("phase") == "Ready"


@pytest.mark.parametrize("observer_api", ["resources", "upstream"])
async def test_a_rule_cr_becomes_an_observer_rule_with_ready_status_and_follows_edits_and_deletion(
    api: k8s.ApiClient, observer: tuple[AllInOne, Path], namespace: str, observer_api: ObserverApi
) -> None:
    running, _ = observer
    custom = k8s.CustomObjectsApi(api)
    name = f"cart-dev-errors-{observer_api}"
    await kube(custom.create_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, rule_cr(namespace, name))
    async with agent(api, running, observer_api=observer_api):
        cr = await eventually(lambda: _when(read_cr(api, namespace, name), lambda cr: synced(cr, 1)), "status Ready")
        status = cr["status"]
        condition = status["conditions"][0]
        assert (condition["type"], condition["status"], condition["reason"]) == ("Synced", "True", "SyncSucceeded")
        assert condition["observedGeneration"] == 1
        assert status["backendMonitorId"] and status["lastSyncTime"] and status["lastReconcileTime"]
        assert FINALIZER in cr["metadata"]["finalizers"]
        code, rule = await observer_rule(running, name)
        assert code == 200
        assert rule["metadata"] == {"name": name, "namespace": namespace} | {
            "componentUid": UIDS["openchoreo.dev/component-uid"],
            "projectUid": UIDS["openchoreo.dev/project-uid"],
            "environmentUid": UIDS["openchoreo.dev/environment-uid"],
        }
        assert rule["condition"] == {
            "enabled": True,
            "window": "5m",
            "interval": "1m",
            "operator": "gt",
            "threshold": 10,
        }

        # An edit: a new generation, carried into the observer.
        patch = {"spec": {"condition": {"threshold": 25}}}
        await kube(
            custom.patch_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name, patch,
            _content_type="application/merge-patch+json",
        )  # fmt: skip
        await eventually(lambda: _when(read_cr(api, namespace, name), lambda cr: synced(cr, 2)), "generation 2 synced")
        code, rule = await observer_rule(running, name)
        assert code == 200 and rule["condition"]["threshold"] == 25

        # A delete: the finalizer holds the CR until the observer's rule is gone.
        await kube(custom.delete_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name)
        await eventually(lambda: _when(read_cr(api, namespace, name), lambda cr: cr is None, none_ok=True), "CR gone")
        code, _ = await observer_rule(running, name)
        assert code == 404


async def test_a_delete_made_while_the_agent_was_down_still_reaches_the_observer(
    api: k8s.ApiClient, observer: tuple[AllInOne, Path], namespace: str
) -> None:
    running, _ = observer
    custom = k8s.CustomObjectsApi(api)
    name = "offline-delete"
    await kube(custom.create_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, rule_cr(namespace, name))
    async with agent(api, running):
        await eventually(lambda: _when(read_cr(api, namespace, name), lambda cr: synced(cr, 1)), "status Ready")
    await kube(custom.delete_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name)
    held = await read_cr(api, namespace, name)
    assert held is not None and held["metadata"].get("deletionTimestamp")  # the finalizer holds it
    assert (await observer_rule(running, name))[0] == 200
    async with agent(api, running):
        await eventually(lambda: _when(read_cr(api, namespace, name), lambda cr: cr is None, none_ok=True), "CR gone")
    assert (await observer_rule(running, name))[0] == 404


async def test_an_unreachable_observer_is_reported_and_retried_until_it_answers(
    api: k8s.ApiClient, observer: tuple[AllInOne, Path], namespace: str
) -> None:
    running, _ = observer
    custom = k8s.CustomObjectsApi(api)
    name = "observer-away"
    port = int(running.internal.rsplit(":", 1)[1])
    with TcpRelay(("127.0.0.1", port)) as relay:
        relay.refusing = True
        await kube(custom.create_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, rule_cr(namespace, name))
        async with agent(api, running, f"http://127.0.0.1:{relay.port}"):

            def failed(cr: dict[str, Any] | None) -> bool:
                return ((cr or {}).get("status") or {}).get("phase") == "Error"

            cr = await eventually(lambda: _when(read_cr(api, namespace, name), failed), "status Error")
            condition = cr["status"]["conditions"][0]
            assert (condition["status"], condition["reason"]) == ("False", "SyncFailed")
            assert "unreachable" in condition["message"]
            relay.refusing = False
            cr = await eventually(lambda: _when(read_cr(api, namespace, name), lambda cr: synced(cr, 1)), "Ready")
            assert cr["status"]["conditions"][0]["reason"] == "SyncSucceeded"
    assert (await observer_rule(running, name))[0] == 200


async def test_a_rule_removed_behind_the_agents_back_is_restored_by_the_resync(
    api: k8s.ApiClient, observer: tuple[AllInOne, Path], namespace: str
) -> None:
    running, _ = observer
    custom = k8s.CustomObjectsApi(api)
    name = "drifted"
    await kube(custom.create_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, rule_cr(namespace, name))
    async with agent(api, running, resync_s=0.5):
        await eventually(lambda: _when(read_cr(api, namespace, name), lambda cr: synced(cr, 1)), "status Ready")
        async with ObserverClient(running.internal, token=TOKEN) as client:
            assert await client.delete_rule("log", name)

        async def restored() -> bool:
            return (await observer_rule(running, name))[0] == 200

        await eventually(restored, "the rule restored in the observer")


@pytest.mark.parametrize(
    "observer_api,problem",
    [
        ("resources", "metadata.labels must scope the rule"),  # the observer's 400, as `observer rules apply` says
        ("upstream", "component-uid"),  # the agent's own check, as upstream's controller refuses it
    ],
)
async def test_a_rule_without_scope_labels_gets_an_error_status_and_no_observer_rule(
    api: k8s.ApiClient, observer: tuple[AllInOne, Path], namespace: str, observer_api: ObserverApi, problem: str
) -> None:
    running, _ = observer
    custom = k8s.CustomObjectsApi(api)
    name = f"unlabelled-{observer_api}"
    cr = rule_cr(namespace, name, labels={})
    await kube(custom.create_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, cr)
    async with agent(api, running, observer_api=observer_api):

        def failed(cr: dict[str, Any] | None) -> bool:
            return ((cr or {}).get("status") or {}).get("phase") == "Error"

        cr = await eventually(lambda: _when(read_cr(api, namespace, name), failed), "status Error")
    condition = cr["status"]["conditions"][0]
    assert (condition["status"], condition["reason"]) == ("False", "SyncFailed")
    assert problem in condition["message"]
    assert (await observer_rule(running, name))[0] == 404


async def test_a_channel_configmap_and_secret_become_a_channel_in_the_observer(
    api: k8s.ApiClient, observer: tuple[AllInOne, Path], namespace: str
) -> None:
    running, data_dir = observer
    core = k8s.CoreV1Api(api)
    labels = {CHANNEL_LABEL: "hook", "openchoreo.dev/environment": "development"}
    config_map = {
        "metadata": {"name": "hook", "namespace": namespace, "labels": labels},
        "data": {
            "type": "webhook",
            "isEnvDefault": "true",
            "webhook.url": "https://hooks.example.test/alerts",
            "webhook.headers": "Authorization,X-Api-Key",
            "webhook.header.Authorization": "Bearer inline",
        },
    }
    secret = {
        "metadata": {"name": "hook", "namespace": namespace, "labels": labels},
        "data": {"webhook.header.X-Api-Key": base64.b64encode(b"k3y").decode()},
    }
    await kube(core.create_namespaced_config_map, namespace, config_map)
    await kube(core.create_namespaced_secret, namespace, secret)
    store = ResourceStore(open_engine(str(data_dir / "alerts.db")))
    try:
        async with agent(api, running):

            async def stored_key() -> str | None:
                return await store.secret_value(namespace, "hook", "webhook.header.X-Api-Key")

            assert await eventually(stored_key, "the secret value stored") == "k3y"
            channel = await store.channel(namespace, "hook")
            assert channel is not None and channel.namespace == namespace
            assert channel.environment == "development" and channel.is_env_default
            assert channel.webhook is not None and channel.webhook.url == "https://hooks.example.test/alerts"
            assert channel.webhook.headers["Authorization"].value == "Bearer inline"
            ref = channel.webhook.headers["X-Api-Key"].secret
            assert ref is not None and (ref.name, ref.key) == ("hook", "webhook.header.X-Api-Key")

            # A change of the Secret alone reaches the observer.
            rotated = {"data": {"webhook.header.X-Api-Key": base64.b64encode(b"n3w").decode()}}
            await kube(core.patch_namespaced_secret, "hook", namespace, rotated)

            async def rotated_key() -> bool:
                return await stored_key() == "n3w"

            await eventually(rotated_key, "the rotated secret value stored")

            # The ConfigMap going away removes the channel.
            await kube(core.delete_namespaced_config_map, "hook", namespace)

            async def removed() -> bool:
                return await store.channel(namespace, "hook") is None

            await eventually(removed, "the channel removed")
    finally:
        store.engine.dispose()


async def test_the_channel_endpoint_is_strict_idempotent_and_behind_the_token(
    observer: tuple[AllInOne, Path],
) -> None:
    running, data_dir = observer
    url = f"{running.internal}/api/v1alpha1/alerts/notification-channels/ops/mail"
    channel = {
        "metadata": {"name": "mail"},
        "spec": {
            "environment": "production",
            "type": "email",
            "emailConfig": {"from": "a@x.test", "to": ["b@x.test"], "smtp": {"host": "smtp.x.test", "port": 25}},
        },
    }
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:

        async def call(method: str, body: Any = None, target: str = url) -> tuple[int, Any]:
            async with session.request(method, target, json=body) as response:
                return response.status, await response.json(content_type=None)

        status, body = await call("PUT", {"channel": channel, "secrets": {}, "extra": 1})
        assert status == 400 and body["errorCode"] == "INVALID_REQUEST_BODY" and "extra" in body["message"]
        assert body["title"] == "badRequest"
        for bad in ([channel], {"channel": "x"}, {"channel": channel, "secrets": {"k": 1}}, {"secrets": {}}):
            status, body = await call("PUT", bad)
            assert status == 400 and body["errorCode"] == "INVALID_REQUEST_BODY", bad
        async with session.put(url, data=b"{not json", headers={"Content-Type": "application/json"}) as response:
            assert response.status == 400 and (await response.json())["errorCode"] == "INVALID_REQUEST_BODY"
        status, body = await call("PUT", {"channel": {**channel, "metadata": {"name": "other"}}})
        assert status == 400 and body["errorCode"] == "VALIDATION_ERROR"
        status, body = await call("PUT", {"channel": {**channel, "spec": {"type": "email"}}})
        assert status == 400 and body["errorCode"] == "VALIDATION_ERROR"
        status, body = await call("PUT", {"channel": channel}, url.replace("/ops/", "/Not_Valid/"))
        assert status == 400

        for _ in range(2):
            status, body = await call("PUT", {"channel": channel, "secrets": {"smtp.auth.username": "u"}})
            assert (status, body["action"]) == (200, "configured")
        store = ResourceStore(open_engine(str(data_dir / "alerts.db")))
        try:
            stored = await store.channel("ops", "mail")
            assert stored is not None and stored.email is not None and stored.email.host == "smtp.x.test"
            assert await store.secret_value("ops", "mail", "smtp.auth.username") == "u"
            assert (await call("DELETE"))[1]["action"] == "deleted"
            assert (await call("DELETE"))[1]["action"] == "unchanged"
            assert await store.channel("ops", "mail") is None
            assert await store.secret_value("ops", "mail", "smtp.auth.username") is None
        finally:
            store.engine.dispose()

    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.put(url, json={"channel": channel}) as response:
            assert response.status == 401


async def test_an_agent_synced_rule_keeps_channels_severity_and_description_and_its_firing_reaches_the_channel(
    api: k8s.ApiClient, observer: tuple[AllInOne, Path], namespace: str
) -> None:
    running, data_dir = observer
    custom, core = k8s.CustomObjectsApi(api), k8s.CoreV1Api(api)
    name = "checkout-fires"
    store = ResourceStore(open_engine(str(data_dir / "alerts.db")))
    try:
        async with WebhookReceiver() as hook:
            labels = {CHANNEL_LABEL: "pager", "openchoreo.dev/environment": "development"}
            config_map = {
                "metadata": {"name": "pager", "namespace": namespace, "labels": labels},
                "data": {"type": "webhook", "isEnvDefault": "false", "webhook.url": f"{hook.url}/alerts"},
            }
            await kube(core.create_namespaced_config_map, namespace, config_map)
            cr = rule_cr(namespace, name)
            cr["spec"] |= {
                "severity": "critical",
                "description": "checkout is failing",
                "actions": {"notifications": {"channels": ["pager"]}},
            }
            await kube(custom.create_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, cr)
            async with agent(api, running):
                await eventually(lambda: _when(read_cr(api, namespace, name), lambda cr: synced(cr, 1)), "Ready")

                async def channel_stored() -> bool:
                    return await store.channel(namespace, "pager") is not None

                await eventually(channel_stored, "the channel stored")
            rule = await store.get_rule(namespace, name)
            assert rule is not None
            assert (rule.channels, rule.severity, rule.description) == (("pager",), "critical", "checkout is failing")

            firing = {"ruleName": name, "ruleNamespace": namespace, "alertValue": 12}
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
                async with session.post(f"{running.internal}/api/v1alpha1/alerts/webhook", json=firing) as response:
                    assert response.status == 200
                    message = (await response.json())["message"]
            assert message.startswith("alert acknowledged, alertID: ")
            alert_id = message.rsplit(" ", 1)[1]
            await hook.wait_for(1, GUARD)
            [request] = hook.requests
            payload = request.json()
            assert request.path == "/alerts"
            assert payload["alertId"] == alert_id and payload["alertName"] == "errors"
            assert (payload["alertSeverity"], payload["alertDescription"]) == ("critical", "checkout is failing")
            assert payload["notificationChannels"] == ["pager"] and payload["alertValue"] == "12"
        with store.engine.connect() as conn:
            row = conn.execute(select(alert_entries).where(alert_entries.c.id == alert_id)).one()
        assert (row.severity, row.description) == ("critical", "checkout is failing")
        assert json.loads(row.notification_channels) == ["pager"]
        assert (row.alert_rule_cr_name, row.alert_rule_cr_namespace) == (name, namespace)
    finally:
        store.engine.dispose()


async def _service_account(server: KubeServer, directory: Path, rules: list[dict[str, Any]]) -> k8s.ApiClient:
    """A client acting as a fresh ServiceAccount bound (cluster-wide) to a ClusterRole of exactly `rules`."""
    admin = server.api_client()
    core, rbac = k8s.CoreV1Api(admin), k8s.RbacAuthorizationV1Api(admin)
    name = f"sa-{uuid.uuid4().hex[:8]}"
    meta = k8s.V1ObjectMeta(name=name)
    await kube(core.create_namespace, k8s.V1Namespace(metadata=meta))
    await kube(core.create_namespaced_service_account, name, k8s.V1ServiceAccount(metadata=meta))
    policy = [k8s.V1PolicyRule(api_groups=r["apiGroups"], resources=r["resources"], verbs=r["verbs"]) for r in rules]
    await kube(rbac.create_cluster_role, k8s.V1ClusterRole(metadata=meta, rules=policy))
    binding = k8s.V1ClusterRoleBinding(
        metadata=meta,
        role_ref=k8s.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=name),
        subjects=[k8s.RbacV1Subject(kind="ServiceAccount", name=name, namespace=name)],
    )
    await kube(rbac.create_cluster_role_binding, binding)
    admin.close()
    token_file = directory / f"{name}.token"
    token_file.write_text(await kube(mint_token, server, name, name))
    return api_client(write_kubeconfig(server, directory / f"{name}.kubeconfig", token_file=token_file))


async def test_the_agent_runs_with_upstreams_agent_role_plus_the_status_rule_and_not_without_it(
    kube_api: KubeServer, api: k8s.ApiClient, observer: tuple[AllInOne, Path], namespace: str, tmp_path: Path
) -> None:
    running, _ = observer
    custom = k8s.CustomObjectsApi(api)
    name = "least-privilege"
    await kube(custom.create_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, rule_cr(namespace, name))

    upstream_only = await _service_account(kube_api, tmp_path, UPSTREAM_AGENT_RULES)
    try:
        as_upstream = k8s.CustomObjectsApi(upstream_only)

        async def bound() -> bool:  # the binding is in force once the CR can be read
            try:
                await kube(as_upstream.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name)
            except ApiException as exc:
                if exc.status != 403:
                    raise
                return False
            return True

        await eventually(bound, "upstream's agent role in force")
        with pytest.raises(ApiException) as refused:
            await kube(
                as_upstream.patch_namespaced_custom_object_status, GROUP, VERSION, namespace, PLURAL, name,
                {"status": {"phase": "Pending"}}, _content_type="application/merge-patch+json",
            )  # fmt: skip
        assert refused.value.status == 403
    finally:
        upstream_only.close()

    as_agent = await _service_account(kube_api, tmp_path, UPSTREAM_AGENT_RULES + AGENT_EXTRA_RULES)
    try:
        async with agent(as_agent, running):
            cr = await eventually(lambda: _when(read_cr(api, namespace, name), lambda cr: synced(cr, 1)), "Ready")
            assert FINALIZER in cr["metadata"]["finalizers"]
            await kube(custom.delete_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name)
            await eventually(lambda: _when(read_cr(api, namespace, name), lambda cr: cr is None, none_ok=True), "gone")
        assert (await observer_rule(running, name))[0] == 404
    finally:
        as_agent.close()


async def test_the_rule_resource_endpoint_is_strict_idempotent_and_behind_the_token(
    observer: tuple[AllInOne, Path],
) -> None:
    running, data_dir = observer
    url = f"{running.internal}/api/v1alpha1/alerts/rule-resources/ops/api-errors"
    cr = rule_cr("ops", "api-errors")
    cr["spec"]["description"] = "the API fails"
    cr["status"] = {"phase": "Ready"}  # as the API server returns it: ignored
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:

        async def call(method: str, body: Any = None, target: str = url) -> tuple[int, Any]:
            async with session.request(method, target, json=body) as response:
                return response.status, await response.json(content_type=None)

        for bad, code, said in [
            ([cr], "INVALID_REQUEST_BODY", "object"),
            ({**cr, "extra": 1}, "INVALID_REQUEST_BODY", "extra"),
            ({**cr, "kind": "ConfigMap"}, "VALIDATION_ERROR", "kind"),
            ({k: v for k, v in cr.items() if k != "kind"}, "VALIDATION_ERROR", "kind"),
            ({**cr, "apiVersion": "openchoreo.dev/v1"}, "VALIDATION_ERROR", "apiVersion"),
            ({**cr, "metadata": {**cr["metadata"], "name": "other"}}, "VALIDATION_ERROR", "metadata.name"),
            ({**cr, "metadata": {**cr["metadata"], "namespace": "dev"}}, "VALIDATION_ERROR", "metadata.namespace"),
            ({**cr, "metadata": {"name": "api-errors", "labels": UIDS}}, "VALIDATION_ERROR", "metadata.namespace"),
            (
                {**cr, "spec": {**cr["spec"], "actions": {"notifications": {"channels": []}}}},
                "VALIDATION_ERROR",
                "channels",
            ),
            ({**cr, "spec": {**cr["spec"], "severity": "loud"}}, "VALIDATION_ERROR", "spec.severity"),
            ({**cr, "metadata": {**cr["metadata"], "labels": {}}}, "VALIDATION_ERROR", "metadata.labels"),
        ]:
            status, body = await call("PUT", bad)
            assert (status, body["errorCode"]) == (400, code), bad
            assert said in body["message"], (said, body)
        async with session.put(url, data=b"{not json", headers={"Content-Type": "application/json"}) as response:
            assert response.status == 400 and (await response.json())["errorCode"] == "INVALID_REQUEST_BODY"
        status, _ = await call("PUT", {**cr, "metadata": {**cr["metadata"], "name": "Bad_Name"}}, url + "X_")
        assert status == 400

        status, body = await call("PUT", cr)
        assert (status, body["action"], body["status"]) == (201, "created", "synced")
        assert body["ruleBackendId"] and body["lastSyncedAt"]
        status, body = await call("PUT", cr)
        assert (status, body["action"]) == (200, "unchanged")
        status, body = await call("PUT", {**cr, "spec": {**cr["spec"], "severity": "critical"}})
        assert (status, body["action"]) == (200, "updated")
        store = ResourceStore(open_engine(str(data_dir / "alerts.db")))
        try:
            rule = await store.get_rule("ops", "api-errors")
            assert rule is not None and rule.generation == 2
            assert (rule.channels, rule.severity, rule.description) == (("mail",), "critical", "the API fails")
            status, body = await call("DELETE")
            assert (status, body["action"]) == (200, "deleted")
            status, body = await call("DELETE")
            assert (status, body["errorCode"]) == (404, "NOT_FOUND")
            assert await store.get_rule("ops", "api-errors") is None
        finally:
            store.engine.dispose()

    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.put(url, json=cr) as response:
            assert response.status == 401


async def _when(
    read: Awaitable[dict[str, Any] | None], test: Callable[[dict[str, Any] | None], bool], *, none_ok: bool = False
) -> dict[str, Any] | bool | None:
    """The object read when `test` holds of it (True for a test of absence), else None."""
    obj = await read
    if not test(obj):
        return None
    return obj if obj is not None else none_ok
