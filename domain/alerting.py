"""The alerting resources as the observer keeps them: ObservabilityAlertRule and
ObservabilityAlertsNotificationChannel (openchoreo.dev/v1alpha1), plus the Secrets channels refer to.

They arrive as Kubernetes-shaped documents (`observer rules apply -f FILE`, the internal rule API, or later the
agent) and are stored as such, so `from_resource`/`to_resource` are the only translation. Durations are held in
whole seconds; `go_duration` prints them the way OpenChoreo's Go code does ("5m0s"), which is what the alert
query API echoes back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from domain.model import (
    LABEL_COMPONENT,
    LABEL_COMPONENT_UID,
    LABEL_ENVIRONMENT,
    LABEL_ENVIRONMENT_UID,
    LABEL_NAMESPACE,
    LABEL_PROJECT,
    LABEL_PROJECT_UID,
    ComponentScope,
)
from domain.timeutil import parse_go_duration

API_VERSION = "openchoreo.dev/v1alpha1"
RULE_KIND = "ObservabilityAlertRule"
CHANNEL_KIND = "ObservabilityAlertsNotificationChannel"

SOURCE_TYPES = ("log", "metric", "budget")
METRICS = ("cpu_usage", "memory_usage", "budget")
OPERATORS = ("gt", "gte", "lt", "lte", "eq", "neq")
SEVERITIES = ("info", "warning", "critical")
CHANNEL_TYPES = ("email", "webhook")

#: Phases and condition reasons written into a rule's status (CRD §4.1).
PENDING, READY, ERROR = "Pending", "Ready", "Error"
SYNC_SUCCEEDED, SYNC_NOT_SYNCED, SYNC_FAILED = "SyncSucceeded", "SyncNotSynced", "SyncFailed"
#: Our additions: why a rule is not in any backend (its scope), and whether its channels exist (condition
#: type CHANNELS_READY), so a rule that cannot do what it says never shows phase Ready.
SCOPE_MISSING, SCOPE_NOT_FOUND = "ScopeMissing", "ScopeNotFound"
CHANNELS_READY, CHANNELS_FOUND, CHANNEL_NOT_FOUND = "ChannelsReady", "ChannelsFound", "ChannelNotFound"

#: The label that makes a rule watch its whole namespace; without it a rule must name a project, component or
#: environment (by name or UID), so a rule missing its scope labels is refused instead of silently widening.
LABEL_SCOPE = "observer.openchoreo.dev/scope"
SCOPE_NAMESPACE = "namespace"
_SCOPE_LABELS = (
    LABEL_PROJECT,
    LABEL_PROJECT_UID,
    LABEL_COMPONENT,
    LABEL_COMPONENT_UID,
    LABEL_ENVIRONMENT,
    LABEL_ENVIRONMENT_UID,
)


class InvalidResource(ValueError):
    """A resource that cannot be stored; the message names the field to fix."""


# ----------------------------------------------------------------------------------------------- durations


def parse_duration(text: str) -> float:
    """A Go duration string ("5m", "1h30m", "90s") in seconds; ValueError on anything else."""
    return parse_go_duration(text.strip()) / 1e9


def go_duration(seconds: float) -> str:
    """Seconds as Go's Duration.String() for whole seconds: 300 -> "5m0s", 3600 -> "1h0m0s", 45 -> "45s"."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def short_duration(seconds: float) -> str:
    """Whole hours ("1h") when divisible, else whole minutes ("5m"): how OpenChoreo's controller sends them."""
    whole = int(seconds)
    return f"{whole // 3600}h" if whole % 3600 == 0 else f"{whole // 60}m"


# ----------------------------------------------------------------------------------------------- rules


@dataclass(frozen=True, slots=True)
class RuleSource:
    type: str  # log | metric | budget
    query: str = ""  # log rules: the phrase counted
    metric: str = ""  # metric rules: cpu_usage | memory_usage (budget for budget rules)


@dataclass(frozen=True, slots=True)
class RuleCondition:
    window_s: float
    interval_s: float
    operator: str
    threshold: float


@dataclass(frozen=True, slots=True)
class IncidentAction:
    enabled: bool = False
    trigger_ai_rca: bool = False
    trigger_ai_cost_analysis: bool = False


@dataclass(frozen=True, slots=True)
class Condition:
    """A Kubernetes-style status condition (type Synced)."""

    type: str
    status: str  # "True" | "False"
    reason: str
    message: str
    last_transition_time: str


@dataclass(frozen=True, slots=True)
class RuleStatus:
    observed_generation: int = 0
    phase: str = PENDING
    last_reconcile_time: str = ""
    last_sync_time: str = ""
    backend_monitor_id: str = ""
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One ObservabilityAlertRule. `name`/`namespace` are the resource's own (what a firing alert names);
    `rule_name` is spec.name, the logical name shown to users."""

    name: str
    namespace: str
    rule_name: str
    source: RuleSource
    condition: RuleCondition
    channels: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    severity: str = ""
    enabled: bool = True
    incident: IncidentAction = IncidentAction()
    generation: int = 1
    status: RuleStatus = RuleStatus()

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def scope_namespace(self) -> str:
        """The platform namespace the rule watches (its label; the resource's namespace when unlabelled)."""
        return self.labels.get(LABEL_NAMESPACE) or self.namespace

    @property
    def project(self) -> str:
        return self.labels.get(LABEL_PROJECT, "")

    @property
    def project_uid(self) -> str:
        return self.labels.get(LABEL_PROJECT_UID, "")

    @property
    def component(self) -> str:
        return self.labels.get(LABEL_COMPONENT, "")

    @property
    def component_uid(self) -> str:
        return self.labels.get(LABEL_COMPONENT_UID, "")

    @property
    def environment(self) -> str:
        return self.labels.get(LABEL_ENVIRONMENT, "")

    @property
    def environment_uid(self) -> str:
        return self.labels.get(LABEL_ENVIRONMENT_UID, "")

    def same_spec(self, other: AlertRule) -> bool:
        """Whether a re-applied rule changes anything a backend or the webhook uses (else the generation stays)."""
        return _spec(self) == _spec(other) and dict(self.labels) == dict(other.labels)


def _spec(rule: AlertRule) -> tuple[Any, ...]:
    return (
        rule.rule_name,
        rule.source,
        rule.condition,
        rule.channels,
        rule.description,
        rule.severity,
        rule.enabled,
        rule.incident,
    )


def rule_from_resource(
    doc: Mapping[str, Any], default_namespace: str = "default", *, stored: bool = False
) -> AlertRule:
    """An ObservabilityAlertRule document (as kubectl would take it) as an AlertRule; InvalidResource names the
    first field to fix, following the CRD's schema and CEL rules. `stored` reads back what the store holds,
    where a rule created through the internal rule API may have no channels yet (that API carries none)."""
    meta = _mapping(doc.get("metadata"), "metadata")
    spec = _mapping(doc.get("spec"), "spec")
    name = _required_text(meta, "name", "metadata.name")
    source_doc = _mapping(spec.get("source"), "spec.source")
    source = RuleSource(
        type=_one_of(source_doc.get("type"), SOURCE_TYPES, "spec.source.type"),
        query=str(source_doc.get("query") or ""),
        metric=str(source_doc.get("metric") or ""),
    )
    if source.type == "log" and not source.query.strip():
        raise InvalidResource("spec.source.query is required for log rules")
    if source.type == "metric" and source.metric not in ("cpu_usage", "memory_usage"):
        raise InvalidResource("spec.source.metric must be cpu_usage or memory_usage for metric rules")
    if source.type == "budget":
        source = RuleSource("budget", metric="budget")
    condition = condition_from(_mapping(spec.get("condition"), "spec.condition"), "spec.condition")
    actions = _mapping(spec.get("actions"), "spec.actions")
    notifications = _mapping(actions.get("notifications"), "spec.actions.notifications")
    channels = notifications.get("channels")
    if stored and channels == []:
        pass
    elif not isinstance(channels, list) or not channels or not all(isinstance(c, str) and c for c in channels):
        raise InvalidResource("spec.actions.notifications.channels must list at least one channel name")
    incident_doc = _mapping(actions.get("incident") or {}, "spec.actions.incident")
    incident = IncidentAction(
        enabled=bool(incident_doc.get("enabled", False)),
        trigger_ai_rca=bool(incident_doc.get("triggerAiRca", False)),
        trigger_ai_cost_analysis=bool(incident_doc.get("triggerAiCostAnalysis", False)),
    )
    if (incident.trigger_ai_rca or incident.trigger_ai_cost_analysis) and not incident.enabled:
        raise InvalidResource("spec.actions.incident.enabled must be true to trigger AI analyses")
    if incident.trigger_ai_cost_analysis and source.type != "budget":
        raise InvalidResource("spec.actions.incident.triggerAiCostAnalysis is only allowed for budget rules")
    severity = str(spec.get("severity") or "")
    if severity and severity not in SEVERITIES:
        raise InvalidResource(f"spec.severity must be one of {', '.join(SEVERITIES)}")
    enabled = spec.get("enabled")
    labels = {str(k): str(v) for k, v in (_mapping(meta.get("labels") or {}, "metadata.labels")).items()}
    problem = None if stored else scope_problem(labels)
    if problem:
        raise InvalidResource(problem)
    return AlertRule(
        name=name,
        namespace=str(meta.get("namespace") or default_namespace),
        rule_name=_required_text(spec, "name", "spec.name"),
        source=source,
        condition=condition,
        channels=tuple(dict.fromkeys(channels)),
        labels=labels,
        description=str(spec.get("description") or ""),
        severity=severity,
        enabled=True if enabled is None else bool(enabled),
        incident=incident,
    )


def scope_problem(labels: Mapping[str, str]) -> str | None:
    """What is wrong with a rule's scope labels, or None. A rule names a project, component or environment (by
    name or UID), or says `observer.openchoreo.dev/scope: namespace`; a component named without its UID needs
    its project named too, as a query's searchScope does."""
    named = [label for label in _SCOPE_LABELS if labels.get(label, "").strip()]
    wide = labels.get(LABEL_SCOPE)
    if wide is not None and wide != SCOPE_NAMESPACE:
        return f"metadata.labels.{LABEL_SCOPE} must be {SCOPE_NAMESPACE!r}, not {wide[:64]!r}"
    if wide is not None and named:
        return (
            f"metadata.labels.{LABEL_SCOPE}: {SCOPE_NAMESPACE} watches the whole namespace, so it cannot be "
            f"combined with {named[0]}; remove one of them"
        )
    if wide is None and not named:
        return (
            "metadata.labels must scope the rule: set openchoreo.dev/project (and optionally "
            "openchoreo.dev/component, openchoreo.dev/environment) or their -uid labels, or "
            f"{LABEL_SCOPE}: {SCOPE_NAMESPACE} to watch the whole namespace"
        )
    if labels.get(LABEL_COMPONENT) and not labels.get(LABEL_COMPONENT_UID) and not labels.get(LABEL_PROJECT):
        return f"metadata.labels.{LABEL_PROJECT} is required when {LABEL_COMPONENT} names the component"
    return None


def condition_from(doc: Mapping[str, Any], where: str) -> RuleCondition:
    """window, interval, operator, threshold, checked as the API checks them (whole minutes or hours, interval
    within window, threshold above zero)."""
    window = _duration(doc.get("window"), f"{where}.window")
    interval = _duration(doc.get("interval"), f"{where}.interval")
    if interval > window:
        raise InvalidResource(f"{where}.interval must not be longer than {where}.window")
    threshold = doc.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise InvalidResource(f"{where}.threshold must be a number")
    if threshold <= 0:
        raise InvalidResource(f"{where}.threshold must be greater than 0")
    return RuleCondition(
        window, interval, _one_of(doc.get("operator"), OPERATORS, f"{where}.operator"), float(threshold)
    )


def _duration(value: Any, where: str) -> float:
    if not isinstance(value, str):
        raise InvalidResource(f"{where} is required, as a duration like 5m or 1h")
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise InvalidResource(f"{where}: {exc}") from None
    if seconds <= 0:
        raise InvalidResource(f"{where} must be greater than 0")
    if seconds % 60:
        raise InvalidResource(f"{where} must be whole minutes or hours (like 5m or 1h), not {value!r}")
    return seconds


def rule_to_resource(rule: AlertRule) -> dict[str, Any]:
    """The rule as a Kubernetes-shaped document, status included (what `observer rules get` prints)."""
    status = rule.status
    spec: dict[str, Any] = {
        "name": rule.rule_name,
        "enabled": rule.enabled,
        "source": {"type": rule.source.type}
        | ({"query": rule.source.query} if rule.source.query else {})
        | ({"metric": rule.source.metric} if rule.source.metric and rule.source.type == "metric" else {}),
        "condition": {
            "window": short_duration(rule.condition.window_s),
            "interval": short_duration(rule.condition.interval_s),
            "operator": rule.condition.operator,
            "threshold": rule.condition.threshold,
        },
        "actions": {
            "notifications": {"channels": list(rule.channels)},
            "incident": {
                "enabled": rule.incident.enabled,
                "triggerAiRca": rule.incident.trigger_ai_rca,
                "triggerAiCostAnalysis": rule.incident.trigger_ai_cost_analysis,
            },
        },
    }
    if rule.description:
        spec["description"] = rule.description
    if rule.severity:
        spec["severity"] = rule.severity
    return {
        "apiVersion": API_VERSION,
        "kind": RULE_KIND,
        "metadata": {
            "name": rule.name,
            "namespace": rule.namespace,
            "labels": dict(rule.labels),
            "generation": rule.generation,
        },
        "spec": spec,
        "status": {
            "observedGeneration": status.observed_generation,
            "phase": status.phase,
            "lastReconcileTime": status.last_reconcile_time or None,
            "lastSyncTime": status.last_sync_time or None,
            "backendMonitorId": status.backend_monitor_id or None,
            "conditions": [
                {
                    "type": c.type,
                    "status": c.status,
                    "reason": c.reason,
                    "message": c.message,
                    "lastTransitionTime": c.last_transition_time,
                }
                for c in status.conditions
            ],
        },
    }


@dataclass(frozen=True, slots=True)
class AlertFiring:
    """A rule whose condition held: what every source (the webhook's payloads, our evaluator) hands the intake."""

    rule_namespace: str
    rule_name: str
    value: float
    timestamp_ns: int | None = None  # when the condition held, as the source says; None: now
    delivery_key: str = ""  # the source's own id of this firing ("" when it has none): a redelivery is a no-op


# ----------------------------------------------------------------------------------------------- channels


@dataclass(frozen=True, slots=True)
class SecretRef:
    name: str
    key: str


@dataclass(frozen=True, slots=True)
class HeaderValue:
    """A webhook header: an inline value or a reference to a Secret key (exactly one)."""

    value: str = ""
    secret: SecretRef | None = None


@dataclass(frozen=True, slots=True)
class EmailConfig:
    sender: str
    to: tuple[str, ...]
    host: str
    port: int = 587
    username: SecretRef | None = None
    password: SecretRef | None = None
    tls_skip_verify: bool = False
    subject_template: str = ""
    body_template: str = ""


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    url: str
    headers: Mapping[str, HeaderValue] = field(default_factory=dict)
    payload_template: str = ""
    signing_secret: SecretRef | None = None  # our addition: X-OpenChoreo-Signature, HMAC-SHA256 of the body


@dataclass(frozen=True, slots=True)
class NotificationChannel:
    name: str
    namespace: str
    environment: str
    type: str  # email | webhook
    is_env_default: bool = False
    email: EmailConfig | None = None
    webhook: WebhookConfig | None = None


def _secret_ref(doc: Any, where: str) -> SecretRef | None:
    if doc is None:
        return None
    ref = _mapping(_mapping(doc, where).get("secretKeyRef"), f"{where}.secretKeyRef")
    return SecretRef(
        _required_text(ref, "name", f"{where}.secretKeyRef.name"),
        _required_text(ref, "key", f"{where}.secretKeyRef.key"),
    )


def channel_from_resource(doc: Mapping[str, Any], default_namespace: str = "default") -> NotificationChannel:
    meta = _mapping(doc.get("metadata"), "metadata")
    spec = _mapping(doc.get("spec"), "spec")
    kind = _one_of(spec.get("type"), CHANNEL_TYPES, "spec.type")
    email = webhook = None
    if kind == "email":
        cfg = _mapping(spec.get("emailConfig"), "spec.emailConfig")
        smtp = _mapping(cfg.get("smtp"), "spec.emailConfig.smtp")
        auth = _mapping(smtp.get("auth") or {}, "spec.emailConfig.smtp.auth")
        to = cfg.get("to")
        if not isinstance(to, list) or not to or not all(isinstance(a, str) and "@" in a for a in to):
            raise InvalidResource("spec.emailConfig.to must list at least one e-mail address")
        port = smtp.get("port", 587)
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise InvalidResource("spec.emailConfig.smtp.port must be between 1 and 65535")
        template = _mapping(cfg.get("template") or {}, "spec.emailConfig.template")
        email = EmailConfig(
            sender=_required_text(cfg, "from", "spec.emailConfig.from"),
            to=tuple(to),
            host=_required_text(smtp, "host", "spec.emailConfig.smtp.host"),
            port=port,
            username=_secret_ref(auth.get("username"), "spec.emailConfig.smtp.auth.username"),
            password=_secret_ref(auth.get("password"), "spec.emailConfig.smtp.auth.password"),
            tls_skip_verify=bool(
                _mapping(smtp.get("tls") or {}, "spec.emailConfig.smtp.tls").get("insecureSkipVerify")
            ),
            subject_template=str(template.get("subject") or ""),
            body_template=str(template.get("body") or ""),
        )
    else:
        cfg = _mapping(spec.get("webhookConfig"), "spec.webhookConfig")
        headers: dict[str, HeaderValue] = {}
        for header, value in _mapping(cfg.get("headers") or {}, "spec.webhookConfig.headers").items():
            where = f"spec.webhookConfig.headers.{header}"
            value = _mapping(value, where)
            inline, source = value.get("value"), value.get("valueFrom")
            if (inline is None) == (source is None):
                raise InvalidResource(f"{where} needs exactly one of value and valueFrom")
            headers[str(header)] = (
                HeaderValue(str(inline))
                if inline is not None
                else HeaderValue(secret=_secret_ref(source, f"{where}.valueFrom"))
            )
        webhook = WebhookConfig(
            url=_required_text(cfg, "url", "spec.webhookConfig.url"),
            headers=headers,
            payload_template=str(cfg.get("payloadTemplate") or ""),
            signing_secret=_secret_ref(cfg.get("signingSecret"), "spec.webhookConfig.signingSecret"),
        )
    return NotificationChannel(
        name=_required_text(meta, "name", "metadata.name"),
        namespace=str(meta.get("namespace") or default_namespace),
        environment=_required_text(spec, "environment", "spec.environment"),
        type=kind,
        is_env_default=bool(spec.get("isEnvDefault", False)),
        email=email,
        webhook=webhook,
    )


# ----------------------------------------------------------------------------------------------- helpers


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidResource(f"{where} is required and must be an object")
    return value


def _required_text(doc: Mapping[str, Any], key: str, where: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidResource(f"{where} is required")
    return value.strip()


def _one_of(value: Any, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise InvalidResource(f"{where} must be one of {', '.join(allowed)}, not {value!r}")
    return value


#: rule metric -> (usage series, limit series) of the metrics API's `resource` family, on every backend.
METRIC_SERIES = {"cpu_usage": ("cpuUsage", "cpuLimits"), "memory_usage": ("memoryUsage", "memoryLimits")}

BUDGET_UNSUPPORTED = (
    "budget rules need cost series (OpenCost's node_cpu_hourly_cost and node_ram_hourly_cost) and this "
    "observability plane has no cost backend; use a metric rule (cpu_usage or memory_usage) instead"
)


def rule_scope(rule: AlertRule) -> ComponentScope:
    """The scope a rule watches: its namespace label (else its own namespace) and the UIDs its labels carry."""
    return ComponentScope(rule.scope_namespace, rule.project_uid, rule.component_uid, rule.environment_uid)


# ----------------------------------------------------------------------------------------------- webhook payloads


class InvalidPayload(ValueError):
    """A webhook body that is not a firing alert; `code` is the contract's errorCode (the webhook answers 400)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def alert_value(value: Any, field: str) -> float:
    """A firing's value as a webhook payload carries it (a number, or a number as text; missing is 0)."""
    if isinstance(value, bool):
        raise InvalidPayload("INVALID_REQUEST_BODY", f"invalid request body: {field} must be a number")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise InvalidPayload("INVALID_REQUEST_BODY", f"invalid request body: {field} must be a number") from None
    if value is None:
        return 0.0
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidPayload("INVALID_REQUEST_BODY", f"invalid request body: {field} must be a finite number")
    return float(value)
