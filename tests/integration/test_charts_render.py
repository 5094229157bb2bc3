"""The charts rendered by the real helm (built by scripts/helm.sh; devservers/helm.py): `helm lint --strict` with
default and with fully-populated values, the guard rails, and a matrix of values (embedded store, OpenSearch +
Prometheus, Datadog, authentication on and off, NetworkPolicy and ServiceMonitor on, PostgreSQL with replicas,
certificates from Secrets) asserted object by object: names, labels, probes, security contexts, environment,
volumes and RBAC rules. tests/integration/test_charts_apiserver.py applies the same matrix to a real API server."""

from __future__ import annotations

import copy
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devservers.helm import CHARTS, HelmError, helm_binary, lint, notes, template
from devservers.kube_accounts import agent_rules

OBS, DATA, CONTROL = CHARTS / "observability-plane", CHARTS / "data-plane", CHARTS / "control-plane"
APP_VERSION = yaml.safe_load((OBS / "Chart.yaml").read_text())["appVersion"]
JWKS = "https://idp.example.com/oauth2/jwks"
AUTH = {"security": {"oidc": {"jwksUrl": JWKS}}}
#: Who may read what, for the observer's embedded decision point (docs/authz-policy.md).
POLICY = {
    "roles": {"viewer": ["logs:view", "metrics:view"]},
    "bindings": [{"name": "all", "role": "viewer", "groups": ["devs"]}],
}
OBS_AUTH = {**AUTH, "observer": {"authz": {"policy": POLICY}}}
#: Trusted audit producers as a values file gives them: "" is the release's namespace, podPrefix optional.
PRODUCERS = [
    {"namespace": "cp", "container": "controlplane", "podPrefix": "controlplane-"},
    {"namespace": "", "container": "observer"},
]
CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIUTest\n-----END CERTIFICATE-----\n"


def merged(*parts: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of values dicts, later wins (as several -f files would)."""
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merged(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


#: (chart, values) per case: the matrix both this module and the API-server test render.
CASES: dict[str, tuple[Path, dict[str, Any]]] = {
    "op-embedded": (OBS, OBS_AUTH),
    "op-opensearch-prometheus": (
        OBS,
        merged(
            OBS_AUTH,
            {
                "observer": {
                    "secretName": "observer-secrets",
                    "controlPlaneApiUrl": "http://openchoreo-api.openchoreo-control-plane:8080",
                    "opensearch": {
                        "address": "https://opensearch.logging:9200",
                        "username": "observer",
                        "auditIndexPrefix": "acme-audit-",
                    },
                    "audit": {"log": "sink,stdout", "trustForwardedFor": True},
                    "prometheus": {"address": "http://prometheus.monitoring:9090", "metricsScheme": "kubernetes"},
                    "logsAdapter": {"url": "http://logs-adapter:9098"},
                    "metricsAdapter": {"url": "http://metrics-adapter:9099"},
                },
                "collector": {"cluster": "prod-eu-1", "audit": {"trustedProducers": PRODUCERS}},
            },
        ),
    ),
    "op-datadog": (
        OBS,
        merged(OBS_AUTH, {"observer": {"secretName": "dd-keys", "datadog": {"enabled": True, "site": "datadoghq.eu"}}}),
    ),
    "op-auth-off": (OBS, {"security": {"enabled": False, "allowUnauthenticated": True}}),
    "op-netpol-servicemonitor": (
        OBS,
        merged(
            OBS_AUTH,
            {"observer": {"networkPolicy": {"enabled": True}}, "collector": {"serviceMonitor": {"enabled": True}}},
        ),
    ),
    "op-postgres-ha": (
        OBS,
        merged(
            OBS_AUTH,
            {
                "observer": {
                    "replicas": 3,
                    "alertStoreBackend": "postgresql",
                    "secretName": "observer-secrets",
                    "opensearch": {"address": "https://opensearch.logging:9200"},
                }
            },
        ),
    ),
    "op-own-certs": (
        OBS,
        merged(
            OBS_AUTH,
            {"clusterAgent": {"tls": {"generateCerts": False, "secretName": "my-agent-tls", "serverCAValue": CA_PEM}}},
        ),
    ),
    "dp-default": (DATA, {}),
    "dp-workflow-servicemonitor": (
        DATA,
        {
            "clusterAgent": {"planeType": "workflowplane", "planeID": "wf-1"},
            "collector": {"serviceMonitor": {"enabled": True}},
        },
    ),
    "dp-own-certs": (
        DATA,
        {
            "clusterAgent": {"tls": {"generateCerts": False, "serverCAValue": CA_PEM}},
            "collector": {
                "cluster": "dp-eu-1",
                "otlp": {"enabled": False},
                "exporter": {
                    "endpoint": "https://otlp.observability.example.com",
                    "auditTokenSecret": {"name": "observer-internal-token", "key": "token"},
                },
            },
        },
    ),
    "cp-sqlite": (CONTROL, AUTH),
    "cp-postgres": (CONTROL, merged(AUTH, {"controlPlane": {"replicas": 3, "database": {"secretName": "cp-db"}}})),
    "cp-own-certs": (
        CONTROL,
        merged(
            AUTH,
            {
                "certManager": {"enabled": False},
                "clusterGateway": {"tls": {"secretName": "gw-tls", "internalClientCASecretName": "gw-internal-ca"}},
            },
        ),
    ),
    "cp-postgres-own-certs": (
        CONTROL,
        merged(
            AUTH,
            {
                "controlPlane": {"replicas": 2, "database": {"secretName": "cp-db"}},
                "certManager": {"enabled": False},
                "clusterGateway": {
                    "tls": {
                        "secretName": "gw-tls",
                        "internalClientCASecretName": "gw-internal-ca",
                        "peerClientSecretName": "gw-peer-client",
                    }
                },
            },
        ),
    ),
    "cp-auth-off-external": (
        CONTROL,
        {
            "security": {"enabled": False, "allowUnauthenticated": True},
            "audit": {"log": "off", "trustForwardedFor": True},
            "clusterGateway": {"service": {"external": {"enabled": True, "type": "NodePort", "nodePort": 30443}}},
        },
    ),
}

#: Every key given a value: `helm lint` must pass with these as with the defaults.
FULL: dict[Path, dict[str, Any]] = {
    OBS: merged(
        CASES["op-opensearch-prometheus"][1],
        {
            "global": {
                "commonLabels": {"team": "platform"},
                "imageRegistry": "mirror.example.com",
                "imagePullSecrets": ["pull"],
            },
            "image": {"tag": "1.2.3", "pullPolicy": "Always"},
            "observer": {
                "logLevel": "debug",
                "cors": {"allowedOrigins": ["https://backstage.example.com"]},
                "datadog": {"enabled": True},
                "tracingAdapter": {"url": "http://tracing-adapter:9100"},
                "finOpsAdapter": {"url": "http://finops-adapter:9101"},
                "networkPolicy": {
                    "enabled": True,
                    "extraInternalFrom": [{"namespaceSelector": {"matchLabels": {"team": "adapters"}}}],
                },
                "persistence": {"storageClassName": "fast", "size": "20Gi"},
                "nodeSelector": {"kubernetes.io/os": "linux"},
                "tolerations": [{"key": "dedicated", "operator": "Exists"}],
            },
            "security": {
                "oidc": {
                    "issuer": "https://idp.example.com",
                    "tokenUrl": "https://idp.example.com/token",
                    "mcpOAuthScopes": ["openid"],
                },
                "jwt": {"audience": "observer"},
            },
            "clusterAgent": {
                "planeID": "obs-1",
                "podDisruptionBudget": {"enabled": True},
                "tls": {"serverCAValue": CA_PEM},
            },
            "collector": {
                "otlp": {"enabled": True},
                "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
            },
            "controllerManager": {"enabled": True, "replicas": 1},
            "gateway": {"gatewayClassName": "kgateway"},
        },
    ),
    DATA: {
        "global": {
            "commonLabels": {"team": "platform"},
            "imageRegistry": "mirror.example.com",
            "imagePullSecrets": [{"name": "pull"}],
        },
        "clusterAgent": {"planeID": "dp-1", "podDisruptionBudget": {"enabled": True}, "tls": {"serverCAValue": CA_PEM}},
        "collector": {
            "cluster": "dp-1",
            "audit": {"trustedProducers": PRODUCERS},
            "exporter": {"auditTokenSecret": {"name": "observer-internal-token", "key": "token"}},
            "bufferMaxBytes": 1073741824,
            "serviceMonitor": {"enabled": True, "interval": "15s"},
        },
    },
    CONTROL: merged(
        CASES["cp-postgres"][1],
        {
            "global": {"commonLabels": {"team": "platform"}},
            "security": {
                "oidc": {"issuer": "https://idp.example.com"},
                "jwt": {"audience": "api"},
                "adminGroups": ["admins"],
            },
            "audit": {"log": "stdout", "trustForwardedFor": True},
            "clusterGateway": {
                "tls": {"dnsNames": ["gateway.example.com"]},
                "service": {"external": {"enabled": True}},
            },
        },
    ),
}


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    """The helm binary (built once and cached by scripts/helm.sh; waits for `make servers`' background build)."""
    return helm_binary()


def render(case: str, namespace: str = "plane") -> list[dict[str, Any]]:
    chart, values = CASES[case]
    return template(chart, values, namespace=namespace)


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def kinds(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for o in objects:
        if o["kind"] in ("Deployment", "DaemonSet", "StatefulSet"):
            yield o["metadata"]["name"], o["spec"]["template"]["spec"]


def container(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    containers = find(objects, kind, name)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def env(c: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in c.get("env", [])}


def config(objects: list[dict[str, Any]]) -> dict[str, str]:
    data: dict[str, str] = find(objects, "ConfigMap", "observer-config")["data"]
    return data


def rules_of(objects: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = find(objects, "ClusterRole", name)["rules"]
    return rules


def grants(rules: list[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    return any(
        group in r["apiGroups"] and resource in r["resources"] and (verb in r["verbs"] or "*" in r["verbs"])
        for r in rules
    )


# ------------------------------------------------------------------------------------------------ lint


def test_helm_is_the_pinned_release_built_from_the_module_proxy(helm_bin: Path) -> None:
    """scripts/helm.sh stamps the version the way Helm's own build does; a wrong ldflags path would say "main"."""
    script = (Path(__file__).resolve().parents[2] / "scripts" / "helm.sh").read_text()
    pinned = re.search(r"HELM_VERSION=\$\{HELM_VERSION:-(v[0-9.]+)\}", script)
    assert pinned is not None
    out = subprocess.run([str(helm_bin), "version", "--short"], capture_output=True, text=True, check=True, timeout=30)
    # HELM_BIN (a developer's own helm) must at least be Helm 4, whose behaviour the tests rely on.
    assert out.stdout.startswith("v4." if os.environ.get("HELM_BIN") else pinned.group(1))


@pytest.mark.parametrize("chart", [OBS, DATA, CONTROL], ids=lambda p: p.name)
def test_lint_passes_with_default_and_with_fully_populated_values(helm_bin: Path, chart: Path) -> None:
    """helm lint tolerates a template's `fail` (it logs it), so the fully-populated values are also rendered:
    they must pass every guard rail."""
    assert "0 chart(s) failed" in lint(chart)
    assert "0 chart(s) failed" in lint(chart, FULL[chart])
    assert template(chart, FULL[chart])


def test_lint_fails_on_a_broken_values_file(helm_bin: Path) -> None:
    with pytest.raises(HelmError, match="additional properties 'replicaz' not allowed"):
        lint(OBS, {"observer": {"replicaz": 2}})


@pytest.mark.parametrize("chart", [OBS, CONTROL], ids=lambda p: p.name)
def test_defaults_need_only_the_identity_provider_or_an_explicit_auth_off(helm_bin: Path, chart: Path) -> None:
    """With authentication on by default there is no safe default JWKS URL: installing the defaults says what to
    set, and the defaults plus that one value install."""
    with pytest.raises(HelmError, match=r"security\.oidc\.jwksUrl is required .*security\.allowUnauthenticated=true"):
        template(chart)
    if chart == OBS:  # standalone, the observer also needs to be told who may read what
        with pytest.raises(HelmError, match=r"observer\.authz\.policy .* is required while security\.enabled"):
            template(chart, AUTH)
    assert template(chart, OBS_AUTH if chart == OBS else AUTH)
    assert template(DATA)


# ------------------------------------------------------------------------------------------------ guard rails


@pytest.mark.parametrize(
    ("chart", "values", "message"),
    [
        (
            OBS,
            merged(OBS_AUTH, {"observer": {"replicas": 2}}),
            r"observer\.replicas=2 needs observer\.alertStoreBackend=postgresql",
        ),
        (
            OBS,
            merged(OBS_AUTH, {"observer": {"replicas": 2, "alertStoreBackend": "postgresql", "secretName": "s"}}),
            r"observer\.replicas > 1 needs an external store",
        ),
        (
            OBS,
            merged(
                OBS_AUTH, {"observer": {"controlPlaneApiUrl": "http://api.openchoreo.invalid:8080", "secretName": "s"}}
            ),
            r"observer\.controlPlaneApiUrl is still the placeholder",
        ),
        (
            OBS,
            merged(
                OBS_AUTH,
                {
                    "observer": {
                        "extraEnvs": [
                            {"name": "OBSERVER_BASE_URL", "value": "http://observer.openchoreo.invalid:11080"}
                        ]
                    }
                },
            ),
            r"observer\.extraEnvs\[OBSERVER_BASE_URL\] is still the placeholder",
        ),
        (OBS, merged(OBS_AUTH, {"observer": {"datadog": {"enabled": True}}}), r"observer\.secretName is required"),
        (OBS, merged(OBS_AUTH, {"observer": {"alertStoreBackend": "postgresql"}}), r"observer\.secretName is required"),
        (OBS, {"security": {"enabled": False}}, r"also set security\.allowUnauthenticated=true"),
        (
            OBS,
            merged(OBS_AUTH, {"clusterAgent": {"tls": {"secretName": ""}}}),
            r"clusterAgent\.tls\.secretName is required",
        ),
        (OBS, merged(OBS_AUTH, {"clusterAgent": {"planeType": "dataplane"}}), r"planeType must be observabilityplane"),
        (DATA, {"clusterAgent": {"tls": {"enabled": False}}}, r"clusterAgent\.tls\.enabled=false is not supported"),
        (
            DATA,
            {"clusterAgent": {"serverUrl": "https://gateway:8443/ws"}},
            r"clusterAgent\.serverUrl must be a wss:// URL",
        ),
        (
            DATA,
            {"collector": {"exporter": {"endpoint": "http://observer.example.invalid:4318"}}},
            r"collector\.exporter\.endpoint is still the placeholder",
        ),
        (DATA, {"collector": {"exporter": {"endpoint": ""}}}, r"collector\.exporter\.endpoint is required"),
        (
            CONTROL,
            merged(AUTH, {"controlPlane": {"replicas": 2}}),
            r"controlPlane\.replicas=2 needs controlPlane\.database\.secretName",
        ),
        (CONTROL, merged(AUTH, {"certManager": {"enabled": False}}), r"clusterGateway\.tls\.secretName is required"),
        (
            CONTROL,
            merged(AUTH, {"certManager": {"enabled": False}, "clusterGateway": {"tls": {"secretName": "gw"}}}),
            r"clusterGateway\.tls\.internalClientCASecretName is required",
        ),
        (
            CONTROL,
            merged(
                AUTH,
                {
                    "controlPlane": {"replicas": 2, "database": {"secretName": "cp-db"}},
                    "certManager": {"enabled": False},
                    "clusterGateway": {"tls": {"secretName": "gw", "internalClientCASecretName": "ca"}},
                },
            ),
            r"clusterGateway\.tls\.peerClientSecretName is required",
        ),
        (CONTROL, {"security": {"enabled": False}}, r"also set security\.allowUnauthenticated=true"),
    ],
)
def test_guard_rails_fail_with_the_key_to_fix(
    helm_bin: Path, chart: Path, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(HelmError, match=message):
        template(chart, values)


@pytest.mark.parametrize(
    ("chart", "values", "key"),
    [
        (OBS, merged(OBS_AUTH, {"observer": {"replcas": 2}}), "replcas"),
        (OBS, merged(OBS_AUTH, {"clusterAgent": {"tls": {"generateCert": False}}}), "generateCert"),
        (DATA, {"colector": {}}, "colector"),
        (CONTROL, merged(AUTH, {"controlPlane": {"database": {"secret": "x"}}}), "secret"),
    ],
)
def test_a_typo_in_a_values_file_fails_with_the_key(
    helm_bin: Path, chart: Path, values: dict[str, Any], key: str
) -> None:
    with pytest.raises(HelmError, match=rf"additional properties '{key}' not allowed"):
        template(chart, values)


def test_an_unknown_plane_type_fails_in_the_schema(helm_bin: Path) -> None:
    with pytest.raises(HelmError, match=r"/clusterAgent/planeType"):
        template(DATA, {"clusterAgent": {"planeType": "observabilityplane"}})


@pytest.mark.parametrize(
    ("chart", "values", "path"),
    [
        (OBS, merged(OBS_AUTH, {"observer": {"audit": {"log": "file"}}}), "/observer/audit/log"),
        (
            OBS,
            merged(OBS_AUTH, {"observer": {"audit": {"trustForwardedFor": "yes"}}}),
            "/observer/audit/trustForwardedFor",
        ),
        (DATA, {"collector": {"cluster": "prod eu"}}, "/collector/cluster"),
        (
            DATA,
            {"collector": {"audit": {"trustedProducers": [{"namespace": "cp"}]}}},
            "/collector/audit/trustedProducers/0",
        ),
        (
            DATA,
            {"collector": {"audit": {"trustedProducers": [{"namespace": "Control_Plane", "container": "cp"}]}}},
            "/collector/audit/trustedProducers/0/namespace",
        ),
        (
            OBS,
            merged(
                OBS_AUTH,
                {"collector": {"audit": {"trustedProducers": [{"namespace": "cp", "container": "c", "pod": "x"}]}}},
            ),
            "/collector/audit/trustedProducers/0",
        ),
        (
            DATA,
            {"collector": {"exporter": {"auditTokenSecret": {"name": "Not A Name"}}}},
            "/collector/exporter/auditTokenSecret/name",
        ),
        (CONTROL, merged(AUTH, {"audit": {"log": "sink"}}), "/audit/log"),  # standalone, it has no sink
    ],
)
def test_the_schema_refuses_a_bad_audit_or_placement_value(
    helm_bin: Path, chart: Path, values: dict[str, Any], path: str
) -> None:
    with pytest.raises(HelmError, match=re.escape(path)):
        template(chart, values)


def test_notes_warn_when_authentication_is_off(helm_bin: Path) -> None:
    assert "WARNING: authentication is OFF" in notes(*CASES["op-auth-off"])
    assert "WARNING" not in notes(*CASES["op-embedded"])
    assert "WARNING: authentication is OFF" in notes(*CASES["cp-auth-off-external"])
    assert "observer-internal (:8081) has no authentication" in notes(*CASES["op-embedded"])
    assert "has no authentication" not in notes(*CASES["op-netpol-servicemonitor"])


def test_notes_say_where_audit_records_go_and_whom_the_collector_trusts(helm_bin: Path) -> None:
    text = notes(*CASES["op-embedded"])
    assert "the observer writes its records to sink" in text
    assert 'cluster "default"' in text and "openchoreo-control-plane/controlplane, default/observer." in text
    assert "without the observer's internal token" in text, "no Secret: forwarded audit records would be log lines"
    text = notes(*CASES["op-opensearch-prometheus"])
    assert 'cluster "prod-eu-1"' in text and "cp/controlplane, default/observer." in text
    assert "internal token" not in text
    assert "without collector.exporter.auditTokenSecret" in notes(*CASES["dp-default"])
    assert "auditTokenSecret" not in notes(*CASES["dp-own-certs"])
    assert "Audit records go to the container's stdout" in notes(*CASES["cp-sqlite"])
    assert "Audit records are off" in notes(*CASES["cp-auth-off-external"])


# ------------------------------------------------------------------------------------------------ every object


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_object_carries_the_label_set(helm_bin: Path, case: str) -> None:
    chart = CASES[case][0]
    objects = template(chart, merged(CASES[case][1], {"global": {"commonLabels": {"team": "platform"}}}), release="r1")
    for o in objects:
        if o["kind"] == "CustomResourceDefinition":
            continue
        labels = o["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == chart.name, o["metadata"]["name"]
        assert labels["app.kubernetes.io/instance"] == "r1"
        assert labels["app.kubernetes.io/part-of"] == "openchoreo"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/version"] == APP_VERSION
        assert labels["app.kubernetes.io/component"] in {"observer", "cluster-agent", "collector", "controlplane"}
        assert labels["team"] == "platform"


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_pod_is_locked_down_with_a_writable_tmp(helm_bin: Path, case: str) -> None:
    objects = render(case)
    for name, spec in pod_specs(objects):
        pod = spec.get("securityContext", {})
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        if name == "collector":  # reads the kubelet's 0640 root-owned logs: root, with nothing else
            assert pod["runAsUser"] == 0
        else:
            assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 65532 and pod["fsGroup"] == 65532
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc == {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            volumes = {v["name"]: v for v in spec["volumes"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], f"{name}: /tmp must be a writable emptyDir"
            assert c["image"] == f"ghcr.io/openchoreo/observer-plane:{APP_VERSION}"
            assert c["resources"]["limits"] and c["resources"]["requests"]


# ------------------------------------------------------------------------------------------------ observability plane


def test_observer_services_deployment_and_probes(helm_bin: Path) -> None:
    objects = render("op-embedded")
    public, internal = find(objects, "Service", "observer"), find(objects, "Service", "observer-internal")
    assert [(p["name"], p["port"]) for p in public["spec"]["ports"]] == [("http", 8080)]
    assert [(p["name"], p["port"]) for p in internal["spec"]["ports"]] == [("http-internal", 8081), ("otlp-http", 4318)]
    assert public["spec"]["selector"]["app.kubernetes.io/component"] == "observer"
    deployment = find(objects, "Deployment", "observer")
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    c = container(objects, "Deployment", "observer")
    assert c["args"] == ["up"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {
        "http": 8080,
        "http-internal": 8081,
        "otlp-http": 4318,
    }
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["livenessProbe"]["initialDelaySeconds"] == 30 and c["readinessProbe"]["periodSeconds"] == 5
    assert c["envFrom"] == [{"configMapRef": {"name": "observer-config"}}]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mounts["/data"]]["persistentVolumeClaim"] == {"claimName": "observer-alerts-data"}
    assert volumes[mounts["/etc/openchoreo"]]["configMap"] == {"name": "observer-auth-config"}
    assert find(objects, "PersistentVolumeClaim", "observer-alerts-data")["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "checksum/config" in deployment["spec"]["template"]["metadata"]["annotations"]
    account = find(objects, "ServiceAccount", "observer")
    assert account["automountServiceAccountToken"] is False
    assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert find(objects, "CustomResourceDefinition", "observabilityalertrules.openchoreo.dev")


def test_observer_config_uses_openchoreo_s_variable_names(helm_bin: Path) -> None:
    data = config(render("op-embedded"))
    assert data["JWT_DISABLED"] == "false" and data["JWKS_URL"] == JWKS
    assert data["OBSERVER_AUTH_CONFIG_PATH"] == "/etc/openchoreo/auth-config.yaml"
    assert (data["PORT"], data["INTERNAL_PORT"], data["OBSERVER_HOST"]) == ("8080", "8081", "0.0.0.0")
    assert data["ALERT_STORE_BACKEND"] == "sqlite" and data["OBSERVER_DATA_DIR"] == "/data"
    assert "AUTHZ_SERVICE_URL" not in data and "OPENSEARCH_ADDRESS" not in data and "DATADOG_SITE" not in data
    assert data["AUTHZ_MODE"] == "casbin" and data["OBSERVER_AUTHZ_POLICY_FILE"] == "/etc/observer/authz/policy.yaml"
    objects = render("op-embedded")
    assert yaml.safe_load(find(objects, "ConfigMap", "observer-authz-policy")["data"]["policy.yaml"]) == POLICY
    deployment = find(objects, "Deployment", "observer")["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in deployment["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["volumes"]}
    assert volumes[mounts["/etc/observer/authz"]]["configMap"]["name"] == "observer-authz-policy"
    auth = yaml.safe_load(find(render("op-embedded"), "ConfigMap", "observer-auth-config")["data"]["auth-config.yaml"])
    assert [(t["type"], t["auth_mechanisms"][0]["entitlement"]["claim"]) for t in auth["auth"]["subject_types"]] == [
        ("user", "groups"),
        ("service_account", "sub"),
    ]


def test_observer_with_opensearch_prometheus_and_the_control_plane(helm_bin: Path) -> None:
    objects = render("op-opensearch-prometheus")
    data = config(objects)
    assert data["OPENSEARCH_ADDRESS"] == "https://opensearch.logging:9200" and data["OPENSEARCH_USERNAME"] == "observer"
    assert data["PROMETHEUS_ADDRESS"] == "http://prometheus.monitoring:9090"
    assert data["OBSERVER_METRICS_SCHEME"] == "kubernetes"
    api = "http://openchoreo-api.openchoreo-control-plane:8080"
    assert data["AUTHZ_SERVICE_URL"] == api and data["UID_RESOLVER_OPENCHOREO_API_URL"] == api
    assert data["UID_RESOLVER_OAUTH_CLIENT_ID"] == "openchoreo-observer-resource-reader-client"
    assert data["AUTHZ_MODE"] == "remote" and "OBSERVER_AUTHZ_POLICY_FILE" not in data  # OpenChoreo decides
    assert [o for o in objects if o["metadata"]["name"] == "observer-authz-policy"] == []
    assert data["LOGS_ADAPTER_URL"] == "http://logs-adapter:9098" and data["LOGS_ADAPTER_TIMEOUT"] == "30s"
    assert data["METRICS_ADAPTER_URL"] == "http://metrics-adapter:9099"
    assert "TRACING_ADAPTER_URL" not in data
    c = container(objects, "Deployment", "observer")
    assert {"secretRef": {"name": "observer-secrets"}} in c["envFrom"]


def test_observer_audit_settings_and_opensearch_audit_indices(helm_bin: Path) -> None:
    data = config(render("op-embedded"))
    assert (data["AUDIT_LOG"], data["AUDIT_TRUST_FORWARDED_FOR"]) == ("sink", "false")
    assert "OPENSEARCH_AUDIT_PREFIX" not in data
    data = config(render("op-opensearch-prometheus"))
    assert (data["AUDIT_LOG"], data["AUDIT_TRUST_FORWARDED_FOR"]) == ("sink,stdout", "true")
    assert data["OPENSEARCH_AUDIT_PREFIX"] == "acme-audit-"
    data = config(template(OBS, merged(OBS_AUTH, {"observer": {"opensearch": {"address": "https://os:9200"}}})))
    assert data["OPENSEARCH_AUDIT_PREFIX"] == "openchoreo-audit-logs-"


def test_observer_with_datadog(helm_bin: Path) -> None:
    objects = render("op-datadog")
    assert config(objects)["DATADOG_SITE"] == "datadoghq.eu"
    assert {"secretRef": {"name": "dd-keys"}} in container(objects, "Deployment", "observer")["envFrom"]


def test_authentication_off_is_rendered_as_upstream_s_variable(helm_bin: Path) -> None:
    assert config(render("op-auth-off"))["JWT_DISABLED"] == "true"


def test_postgres_replicas_roll_without_the_embedded_volume(helm_bin: Path) -> None:
    objects = render("op-postgres-ha")
    deployment = find(objects, "Deployment", "observer")
    assert deployment["spec"]["replicas"] == 3 and deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert kinds(objects, "PersistentVolumeClaim") == []
    assert config(objects)["ALERT_STORE_BACKEND"] == "postgresql"


def test_network_policy_admits_only_agent_collector_and_adapters_to_internal_ports(helm_bin: Path) -> None:
    objects = render("op-netpol-servicemonitor")
    policy = find(objects, "NetworkPolicy", "observer-internal")
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "observer"
    public, internal = policy["spec"]["ingress"]
    assert public == {"ports": [{"port": "http", "protocol": "TCP"}]}
    assert {p["port"] for p in internal["ports"]} == {"http-internal", "otlp-http"}
    peers = [
        (
            "namespaceSelector" in peer,
            peer["podSelector"]["matchLabels"].get("app.kubernetes.io/name"),
            peer["podSelector"]["matchLabels"].get("app.kubernetes.io/component")
            or peer["podSelector"]["matchLabels"]["app"],
        )
        for peer in internal["from"]
    ]
    assert peers == [
        (False, "observability-plane", "cluster-agent"),
        (False, "observability-plane", "collector"),
        (True, "data-plane", "collector"),  # a data plane's collectors, from any namespace of this cluster
        (False, None, "logs-adapter-opensearch"),
        (False, None, "metrics-adapter-prometheus"),
        (False, None, "tracing-adapter-opensearch"),
    ]
    data_plane = find(render("dp-default"), "DaemonSet", "collector")["spec"]["template"]["metadata"]["labels"]
    assert internal["from"][2]["podSelector"]["matchLabels"].items() <= data_plane.items()
    agent = find(objects, "Deployment", "cluster-agent-observabilityplane")["spec"]["template"]["metadata"]["labels"]
    collector = find(objects, "DaemonSet", "collector")["spec"]["template"]["metadata"]["labels"]
    for peer, labels in zip(internal["from"][:2], (agent, collector)):
        assert peer["podSelector"]["matchLabels"].items() <= labels.items(), "the policy must select the real pods"
    assert kinds(render("op-embedded"), "NetworkPolicy") == []


def test_service_monitor_scrapes_the_collector_metrics_port(helm_bin: Path) -> None:
    objects = render("op-netpol-servicemonitor")
    monitor = find(objects, "ServiceMonitor", "collector")
    service = find(objects, "Service", "collector")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    assert "metrics" in {p["name"] for p in service["spec"]["ports"]}
    assert kinds(render("op-embedded"), "ServiceMonitor") == []


def test_agent_certificate_wiring_and_flags(helm_bin: Path) -> None:
    objects = render("op-embedded", namespace="obs")
    c = container(objects, "Deployment", "cluster-agent-observabilityplane")
    assert c["args"] == [
        "agent",
        "--server-url=wss://cluster-gateway.openchoreo-control-plane.svc.cluster.local:8443/ws",
        "--plane-type=observabilityplane",
        "--plane-id=default",
        "--client-cert=/certs/tls.crt",
        "--client-key=/certs/tls.key",
        "--server-ca=/ca-certs/ca.crt",
        "--observer-url=http://observer-internal.obs.svc.cluster.local:8081",
    ]
    spec = find(objects, "Deployment", "cluster-agent-observabilityplane")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["client-certs"]["secret"] == {"secretName": "cluster-agent-tls"}
    assert volumes["server-ca"]["configMap"] == {"name": "cluster-gateway-ca"}
    certificate = find(objects, "Certificate", "cluster-agent-tls")["spec"]
    assert certificate["secretName"] == "cluster-agent-tls" and certificate["usages"] == ["client auth"]
    assert (
        certificate["issuerRef"]["name"]
        == find(objects, "Issuer", "cluster-agent-observabilityplane-selfsigned-issuer")["metadata"]["name"]
    )
    assert kinds(objects, "ConfigMap") and not [
        o for o in kinds(objects, "ConfigMap") if o["metadata"]["name"] == "cluster-gateway-ca"
    ]
    own = render("op-own-certs")
    assert kinds(own, "Certificate") == [] and kinds(own, "Issuer") == []
    assert find(own, "ConfigMap", "cluster-gateway-ca")["data"]["ca.crt"] == CA_PEM
    own_volumes = {
        v["name"]: v
        for v in find(own, "Deployment", "cluster-agent-observabilityplane")["spec"]["template"]["spec"]["volumes"]
    }
    assert own_volumes["client-certs"]["secret"] == {"secretName": "my-agent-tls"}


def test_agent_rbac_covers_what_the_agent_is_proven_to_need(helm_bin: Path) -> None:
    """devservers/kube_accounts.py's rules are the ones the agent's own integration tests run with."""
    for case, plane, role in (
        ("op-embedded", "observabilityplane", "plane-cluster-agent-observabilityplane"),
        ("dp-default", "dataplane", "plane-cluster-agent-dataplane"),
    ):
        rules = rules_of(render(case), role)
        for needed in agent_rules(plane):
            for group in needed["apiGroups"]:
                for resource in needed["resources"]:
                    for verb in needed["verbs"]:
                        assert grants(rules, group, resource, verb), (case, group, resource, verb)
        assert grants(rules, "openchoreo.dev", "observabilityalertrules/status", "patch") == (
            plane == "observabilityplane"
        )
        assert not grants(rules, "", "nodes", "list") and not grants(
            rules, "rbac.authorization.k8s.io", "clusterroles", "create"
        )
    binding = find(render("op-embedded"), "ClusterRoleBinding", "plane-cluster-agent-observabilityplane")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "cluster-agent", "namespace": "plane"}]


def test_collector_daemonset_tails_pods_and_ships_to_the_observer(helm_bin: Path) -> None:
    objects = render("op-embedded", namespace="obs")
    daemonset = find(objects, "DaemonSet", "collector")
    spec = daemonset["spec"]["template"]["spec"]
    c = spec["containers"][0]
    assert c["args"] == ["collect", "--config", "/etc/observer/collector.yaml"]
    assert env(c)["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "metrics"}
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/var/log/pods"]["readOnly"] is True
    assert volumes[mounts["/var/log/pods"]["name"]]["hostPath"] == {"path": "/var/log/pods", "type": "Directory"}
    assert volumes[mounts["/var/lib/observer"]["name"]]["hostPath"]["path"] == "/var/lib/observer-plane/obs"
    collector_config = yaml.safe_load(find(objects, "ConfigMap", "collector-config")["data"]["collector.yaml"])
    assert collector_config["exporter"] == {"otlp": {"endpoint": "http://observer-internal.obs.svc.cluster.local:4318"}}
    assert collector_config["receivers"]["tail"]["paths"] == ["/var/log/pods/*/*/*.log"]
    assert "otlp" not in collector_config["receivers"]
    assert collector_config["metadata"] == {"kubernetes": {}}
    assert rules_of(objects, "obs-collector") == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
    ]


def collector_config(objects: list[dict[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(find(objects, "ConfigMap", "collector-config")["data"]["collector.yaml"])
    return document


def test_collector_labels_records_with_the_cluster_and_trusts_the_control_plane_and_its_observer(
    helm_bin: Path,
) -> None:
    """By default the cluster is the plane's ID, and the trusted producers are the control-plane chart's container
    in its conventional namespace and this release's observer (namespace "" = the release's)."""
    document = collector_config(render("op-embedded", namespace="obs"))
    assert document["cluster"] == "default"
    assert document["audit"] == {
        "trusted_producers": [
            {"namespace": "openchoreo-control-plane", "container": "controlplane", "pod_prefix": "controlplane-"},
            {"namespace": "obs", "container": "observer", "pod_prefix": "observer-"},
        ]
    }
    assert (
        collector_config(template(OBS, merged(OBS_AUTH, {"clusterAgent": {"planeID": "obs-1"}})))["cluster"] == "obs-1"
    )
    document = collector_config(render("op-opensearch-prometheus", namespace="obs"))
    assert document["cluster"] == "prod-eu-1"
    assert document["audit"]["trusted_producers"] == [
        {"namespace": "cp", "container": "controlplane", "pod_prefix": "controlplane-"},
        {"namespace": "obs", "container": "observer", "pod_prefix": ""},
    ]
    nobody = template(OBS, merged(OBS_AUTH, {"collector": {"audit": {"trustedProducers": []}}}))
    assert collector_config(nobody)["audit"] == {"trusted_producers": []}


def test_collector_sends_the_observer_s_internal_token_only_to_its_own_observer(helm_bin: Path) -> None:
    """The token comes from the Secret the observer reads it from (optional: a Secret without the key leaves the
    internal port open and the collector without a token), and never goes to an endpoint set by hand."""
    token = {"secretKeyRef": {"name": "observer-secrets", "key": "OBSERVER_INTERNAL_TOKEN", "optional": True}}
    objects = render("op-opensearch-prometheus")
    assert env(container(objects, "DaemonSet", "collector"))["OBSERVER_INTERNAL_TOKEN"] == token
    assert env(container(objects, "Deployment", "cluster-agent-observabilityplane"))["OBSERVER_INTERNAL_TOKEN"] == token
    assert "OBSERVER_INTERNAL_TOKEN" not in env(container(render("op-embedded"), "DaemonSet", "collector"))
    elsewhere = template(
        *CASES["op-opensearch-prometheus"][:1],
        merged(CASES["op-opensearch-prometheus"][1], {"collector": {"exporter": {"endpoint": "https://other:4318"}}}),
    )
    assert "OBSERVER_INTERNAL_TOKEN" not in env(container(elsewhere, "DaemonSet", "collector"))
    named = template(
        OBS,
        merged(
            OBS_AUTH, {"collector": {"exporter": {"endpoint": "https://other:4318", "auditTokenSecret": {"name": "t"}}}}
        ),
    )
    assert env(container(named, "DaemonSet", "collector"))["OBSERVER_INTERNAL_TOKEN"] == {
        "secretKeyRef": {"name": "t", "key": "OBSERVER_INTERNAL_TOKEN"}
    }


def test_global_image_registry_is_swapped_as_upstream_does(helm_bin: Path) -> None:
    objects = template(
        OBS,
        merged(
            OBS_AUTH, {"global": {"imageRegistry": "mirror.local:5000/cache"}, "collector": {"image": {"tag": "9.9"}}}
        ),
    )
    assert (
        container(objects, "Deployment", "observer")["image"]
        == f"mirror.local:5000/cache/openchoreo/observer-plane:{APP_VERSION}"
    )
    assert (
        container(objects, "DaemonSet", "collector")["image"] == "mirror.local:5000/cache/openchoreo/observer-plane:9.9"
    )
    plain = template(
        OBS, merged(OBS_AUTH, {"image": {"repository": "observer"}, "global": {"imageRegistry": "reg.local"}})
    )
    assert container(plain, "Deployment", "observer")["image"] == f"reg.local/observer:{APP_VERSION}"


# ------------------------------------------------------------------------------------------------ data plane


def test_data_plane_agent_and_collector_with_otlp_receiver(helm_bin: Path) -> None:
    objects = render("dp-default")
    assert sorted(o["metadata"]["name"] for o in kinds(objects, "Deployment")) == ["cluster-agent-dataplane"]
    args = container(objects, "Deployment", "cluster-agent-dataplane")["args"]
    assert "--plane-type=dataplane" in args and not any(a.startswith("--observer-url") for a in args)
    collector_config = yaml.safe_load(find(objects, "ConfigMap", "collector-config")["data"]["collector.yaml"])
    assert collector_config["receivers"]["otlp"] == {"host": "0.0.0.0", "port": 4318}
    assert collector_config["exporter"]["otlp"]["endpoint"] == (
        "http://observer-internal.openchoreo-observability-plane.svc.cluster.local:4318"
    )
    service = find(objects, "Service", "collector")
    assert service["spec"]["internalTrafficPolicy"] == "Local"
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"metrics": 2020, "otlp-http": 4318}
    assert {p["name"] for p in container(objects, "DaemonSet", "collector")["ports"]} == {"metrics", "otlp-http"}
    assert kinds(objects, "CustomResourceDefinition") == []


def test_data_plane_collector_audit_token_and_cluster(helm_bin: Path) -> None:
    default = render("dp-default", namespace="dp")
    assert "OBSERVER_INTERNAL_TOKEN" not in env(container(default, "DaemonSet", "collector"))
    assert "OBSERVER_INTERNAL_TOKEN" not in env(container(default, "Deployment", "cluster-agent-dataplane"))
    assert collector_config(default)["cluster"] == "default"
    assert collector_config(default)["audit"]["trusted_producers"] == [
        {"namespace": "openchoreo-control-plane", "container": "controlplane", "pod_prefix": "controlplane-"}
    ]
    own = render("dp-own-certs")
    assert collector_config(own)["cluster"] == "dp-eu-1"
    assert env(container(own, "DaemonSet", "collector"))["OBSERVER_INTERNAL_TOKEN"] == {
        "secretKeyRef": {"name": "observer-internal-token", "key": "token"}
    }


def test_data_plane_variants(helm_bin: Path) -> None:
    workflow = render("dp-workflow-servicemonitor")
    assert "--plane-type=workflowplane" in container(workflow, "Deployment", "cluster-agent-dataplane")["args"]
    assert find(workflow, "ServiceMonitor", "collector")
    own = render("dp-own-certs")
    assert find(own, "ConfigMap", "cluster-gateway-ca")["data"]["ca.crt"] == CA_PEM
    assert [p["name"] for p in find(own, "Service", "collector")["spec"]["ports"]] == ["metrics"]
    config_text = find(own, "ConfigMap", "collector-config")["data"]["collector.yaml"]
    assert yaml.safe_load(config_text)["exporter"]["otlp"]["endpoint"] == "https://otlp.observability.example.com"


# ------------------------------------------------------------------------------------------------ control plane


def test_control_plane_on_sqlite_with_cert_manager(helm_bin: Path) -> None:
    objects = render("cp-sqlite", namespace="openchoreo-control-plane")
    workload = find(objects, "StatefulSet", "controlplane")
    assert workload["spec"]["replicas"] == 1 and workload["spec"]["updateStrategy"]["type"] == "RollingUpdate"
    assert workload["spec"]["serviceName"] == "controlplane-peers"
    c = container(objects, "StatefulSet", "controlplane")
    assert c["args"] == ["controlplane"]
    variables = env(c)
    assert "CONTROLPLANE_DB" not in variables and variables["OBSERVER_DATA_DIR"] == "/data"
    assert not {"CONTROLPLANE_PEER_URL", "CLUSTER_GATEWAY_CA_CERT", "CLUSTER_GATEWAY_CLIENT_CERT"} & set(variables)
    assert (
        variables["SERVER_CERT_PATH"] == "/certs/tls.crt"
        and variables["INTERNAL_CLIENT_CA_PATH"] == "/internal-ca/ca.crt"
    )
    assert variables["JWT_DISABLED"] == "false" and variables["JWKS_URL"] == JWKS
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "controlplane-data"}
    assert volumes["gateway-tls"]["secret"] == {"secretName": "cluster-gateway-tls"}
    assert volumes["internal-ca"]["secret"]["secretName"] == "cluster-gateway-internal-ca"
    assert "peer-client" not in volumes
    gateway = find(objects, "Service", "cluster-gateway")
    assert {p["name"]: p["port"] for p in gateway["spec"]["ports"]} == {"websocket": 8443, "internal-api": 8444}
    assert {p["name"]: p["port"] for p in find(objects, "Service", "openchoreo-api")["spec"]["ports"]} == {"http": 8080}
    serving = find(objects, "Certificate", "cluster-gateway-tls")["spec"]
    assert "cluster-gateway.openchoreo-control-plane.svc.cluster.local" in serving["dnsNames"]
    assert not [name for name in serving["dnsNames"] if name.startswith("*.")], "one replica: no peer names"
    assert serving["issuerRef"]["name"] == "cluster-gateway-ca-issuer"
    assert find(objects, "Certificate", "openchoreo-cluster-gateway-ca")["spec"]["secretName"] == "cluster-gateway-ca"
    assert [o["metadata"]["name"] for o in kinds(objects, "Certificate")] == [
        "openchoreo-cluster-gateway-ca",
        "cluster-gateway-tls",
        "openchoreo-cluster-gateway-internal-ca",
    ]
    assert kinds(objects, "ClusterRole") == [] and kinds(objects, "Role") == []


def test_control_plane_replicas_take_the_dsn_from_a_secret(helm_bin: Path) -> None:
    objects = render("cp-postgres")
    workload = find(objects, "StatefulSet", "controlplane")
    assert workload["spec"]["replicas"] == 3 and workload["spec"]["podManagementPolicy"] == "Parallel"
    assert env(container(objects, "StatefulSet", "controlplane"))["CONTROLPLANE_DB"] == {
        "secretKeyRef": {"name": "cp-db", "key": "dsn"}
    }
    assert kinds(objects, "PersistentVolumeClaim") == []


def test_control_plane_replicas_reach_each_other_by_pod_name(helm_bin: Path) -> None:
    """On PostgreSQL each replica forwards agent calls to the one holding the agent (controlplane/replicas.py):
    its peer URL is its pod's name under the headless Service, which the serving certificate covers by wildcard;
    it calls with a client certificate of the internal CA and verifies with the gateway's CA."""
    objects = render("cp-postgres", namespace="cp")
    workload = find(objects, "StatefulSet", "controlplane")
    headless = find(objects, "Service", "controlplane-peers")["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True
    assert headless["selector"] == workload["spec"]["selector"]["matchLabels"]
    assert workload["spec"]["serviceName"] == "controlplane-peers"
    c = container(objects, "StatefulSet", "controlplane")
    names = [item["name"] for item in c["env"]]
    assert names.index("POD_NAME") < names.index("CONTROLPLANE_PEER_URL"), "$(POD_NAME) expands only if earlier"
    variables = env(c)
    assert variables["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert variables["CONTROLPLANE_PEER_URL"] == "https://$(POD_NAME).controlplane-peers.cp.svc.cluster.local:8444"
    assert variables["CLUSTER_GATEWAY_CA_CERT"] == "/certs/ca.crt"
    assert (variables["CLUSTER_GATEWAY_CLIENT_CERT"], variables["CLUSTER_GATEWAY_CLIENT_KEY"]) == (
        "/peer-client/tls.crt",
        "/peer-client/tls.key",
    )
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert (mounts["gateway-tls"], mounts["peer-client"]) == ("/certs", "/peer-client")
    volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
    assert volumes["peer-client"]["secret"]["secretName"] == "controlplane-peer-client"
    serving = find(objects, "Certificate", "cluster-gateway-tls")["spec"]
    assert {"*.controlplane-peers.cp.svc", "*.controlplane-peers.cp.svc.cluster.local"} <= set(serving["dnsNames"])
    client = find(objects, "Certificate", "controlplane-peer-client")["spec"]
    assert client["secretName"] == "controlplane-peer-client" and client["usages"][0] == "client auth"
    issuer = find(objects, "Issuer", client["issuerRef"]["name"])["spec"]
    assert issuer == {"ca": {"secretName": "cluster-gateway-internal-ca"}}, "signed by the CA 8444 trusts"


def test_control_plane_replicas_with_certificates_from_secrets(helm_bin: Path) -> None:
    objects = render("cp-postgres-own-certs")
    assert kinds(objects, "Certificate") == [] and kinds(objects, "Issuer") == []
    workload = find(objects, "StatefulSet", "controlplane")
    volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
    assert volumes["peer-client"]["secret"]["secretName"] == "gw-peer-client"
    assert volumes["gateway-tls"]["secret"] == {"secretName": "gw-tls"}, "ca.crt of the serving Secret verifies peers"
    assert env(container(objects, "StatefulSet", "controlplane"))["CLUSTER_GATEWAY_CA_CERT"] == "/certs/ca.crt"


def test_control_plane_replicas_without_internal_mtls_carry_no_client_certificate(helm_bin: Path) -> None:
    values = merged(CASES["cp-postgres"][1], {"clusterGateway": {"internalMtls": False}})
    objects = template(CONTROL, values, namespace="cp")
    variables = env(container(objects, "StatefulSet", "controlplane"))
    assert variables["CLUSTER_GATEWAY_CA_CERT"] == "/certs/ca.crt" and "CONTROLPLANE_PEER_URL" in variables
    assert "CLUSTER_GATEWAY_CLIENT_CERT" not in variables
    assert [o["metadata"]["name"] for o in kinds(objects, "Certificate")] == [
        "openchoreo-cluster-gateway-ca",
        "cluster-gateway-tls",
    ]


def test_control_plane_certificates_from_existing_secrets(helm_bin: Path) -> None:
    objects = render("cp-own-certs")
    assert kinds(objects, "Certificate") == [] and kinds(objects, "Issuer") == []
    volumes = {
        v["name"]: v for v in find(objects, "StatefulSet", "controlplane")["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["gateway-tls"]["secret"] == {"secretName": "gw-tls"}
    assert volumes["internal-ca"]["secret"]["secretName"] == "gw-internal-ca"


def test_control_plane_auth_off_and_external_gateway(helm_bin: Path) -> None:
    objects = render("cp-auth-off-external")
    assert env(container(objects, "StatefulSet", "controlplane"))["JWT_DISABLED"] == "true"
    external = find(objects, "Service", "cluster-gateway-external")
    assert external["spec"]["type"] == "NodePort"
    assert external["spec"]["ports"] == [
        {"name": "websocket", "port": 8443, "targetPort": "websocket", "protocol": "TCP", "nodePort": 30443}
    ]


def test_control_plane_audit_goes_to_stdout_for_the_collector(helm_bin: Path) -> None:
    variables = env(container(render("cp-sqlite"), "StatefulSet", "controlplane"))
    assert (variables["AUDIT_LOG"], variables["AUDIT_TRUST_FORWARDED_FOR"]) == ("stdout", "false")
    variables = env(container(render("cp-auth-off-external"), "StatefulSet", "controlplane"))
    assert (variables["AUDIT_LOG"], variables["AUDIT_TRUST_FORWARDED_FOR"]) == ("off", "true")
