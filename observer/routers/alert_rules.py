"""The internal port: alert-rule CRUD (what OpenChoreo's rule controller calls) and the alert webhook
(contract notes §1.10, §1.11).

Rules land in the observer's own resource store and the reconciler carries them into whichever backend holds
their data; each write answers with the outcome of reconciling that one rule (`AlertingRuleSyncResponse`).
Fixed upstream defects: a duration that is not whole minutes or hours is a 400, not a 500.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr

from domain.alerting import (
    LABEL_SCOPE,
    METRICS,
    OPERATORS,
    SOURCE_TYPES,
    AlertRule,
    InvalidResource,
    RuleSource,
    condition_from,
    short_duration,
)
from domain.echo import shown
from domain.model import LABEL_COMPONENT_UID, LABEL_ENVIRONMENT_UID, LABEL_PROJECT_UID
from observer.alerting import bodies
from observer.alerting.intake import AlertIntake, RuleNotFound
from observer.alerting.payloads import InvalidPayload, firings_from
from observer.errors import ApiError
from observer.responses import FastJSONResponse
from observer.routers.alerts import bind

log = logging.getLogger(__name__)

router = APIRouter(tags=["Alert rules"], default_response_class=FastJSONResponse)

_ZERO_UUID = "00000000-0000-0000-0000-000000000000"


class RuleMetadata(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: StrictStr | None = None
    namespace: StrictStr | None = None
    projectUid: uuid.UUID | None = None
    environmentUid: uuid.UUID | None = None
    componentUid: uuid.UUID | None = None


class RuleSourceBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: StrictStr | None = None
    query: StrictStr | None = None
    metric: StrictStr | None = None


class RuleConditionBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    enabled: StrictBool | None = None
    window: StrictStr | None = None
    interval: StrictStr | None = None
    operator: StrictStr | None = None
    threshold: StrictInt | StrictFloat | None = None


class AlertRuleRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    metadata: RuleMetadata | None = None
    source: RuleSourceBody | None = None
    condition: RuleConditionBody | None = None


def _source_type(source_type: str) -> str:
    if source_type not in SOURCE_TYPES:
        raise ApiError(
            400,
            f"sourceType \"{shown(source_type)}\" is invalid: must be 'log', 'metric', or 'budget'",
            "INVALID_SOURCE_TYPE",
        )
    return source_type


def _invalid(message: str) -> ApiError:
    return ApiError(400, message, "VALIDATION_ERROR")


def rule_from_request(source_type: str, body: AlertRuleRequest, existing: AlertRule | None) -> AlertRule:
    """The request as a rule, checked in the contract's order; fields the API does not carry (channels, severity,
    description, the display name) are kept from the stored rule."""
    meta, source, condition = body.metadata, body.source, body.condition
    if meta is None or source is None or condition is None:
        raise _invalid("metadata, source and condition are required")
    if meta.name is None or not meta.name.strip():
        raise _invalid("metadata.name is required")
    if meta.namespace is None or not meta.namespace.strip():
        raise _invalid("metadata.namespace is required")
    uids = {}
    for field, label in (
        ("projectUid", LABEL_PROJECT_UID),
        ("environmentUid", LABEL_ENVIRONMENT_UID),
        ("componentUid", LABEL_COMPONENT_UID),
    ):
        value = getattr(meta, field)
        if value is None or str(value) == _ZERO_UUID:
            raise _invalid(f"metadata.{field} is required")
        uids[label] = str(value)
    if source.type not in SOURCE_TYPES:
        raise _invalid("source.type must be one of log, metric, budget")
    if source.type == "log" and not (source.query or "").strip():
        raise _invalid("source.query is required for log rules")
    if source.type == "metric" and source.metric not in METRICS:
        raise _invalid("source.metric must be one of cpu_usage, memory_usage, budget")
    if condition.enabled is None:
        raise _invalid("condition.enabled is required")
    if condition.operator not in OPERATORS:
        raise _invalid(f"condition.operator must be one of {', '.join(OPERATORS)}")
    try:
        parsed = condition_from(condition.model_dump(), "condition")
    except InvalidResource as exc:
        raise _invalid(str(exc)) from None
    if source.type != source_type:
        raise ApiError(
            400,
            f'path sourceType "{shown(source_type)}" does not match body source.type "{shown(source.type)}"',
            "SOURCE_TYPE_MISMATCH",
        )
    rule_source = (
        RuleSource("budget", metric="budget")
        if source.type == "budget"
        else RuleSource(
            source.type,
            query=(source.query or "").strip() if source.type == "log" else "",
            metric=source.metric or "" if source.type == "metric" else "",
        )
    )
    name, namespace = meta.name.strip(), meta.namespace.strip()
    labels = dict(existing.labels) if existing else {}
    labels.pop(LABEL_SCOPE, None)  # the API always scopes a rule by its three UIDs: no longer namespace-wide
    labels.update(uids)
    base = existing or AlertRule(name=name, namespace=namespace, rule_name=name, source=rule_source, condition=parsed)
    return replace(
        base,
        name=name,
        namespace=namespace,
        source=rule_source,
        condition=parsed,
        enabled=condition.enabled,
        labels=labels,
    )


def rule_response(rule: AlertRule) -> dict[str, Any]:
    """AlertRuleResponse: the request's shape."""
    source: dict[str, Any] = {"type": rule.source.type}
    if rule.source.query:
        source["query"] = rule.source.query
    if rule.source.metric:
        source["metric"] = rule.source.metric
    return {
        "metadata": {
            "name": rule.name,
            "namespace": rule.namespace,
            "projectUid": rule.project_uid,
            "environmentUid": rule.environment_uid,
            "componentUid": rule.component_uid,
        },
        "source": source,
        "condition": {
            "enabled": rule.enabled,
            "window": short_duration(rule.condition.window_s),
            "interval": short_duration(rule.condition.interval_s),
            "operator": rule.condition.operator,
            "threshold": rule.condition.threshold,
        },
    }


def _budget_unsupported() -> ApiError:
    return ApiError(501, "budget alert rules need a cost backend, and none is configured", "NOT_IMPLEMENTED")


def _rule_name(rule_name: str) -> str:
    if not rule_name.strip():
        raise ApiError(400, "rule name is required", "INVALID_RULE_NAME")
    return rule_name.strip()


@router.post("/api/v1alpha1/alerts/sources/{sourceType}/rules", status_code=201, operation_id="createAlertRule")
async def create_rule(sourceType: str, request: Request) -> FastJSONResponse:
    _source_type(sourceType)
    body = await bind(request, AlertRuleRequest)
    rule = rule_from_request(sourceType, body, None)
    if sourceType == "budget":
        raise _budget_unsupported()
    rules = request.app.state.alert_resources
    if await rules.get_rule(rule.namespace, rule.name) is not None:
        raise ApiError(409, f"alert rule {shown(rule.name)} already exists", "ALREADY_EXISTS")
    await rules.put_rule(rule)
    return FastJSONResponse(await request.app.state.rule_sync(rule.namespace, rule.name, "created"), status_code=201)


@router.get("/api/v1alpha1/alerts/sources/{sourceType}/rules/{ruleName}", operation_id="getAlertRule")
async def get_rule(sourceType: str, ruleName: str, request: Request) -> FastJSONResponse:
    _source_type(sourceType)
    rule = await request.app.state.alert_resources.find_rule(_rule_name(ruleName))
    if rule is None or rule.source.type != sourceType:
        raise ApiError(404, f"alert rule {shown(ruleName)} not found", "NOT_FOUND")
    return FastJSONResponse(rule_response(rule))


@router.put("/api/v1alpha1/alerts/sources/{sourceType}/rules/{ruleName}", operation_id="updateAlertRule")
async def update_rule(sourceType: str, ruleName: str, request: Request) -> FastJSONResponse:
    _source_type(sourceType)
    name = _rule_name(ruleName)
    body = await bind(request, AlertRuleRequest)
    rules = request.app.state.alert_resources
    existing = await rules.find_rule(name)
    rule = rule_from_request(sourceType, body, existing)
    if sourceType == "budget":
        raise _budget_unsupported()
    if rule.name != name:
        raise ApiError(
            400,
            f'metadata.name "{shown(rule.name)}" does not match the rule name "{shown(name)}" in the path',
            "VALIDATION_ERROR",
        )
    if existing is None:
        raise ApiError(404, f"alert rule {shown(name)} not found", "NOT_FOUND")
    stored = await rules.put_rule(rule)
    action = "unchanged" if stored.generation == existing.generation else "updated"
    return FastJSONResponse(await request.app.state.rule_sync(stored.namespace, stored.name, action))


@router.delete("/api/v1alpha1/alerts/sources/{sourceType}/rules/{ruleName}", operation_id="deleteAlertRule")
async def delete_rule(sourceType: str, ruleName: str, request: Request) -> FastJSONResponse:
    _source_type(sourceType)
    name = _rule_name(ruleName)
    rules = request.app.state.alert_resources
    existing = await rules.find_rule(name)
    if existing is None or existing.source.type != sourceType:
        raise ApiError(404, f"alert rule {shown(name)} not found", "NOT_FOUND")
    await rules.delete_rule(existing.namespace, existing.name)
    return FastJSONResponse(await request.app.state.rule_sync(existing.namespace, existing.name, "deleted"))


@router.post("/api/v1alpha1/alerts/webhook", operation_id="handleAlertWebhook", tags=["Alerts"])
async def alert_webhook(request: Request) -> FastJSONResponse:
    try:
        firings = firings_from(bodies.decode(await request.body()))
    except InvalidPayload as exc:
        raise ApiError(400, shown(str(exc), 300), exc.code) from None
    except ValueError as exc:  # BodyError, or a payload value of the wrong kind
        raise ApiError(400, f"invalid request body: {shown(str(exc), 300)}", "INVALID_REQUEST_BODY") from None
    intake: AlertIntake = request.app.state.alert_intake
    messages = []
    for firing in firings:
        try:
            result = await intake.accept(firing)
        except RuleNotFound as exc:
            raise ApiError(404, str(exc), "RULE_NOT_FOUND") from None
        except Exception as exc:
            log.exception("alert webhook for %s/%s failed", firing.rule_namespace, firing.rule_name)
            raise ApiError(500, f"failed to handle alert webhook: {type(exc).__name__}", "WEBHOOK_FAILED") from None
        messages.append(
            "alert suppressed: duplicate within suppression window"
            if result.suppressed
            else f"alert acknowledged, alertID: {result.alert_id}"
        )
    if not messages:
        return FastJSONResponse({"status": "success", "message": "no firing alerts in the payload"})
    return FastJSONResponse({"status": "success", "message": "; ".join(messages)})
