"""The internal port's resource endpoints (ours; upstream has none): how the observability-plane agent hands the
observer the ObservabilityAlertRule CRs and the notification channels OpenChoreo's controllers write into the plane.

Why: upstream's observer reads the rule CR (channels, severity, description) and the channel's ConfigMap + Secret
from its local Kubernetes API when an alert fires (contract notes §2.4 step 2, §2.5). Ours keeps rules and channels
in its alert store (observer/alerting/resources.py), so nothing is read from a cluster at webhook time; the agent
(agents/alert_rules.py) delivers the objects instead:

    PUT    /api/v1alpha1/alerts/rule-resources/{namespace}/{name}          <the ObservabilityAlertRule CR>
    DELETE /api/v1alpha1/alerts/rule-resources/{namespace}/{name}
    PUT    /api/v1alpha1/alerts/notification-channels/{namespace}/{name}   {"channel": <CR>, "secrets": {k: v}}
    DELETE /api/v1alpha1/alerts/notification-channels/{namespace}/{name}

The rule endpoint is the whole-CR twin of the upstream rule API (observer/routers/alert_rules.py, which stays as
upstream's controller drives it): the CR is validated as `observer rules apply` validates it, stored under its
namespace and name, reconciled at once, and answered with the same AlertingRuleSyncResponse (201 when created, else
200), from which the agent writes the CR's status. A DELETE of a rule not there is a 404 (done, for the agent).

Channel secrets are stored as the Secret named after the channel in its namespace (the name upstream's controller
gives it), which is what the document's `secretKeyRef`s name; a DELETE of a channel not there answers `unchanged`.

Input is strict everywhere: a body field the endpoint does not know, a kind or apiVersion other than the
resource's, a document naming another object than the path, or an invalid spec is a 400.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from domain.alerting import (
    API_VERSION,
    CHANNEL_KIND,
    RULE_KIND,
    AlertRule,
    InvalidResource,
    channel_from_resource,
    rule_from_resource,
)
from domain.echo import shown
from observer.alerting import bodies
from observer.alerting.resources import ResourceStore
from observer.errors import ApiError
from observer.responses import FastJSONResponse

router = APIRouter(default_response_class=FastJSONResponse)

CHANNEL_PATH = "/api/v1alpha1/alerts/notification-channels/{namespace}/{name}"
RULE_PATH = "/api/v1alpha1/alerts/rule-resources/{namespace}/{name}"
#: The top-level fields of a Kubernetes object as the API server returns it; the status is ignored (the observer
#: keeps its own), anything else is refused.
_CR_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})

#: A Kubernetes object name (DNS subdomain): what a channel's namespace and name can be.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_NAME_MAX = 253
#: Keys of the channel's Secret; a webhook has one per secret header, an email channel two.
MAX_SECRET_KEYS = 256


class ChannelPut(BaseModel):
    """The PUT body: the channel's CR document and the values of its Secret."""

    model_config = ConfigDict(extra="forbid")
    channel: dict[str, Any]
    secrets: dict[StrictStr, StrictStr] = Field(default_factory=dict, max_length=MAX_SECRET_KEYS)


def _store(request: Request) -> ResourceStore:
    store: ResourceStore = request.app.state.alert_resources
    return store


def _invalid(message: str) -> ApiError:
    return ApiError(400, message, "VALIDATION_ERROR")


def _checked_name(value: str, what: str) -> str:
    if len(value) > _NAME_MAX or not _NAME.match(value):
        raise _invalid(f'{what} "{shown(value)}" is not a valid Kubernetes name')
    return value


def _checked_path(namespace: str, name: str) -> None:
    _checked_name(namespace, "namespace")
    _checked_name(name, "name")


async def _body(request: Request) -> Any:
    """The request's JSON body, or 400 INVALID_REQUEST_BODY."""
    try:
        return bodies.decode(await request.body())
    except bodies.BodyError as exc:
        raise ApiError(400, f"invalid request body: {exc}", "INVALID_REQUEST_BODY") from None


def _checked_header(
    doc: dict[str, Any], kind: str, namespace: str, name: str, *, prefix: str = "", optional: bool = False
) -> dict[str, Any]:
    """The document's metadata, once its kind and apiVersion are the resource's and its metadata names the object
    of the path (400 VALIDATION_ERROR otherwise). `optional`: a field left out stands for the expected value."""
    for field, expected in (("kind", kind), ("apiVersion", API_VERSION)):
        if doc.get(field, expected if optional else "") != expected:
            raise _invalid(f'{prefix}{field} must be {expected}, not "{shown(str(doc.get(field, "")))}"')
    metadata = doc.get("metadata", {} if optional else None)
    if not isinstance(metadata, dict):
        raise _invalid(f"{prefix}metadata must be an object")
    for field, expected in (("name", name), ("namespace", namespace)):
        if metadata.get(field, expected if optional else "") != expected:
            raise _invalid(
                f'{prefix}metadata.{field} "{shown(str(metadata.get(field, "")))}" does not match "{shown(expected)}"'
                " in the path"
            )
    return metadata


def channel_document(namespace: str, name: str, doc: dict[str, Any]) -> dict[str, Any]:
    """The document as stored: kind and apiVersion, when given, must be the channel's, and metadata must name the
    channel of the path (filled in when absent); the spec must be a valid channel (400 VALIDATION_ERROR)."""
    metadata = _checked_header(doc, CHANNEL_KIND, namespace, name, prefix="channel.", optional=True)
    document = {**doc, "apiVersion": API_VERSION, "kind": CHANNEL_KIND}
    document["metadata"] = {**metadata, "name": name, "namespace": namespace}
    try:
        channel_from_resource(document, namespace)
    except InvalidResource as exc:
        raise _invalid(f"channel.{shown(str(exc), 300)}") from None
    return document


@router.put(
    CHANNEL_PATH,
    tags=["Notification channels"],
    operation_id="putNotificationChannel",
    openapi_extra={"x-observer-extension": True},
)
async def put_channel(namespace: str, name: str, request: Request) -> FastJSONResponse:
    """Stores the channel and its Secret, the Secret first, so a stored channel never names values not there."""
    _checked_path(namespace, name)
    raw = await _body(request)
    try:
        body: ChannelPut = bodies.bind(raw, ChannelPut)
    except bodies.BodyError as exc:
        raise ApiError(400, f"invalid request body: {exc}", "INVALID_REQUEST_BODY") from None
    document = channel_document(namespace, name, body.channel)
    store = _store(request)
    await store.put_secret(namespace, name, body.secrets)
    await store.put_channel(document, namespace)
    return FastJSONResponse({"namespace": namespace, "name": name, "action": "configured"})


@router.delete(
    CHANNEL_PATH,
    tags=["Notification channels"],
    operation_id="deleteNotificationChannel",
    openapi_extra={"x-observer-extension": True},
)
async def delete_channel(namespace: str, name: str, request: Request) -> FastJSONResponse:
    """Removes the channel and empties its Secret; a channel not there is already gone (`unchanged`)."""
    _checked_path(namespace, name)
    store = _store(request)
    existing = await store.channel(namespace, name)
    if existing is None or existing.namespace != namespace:
        return FastJSONResponse({"namespace": namespace, "name": name, "action": "unchanged"})
    await store.put_secret(namespace, name, {})
    await store.delete_channel(namespace, name)
    return FastJSONResponse({"namespace": namespace, "name": name, "action": "deleted"})


# ----------------------------------------------------------------------------------------------- rules


def rule_resource(namespace: str, name: str, doc: Any) -> AlertRule:
    """The CR as a rule: an object of a Kubernetes object's fields only, whose kind, apiVersion, metadata.name and
    metadata.namespace are all given and name the rule of the path, valid as `observer rules apply` takes it
    (400 INVALID_REQUEST_BODY for the shape, VALIDATION_ERROR for the content)."""
    if not isinstance(doc, dict):
        raise ApiError(400, f"invalid request body: the body must be an {RULE_KIND} object", "INVALID_REQUEST_BODY")
    unknown = sorted(str(field) for field in doc if field not in _CR_FIELDS)
    if unknown:
        raise ApiError(
            400,
            f'invalid request body: unknown field "{shown(unknown[0])}" (allowed: {", ".join(sorted(_CR_FIELDS))})',
            "INVALID_REQUEST_BODY",
        )
    _checked_header(doc, RULE_KIND, namespace, name)
    try:
        return rule_from_resource(doc, namespace)
    except InvalidResource as exc:
        raise _invalid(shown(str(exc), 300)) from None


@router.put(
    RULE_PATH,
    tags=["Alert rules"],
    operation_id="putAlertRuleResource",
    openapi_extra={"x-observer-extension": True},
)
async def put_rule_resource(namespace: str, name: str, request: Request) -> FastJSONResponse:
    """Stores the CR (its status kept as the observer has it) and reconciles it now; the answer is the rule API's
    AlertingRuleSyncResponse, `action` created (201), updated or unchanged (200)."""
    _checked_path(namespace, name)
    rule = rule_resource(namespace, name, await _body(request))
    store = _store(request)
    before = await store.get_rule(namespace, name)
    stored = await store.put_rule(rule)
    if before is None:
        action = "created"
    else:
        action = "unchanged" if before.generation == stored.generation else "updated"
    answer = await request.app.state.rule_sync(namespace, name, action)
    return FastJSONResponse(answer, status_code=201 if action == "created" else 200)


@router.delete(
    RULE_PATH,
    tags=["Alert rules"],
    operation_id="deleteAlertRuleResource",
    openapi_extra={"x-observer-extension": True},
)
async def delete_rule_resource(namespace: str, name: str, request: Request) -> FastJSONResponse:
    """Removes the rule from the store and its backend now (AlertingRuleSyncResponse, action deleted); a rule not
    there is a 404 NOT_FOUND, which the agent takes as done."""
    _checked_path(namespace, name)
    store = _store(request)
    if not await store.delete_rule(namespace, name):
        raise ApiError(404, f"alert rule {shown(namespace)}/{shown(name)} not found", "NOT_FOUND")
    return FastJSONResponse(await request.app.state.rule_sync(namespace, name, "deleted"))
