"""The pure pieces behind the alert endpoints' answers: which text a store cannot keep, how binding failures are
described (unknown fields named, input clipped), which scope labels a rule needs, and alert items without empty
fields."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, ConfigDict

from domain.alerting import scope_problem
from observer.alerting import bodies
from observer.alerting.entries import alert_item


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    namespace: str | None = None


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int | None = None
    searchScope: Inner | None = None


@pytest.mark.parametrize(
    "data, where",
    [
        ({"a": "fine", "b": ["ok", {"c": "x\x00y"}]}, "b[1].c"),
        ({"scope": {"namespace": "\ud800"}}, "scope.namespace"),
        ({"\udfff": 1}, "a field name in the body"),
        ("\x00", "the body"),
        ({"a": ["ok", 1, None, True]}, None),
    ],
)
def test_unstorable_text_is_found_with_its_path(data, where):
    assert bodies.unstorable_text(data) == where


def test_decode_refuses_nul_with_the_field_and_bad_json_with_the_reason():
    with pytest.raises(bodies.BodyError, match="notes contains a NUL"):
        bodies.decode(b'{"notes":"a\\u0000b"}')
    with pytest.raises(bodies.BodyError, match="EOF"):
        bodies.decode(b"  ")
    assert bodies.decode(b'{"a":"\\u00e9"}') == {"a": "é"}


def test_unknown_fields_are_named_with_the_allowed_ones():
    with pytest.raises(bodies.BodyError) as top:
        bodies.bind({"limt": 1}, Outer)
    assert str(top.value) == 'unknown field "limt"; allowed fields here: limit, searchScope'
    with pytest.raises(bodies.BodyError) as nested:
        bodies.bind({"searchScope": {"namespace": "a", "compnent": "c"}}, Outer)
    assert str(nested.value) == 'unknown field "searchScope.compnent"; allowed fields here: namespace'


def test_echoed_input_is_clipped():
    with pytest.raises(bodies.BodyError) as error:
        bodies.bind({"y" * 10_000: 1}, Outer)
    assert len(str(error.value)) < 200 and "y" * 64 + "…" in str(error.value)


@pytest.mark.parametrize(
    "labels, problem",
    [
        ({}, "must scope the rule"),
        ({"openchoreo.dev/namespace": "acme"}, "must scope the rule"),
        ({"openchoreo.dev/project": "shop"}, None),
        ({"openchoreo.dev/environment": "prod"}, None),
        ({"openchoreo.dev/component-uid": "c-1"}, None),
        ({"openchoreo.dev/component": "cart"}, "openchoreo.dev/project is required"),
        ({"openchoreo.dev/component": "cart", "openchoreo.dev/component-uid": "c-1"}, None),
        ({"observer.openchoreo.dev/scope": "namespace"}, None),
        ({"observer.openchoreo.dev/scope": "all"}, "must be 'namespace'"),
        ({"observer.openchoreo.dev/scope": "namespace", "openchoreo.dev/environment-uid": "e"}, "cannot be combined"),
    ],
)
def test_rule_scope_labels(labels, problem):
    found = scope_problem(labels)
    assert found is None if problem is None else problem in found


def _row(**values):
    row = {
        "id": "a-1",
        "timestamp_ns": 0,
        "alert_rule_name": "r",
        "alert_value": "1",
        "incident_enabled": False,
        "severity": "",
        "description": "",
        "source_type": "",
        "source_query": "",
        "source_metric": "",
        "condition_operator": "",
        "condition_threshold": 0.0,
        "condition_window": "",
        "condition_interval": "",
        "notification_channels": "[]",
        "namespace_name": "acme",
        "project_name": "",
        "component_name": "",
        "environment_name": "",
        "project_id": "",
        "component_id": "",
        "environment_id": "",
    }
    return row | values


def test_alert_items_leave_empty_snapshot_fields_out():
    metric = alert_item(
        _row(
            source_type="metric",
            source_metric="cpu_usage",
            condition_operator="gt",
            condition_threshold=80.0,
            condition_window="5m0s",
            condition_interval="1m0s",
        )
    )
    assert metric["metadata"]["alertRule"] == {
        "name": "r",
        "source": {"type": "metric", "metric": "cpu_usage"},
        "condition": {"operator": "gt", "window": "5m0s", "interval": "1m0s", "threshold": 80.0},
    }
    assert "" not in json.dumps(metric).split('"')[1::2]  # no key or value is an empty string
    bare = alert_item(_row())
    assert bare["metadata"] == {"alertRule": {"name": "r"}, "labels": {"namespaceName": "acme"}}
    assert "notificationChannels" not in bare
