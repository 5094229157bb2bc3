"""Platform logs over REST on the embedded backend: the answer's shape, coordinate and label filters, paging, the
Backstage portal's GET, the filter-values companion (the filter's own selection cleared first) and every 400 a
caller can cause, with a message naming what to fix."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from adapters.embedded.backend import EmbeddedBackend
from devservers.sample import BASE_NS
from domain.model import Identity, LogRecord
from domain.timeutil import format_rfc3339
from observer.app import create_public_app
from observer.service import QueryService

SECOND = 10**9
START, END = format_rfc3339(BASE_NS - 60 * SECOND), format_rfc3339(BASE_NS + 3600 * SECOND)
QUERY = "/api/v1alpha1/platform-logs/query"
VALUES = "/api/v1alpha1/platform-logs/filter-values"


def pod(cluster: str, namespace: str, name: str, container: str, **labels: str) -> Identity:
    return Identity(
        cluster=cluster,
        pod_namespace=namespace,
        pod=name,
        container=container,
        node=f"node-{cluster}",
        pod_ip="10.0.0.7",
        image=f"registry.example/{container}:1.0",
        labels=tuple(sorted(labels.items())),
    )


COREDNS = pod("east", "kube-system", "coredns-0", "coredns", app="dns", tier="infra")
PROXY = pod("east", "kube-system", "proxy-0", "proxy", app="proxy", tier="infra")
NGINX = pod("west", "ingress", "nginx-0", "controller", app="nginx")
CERT = pod("east", "cert-manager", "cm-0", "controller", **{"app.kubernetes.io/name": "cert-manager"})
LINES = [
    (COREDNS, "INFO", "dns ready"),
    (PROXY, "WARN", "proxy slow upstream"),
    (NGINX, "ERROR", "nginx 502 upstream"),
    (CERT, "INFO", "certificate renewed"),
    (COREDNS, "ERROR", "dns timeout"),
    (NGINX, "INFO", "nginx reload"),
]


def service(backend: EmbeddedBackend, *, platform: bool = True) -> QueryService:
    return QueryService(
        backend.registry,
        logs=backend,
        events=backend,
        traces=backend,
        metrics=backend,
        platform_logs=backend if platform else None,
    )


@pytest.fixture
async def client(backend: EmbeddedBackend) -> AsyncIterator[httpx.AsyncClient]:
    logs = [
        LogRecord(ts_ns=BASE_NS + i * SECOND, body=body, level=level, identity=who)
        for i, (who, level, body) in enumerate(LINES)
    ]
    await backend.write(batch_id="platform-seed", logs=logs)
    app = create_public_app(service(backend))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://observer") as http:
        yield http


@pytest.fixture
async def bare(backend: EmbeddedBackend) -> AsyncIterator[httpx.AsyncClient]:
    """No backend serves platform logs: validation still answers, the query answers 501."""
    app = create_public_app(service(backend, platform=False))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://observer") as http:
        yield http


def window(**fields: object) -> dict[str, object]:
    return {"startTime": START, "endTime": END, "sortOrder": "asc", **fields}


async def logs(client: httpx.AsyncClient, **fields: object) -> list[str]:
    response = await client.post(QUERY, json=window(**fields))
    assert response.status_code == 200, response.text
    return [entry["log"] for entry in response.json()["logs"]]


async def test_a_line_carries_where_it_ran(client: httpx.AsyncClient) -> None:
    response = await client.post(QUERY, json=window(podName=["cm-0"]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 1 and isinstance(body["tookMs"], int) and "nextCursor" not in body
    assert body["logs"] == [
        {
            "timestamp": format_rfc3339(BASE_NS + 3 * SECOND),
            "log": "certificate renewed",
            "level": "INFO",
            "clusterInstance": "east",
            "namespaceName": "cert-manager",
            "podName": "cm-0",
            "containerName": "controller",
            "podIp": "10.0.0.7",
            "nodeName": "node-east",
            "containerImage": "registry.example/controller:1.0",
            "labels": {"app.kubernetes.io/name": "cert-manager"},
        }
    ]


async def test_coordinates_labels_levels_and_phrase_all_narrow(client: httpx.AsyncClient) -> None:
    assert await logs(client) == [body for _, _, body in LINES]
    assert await logs(client, clusterInstance=["west"]) == ["nginx 502 upstream", "nginx reload"]
    assert await logs(client, namespace=["kube-system", "cert-manager"], containerName=["coredns", "controller"]) == [
        "dns ready",
        "certificate renewed",
        "dns timeout",
    ]
    assert await logs(client, labels={"tier": "infra", "app": "dns"}) == ["dns ready", "dns timeout"]
    assert await logs(client, logLevels=["ERROR"]) == ["nginx 502 upstream", "dns timeout"]
    assert await logs(client, searchPhrase="upstream") == ["proxy slow upstream", "nginx 502 upstream"]
    assert await logs(client, searchPhrase="UPSTREAM") == []


async def test_pages_follow_the_cursor_to_the_end(client: httpx.AsyncClient) -> None:
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        body = window(limit=4, sortOrder="desc", **({"cursor": cursor} if cursor else {}))
        answer = (await client.post(QUERY, json=body)).json()
        seen += [entry["log"] for entry in answer["logs"]]
        assert answer["total"] == len(LINES)
        cursor = answer.get("nextCursor")
        if not cursor:
            break
    assert seen == [body for _, _, body in reversed(LINES)]


async def test_the_portals_get_is_the_same_query(client: httpx.AsyncClient) -> None:
    """Lists repeated or comma-separated, labels as a selector or repeated `label=k=v`."""
    posted = await client.post(QUERY, json=window(namespace=["kube-system", "ingress"], labels={"tier": "infra"}))
    params = [
        ("startTime", START),
        ("endTime", END),
        ("sortOrder", "asc"),
        ("namespace", "kube-system,ingress"),
        ("labels", "tier=infra"),
    ]
    got = await client.get("/api/v1alpha1/platform-logs", params=params)
    assert got.status_code == 200, got.text
    assert got.json()["logs"] == posted.json()["logs"]
    repeated = [*params[:3], ("namespace", "kube-system"), ("namespace", "ingress"), ("label", "tier=infra")]
    assert (await client.get("/api/v1alpha1/platform-logs", params=repeated)).json()["logs"] == posted.json()["logs"]


async def test_filter_values_clear_their_own_selection(client: httpx.AsyncClient) -> None:
    """A picker for podName lists every pod the rest of the query allows, not just the ones already chosen."""
    query = window(podName=["coredns-0"], namespace=["kube-system"], limit=5000, sortOrder="sideways")
    answer = await client.post(VALUES, json={"query": query, "filter": "podName"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["filter"] == "podName" and isinstance(body["tookMs"], int)
    assert body["values"] == [{"value": "coredns-0", "count": 2}, {"value": "proxy-0", "count": 1}]
    assert body["totalValues"] == 2

    labels = await client.post(VALUES, json={"query": window(), "filter": "labels.app", "valueSearch": "N"})
    assert labels.json()["values"] == [{"value": "dns", "count": 2}, {"value": "nginx", "count": 2}]
    capped = await client.post(VALUES, json={"query": window(), "filter": "namespace", "maxValues": 1})
    assert capped.json()["values"] == [{"value": "kube-system", "count": 3}] and capped.json()["totalValues"] == 3

    got = await client.get(VALUES, params=[("startTime", START), ("endTime", END), ("filter", "level")])
    assert got.status_code == 200, got.text
    assert got.json()["values"] == [
        {"value": "INFO", "count": 3},
        {"value": "ERROR", "count": 2},
        {"value": "WARN", "count": 1},
    ]


BAD_QUERIES = [
    ({"startTime": END, "endTime": START}, "endTime must be after startTime"),
    ({"endTime": END}, "startTime is required"),
    (window(endTime=format_rfc3339(BASE_NS + 40 * 24 * 3600 * SECOND)), "cannot exceed 30 days"),
    (window(labels={"bad key!": "x"}), "not a valid Kubernetes label key"),
    (window(labels={"example.com/": "x"}), "not a valid Kubernetes label key"),
    (window(labels={"app": "not a value"}), "not a valid Kubernetes label value"),
    (window(logLevels=["LOUD"]), "invalid log level"),
    (window(limit=1001), "limit cannot exceed 1000"),
    (window(sortOrder="up"), "sortOrder must be either"),
    (window(podName=[""]), "podName[0] is empty"),
    (window(namespace=["n"] * 101), "at most 100"),
    (window(searchScope={"namespace": "acme"}), "unknown field searchScope"),
    (window(podNames=["a"]), "did you mean podName?"),
    (window(podName="coredns-0"), "Input should be a valid list"),
    (window(cursor="not-a-cursor"), ""),
]


@pytest.mark.parametrize(("body", "words"), BAD_QUERIES)
async def test_bad_queries_are_400_saying_what_to_fix(client: httpx.AsyncClient, body: dict, words: str) -> None:
    response = await client.post(QUERY, json=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["title"] == "badRequest" and set(error) == {"title", "errorCode", "message"}
    assert words in error["message"]


BAD_VALUES = [
    ({"query": window()}, "filter is required"),
    ({"query": window(), "filter": "pod"}, "not a platform-logs filter"),
    ({"query": window(), "filter": "labels.bad key"}, "not a valid Kubernetes label key"),
    ({"filter": "podName"}, "query is required"),
    ({"query": window(), "filter": "podName", "maxValues": 1001}, "maxValues must be"),
    ({"query": window(), "filter": "podName", "valueSearch": "x" * 300}, "valueSearch is 300 characters"),
    ({"query": window(pods=["a"]), "filter": "podName"}, "unknown field query.pods"),
]


@pytest.mark.parametrize(("body", "words"), BAD_VALUES)
async def test_bad_filter_values_are_400(client: httpx.AsyncClient, body: dict, words: str) -> None:
    response = await client.post(VALUES, json=body)
    assert response.status_code == 400, response.text
    assert words in response.json()["message"]


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ([("startTime", START), ("endTime", END), ("pod", "x")], "unknown query parameter pod"),
        ([("startTime", START), ("endTime", END), ("planeName", "default")], "clusterInstance instead"),
        ([("startTime", START), ("endTime", END), ("limit", "ten")], "limit must be an integer"),
        ([("startTime", START), ("startTime", END)], "startTime is given more than once"),
        ([("startTime", START), ("endTime", END), ("labels", "tier")], "is not key=value"),
    ],
)
async def test_bad_query_strings_are_400(client: httpx.AsyncClient, params: list, words: str) -> None:
    response = await client.get("/api/v1alpha1/platform-logs", params=params)
    assert response.status_code == 400, response.text
    assert words in response.json()["message"]


async def test_without_a_platform_backend_the_answer_is_501(bare: httpx.AsyncClient) -> None:
    assert (await bare.post(QUERY, json={"endTime": END})).status_code == 400  # validation first
    for path, body in ((QUERY, window()), (VALUES, {"query": window(), "filter": "podName"})):
        response = await bare.post(path, json=body)
        assert response.status_code == 501, response.text
        assert response.json()["errorCode"] == "OBS-V1-PL-06"
        assert "not served by the configured logs backend" in response.json()["message"]


async def test_the_routes_are_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path, method in (
        (QUERY, "post"),
        (VALUES, "post"),
        ("/api/v1alpha1/platform-logs", "get"),
        (VALUES, "get"),
    ):
        operation = paths[path][method]
        assert "platformlogs:view" in operation["description"]
        assert operation["responses"]["200"]["content"]["application/json"]["schema"]
    parameters = {p["name"] for p in paths["/api/v1alpha1/platform-logs"]["get"]["parameters"]}
    assert {"startTime", "namespace", "labels", "label", "cursor"} <= parameters
