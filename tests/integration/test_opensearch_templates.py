"""On an OpenSearch that OpenChoreo's logs module set up, the observer adds its templates and never replaces theirs.

OpenChoreo's setup job (community-modules observability-logs-opensearch, init/setup-opensearch.sh) puts
`_index_template/container-logs` and `_index_template/k8s-events` (no priority) and the ISM policies of the
same names (ism_template priority 100). Here those exact bodies are put first, under a prefix of this test's
own, then the observer installs as it does at every start.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opensearchpy import AsyncOpenSearch, NotFoundError, TransportError

from adapters.opensearch.layout import (
    ISM_PRIORITY,
    OWNER,
    TEMPLATE_PRIORITY,
    IndexLayout,
    install,
    template_name,
    upstream_name,
)
from devservers.opensearch_layout import drop_layout, unique_layout

pytestmark = pytest.mark.integration


def openchoreo_logs_template(pattern: str) -> dict[str, Any]:
    """setup-opensearch.sh's containerLogsIndexTemplate, with the test's pattern."""
    labels = [
        "build-name",
        "openchoreo_dev/component",
        "openchoreo_dev/component-uid",
        "openchoreo_dev/environment",
        "openchoreo_dev/environment-uid",
        "openchoreo_dev/namespace",
        "openchoreo_dev/project",
        "openchoreo_dev/project-uid",
        "target",
        "uuid",
        "version",
        "version_id",
    ]
    return {
        "index_patterns": [pattern],
        "template": {
            "settings": {"number_of_shards": 1, "number_of_replicas": 1},
            "mappings": {
                "dynamic": "false",
                "properties": {
                    "@timestamp": {"type": "date"},
                    "kubernetes": {
                        "properties": {
                            "annotations": {"properties": {"workflows_argoproj_io/node-name": {"type": "keyword"}}},
                            "container_name": {"type": "keyword"},
                            "labels": {"properties": {label: {"type": "keyword"} for label in labels}},
                            "namespace_name": {"type": "keyword"},
                            "pod_name": {"type": "keyword"},
                        }
                    },
                    "log": {"type": "wildcard"},
                },
            },
        },
    }


def openchoreo_events_template(pattern: str) -> dict[str, Any]:
    """setup-opensearch.sh's k8sEventsIndexTemplate, with the test's pattern."""
    return {
        "index_patterns": [pattern],
        "template": {
            "settings": {"number_of_shards": 1, "number_of_replicas": 1},
            "mappings": {
                "dynamic_templates": [
                    {
                        "strings_as_keyword": {
                            "match_mapping_type": "string",
                            "mapping": {"type": "keyword", "ignore_above": 2048},
                        }
                    }
                ],
                "properties": {"@timestamp": {"type": "date"}, "body": {"type": "wildcard"}},
            },
        },
    }


def openchoreo_ism_policy(pattern: str, what: str) -> dict[str, Any]:
    return {
        "policy": {
            "description": f"Delete {what} older than 30d",
            "default_state": "active",
            "states": [
                {
                    "name": "active",
                    "actions": [],
                    "transitions": [{"state_name": "delete", "conditions": {"min_index_age": "30d"}}],
                },
                {"name": "delete", "actions": [{"delete": {}}], "transitions": []},
            ],
            "ism_template": [{"index_patterns": [pattern], "priority": 100}],
        }
    }


async def has_ism(client: AsyncOpenSearch) -> bool:
    try:
        await client.transport.perform_request("GET", "/_plugins/_ism/policies")
    except TransportError as exc:
        if exc.status_code == 400:
            return False
        raise
    return True


async def get_policy(client: AsyncOpenSearch, name: str) -> dict[str, Any] | None:
    try:
        return await client.transport.perform_request("GET", f"/_plugins/_ism/policies/{name}")
    except NotFoundError:
        return None


@pytest.fixture
async def cluster(opensearch_url: str) -> AsyncIterator[tuple[AsyncOpenSearch, IndexLayout, bool]]:
    """A client, a layout of this test's own with OpenChoreo's templates (and ISM policies) already in place."""
    client = AsyncOpenSearch(hosts=[opensearch_url], timeout=120)
    layout = unique_layout("tmpl")
    ism = await has_ism(client)
    await client.indices.put_index_template(
        name=upstream_name(layout.logs), body=openchoreo_logs_template(layout.pattern(layout.logs))
    )
    await client.indices.put_index_template(
        name=upstream_name(layout.events), body=openchoreo_events_template(layout.pattern(layout.events))
    )
    if ism:
        for prefix, what in ((layout.logs, "container logs"), (layout.events, "Kubernetes events")):
            await client.transport.perform_request(
                "PUT",
                f"/_plugins/_ism/policies/{upstream_name(prefix)}",
                body=openchoreo_ism_policy(layout.pattern(prefix), what),
            )
    try:
        yield client, layout, ism
    finally:
        await drop_layout(client, layout)
        for prefix in (layout.logs, layout.events):
            await client.indices.delete_index_template(name=upstream_name(prefix), params={"ignore": "404"})
            if ism:
                try:
                    await client.transport.perform_request("DELETE", f"/_plugins/_ism/policies/{upstream_name(prefix)}")
                except NotFoundError:
                    pass
        await client.close()


async def test_openchoreo_templates_survive_and_ours_wins_for_new_indices(cluster, caplog) -> None:
    client, layout, ism = cluster
    before = {
        prefix: copy.deepcopy(await client.indices.get_index_template(name=upstream_name(prefix)))
        for prefix in (layout.logs, layout.events)
    }
    policies_before = {
        prefix: await get_policy(client, upstream_name(prefix)) for prefix in (layout.logs, layout.events) if ism
    }

    with caplog.at_level(logging.WARNING, logger="adapters.opensearch.layout"):
        assert await install(client, layout, retention_days=7) is ism
        assert await install(client, layout, retention_days=7) is ism  # at every start: still nothing of theirs touched

    for prefix in (layout.logs, layout.events):  # theirs: byte for byte what was there
        assert await client.indices.get_index_template(name=upstream_name(prefix)) == before[prefix]
        if ism:
            after = await get_policy(client, upstream_name(prefix))
            assert after is not None and after["_seq_no"] == policies_before[prefix]["_seq_no"]
    for prefix in (layout.logs, layout.events, layout.traces):  # ours, under our own names
        [ours] = (await client.indices.get_index_template(name=template_name(prefix)))["index_templates"]
        assert ours["name"] == f"observer-{upstream_name(prefix)}"
        assert ours["index_template"]["priority"] == TEMPLATE_PRIORITY
        assert ours["index_template"]["_meta"] == {"managed_by": OWNER}
        if ism:
            policy = await get_policy(client, template_name(prefix))
            assert policy is not None and policy["policy"]["ism_template"][0]["priority"] == ISM_PRIORITY

    # A new daily index takes our mappings (date_nanos, our `level`), not OpenChoreo's.
    index = layout.daily(layout.logs, 0)
    await client.index(
        index=index,
        body={"@timestamp": "1970-01-01T00:00:00.123456789Z", "log": "x", "level": "ERROR"},
        params={"refresh": "true"},
    )
    properties = (await client.indices.get_mapping(index=index))[index]["mappings"]["properties"]
    assert properties["@timestamp"]["type"] == "date_nanos" and properties["level"]["type"] == "keyword"
    assert (
        properties["kubernetes"]["properties"]["labels"]["properties"]["openchoreo_dev/component-uid"]["type"]
        == "keyword"
    )
    if ism:  # theirs keeps deciding retention where it exists, and the log says so
        assert any(
            upstream_name(layout.logs) in r.getMessage() and "OBSERVER_RETENTION_HOURS" in r.getMessage()
            for r in caplog.records
        )


async def test_an_unchanged_template_is_not_put_again_and_a_changed_one_is_restored(cluster, caplog) -> None:
    client, layout, _ = cluster
    await install(client, layout, retention_days=7)
    with caplog.at_level(logging.INFO, logger="adapters.opensearch.layout"):
        await install(client, layout, retention_days=7)
    assert not [r for r in caplog.records if "installed index template" in r.getMessage()]
    name = template_name(layout.logs)
    [stored] = (await client.indices.get_index_template(name=name))["index_templates"]
    await client.indices.put_index_template(name=name, body={**stored["index_template"], "version": 41})
    await install(client, layout, retention_days=7)
    [ours] = (await client.indices.get_index_template(name=name))["index_templates"]
    assert "version" not in ours["index_template"]
