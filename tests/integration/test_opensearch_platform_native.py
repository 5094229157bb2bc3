"""Platform logs over what OpenChoreo's Fluent Bit writes itself: found by placement, read back with it.

Fluent Bit's kubernetes filter writes `kubernetes.{namespace_name, pod_name, container_name, host, pod_ip,
container_image}` and the pod's labels with their dots replaced (`Replace_Dots On`); it writes no `level` and, unless
a `record_modifier` adds one, no `cluster_name`. Such documents are indexed here as they are, with a plain client,
after `install` put our templates, next to a line of ours; the platform filters must find them by every coordinate
they have (a label key no template names included: the labels object maps any key as a keyword), and a cluster
filter must not (they name none).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opensearchpy import AsyncOpenSearch

from adapters.opensearch.backend import OpenSearchBackend
from adapters.opensearch.client import OpenSearchConfig
from adapters.opensearch.layout import IndexLayout, install, template_name, templates
from devservers.opensearch_layout import drop_layout, unique_layout
from domain.model import Identity, LogRecord, TimeRange
from domain.platform import FilterValuesQuery, PlatformLogsQuery, without_own_selection
from domain.timeutil import format_rfc3339

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:6]
BASE_NS = 1_790_000_000 * 10**9
WINDOW = TimeRange(BASE_NS - 10**9, BASE_NS + 10 * 10**9)
INGRESS = f"ingress-{RUN}"


def fluent_bit(second: int, line: str, pod: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "@timestamp": format_rfc3339(BASE_NS + second * 10**9 + 250 * 10**6),  # milliseconds, as Fluent Bit's
        "stream": "stdout",
        "log": line,
        "kubernetes": {
            "pod_name": pod,
            "namespace_name": INGRESS,
            "container_name": "controller",
            "host": "worker-2",
            "pod_ip": "10.4.0.17",
            "container_image": "registry.k8s.io/ingress-nginx/controller:v1.11.2",
            "docker_id": "3f4e0b9c1d2a",
            "labels": labels,
        },
    }


NGINX_LABELS = {"app_kubernetes_io/name": "ingress-nginx", "team": f"Edge-{RUN}", "pod-template-hash": "5d78c9869d"}
FOREIGN = [
    fluent_bit(1, "level=info msg=reloaded", "nginx-0", NGINX_LABELS),
    fluent_bit(2, "level=error msg=upstream timed out", "nginx-1", NGINX_LABELS),
    fluent_bit(3, "level=info msg=hello", "cert-0", {"app_kubernetes_io/name": "cert-manager"}),
]
OURS = LogRecord(
    BASE_NS + 4 * 10**9,
    "ours",
    Identity(
        pod="nginx-2", pod_namespace=INGRESS, container="controller", cluster=f"east-{RUN}", labels=(("team", "x"),)
    ),
    "INFO",
)


@pytest.fixture(scope="module")
async def backend(opensearch_url: str) -> AsyncIterator[OpenSearchBackend]:
    layout = unique_layout("platform")
    backend = OpenSearchBackend(OpenSearchConfig(address=opensearch_url, layout=layout))
    direct = AsyncOpenSearch(hosts=[opensearch_url], max_retries=0, timeout=30)
    try:
        await backend.install(retention_days=30)
        for document in FOREIGN:
            await direct.index(index=layout.daily(layout.logs, BASE_NS), body=document)
        assert (await backend.write(batch_id="ours", logs=[OURS])).outcome == "delivered"
        await direct.indices.refresh(index=f"{layout.logs}*")
        yield backend
    finally:
        await backend.close()
        await drop_layout(direct, layout)
        await direct.close()


async def bodies(backend: OpenSearchBackend, **coordinates: Any) -> list[str]:
    page = await backend.query_platform_logs(PlatformLogsQuery(WINDOW, sort="asc", **coordinates))
    return [record.body for record in page.items]


async def test_fluent_bit_lines_are_found_by_each_coordinate_they_have(backend: OpenSearchBackend) -> None:
    everything = ["level=info msg=reloaded", "level=error msg=upstream timed out", "level=info msg=hello", "ours"]
    assert await bodies(backend, namespaces=(INGRESS,)) == everything
    assert await bodies(backend, pods=("nginx-1",)) == ["level=error msg=upstream timed out"]
    assert await bodies(backend, containers=("controller",)) == everything
    nginx = (("app.kubernetes.io/name", "ingress-nginx"),)
    assert await bodies(backend, labels=nginx) == everything[:2]
    # `team` is in no template: mapped as a keyword when it first arrived.
    assert await bodies(backend, labels=(("team", f"Edge-{RUN}"),)) == everything[:2]
    assert await bodies(backend, labels=(("team", f"edge-{RUN}"),)) == []  # a value is matched exactly
    assert await bodies(backend, levels=("ERROR",), namespaces=(INGRESS,)) == [everything[1]]  # from the raw line
    # They name no cluster: a cluster filter finds only ours.
    assert await bodies(backend, clusters=(f"east-{RUN}",)) == ["ours"]


async def test_fluent_bit_lines_read_back_with_their_placement(backend: OpenSearchBackend) -> None:
    page = await backend.query_platform_logs(PlatformLogsQuery(WINDOW, pods=("nginx-0",)))
    (who,) = [record.identity for record in page.items]
    assert (who.cluster, who.node, who.pod_ip, who.image) == (
        "",
        "worker-2",
        "10.4.0.17",
        "registry.k8s.io/ingress-nginx/controller:v1.11.2",
    )
    assert dict(who.labels) == {
        "app.kubernetes.io/name": "ingress-nginx",
        "team": f"Edge-{RUN}",
        "pod-template-hash": "5d78c9869d",
    }
    (ours,) = (await backend.query_platform_logs(PlatformLogsQuery(WINDOW, pods=("nginx-2",)))).items
    assert ours.identity == OURS.identity


async def test_filter_values_count_fluent_bit_lines(backend: OpenSearchBackend) -> None:
    query = PlatformLogsQuery(WINDOW, namespaces=(INGRESS,), labels=(("team", f"Edge-{RUN}"),))

    async def listed(name: str, search: str = "") -> list[tuple[str, int]]:
        asked = FilterValuesQuery(without_own_selection(query, name), name, search, 10)
        return [(each.value, each.count) for each in (await backend.platform_filter_values(asked)).values]

    assert await listed("labels.app.kubernetes.io/name") == [("ingress-nginx", 2)]
    assert await listed("labels.team", search="EDGE") == [
        (f"Edge-{RUN}", 2),
    ]
    assert await listed("labels.team") == [(f"Edge-{RUN}", 2), ("x", 1)]
    assert await listed("podName", search="NGINX-") == [("nginx-0", 1), ("nginx-1", 1)]
    assert await listed("clusterInstance") == []  # the Fluent Bit lines name none; ours is not on `team=Edge`


async def test_templates_are_installed_once_and_as_wanted(backend: OpenSearchBackend) -> None:
    """Put again only when they differ: what OpenSearch stores compares equal to what we want, the dynamic
    labels mapping and the audit template included."""
    layout: IndexLayout = backend.layout
    await install(backend.client, layout, retention_days=30)
    for prefix, wanted in templates(layout).items():
        stored = await backend.client.indices.get_index_template(name=template_name(prefix))
        assert stored["index_templates"][0]["index_template"] == wanted, prefix
