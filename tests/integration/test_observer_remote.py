"""The observer deciding with the control plane, both real processes: `observer up` with AUTHZ_MODE=remote asks the
control plane's `/api/v1/authz/evaluates` (forwarding the caller's token) and resolves names through its API with a
client-credentials token from that issuer's token endpoint; both processes verify tokens of the same OIDC issuer
(devservers/oidc.py).

The control plane holds OpenChoreo's samples, a binding that lets the observer's service account read names, and
one that lets the group `devs` read logs in the project `default`. A `devs` logs query by names is answered; a
stranger's is 403; deleting the binding through the control plane's API makes the very next query 403."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from controlplane import kinds
from devservers.controlplane import controlplane_up
from devservers.observer import AllInOne, observer_up
from devservers.oidc import OidcIssuer
from domain.model import (
    LABEL_COMPONENT,
    LABEL_COMPONENT_UID,
    LABEL_ENVIRONMENT,
    LABEL_ENVIRONMENT_UID,
    LABEL_NAMESPACE,
    LABEL_PROJECT,
    LABEL_PROJECT_UID,
)
from domain.timeutil import format_rfc3339, now_ns
from tests.integration.test_cp_resolver import API, samples
from tests.unit.test_cp_authz_compile import binding, mapping, role

AUDIENCE = "observer-api"
ADMINS = "cp-admins"
CLIENT_ID, CLIENT_SECRET = "observer-resolver", "resolver-secret"
SCOPE = {"namespace": "default", "project": "default", "component": "demo-app-http-service"}


def apply(client: httpx.Client, document: dict[str, Any]) -> None:
    row = kinds.get(document["kind"])
    response = client.post(row.collection_path(document["metadata"].get("namespace")), json=document)
    assert response.status_code == 201, response.text


class Planes:
    def __init__(self, cp: str, observer: AllInOne, admin: httpx.Client, mint: Any) -> None:
        self.cp, self.observer, self.admin, self.mint = cp, observer, admin, mint

    def query(self, scope: dict[str, str], *groups: str) -> httpx.Response:
        """A logs query by names on the observer, with a token for `groups`."""
        window = {"startTime": format_rfc3339(now_ns() - 600 * 10**9), "endTime": format_rfc3339(now_ns())}
        return httpx.post(
            f"{self.observer.api}/api/v1/logs/query",
            json={**window, "searchScope": scope, "limit": 10},
            headers={"Authorization": f"Bearer {self.mint(groups=list(groups))}"},
            timeout=30,
        )

    def logs(self, *groups: str) -> httpx.Response:
        return self.query({**SCOPE, "environment": "development"}, *groups)


@pytest.fixture(scope="module")
def planes(oidc_issuer: OidcIssuer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Planes]:
    key = OidcIssuer.new_key("RS256", kid="observer-remote-1")
    oidc_issuer.reset()
    oidc_issuer.publish(key)
    root = tmp_path_factory.mktemp("observer-remote")
    jwt = {"JWT_DISABLED": "false", "JWKS_URL": oidc_issuer.jwks_url, "JWT_ISSUER": oidc_issuer.url}
    jwt["JWT_AUDIENCE"] = AUDIENCE

    def mint(**claims: Any) -> str:
        return oidc_issuer.mint(key, aud=AUDIENCE, **claims)

    # The resolver's service account: a confidential client of the issuer (client credentials, `sub` = its id).
    oidc_issuer.register_client(CLIENT_ID, secret=CLIENT_SECRET)
    oidc_issuer.sign_in_as(key, audience=AUDIENCE)

    cp_env = {**jwt, "CONTROLPLANE_ADMIN_GROUPS": ADMINS}
    with (
        controlplane_up(root / "cp", env=cp_env) as cp,
        httpx.Client(base_url=cp, headers={"Authorization": f"Bearer {mint(groups=[ADMINS])}"}, timeout=10) as admin,
    ):
        for document in (
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}},
            {
                "apiVersion": API,
                "kind": "Project",
                "metadata": {"name": "default", "namespace": "default"},
                "spec": {"deploymentPipelineRef": {"name": "default"}, "type": {"name": "default"}},
            },
            *samples("http-service-component.yaml", "environments.yaml"),
            role("name-reader", "namespace:view", "project:view", "component:view", "environment:view"),
            binding("observer-resolver", mapping("name-reader"), claim="sub", value=CLIENT_ID),
            role("log-reader", "logs:view"),
            binding("devs-logs", mapping("log-reader", scope={"project": "default"}), namespace="default"),
        ):
            apply(admin, document)
        observer_env = {
            **jwt,
            "AUTHZ_MODE": "remote",
            "AUTHZ_SERVICE_URL": cp,
            "UID_RESOLVER_OPENCHOREO_API_URL": cp,
            "UID_RESOLVER_OAUTH_TOKEN_URL": f"{oidc_issuer.url}/token",
            "UID_RESOLVER_OAUTH_CLIENT_ID": CLIENT_ID,
            "UID_RESOLVER_OAUTH_CLIENT_SECRET": CLIENT_SECRET,
        }
        with observer_up(root / "observer", env=observer_env) as observer:
            yield Planes(cp, observer, admin, mint)


def uid(client: httpx.Client, kind: str, name: str) -> str:
    response = client.get(kinds.get(kind).item_path(name, "default"))
    assert response.status_code == 200, response.text
    return str(response.json()["metadata"]["uid"])


def send_log(planes: Planes, text: str) -> None:
    """One OTLP/JSON log record from a pod of the sample component, labelled with the UIDs the control plane
    assigned (as OpenChoreo labels its pods), so only a query resolved through the control plane finds it."""
    labels = {
        LABEL_NAMESPACE: "default",
        LABEL_PROJECT: "default",
        LABEL_PROJECT_UID: uid(planes.admin, "Project", "default"),
        LABEL_COMPONENT: SCOPE["component"],
        LABEL_COMPONENT_UID: uid(planes.admin, "Component", SCOPE["component"]),
        LABEL_ENVIRONMENT: "development",
        LABEL_ENVIRONMENT_UID: uid(planes.admin, "Environment", "development"),
        "k8s.pod.name": "demo-app-http-service-0",
    }
    attributes = [{"key": key, "value": {"stringValue": value}} for key, value in labels.items()]
    record = {"timeUnixNano": str(now_ns() - 10**9), "severityText": "INFO", "body": {"stringValue": text}}
    body = {"resourceLogs": [{"resource": {"attributes": attributes}, "scopeLogs": [{"logRecords": [record]}]}]}
    response = httpx.post(f"{planes.observer.otlp}/v1/logs", json=body, timeout=10)
    assert response.status_code == 200, response.text


def test_the_binding_decides_and_its_deletion_applies_to_the_next_query(planes: Planes) -> None:
    send_log(planes, "hello through the control plane")
    deadline = time.monotonic() + 30  # ingestion is asynchronous: poll, bounded
    while True:
        allowed = planes.logs("devs")
        assert allowed.status_code == 200, allowed.text
        if allowed.json()["logs"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert [entry["log"] for entry in allowed.json()["logs"]] == ["hello through the control plane"]
    assert planes.logs("strangers").status_code == 403

    assert planes.admin.delete("/api/v1/namespaces/default/authzrolebindings/devs-logs").status_code == 204
    refused = planes.logs("devs")
    assert refused.status_code == 403, refused.text


def test_the_observer_resolves_names_with_its_own_token(planes: Planes) -> None:
    # An admin (allowed everything by the control plane) gets past authorization to the name lookup, which the
    # resolver asks with the service account's token: a name the control plane does not hold is its 404, which
    # the observer reports as a bad scope naming it.
    missing = planes.query({**SCOPE, "component": "no-such-component"}, ADMINS)
    assert missing.status_code == 400 and "no-such-component" in missing.json()["message"], missing.text
    assert planes.query(SCOPE, ADMINS).status_code == 200

    # Without its binding the service account may not read names: the lookup is refused, the query unavailable.
    grant = "/api/v1/clusterauthzrolebindings/observer-resolver"
    assert planes.admin.delete(grant).status_code == 204
    assert planes.query(SCOPE, ADMINS).status_code == 503
    apply(planes.admin, binding("observer-resolver", mapping("name-reader"), claim="sub", value=CLIENT_ID))
    assert planes.query(SCOPE, ADMINS).status_code == 200
