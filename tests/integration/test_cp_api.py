"""The control plane's REST API over a real database (SQLite and PostgreSQL): CRUD at openchoreo-api.yaml's paths,
the list envelope, cursor paging, selectors and filters, ErrorResponse bodies, generation and UIDs."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from controlplane import errors, kinds, run
from controlplane.api import create_app
from controlplane.errors import Conflict
from controlplane.store import Store
from devservers.local import free_port

API = "openchoreo.dev/v1alpha1"
NS = "/api/v1/namespaces/acme"
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture(params=["sqlite", "postgresql"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    """The same cases on both databases the store speaks, with the namespace `acme` in place."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'cp.db'}"
    else:
        url = request.getfixturevalue("postgres_server").fresh_database()
    store = Store(url)
    with TestClient(create_app(store), raise_server_exceptions=False) as test_client:
        assert test_client.post("/api/v1/namespaces", json={"metadata": {"name": "acme"}}).status_code == 201
        yield test_client
    store.close()


def project(name: str, labels: dict[str, str] | None = None, pipeline: str = "default") -> dict[str, Any]:
    # As a client of openchoreo-api.yaml sends it: no apiVersion, kind or namespace (the URL says them).
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"deploymentPipelineRef": {"name": pipeline}, "type": {"name": "default"}},
    }


def component(name: str, project_name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"owner": {"projectName": project_name}, "componentType": {"name": "deployment/service"}},
    }


def environment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Environment",
        "metadata": {"name": name, "namespace": "acme", "annotations": {"openchoreo.dev/display-name": name}},
        "spec": {"dataPlaneRef": {"kind": "DataPlane", "name": "default"}, "isProduction": False},
    }


def assert_object_shape(body: dict[str, Any], kind: str, spec_fields: set[str]) -> None:
    """The fields openchoreo-api.yaml gives Project/Component/Environment (ObjectMeta l.6853, *Spec), plus the
    Kubernetes generation and resourceVersion we add."""
    assert body["apiVersion"] == API and body["kind"] == kind
    meta = body["metadata"]
    assert {"name", "namespace", "uid", "creationTimestamp", "generation", "resourceVersion"} <= set(meta)
    assert set(meta) <= {
        "name",
        "namespace",
        "uid",
        "labels",
        "annotations",
        "creationTimestamp",
        "generation",
        "resourceVersion",
    }
    assert RFC3339.fullmatch(meta["creationTimestamp"])
    assert isinstance(meta["generation"], int) and isinstance(meta["resourceVersion"], str)
    assert set(body["spec"]) <= spec_fields


def test_operations_endpoints(client: TestClient) -> None:
    for path in ("/health", "/ready"):
        response = client.get(path)
        assert response.status_code == 200 and response.text == "OK"
    version = client.get("/version").json()
    assert set(version) == {"name", "version", "gitRevision", "buildTime", "goOS", "goArch", "goVersion"}


def test_project_crud(client: TestClient) -> None:
    created = client.post(f"{NS}/projects", json=project("cart", {"team": "a"}))
    assert created.status_code == 201
    body = created.json()
    assert_object_shape(body, "Project", {"deploymentPipelineRef", "type", "parameters"})
    assert body["metadata"]["namespace"] == "acme" and body["metadata"]["generation"] == 1
    assert body["spec"]["deploymentPipelineRef"] == {"kind": "DeploymentPipeline", "name": "default"}

    got = client.get(f"{NS}/projects/cart")
    assert got.status_code == 200 and got.json() == body

    replaced = client.put(f"{NS}/projects/cart", json=project("cart", {"team": "b"}, pipeline="fast"))
    assert replaced.status_code == 200
    assert replaced.json()["spec"]["deploymentPipelineRef"]["name"] == "fast"
    assert replaced.json()["metadata"]["labels"] == {"team": "b"}

    deleted = client.delete(f"{NS}/projects/cart")
    assert deleted.status_code == 204 and deleted.content == b""
    assert client.get(f"{NS}/projects/cart").status_code == 404


def owned(name: str, component_name: str, project_name: str, kind: str) -> dict[str, Any]:
    """A Workload or ReleaseBinding of `component_name`, as a client posts it."""
    spec: dict[str, Any] = {"owner": {"projectName": project_name, "componentName": component_name}}
    spec.update({"container": {"image": "nginx"}} if kind == "Workload" else {"environment": "dev"})
    return {"metadata": {"name": name}, "spec": spec}


def test_delete_cascades_along_owners_and_answers_204(client: TestClient) -> None:
    for proj, comps in (("cart", ("api", "web")), ("shop", ("till",))):
        assert client.post(f"{NS}/projects", json=project(proj)).status_code == 201
        for comp in comps:
            assert client.post(f"{NS}/components", json=component(comp, proj)).status_code == 201
            assert client.post(f"{NS}/workloads", json=owned(f"{comp}-w", comp, proj, "Workload")).status_code == 201
            binding = owned(f"{comp}-dev", comp, proj, "ReleaseBinding")
            assert client.post(f"{NS}/releasebindings", json=binding).status_code == 201

    def names(plural: str) -> list[str]:
        return [item["metadata"]["name"] for item in client.get(f"{NS}/{plural}").json()["items"]]

    deleted = client.delete(f"{NS}/components/api")
    assert deleted.status_code == 204 and deleted.content == b""
    assert (names("components"), names("workloads"), names("releasebindings")) == (
        ["till", "web"],
        ["till-w", "web-w"],
        ["till-dev", "web-dev"],
    )
    assert client.delete(f"{NS}/projects/cart").status_code == 204
    assert (names("projects"), names("components"), names("workloads"), names("releasebindings")) == (
        ["shop"],
        ["till"],
        ["till-w"],
        ["till-dev"],
    )
    assert client.get(f"{NS}/releasebindings/web-dev").status_code == 404


def test_component_and_environment_bodies(client: TestClient) -> None:
    client.post(f"{NS}/projects", json=project("cart"))
    comp = client.post(f"{NS}/components", json=component("api", "cart"))
    assert comp.status_code == 201, comp.text
    assert_object_shape(
        comp.json(),
        "Component",
        {"owner", "componentType", "autoDeploy", "autoBuild", "parameters", "traits", "workflow"},
    )
    env = client.post(f"{NS}/environments", json=environment("dev"))
    assert env.status_code == 201, env.text
    assert_object_shape(env.json(), "Environment", {"dataPlaneRef", "isProduction", "gateway"})
    assert env.json()["metadata"]["annotations"] == {"openchoreo.dev/display-name": "dev"}


def test_cluster_scoped_kinds_live_outside_namespaces(client: TestClient) -> None:
    plane = {
        "metadata": {"name": "shared"},
        "spec": {"clusterAgent": {"clientCA": {"value": "PEM"}}, "observerURL": "http://o:8080", "planeID": "shared"},
    }
    created = client.post("/api/v1/clusterobservabilityplanes", json=plane)
    assert created.status_code == 201, created.text
    assert "namespace" not in created.json()["metadata"]
    listed = client.get("/api/v1/clusterobservabilityplanes").json()
    assert [item["metadata"]["name"] for item in listed["items"]] == ["shared"]
    assert client.delete("/api/v1/clusterobservabilityplanes/shared").status_code == 204


@pytest.mark.parametrize("row", kinds.KINDS, ids=lambda row: row.kind)
def test_every_kind_has_its_collection(client: TestClient, row: kinds.Kind) -> None:
    response = client.get(row.collection_path("acme"))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"items", "pagination"} and isinstance(body["items"], list)
    if row.kind != "Namespace":
        assert body["items"] == [] and "nextCursor" not in body["pagination"]
    missing = client.get(row.item_path("nothing-here", "acme"))
    assert missing.status_code == 404
    assert missing.json() == {"error": f"{row.kind} 'nothing-here' not found", "code": "NOT_FOUND"}


def test_cursor_paging_has_no_duplicates_or_gaps(client: TestClient) -> None:
    wanted = sorted(f"p{i:02d}" for i in range(13))
    for name in reversed(wanted):
        assert client.post(f"{NS}/projects", json=project(name)).status_code == 201
    default = client.get(f"{NS}/projects").json()  # limit defaults to 20
    assert [i["metadata"]["name"] for i in default["items"]] == wanted and "nextCursor" not in default["pagination"]
    seen: list[str] = []
    remaining: list[int] = []
    url = f"{NS}/projects?limit=5"
    while True:
        page = client.get(url).json()
        seen += [i["metadata"]["name"] for i in page["items"]]
        remaining.append(page["pagination"]["remainingCount"])
        if "nextCursor" not in page["pagination"]:
            break
        url = f"{NS}/projects?limit=5&cursor={page['pagination']['nextCursor']}"
    assert seen == wanted and remaining == [8, 3, 0]


def test_label_selector_and_project_filter(client: TestClient) -> None:
    client.post(f"{NS}/projects", json=project("cart", {"tier": "web"}))
    client.post(f"{NS}/projects", json=project("pay", {"tier": "db"}))
    client.post(f"{NS}/projects", json=project("search"))

    def names(url: str, **params: str) -> list[str]:
        response = client.get(url, params=params)
        assert response.status_code == 200, response.text
        return [item["metadata"]["name"] for item in response.json()["items"]]

    assert names(f"{NS}/projects", labelSelector="tier=web") == ["cart"]
    assert names(f"{NS}/projects", labelSelector="tier in (web,db)") == ["cart", "pay"]
    assert names(f"{NS}/projects", labelSelector="!tier") == ["search"]
    assert names(f"{NS}/projects", labelSelector="tier!=web") == ["pay", "search"]
    for comp, owner in (("a", "cart"), ("b", "pay"), ("c", "cart")):
        assert client.post(f"{NS}/components", json=component(comp, owner)).status_code == 201
    assert names(f"{NS}/components", project="cart") == ["a", "c"]
    assert names(f"{NS}/components", project="pay", limit="1") == ["b"]
    assert names(f"{NS}/components") == ["a", "b", "c"]


def test_generation_and_uid(client: TestClient) -> None:
    created = client.post(f"{NS}/projects", json=project("cart")).json()
    relabelled = client.put(f"{NS}/projects/cart", json=project("cart", {"x": "y"})).json()
    assert relabelled["metadata"]["generation"] == 1
    respecced = client.put(f"{NS}/projects/cart", json=project("cart", {"x": "y"}, pipeline="fast")).json()
    assert respecced["metadata"]["generation"] == 2
    assert created["metadata"]["uid"] == relabelled["metadata"]["uid"] == respecced["metadata"]["uid"]
    # Deleted and created again under the same name: a new object with a new UID.
    client.delete(f"{NS}/projects/cart")
    again = client.post(f"{NS}/projects", json=project("cart")).json()
    assert again["metadata"]["uid"] != created["metadata"]["uid"]


def test_read_only_fields_are_ignored_on_input(client: TestClient) -> None:
    doc = project("cart")
    doc["status"] = {"observedGeneration": 5}
    doc["metadata"]["uid"] = "00000000-0000-0000-0000-000000000000"
    body = client.post(f"{NS}/projects", json=doc).json()
    assert "status" not in body and body["metadata"]["uid"] != doc["metadata"]["uid"]


def test_conflicts(client: TestClient) -> None:
    created = client.post(f"{NS}/projects", json=project("cart")).json()
    again = client.post(f"{NS}/projects", json=project("cart"))
    assert again.status_code == 409
    assert again.json() == {"error": "Project 'cart' already exists", "code": "CONFLICT"}

    fresh = project("cart", pipeline="a")
    fresh["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    assert client.put(f"{NS}/projects/cart", json=fresh).status_code == 200
    stale = project("cart", pipeline="b")
    stale["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    refused = client.put(f"{NS}/projects/cart", json=stale)
    assert refused.status_code == 409 and refused.json()["code"] == "CONFLICT"

    busy = client.delete("/api/v1/namespaces/acme")
    assert busy.status_code == 409 and "not empty" in busy.json()["error"]


def test_not_found_bodies(client: TestClient) -> None:
    missing = client.get(f"{NS}/projects/ghost")
    assert missing.status_code == 404
    assert missing.json() == {"error": "Project 'ghost' not found", "code": "NOT_FOUND"}
    for response in (
        client.get("/api/v1/namespaces/nowhere/projects/cart"),
        client.get("/api/v1/namespaces/nowhere/projects"),
        client.post("/api/v1/namespaces/nowhere/projects", json=project("cart")),
    ):
        assert response.status_code == 404
        assert response.json() == {"error": "Namespace 'nowhere' not found", "code": "NOT_FOUND"}
    assert client.put(f"{NS}/projects/ghost", json=project("ghost")).status_code == 404
    assert client.delete(f"{NS}/projects/ghost").status_code == 404
    unknown = client.get("/api/v1/namespaces/acme/pods")
    assert unknown.status_code == 404 and unknown.json()["code"] == "NOT_FOUND"
    wrong_method = client.patch(f"{NS}/projects/cart", json={})
    assert wrong_method.status_code == 405 and wrong_method.json()["code"] == "BAD_REQUEST"


def _fields(response: Any) -> list[str]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "BAD_REQUEST" and body["error"]
    return [detail["field"] for detail in body["details"]]


def test_bad_requests_name_the_field(client: TestClient) -> None:
    bad = project("cart")
    del bad["spec"]["deploymentPipelineRef"]
    bad["spec"]["colour"] = "blue"
    fields = _fields(client.post(f"{NS}/projects", json=bad))
    assert "spec.deploymentPipelineRef" in fields and "spec.colour" in fields
    assert _fields(client.post(f"{NS}/projects", json={"spec": {}}))[0] == "metadata.name"
    assert "metadata.name" in _fields(client.post(f"{NS}/projects", json=project("Not_A_Name")))
    assert _fields(client.post(f"{NS}/projects", json={**project("cart"), "kind": "Component"})) == ["kind"]
    other_ns = project("cart")
    other_ns["metadata"]["namespace"] = "elsewhere"
    assert _fields(client.post(f"{NS}/projects", json=other_ns)) == ["metadata.namespace"]
    client.post(f"{NS}/projects", json=project("cart"))
    assert _fields(client.put(f"{NS}/projects/cart", json=project("other"))) == ["metadata.name"]
    assert _fields(
        client.post(f"{NS}/projects", content=b"{not json", headers={"content-type": "application/json"})
    ) == ["body"]
    assert _fields(client.post(f"{NS}/projects", json=[1, 2])) == ["body"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("limit=5&limit=6", "limit"),
        ("cursor=garbage", "cursor"),
        ("labelSelector=tier%20in%20(", "labelSelector"),
        ("projct=cart", "projct"),
        ("watch=true", "watch"),
    ],
)
def test_bad_list_queries(client: TestClient, query: str, field: str) -> None:
    assert _fields(client.get(f"{NS}/components?{query}")) == [field]


def test_query_parameters_on_item_routes_are_refused(client: TestClient) -> None:
    client.post(f"{NS}/projects", json=project("cart"))
    assert _fields(client.get(f"{NS}/projects/cart?dryRun=All")) == ["dryRun"]
    assert client.get(f"{NS}/projects/cart").status_code == 200


def test_request_body_is_bounded(client: TestClient) -> None:
    big = project("cart")
    big["metadata"]["annotations"] = {"a": "x" * (1024 * 1024)}
    refused = client.post(f"{NS}/projects", json=big)
    assert refused.status_code == 413 and refused.json()["code"] == "BAD_REQUEST"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it is read
        yield b'{"metadata": {"name": "cart", "annotations": {"a": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}}}'

    chunked = client.post(f"{NS}/projects", content=chunks(), headers={"content-type": "application/json"})
    assert chunked.status_code == 413
    assert client.get(f"{NS}/projects/cart").status_code == 404


def test_run_refuses_to_start_with_authentication_on_and_no_jwks_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delenv("JWT_DISABLED", raising=False)
    assert run.main(["--port", "18090", "--data-dir", str(tmp_path)]) == 2
    assert "JWT_DISABLED=true" in capsys.readouterr().err
    assert not (tmp_path / "controlplane.db").exists()  # nothing was started for nothing


def test_run_reports_bad_settings_and_taken_ports_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("JWT_DISABLED", "true")
    assert run.main(["--port", "0"]) == 2
    assert "api_port" in capsys.readouterr().err
    assert run.main(["--port", str(free_port()), "--db", "nosuch://x"]) == 2
    assert "cannot open the store" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert run.main(["--port", str(port), "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is already in use" in err and len(err.strip().splitlines()) == 1


def test_concurrent_creates_of_one_name_make_one_object(client: TestClient) -> None:
    """Writers queue on the revision row (PostgreSQL) or the write lock (SQLite): exactly one create wins."""
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    start = store.revision()
    outcomes: list[str] = []

    def create() -> None:
        document = {**project("cart"), "apiVersion": API, "kind": "Project"}
        document["metadata"] = {**document["metadata"], "namespace": "acme"}
        try:
            store.create(document)
            outcomes.append("created")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict"] * 5 + ["created"]
    assert [c.op for c in store.changes_since(start)] == ["created"]
    assert store.revision() == start + 1


def test_framework_errors_render_as_error_responses() -> None:
    """FastAPI's own request validation is a 400 naming the field; a bug of ours is a bare 500, never a trace."""
    app = FastAPI()
    errors.install(app)

    @app.get("/typed")
    async def typed(size: int) -> dict[str, int]:
        return {"size": size}

    @app.get("/broken")
    async def broken() -> None:
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as test_client:
        assert _fields(test_client.get("/typed?size=big")) == ["size"]
        assert _fields(test_client.get("/typed")) == ["size"]
        failed = test_client.get("/broken")
        assert failed.status_code == 500 and failed.json() == {"error": "internal error", "code": "INTERNAL_ERROR"}


def test_paging_orders_names_by_code_point_on_both_databases(client: TestClient) -> None:
    """PostgreSQL's locale would sort `a-b`, `a.b`, `a1` and `ab` by letters first; the name columns use collation
    "C", so both databases page in code-point order (what Python's `sorted` gives) and cursors agree."""
    names = ["ab", "a-b", "a.b", "a1", "a-c", "a0b", "b", "a.a", "a--b", "a9", "a10", "aa"]
    for name in names:
        assert client.post(f"{NS}/projects", json=project(name)).status_code == 201
    seen: list[str] = []
    url = f"{NS}/projects?limit=3"
    while True:
        page = client.get(url).json()
        seen += [i["metadata"]["name"] for i in page["items"]]
        if "nextCursor" not in page["pagination"]:
            break
        url = f"{NS}/projects?limit=3&cursor={page['pagination']['nextCursor']}"
    assert seen == sorted(names)


def secret_body(name: str, **fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, **fields}


def test_secrets_are_written_but_their_values_never_read_back(client: TestClient) -> None:
    created = client.post(f"{NS}/secrets", json=secret_body("smtp", stringData={"username": "ann", "password": "pw"}))
    assert created.status_code == 201, created.text
    assert created.json()["data"] == {"username": "", "password": ""} and "stringData" not in created.json()
    assert created.json()["type"] == "Opaque"
    got = client.get(f"{NS}/secrets/smtp")
    assert got.json()["data"] == {"username": "", "password": ""}
    listed = client.get(f"{NS}/secrets")
    assert [item["data"] for item in listed.json()["items"]] == [{"username": "", "password": ""}]
    replaced = client.put(f"{NS}/secrets/smtp", json=secret_body("smtp", stringData={"username": "bob"}))
    assert replaced.status_code == 200 and replaced.json()["data"] == {"username": ""}
    for answer in (created, got, listed, replaced):
        assert "ann" not in answer.text and "bob" not in answer.text and "Ym9i" not in answer.text
    store: Store = client.app.state.store  # type: ignore[attr-defined]
    assert store.secret_value("acme", "smtp", "username") == "bob"
    assert store.secret_value("acme", "smtp", "password") is None
    assert client.delete(f"{NS}/secrets/smtp").status_code == 204


def test_bad_secret_data_names_the_field(client: TestClient) -> None:
    answer = client.post(f"{NS}/secrets", json=secret_body("s", data={"k": "%%%"}))
    assert answer.status_code == 400
    assert [d["field"] for d in answer.json()["details"]] == ["data.k"]


def test_cel_rules_answer_400_naming_the_field(client: TestClient) -> None:
    assert client.post(f"{NS}/projects", json=project("shop")).status_code == 201
    changed = project("shop")
    changed["spec"]["type"] = {"name": "other"}
    answer = client.put(f"{NS}/projects/shop", json=changed)
    assert answer.status_code == 400
    assert answer.json()["code"] == "BAD_REQUEST"
    assert answer.json()["details"] == [{"field": "spec.type", "message": "spec.type cannot be changed after creation"}]
    binding = {
        "metadata": {"name": "devs"},
        "spec": {
            "entitlement": {"claim": "groups", "value": "devs"},
            "roleMappings": [{"roleRef": {"kind": "AuthzRole", "name": "r"}, "scope": {"component": "cart"}}],
        },
    }
    answer = client.post(f"{NS}/authzrolebindings", json=binding)
    assert answer.status_code == 400
    assert {"field": "spec.roleMappings[0]", "message": "scope.component requires scope.project"} in answer.json()[
        "details"
    ]


def _shifted_database(postgres_server: Any, suffix: str) -> str:
    """A fresh database whose default collation ignores punctuation (ICU `en-US-u-ka-shifted`: it would put `a1`
    before `a.a` before `aa` before `a-b`); its SQLAlchemy URL."""
    import psycopg

    name = f"shifted_{suffix}_{threading.get_ident()}"
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(
            f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US-u-ka-shifted' "
            "LOCALE 'C.UTF-8'"
        )
    base = postgres_server.dsn.rpartition("/")[0].split("://", 1)[1]
    return f"postgresql+psycopg://{base}/{name}"


PUNCTUATED = ["ab", "a-b", "a.b", "a1", "a-c", "a.a", "aa", "b", "a0b", "a--b"]


def _paged_names(store: Store) -> list[str]:
    seen: list[str] = []
    cursor = ""
    while True:
        page = store.list("Project", "acme", limit=3, cursor=cursor)
        seen += [item["metadata"]["name"] for item in page.items]
        if not page.next_cursor:
            return seen
        cursor = page.next_cursor


def _fill_projects(store: Store) -> None:
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme"}})
    for each in PUNCTUATED:
        spec = {"deploymentPipelineRef": {"name": "p"}, "type": {"name": "t"}}
        store.create(
            {"apiVersion": API, "kind": "Project", "metadata": {"name": each, "namespace": "acme"}, "spec": spec}
        )


def test_paging_order_does_not_follow_a_postgresql_locale(postgres_server: Any) -> None:
    """On a database whose default collation ignores punctuation the store still pages in code-point order, as
    SQLite does."""
    store = Store(_shifted_database(postgres_server, "new"))
    try:
        _fill_projects(store)
        assert _paged_names(store) == sorted(PUNCTUATED)
    finally:
        store.close()


def test_a_table_without_the_collation_gets_it_when_opened(postgres_server: Any) -> None:
    """A store made before the name columns had collation "C" is given it when opened, and pages in order."""
    from sqlalchemy import text

    url = _shifted_database(postgres_server, "old")
    store = Store(url)
    _fill_projects(store)
    with store.engine.begin() as conn:
        for column, length in (("namespace", 63), ("name", 253)):
            conn.execute(
                text(f'ALTER TABLE cp_resources ALTER COLUMN {column} TYPE varchar({length}) COLLATE "default"')
            )
    assert _paged_names(store) != sorted(PUNCTUATED)  # the locale's order: what the collation fixes
    store.close()
    reopened = Store(url)
    try:
        assert _paged_names(reopened) == sorted(PUNCTUATED)
    finally:
        reopened.close()


# ------------------------------------------------------------ the owner column on both databases (issue 16)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database of each kind the store speaks."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cp.db'}"
    return str(request.getfixturevalue("postgres_server").fresh_database())


def _stored(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """A body as the API helpers above build it (the URL names kind and namespace), as the store takes it."""
    return {"apiVersion": API, "kind": kind, **body, "metadata": {**body["metadata"], "namespace": "acme"}}


def _owned_world(store: Store) -> None:
    """Projects cart and shop in acme; Components c00..c09 (even ones in cart, odd ones in shop, every third one
    labelled tier=web), each with a Workload and a ReleaseBinding."""
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme"}})
    for name in ("cart", "shop"):
        store.create(_stored("Project", project(name)))
    for i in range(10):
        name, parent = f"c{i:02d}", ("cart" if i % 2 == 0 else "shop")
        doc = _stored("Component", component(name, parent))
        doc["metadata"]["labels"] = {"tier": "web" if i % 3 == 0 else "db"}
        store.create(doc)
        for kind in ("Workload", "ReleaseBinding"):
            store.create(_stored(kind, owned(f"{name}-{kind.lower()}", name, parent, kind)))


def _pages(store: Store, kind: str, limit: int, **kwargs: Any) -> list[tuple[list[str], int]]:
    out: list[tuple[list[str], int]] = []
    cursor = ""
    while True:
        page = store.list(kind, "acme", limit=limit, cursor=cursor, **kwargs)
        out.append(([i["metadata"]["name"] for i in page.items], page.remaining))
        if not page.next_cursor:
            return out
        cursor = page.next_cursor


def _drop_owner_column(store: Store) -> None:
    """Make the table as it was before the owner column."""
    from sqlalchemy import text

    with store.engine.begin() as conn:
        conn.execute(text("DROP INDEX cp_resources_by_owner"))
        conn.execute(text("ALTER TABLE cp_resources DROP COLUMN owner"))


def _owners(store: Store) -> dict[tuple[str, str], str]:
    from sqlalchemy import select

    from controlplane.store import resources

    with store.engine.connect() as conn:
        rows = conn.execute(select(resources.c.kind, resources.c.name, resources.c.owner)).all()
    return {(r.kind, r.name): r.owner for r in rows}


def test_filtered_paging_is_exact_on_both_databases(store_url: str) -> None:
    store = Store(store_url)
    try:
        _owned_world(store)
        assert _pages(store, "Component", 2, filters={"project": "cart"}) == [
            (["c00", "c02"], 3),
            (["c04", "c06"], 1),
            (["c08"], 0),
        ]
        assert _pages(store, "Component", 1, filters={"project": "cart"}, selector="tier=web") == [
            (["c00"], 1),
            (["c06"], 0),
        ]
        assert _pages(store, "ReleaseBinding", 5, filters={"component": "c03"}) == [(["c03-releasebinding"], 0)]
    finally:
        store.close()


def test_an_old_table_gets_the_owner_column_filled_when_opened(store_url: str) -> None:
    """A table made before the owner column: opened (by two stores at once), it gets the column, filled from the
    documents, and filters and the cascade work on it."""
    old = Store(store_url)
    _owned_world(old)
    expected = _owners(old)
    assert expected[("Component", "c03")] == "shop" and expected[("Workload", "c03-workload")] == "c03"
    _drop_owner_column(old)
    old.close()
    opened: list[Store] = []
    failures: list[BaseException] = []

    def open_one() -> None:
        try:
            opened.append(Store(store_url))
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == [] and len(opened) == 2
    store = opened[0]
    try:
        assert _owners(store) == expected
        assert _pages(store, "Component", 3, filters={"project": "shop"}) == [
            (["c01", "c03", "c05"], 2),
            (["c07", "c09"], 0),
        ]
        store.delete("Project", "acme", "shop")
        left = {name for (kind, name) in _owners(store) if kind in ("Component", "Workload", "ReleaseBinding")}
        assert left == {f"c{i:02d}{suffix}" for i in range(0, 10, 2) for suffix in ("", "-workload", "-releasebinding")}
    finally:
        for each in opened:
            each.close()
