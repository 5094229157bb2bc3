"""OpenChoreo's authz API over the embedded policy: EvaluateRequests in, decisions with reasons out, and the
caller's capabilities (openchoreo-api.yaml `POST /api/v1/authz/evaluates`, `GET /api/v1/authz/profile`).

This is the inverse of access/resources.py: `evaluate_request` writes what the observer asks a remote PDP, and
`parse_evaluate_request` reads the same document back into a (Subject, action, Resource) that a PolicySnapshot
decides, so the observer's RemoteAuthorizer pointed at a control plane gets the decision the observer's own
CasbinAuthorizer would give over the same rules.

Reading an EvaluateRequest (field by field, so a 400 names the field, e.g. `[2].resource.hierarchy`):

- `subject_context` is optional and defaults to the authenticated caller (upstream's rule);
- `resource.hierarchy` is required; `resource.id` names a workflow run when the type is `workflowRun`;
- `context.resource.environment` is `"<namespace>/<env>"`: the `<namespace>/` of the request's own namespace is
  stripped, since policy lines hold bare environment names; any other prefix is kept, so it matches no
  environment-limited allow (fail closed);
- a hierarchy that breaks the schema's invariants (component or resource without a project, both at once, a
  project without a namespace) is a decision of false, not a 400, as the schema says;
- unknown fields are ignored, as Go's decoder does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from access.casbin_pdp import PolicySnapshot, action_match, entitlements_of, env_match, scope_match
from access.model import Subject
from access.resources import WORKFLOW_RUN, scope_path

SUBJECT_TYPES = ("user", "service_account")
_LEVELS = ("namespace", "project", "component", "resource")
FieldError = tuple[str, str]


class RequestError(ValueError):
    """A body that is not an array of EvaluateRequest: (field, message) for each fault."""

    def __init__(self, details: Sequence[FieldError]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in details))
        self.details = list(details)


@dataclass(frozen=True)
class Question:
    """One EvaluateRequest as the policy reads it: whose entitlements, which path, action and environment.
    `invalid` says why the hierarchy can match nothing ("" when it is well formed)."""

    entitlements: tuple[str, ...]
    path: str
    action: str
    environment: str
    invalid: str = ""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str

    def wire(self) -> dict[str, Any]:
        """The Decision schema: `{decision, context: {reason}}`."""
        return {"decision": self.allowed, "context": {"reason": self.reason}}


# ------------------------------------------------------------------------------------------- reading


def _object(value: Any, field: str, errors: list[FieldError], required: bool = True) -> Mapping[str, Any]:
    """The object at `field` ({} when absent or not an object, with the fault recorded)."""
    if value is None:
        if required:
            errors.append((field, "is required"))
        return {}
    if not isinstance(value, dict):
        errors.append((field, "must be an object"))
        return {}
    return value


def _text(value: Any, field: str, errors: list[FieldError], required: bool = False) -> str:
    if value is None:
        if required:
            errors.append((field, "is required"))
        return ""
    if not isinstance(value, str):
        errors.append((field, "must be a string"))
        return ""
    if required and not value.strip():
        errors.append((field, "must not be empty"))
    return value


def subject_of(value: Any, field: str, errors: list[FieldError]) -> Subject | None:
    """A SubjectContext as a Subject (no token: it is asked about, not authenticated); None after a fault."""
    if not isinstance(value, dict):
        errors.append((field, "must be an object"))
        return None
    before = len(errors)
    kind = _text(value.get("type"), f"{field}.type", errors, required=True)
    if kind and kind not in SUBJECT_TYPES:
        errors.append((f"{field}.type", f"must be one of {', '.join(SUBJECT_TYPES)}"))
    claim = _text(value.get("entitlement_claim"), f"{field}.entitlement_claim", errors, required=True)
    values = value.get("entitlement_values")
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        errors.append((f"{field}.entitlement_values", "must be an array of strings"))
    if len(errors) > before:
        return None
    return Subject(kind, claim, tuple(values or ()))


def parse_evaluate_request(item: Any, caller: Subject, where: str = "") -> Question:
    """One EvaluateRequest (see the module docstring); RequestError names every fault at once."""

    def at(field: str) -> str:
        return f"{where}.{field}" if where else field

    errors: list[FieldError] = []
    if not isinstance(item, dict):
        raise RequestError([(where or "body", "must be an EvaluateRequest object")])
    subject: Subject | None = caller
    if item.get("subject_context") is not None:
        subject = subject_of(item["subject_context"], at("subject_context"), errors)
    action = _text(item.get("action"), at("action"), errors, required=True)
    resource = _object(item.get("resource"), at("resource"), errors)
    rtype = _text(resource.get("type"), at("resource.type"), errors, required=bool(resource))
    rid = _text(resource.get("id"), at("resource.id"), errors)
    hierarchy = _object(resource.get("hierarchy"), at("resource.hierarchy"), errors, required=bool(resource))
    levels = {key: _text(hierarchy.get(key), at(f"resource.hierarchy.{key}"), errors) for key in _LEVELS}
    context = _object(item.get("context"), at("context"), errors, required=False)
    attributes = _object(context.get("resource"), at("context.resource"), errors, required=False)
    environment = _text(attributes.get("environment"), at("context.resource.environment"), errors)
    if errors or subject is None:
        raise RequestError(errors)

    namespace, project, component, sibling = (levels[key] for key in _LEVELS)
    invalid = ""
    if (component or sibling) and not project:
        invalid = "hierarchy: component and resource need a project"
    elif component and sibling:
        invalid = "hierarchy: component and resource are mutually exclusive"
    elif project and not namespace:
        invalid = "hierarchy: project needs a namespace"
    if rtype == WORKFLOW_RUN and rid and namespace and not project:
        path = scope_path(namespace, workflow_run=rid)
    else:
        # A `resource` sits beside components under its project: no policy level of its own, so the project's.
        path = scope_path(namespace, project, component)
    prefix, _, name = environment.rpartition("/")
    if prefix and prefix == namespace:
        environment = name
    return Question(entitlements_of(subject), path, action, environment, invalid)


def parse_evaluate_requests(body: Any, caller: Subject, max_items: int) -> list[Question]:
    """The evaluates body: a JSON array of EvaluateRequest, at most `max_items` long."""
    if not isinstance(body, list):
        raise RequestError([("body", "must be an array of EvaluateRequest")])
    if len(body) > max_items:
        raise RequestError([("body", f"at most {max_items} requests per call")])
    questions: list[Question] = []
    errors: list[FieldError] = []
    for index, item in enumerate(body):
        try:
            questions.append(parse_evaluate_request(item, caller, f"[{index}]"))
        except RequestError as exc:
            errors.extend(exc.details)
    if errors:
        raise RequestError(errors)
    return questions


# ------------------------------------------------------------------------------------------- deciding


def decide(snapshot: PolicySnapshot, question: Question) -> Decision:
    """The snapshot's decision (exactly `PolicySnapshot.enforce`), with the policy line that made it as the
    reason: the first allow that matched, the first deny that overrode it, or "no matching allow"."""
    if question.invalid:
        return Decision(False, question.invalid)
    allowed = snapshot.enforce(question.entitlements, question.path, question.action, question.environment)
    first_allow = first_deny = ""
    for number in snapshot.candidates(question.entitlements, question.path, question.action):
        sub, _obj, _act, envs, eft = snapshot.policy[number]
        if not env_match(question.environment, envs, eft):
            continue
        if eft == "deny" and not first_deny:
            first_deny = sub
        elif eft == "allow" and not first_allow:
            first_allow = sub
    if allowed:
        return Decision(True, f"allowed by {first_allow}")
    if first_deny:
        return Decision(False, f"denied by {first_deny}")
    return Decision(False, "no matching allow")


# ------------------------------------------------------------------------------------------- capabilities


def display_path(path: str) -> str:
    """A policy path as the profile shows it: `ns/acme/project/p` -> `namespace/acme/project/p`."""
    return "namespace/" + path[3:] if path.startswith("ns/") else path


def _constraints(envs: str) -> dict[str, Any] | None:
    if envs == "*":
        return None
    names = ", ".join(f'"{name}"' for name in envs.split("|"))
    return {"expressions": [f"resource.environment in [{names}]"]}


def capabilities(
    snapshot: PolicySnapshot, subject: Subject, scope: str, actions: Iterable[str]
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """For each action, where the subject's rules allow or deny it: the lines of the subject's role closure whose
    path covers `scope` or lies under it, with an environment limit as a CEL constraint."""
    roles = snapshot.roles(entitlements_of(subject))
    names = list(actions)
    out: dict[str, dict[str, list[dict[str, Any]]]] = {name: {"allowed": [], "denied": []} for name in names}
    seen: set[tuple[str, str, str, str]] = set()
    for sub, obj, act, envs, eft in snapshot.policy:
        if sub not in roles or not (scope_match(scope, obj) or scope_match(obj, scope)):
            continue
        for name in names:
            if not action_match(name, act) or (name, obj, envs, eft) in seen:
                continue
            seen.add((name, obj, envs, eft))
            entry: dict[str, Any] = {"path": display_path(obj)}
            constraints = _constraints(envs)
            if constraints:
                entry["constraints"] = constraints
            out[name]["allowed" if eft == "allow" else "denied"].append(entry)
    return out
