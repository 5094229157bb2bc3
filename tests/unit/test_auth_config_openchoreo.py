"""OBSERVER_AUTH_CONFIG_PATH accepts OpenChoreo's own observer auth-config.yaml, unchanged.

The document below is the `observer-auth-config` ConfigMap as `helm template` renders OpenChoreo's
observability-plane chart with its default values: the template is

    data:
      auth-config.yaml: |
        auth:
          subject_types:
            {{- toYaml .Values.observer.security.subjectTypes | nindent 8 }}

and `observer.security.subjectTypes` defaults to `user` (priority 1, jwt claim `groups`, display names "User" /
"User Group") and `service_account` (priority 2, jwt claim `sub`, "Service Account" / "Client ID"). Helm's
toYaml sorts keys and does not indent list items under their key, which is why the keys appear in this order.
The test mounts the `auth-config.yaml` key as a file, as the chart does at /etc/openchoreo.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from access.settings import AuthConfigError
from access.subjects import SubjectResolver, SubjectType, parse_subject_types

RENDERED_CONFIGMAP = """\
---
# Source: openchoreo-observability-plane/templates/observer/observer-auth-configmap.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: observer-auth-config
  namespace: openchoreo-observability-plane
  labels:
    helm.sh/chart: openchoreo-observability-plane-0.0.0-latest-dev
    app.kubernetes.io/version: "latest-dev"
    app.kubernetes.io/managed-by: Helm
    app.kubernetes.io/part-of: openchoreo
    app.kubernetes.io/name: openchoreo-observability-plane
    app.kubernetes.io/instance: openchoreo-observability-plane
    app.kubernetes.io/component: observer
data:
  auth-config.yaml: |
    auth:
      subject_types:
        - auth_mechanisms:
          - entitlement:
              claim: groups
              display_name: User Group
            type: jwt
          display_name: User
          priority: 1
          type: user
        - auth_mechanisms:
          - entitlement:
              claim: sub
              display_name: Client ID
            type: jwt
          display_name: Service Account
          priority: 2
          type: service_account
"""


def mounted(tmp_path: Path, text: str | None = None) -> Path:
    """The ConfigMap's auth-config.yaml key as the file the observer is pointed at."""
    path = tmp_path / "auth-config.yaml"
    path.write_text(text if text is not None else yaml.safe_load(RENDERED_CONFIGMAP)["data"]["auth-config.yaml"])
    return path


def test_openchoreo_rendered_auth_config_is_read_as_is(tmp_path: Path) -> None:
    resolver = SubjectResolver.from_file(mounted(tmp_path))
    assert resolver.types == (SubjectType("user", "groups"), SubjectType("service_account", "sub"))
    user = resolver.resolve({"sub": "alice", "groups": ["devs", "ops"]})
    assert (user.type, user.entitlement_claim, user.entitlement_values) == ("user", "groups", ("devs", "ops"))
    service = resolver.resolve({"sub": "ci-bot"})
    assert (service.type, service.entitlement_values) == ("service_account", ("ci-bot",))


def test_priority_orders_the_types_not_the_list(tmp_path: Path) -> None:
    # The common patch (service accounts keyed on client_id) with the types listed in reverse priority order.
    text = mounted(tmp_path).read_text().replace("claim: sub", "claim: client_id")
    document = yaml.safe_load(text)
    document["auth"]["subject_types"].reverse()
    document["audit"] = {"enabled": True, "policies": []}  # newer charts add audit settings to the same file
    types = parse_subject_types(document)
    assert types == [SubjectType("user", "groups"), SubjectType("service_account", "client_id")]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t[1].update(priority=1), "priority 1 is already used by 'user'"),
        (lambda t: t[1].update(type="user"), "'user' is listed twice"),
        (lambda t: t[0].pop("type"), r"subject_types\[0\] has no `type`"),
        (lambda t: t[0].update(auth_mechanisms=[]), "has no `auth_mechanisms`"),
        (lambda t: t[0]["auth_mechanisms"][0].update(type="api_key"), "no `jwt` auth mechanism"),
        (lambda t: t[1]["auth_mechanisms"][0]["entitlement"].pop("claim"), r"\(service_account\).*entitlement.claim"),
        (lambda t: t.clear(), "non-empty list"),
    ],
)
def test_unusable_entries_are_refused_naming_the_entry(tmp_path: Path, edit, message: str) -> None:
    document = yaml.safe_load(mounted(tmp_path).read_text())
    edit(document["auth"]["subject_types"])
    path = mounted(tmp_path, yaml.safe_dump(document))
    with pytest.raises(AuthConfigError, match=message) as refused:
        SubjectResolver.from_file(path)
    assert str(path) in str(refused.value)


def test_a_file_with_neither_form_names_both(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError, match=r"auth: \{subject_types.*subjects:"):
        SubjectResolver.from_file(mounted(tmp_path, "auth:\n  jwt: {}\n"))


def test_our_own_form_still_works(tmp_path: Path) -> None:
    path = mounted(tmp_path, "subjects:\n  - type: user\n    entitlementClaim: groups\n")
    assert SubjectResolver.from_file(path).types == (SubjectType("user", "groups"),)
