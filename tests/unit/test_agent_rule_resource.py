"""The CR the agent sends to the observer's rule-resources endpoint (agents/rules.py `rule_resource`): the
rule as the control plane renders it, without the API server's bookkeeping, and one the observer's endpoint
(observer/alerting/resource_api.py) takes with its channels, severity and description intact."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from agents.alert_rules import OBSERVER_APIS, AlertRuleAgent
from agents.observer_client import ObserverClient
from agents.rules import rule_resource
from observer.alerting.resource_api import rule_resource as accepted_rule
from observer.errors import ApiError

RENDERED = Path(__file__).parent.parent / "data" / "controlplane" / "render" / "alert-rules-samples.yaml"


def _samples() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(RENDERED.read_text()) if doc]


def _as_served(cr: dict[str, Any]) -> dict[str, Any]:
    """The CR as the API server hands it to the agent's watch: bookkeeping and a status added."""
    served = copy.deepcopy(cr)
    served["metadata"] |= {
        "uid": "0d7f3c9e-1111-4111-8111-000000000001",
        "resourceVersion": "4711",
        "generation": 3,
        "creationTimestamp": "2026-01-01T00:00:00Z",
        "finalizers": ["openchoreo.dev/alertrule-cleanup"],
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}"},
        "managedFields": [{"manager": "renderedrelease-controller", "operation": "Apply"}],
    }
    served["status"] = {"phase": "Ready", "observedGeneration": 2}
    return served


def test_the_document_sent_is_the_rule_without_the_api_servers_bookkeeping() -> None:
    sample = _samples()[0]
    sent = rule_resource(_as_served(sample))
    assert sent == {
        "apiVersion": "openchoreo.dev/v1alpha1",
        "kind": "ObservabilityAlertRule",
        "metadata": {
            "name": sample["metadata"]["name"],
            "namespace": sample["metadata"]["namespace"],
            "labels": sample["metadata"]["labels"],
        },
        "spec": sample["spec"],
    }


@pytest.mark.parametrize("sample", _samples(), ids=lambda sample: sample["metadata"]["name"])
def test_every_rendered_sample_rule_is_taken_by_the_observer_with_channels_severity_and_description(
    sample: dict[str, Any],
) -> None:
    namespace, name = sample["metadata"]["namespace"], sample["metadata"]["name"]
    rule = accepted_rule(namespace, name, rule_resource(_as_served(sample)))
    spec = sample["spec"]
    assert (rule.namespace, rule.name, rule.rule_name) == (namespace, name, spec["name"])
    assert rule.channels == tuple(spec["actions"]["notifications"]["channels"])
    assert (rule.severity, rule.description) == (spec["severity"], spec["description"])
    assert rule.labels == sample["metadata"]["labels"] and rule.source.type == spec["source"]["type"]


def test_the_observer_refuses_the_document_of_another_rule_than_its_path() -> None:
    sample = _samples()[0]
    sent = rule_resource(sample)
    with pytest.raises(ApiError) as refused:
        accepted_rule(sample["metadata"]["namespace"], "another-rule", sent)
    assert refused.value.status == 400 and "metadata.name" in refused.value.message


async def test_the_observer_api_is_one_of_the_two_known() -> None:
    assert OBSERVER_APIS == ("resources", "upstream")
    async with ObserverClient("http://127.0.0.1:9") as observer:
        with pytest.raises(ValueError, match="observer_api"):
            AlertRuleAgent(k8s.ApiClient(), observer, observer_api="both")  # type: ignore[arg-type]
        assert AlertRuleAgent(k8s.ApiClient(), observer).observer_api == "resources"
