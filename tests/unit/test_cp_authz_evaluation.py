"""OpenChoreo's EvaluateRequest read back and decided over the embedded policy (access/evaluation.py): the
observer's own requests (access/resources.py) get the decision its embedded PDP gives, faults name their field,
reasons name the binding, and the profile lists where each action is allowed or denied."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from access.casbin_pdp import PolicySnapshot
from access.evaluation import (
    Question,
    RequestError,
    capabilities,
    decide,
    display_path,
    parse_evaluate_request,
    parse_evaluate_requests,
)
from access.model import Resource, Subject
from access.resources import evaluate_request, incident_update_resource
from controlplane.authz import compile_documents
from tests.unit.test_cp_authz_compile import POLICY, RESOURCES, SUBJECTS, binding, mapping, role

CALLER = Subject("user", "groups", ("devs",), token="t")


@pytest.fixture(scope="module")
def snapshot() -> PolicySnapshot:
    return PolicySnapshot(compile_documents(POLICY))


def test_the_observers_own_requests_get_its_embedded_decision(snapshot):
    """What the observer's RemoteAuthorizer sends decides exactly as its CasbinAuthorizer would."""
    resources = [*RESOURCES.values(), incident_update_resource(), Resource("workflowRun", "run-1", "acme")]
    actions = ("logs:view", "metrics:view", "traces:view", "component:delete", "incidents:update")
    for subject, action, resource in itertools.product(SUBJECTS.values(), actions, resources):
        question = parse_evaluate_request(evaluate_request(subject, action, resource), CALLER)
        assert decide(snapshot, question).allowed is snapshot.allows(subject, action, resource), (subject, resource)


def _request(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resource": {"type": "component", "id": "cart", "hierarchy": {"namespace": "acme", "project": "shop",
                                                                      "component": "cart"}},
        "action": "logs:view",
        "context": {"resource": {"environment": "acme/dev"}},
    }  # fmt: skip
    body.update(overrides)
    return body


def test_the_subject_defaults_to_the_caller_and_the_environment_loses_its_namespace():
    question = parse_evaluate_request(_request(), CALLER)
    assert question == Question(("groups:devs",), "ns/acme/project/shop/component/cart", "logs:view", "dev")
    other = parse_evaluate_request(_request(context={"resource": {"environment": "beta/dev"}}), CALLER)
    assert other.environment == "beta/dev"  # another namespace's environment matches no environment list
    robot = {"type": "service_account", "entitlement_claim": "sub", "entitlement_values": ["robot"]}
    assert parse_evaluate_request(_request(subject_context=robot), CALLER).entitlements == ("sub:robot",)


def test_faults_name_their_fields():
    with pytest.raises(RequestError) as caught:
        parse_evaluate_requests({"action": "x"}, CALLER, 10)
    assert caught.value.details == [("body", "must be an array of EvaluateRequest")]
    bad = [
        _request(),
        "nope",
        {"resource": {"type": "", "hierarchy": []}, "context": {"resource": {"environment": 3}}},
        _request(subject_context={"type": "robot", "entitlement_claim": "sub", "entitlement_values": "x"}),
        _request(resource={"type": "component", "hierarchy": {"namespace": 1}}),
    ]
    with pytest.raises(RequestError) as caught:
        parse_evaluate_requests(bad, CALLER, 10)
    assert caught.value.details == [
        ("[1]", "must be an EvaluateRequest object"),
        ("[2].action", "is required"),
        ("[2].resource.type", "must not be empty"),
        ("[2].resource.hierarchy", "must be an object"),
        ("[2].context.resource.environment", "must be a string"),
        ("[3].subject_context.type", "must be one of user, service_account"),
        ("[3].subject_context.entitlement_values", "must be an array of strings"),
        ("[4].resource.hierarchy.namespace", "must be a string"),
    ]
    with pytest.raises(RequestError) as caught:
        parse_evaluate_requests([_request()] * 3, CALLER, 2)
    assert caught.value.details == [("body", "at most 2 requests per call")]


@pytest.mark.parametrize(
    ("hierarchy", "reason"),
    [
        ({"namespace": "acme", "component": "cart"}, "hierarchy: component and resource need a project"),
        ({"namespace": "acme", "project": "p", "component": "c", "resource": "r"}, "mutually exclusive"),
        ({"project": "shop"}, "hierarchy: project needs a namespace"),
    ],
)
def test_a_broken_hierarchy_matches_nothing(hierarchy, reason):
    snapshot = PolicySnapshot(compile_documents([role("root", "*"), binding("all", mapping("root"))]))
    question = parse_evaluate_request(_request(resource={"type": "component", "hierarchy": hierarchy}), CALLER)
    decision = decide(snapshot, question)
    assert not decision.allowed and reason in decision.reason


def test_reasons_name_the_deciding_binding(snapshot):
    def reason(subject: str, resource: str, action: str = "logs:view") -> dict[str, Any]:
        body = evaluate_request(SUBJECTS[subject], action, RESOURCES[resource])
        return decide(snapshot, parse_evaluate_request(body, CALLER)).wire()

    assert reason("devs", "cart-dev") == {"decision": True, "context": {"reason": "allowed by binding:acme/devs#0"}}
    assert reason("devs", "cart-prod") == {
        "decision": False,
        "context": {"reason": "denied by clusterbinding:no-prod#0"},
    }
    assert reason("nobody", "cart") == {"decision": False, "context": {"reason": "no matching allow"}}


def test_capabilities_list_where_each_action_is_allowed_or_denied(snapshot):
    devs = SUBJECTS["devs"]
    shop = capabilities(snapshot, devs, "ns/acme/project/shop", ("logs:view", "traces:view", "metrics:view"))
    assert shop["logs:view"] == {
        "allowed": [{"path": "namespace/acme/project/shop"}],
        "denied": [{"path": "*", "constraints": {"expressions": ['resource.environment in ["prod"]']}}],
    }
    assert shop["metrics:view"] == {"allowed": [{"path": "namespace/acme/project/shop"}], "denied": []}
    assert shop["traces:view"] == {"allowed": [], "denied": [{"path": "*"}]}  # no-prod denies the rest of its role
    # A narrower scope still lists the grants above it; an unrelated one drops the project's.
    assert capabilities(snapshot, devs, "ns/beta", ("metrics:view",))["metrics:view"]["allowed"] == []
    everywhere = capabilities(snapshot, SUBJECTS["ops"], "*", ("component:delete",))["component:delete"]
    assert everywhere == {"allowed": [{"path": "namespace/beta/project/core/component/api"}], "denied": []}


def test_display_path():
    assert display_path("*") == "*"
    assert display_path("ns/acme/project/p") == "namespace/acme/project/p"
