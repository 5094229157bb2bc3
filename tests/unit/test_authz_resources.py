"""Scope -> Resource -> EvaluateRequest, row by row as contract notes §2.1 tabulates it."""

from __future__ import annotations

import json

import pytest

from access import model as authz
from access.model import Resource, Subject
from access.resources import (
    context_for,
    evaluate_request,
    incident_update_resource,
    resource_for,
    resource_path,
    scope_path,
)
from domain.model import WorkflowScope
from observer.validation import NamedScope

USER = Subject("user", "groups", ("devs", "oncall"), token="secret-token")
ROBOT = Subject("service_account", "sub", ("robot-1",), token="robot-token")


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        (NamedScope("acme", "shop", "cart", "prod"), Resource("component", "cart", "acme", "shop", "cart", "prod")),
        (NamedScope("acme", "shop", "cart"), Resource("component", "cart", "acme", "shop", "cart", "")),
        (NamedScope("acme", "shop", "", "dev"), Resource("project", "shop", "acme", "shop", "", "dev")),
        (NamedScope("acme", "shop"), Resource("project", "shop", "acme", "shop")),
        (NamedScope("acme", "", "", "prod"), Resource("namespace", "acme", "acme", "", "", "prod")),
        (NamedScope("acme"), Resource("namespace", "acme", "acme")),
        (WorkflowScope("acme", "build-42", "compile"), Resource("workflowRun", "build-42", "acme")),
        (WorkflowScope("acme", "build-42"), Resource("workflowRun", "build-42", "acme")),
        (WorkflowScope("acme"), Resource("namespace", "acme", "acme")),
        (WorkflowScope("acme", "", "compile"), Resource("namespace", "acme", "acme")),
    ],
)
def test_most_specific_level_wins(scope, expected):
    assert resource_for(scope) == expected


@pytest.mark.parametrize(
    ("scope", "hierarchy"),
    [
        (NamedScope("acme", "shop", "cart"), {"namespace": "acme", "project": "shop", "component": "cart"}),
        (NamedScope("acme", "shop"), {"namespace": "acme", "project": "shop"}),
        (NamedScope("acme"), {"namespace": "acme"}),
        (WorkflowScope("acme", "build-42"), {"namespace": "acme"}),
        (WorkflowScope("acme"), {"namespace": "acme"}),
    ],
)
def test_request_body_omits_empty_hierarchy_members(scope, hierarchy):
    body = evaluate_request(USER, authz.LOGS_VIEW, resource_for(scope))
    assert body["resource"]["hierarchy"] == hierarchy


def test_full_request_body_for_a_component_with_environment():
    body = evaluate_request(USER, authz.LOGS_VIEW, resource_for(NamedScope("acme", "shop", "cart", "prod")))
    assert body == {
        "subject_context": {"type": "user", "entitlement_claim": "groups", "entitlement_values": ["devs", "oncall"]},
        "resource": {
            "type": "component",
            "id": "cart",
            "hierarchy": {"namespace": "acme", "project": "shop", "component": "cart"},
        },
        "action": "logs:view",
        "context": {"resource": {"environment": "acme/prod"}},
    }
    assert "secret-token" not in json.dumps(body)


def test_service_account_subject_and_workflow_run():
    body = evaluate_request(ROBOT, authz.EVENTS_VIEW, resource_for(WorkflowScope("acme", "build-42")))
    assert body == {
        "subject_context": {"type": "service_account", "entitlement_claim": "sub", "entitlement_values": ["robot-1"]},
        "resource": {"type": "workflowRun", "id": "build-42", "hierarchy": {"namespace": "acme"}},
        "action": "events:view",
        "context": {},
    }


def test_environment_context_is_omitted_without_an_environment():
    body = evaluate_request(USER, authz.METRICS_VIEW, resource_for(NamedScope("acme", "shop")))
    assert body["context"] == {}


@pytest.mark.parametrize("action", [authz.ALERTS_VIEW, authz.INCIDENTS_VIEW, authz.INCIDENTS_UPDATE])
def test_alerts_and_incidents_send_an_empty_context(action):
    assert context_for(action) is False
    body = evaluate_request(
        USER, action, resource_for(NamedScope("acme", "shop", "cart", "prod")), with_context=context_for(action)
    )
    assert body["context"] == {}
    assert body["resource"]["hierarchy"] == {"namespace": "acme", "project": "shop", "component": "cart"}


@pytest.mark.parametrize(
    "action", [authz.LOGS_VIEW, authz.EVENTS_VIEW, authz.METRICS_VIEW, authz.TRACES_VIEW, authz.FINOPS_VIEW]
)
def test_query_actions_send_the_environment(action):
    assert context_for(action) is True


def test_incident_update_is_a_namespace_with_no_id_and_empty_hierarchy():
    resource = incident_update_resource()
    body = evaluate_request(USER, authz.INCIDENTS_UPDATE, resource, with_context=False)
    assert body["resource"] == {"type": "namespace", "hierarchy": {}}
    assert resource_path(resource) == "*"


@pytest.mark.parametrize(
    ("resource", "path"),
    [
        (Resource("component", "cart", "acme", "shop", "cart", "prod"), "ns/acme/project/shop/component/cart"),
        (Resource("project", "shop", "acme", "shop"), "ns/acme/project/shop"),
        (Resource("namespace", "acme", "acme"), "ns/acme"),
        (Resource("workflowRun", "build-42", "acme"), "ns/acme/workflowrun/build-42"),
        (Resource("namespace", "", ""), "*"),
    ],
)
def test_policy_paths(resource, path):
    assert resource_path(resource) == path


def test_a_name_with_a_slash_cannot_pose_as_a_deeper_level():
    crafted = resource_path(resource_for(NamedScope("acme/project/shop")))
    assert crafted == "ns/acme%2Fproject%2Fshop"
    assert not crafted.startswith(scope_path("acme") + "/")
    assert scope_path("a%2F") == "ns/a%252F"
