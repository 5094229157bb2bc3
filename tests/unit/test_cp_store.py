"""The control plane's resource store on SQLite: Kubernetes semantics for uid, generation, resourceVersion,
status, namespaces, paging, selectors and the change log."""

from __future__ import annotations

import base64
import threading
from pathlib import Path
from typing import Any

import pytest

from controlplane import store as store_module
from controlplane.errors import Conflict, Invalid, NotFound
from controlplane.store import Store

API = "openchoreo.dev/v1alpha1"


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def project(name: str, ns: str = "acme", labels: dict[str, str] | None = None, pipeline: str = "default") -> dict:
    return {
        "apiVersion": API,
        "kind": "Project",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
        "spec": {"deploymentPipelineRef": {"name": pipeline}, "type": {"name": "default"}},
    }


def component(name: str, project_name: str, ns: str = "acme") -> dict:
    return {
        "apiVersion": API,
        "kind": "Component",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"owner": {"projectName": project_name}, "componentType": {"name": "deployment/service"}},
    }


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'cp.db'}")
    s.create(namespace("acme"))
    return s


def test_create_sets_the_server_fields(store: Store) -> None:
    created = store.create(project("cart"))
    meta = created["metadata"]
    assert len(meta["uid"]) == 36 and meta["generation"] == 1
    assert meta["resourceVersion"] == str(store.revision())
    assert meta["creationTimestamp"].endswith("Z")
    assert created["spec"]["deploymentPipelineRef"]["kind"] == "DeploymentPipeline"  # the CRD default applied
    assert store.get("Project", "acme", "cart") == created
    assert list(created)[:3] == ["apiVersion", "kind", "metadata"]


def test_client_supplied_server_fields_and_status_are_ignored(store: Store) -> None:
    doc = project("cart")
    doc["metadata"].update(uid="mine", generation=7, resourceVersion="99", creationTimestamp="2000-01-01T00:00:00Z")
    doc["status"] = {"conditions": []}
    created = store.create(doc)
    assert created["metadata"]["uid"] != "mine" and created["metadata"]["generation"] == 1
    assert created["metadata"]["creationTimestamp"] != "2000-01-01T00:00:00Z"
    assert "status" not in created


def test_create_twice_is_conflict(store: Store) -> None:
    store.create(project("cart"))
    with pytest.raises(Conflict, match="Project 'cart' already exists"):
        store.create(project("cart"))


def test_same_name_in_another_namespace_is_another_object(store: Store) -> None:
    store.create(namespace("other"))
    a = store.create(project("cart"))
    b = store.create(project("cart", ns="other"))
    assert a["metadata"]["uid"] != b["metadata"]["uid"]


def test_namespaced_object_needs_its_namespace(store: Store) -> None:
    with pytest.raises(NotFound, match="Namespace 'ghost' not found"):
        store.create(project("cart", ns="ghost"))
    with pytest.raises(NotFound, match="Namespace 'ghost' not found"):
        store.list("Project", "ghost")


def test_writes_under_a_missing_namespace_blame_the_namespace(store: Store) -> None:
    for write in (
        lambda: store.replace(project("cart", ns="ghost")),
        lambda: store.delete("Project", "ghost", "cart"),
        lambda: store.put_status("Project", "ghost", "cart", {}),
    ):
        with pytest.raises(NotFound, match="Namespace 'ghost' not found"):
            write()


def test_namespaced_object_without_namespace_is_invalid(store: Store) -> None:
    doc = project("cart")
    del doc["metadata"]["namespace"]
    with pytest.raises(Invalid) as caught:
        store.create(doc)
    assert ("metadata.namespace", "Required value") in caught.value.details


def test_invalid_document_names_the_field(store: Store) -> None:
    doc = project("cart")
    del doc["spec"]["type"]
    doc["spec"]["colour"] = "blue"
    with pytest.raises(Invalid) as caught:
        store.create(doc)
    fields = [field for field, _ in caught.value.details]
    assert "spec.type" in fields and "spec.colour" in fields
    assert caught.value.status == 400 and caught.value.code == "BAD_REQUEST"


def test_unknown_kind_is_invalid(store: Store) -> None:
    with pytest.raises(Invalid) as caught:
        store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}})
    assert caught.value.details[0][0] == "kind"


def test_generation_moves_only_with_spec_and_uid_is_stable(store: Store) -> None:
    created = store.create(project("cart"))
    relabelled = project("cart", labels={"team": "a"})
    after_labels = store.replace(relabelled)
    assert after_labels["metadata"]["generation"] == 1
    assert after_labels["metadata"]["labels"] == {"team": "a"}
    after_spec = store.replace(project("cart", labels={"team": "a"}, pipeline="fast"))
    assert after_spec["metadata"]["generation"] == 2
    assert after_spec["metadata"]["uid"] == created["metadata"]["uid"]
    assert after_spec["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]
    assert int(after_spec["metadata"]["resourceVersion"]) > int(after_labels["metadata"]["resourceVersion"])


def test_stale_resource_version_is_conflict(store: Store) -> None:
    created = store.create(project("cart"))
    first = project("cart", pipeline="a")
    first["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    store.replace(first)
    second = project("cart", pipeline="b")
    second["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]  # stale now
    with pytest.raises(Conflict, match="modified"):
        store.replace(second)
    assert store.get("Project", "acme", "cart")["spec"]["deploymentPipelineRef"]["name"] == "a"  # type: ignore[index]


def test_replace_of_missing_object_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="Project 'cart' not found"):
        store.replace(project("cart"))


def test_status_only_through_put_status(store: Store) -> None:
    store.create(project("cart"))
    status = {"observedGeneration": 1, "conditions": []}
    written = store.put_status("Project", "acme", "cart", status)
    assert written["status"] == status and written["metadata"]["generation"] == 1
    replaced = store.replace({**project("cart", pipeline="x"), "status": {"observedGeneration": 99}})
    assert replaced["status"] == status  # a replace keeps the stored status
    with pytest.raises(Invalid) as caught:
        store.put_status("Project", "acme", "cart", {"observedGeneration": "one"})
    assert caught.value.details[0][0] == "status.observedGeneration"


def test_delete_returns_the_object_and_then_it_is_gone(store: Store) -> None:
    created = store.create(project("cart"))
    assert store.delete("Project", "acme", "cart") == created
    assert store.get("Project", "acme", "cart") is None
    with pytest.raises(NotFound):
        store.delete("Project", "acme", "cart")


def owned(kind: str, name: str, component_name: str, project_name: str = "cart", ns: str = "acme") -> dict:
    """A Workload or ReleaseBinding owned by `component_name` (the fields the cascade follows)."""
    spec: dict[str, Any] = {"owner": {"projectName": project_name, "componentName": component_name}}
    if kind == "Workload":
        spec["container"] = {"image": "nginx"}
    else:
        spec["environment"] = "dev"
    return {"apiVersion": API, "kind": kind, "metadata": {"name": name, "namespace": ns}, "spec": spec}


def _present(store: Store) -> set[tuple[str, str, str]]:
    found = set()
    for kind in ("Project", "Component", "Workload", "ReleaseBinding"):
        found |= {(kind, o["metadata"]["namespace"], o["metadata"]["name"]) for o in store.list(kind, None).items}
    return found


def cascade_world(store: Store) -> None:
    """Project cart (Components api, web) and Project shop (Component api-shop) in acme; a Project cart with a
    Component api in namespace other; each Component with one Workload and one ReleaseBinding."""
    store.create(namespace("other"))
    for ns, proj, comp in (
        ("acme", "cart", "api"),
        ("acme", "cart", "web"),
        ("acme", "shop", "api-shop"),
        ("other", "cart", "api"),
    ):
        if store.get("Project", ns, proj) is None:
            store.create(project(proj, ns))
        store.create(component(comp, proj, ns))
        store.create(owned("Workload", f"{comp}-workload", comp, proj, ns))
        store.create(owned("ReleaseBinding", f"{comp}-dev", comp, proj, ns))


def test_deleting_a_component_deletes_its_workloads_and_bindings_in_one_step(store: Store) -> None:
    cascade_world(store)
    before = _present(store)
    start = store.revision()
    deleted = store.delete("Component", "acme", "api")
    assert deleted["metadata"]["name"] == "api"
    gone = {("Component", "acme", "api"), ("Workload", "acme", "api-workload"), ("ReleaseBinding", "acme", "api-dev")}
    assert _present(store) == before - gone  # the same names elsewhere (web, namespace other) stay
    changes = store.changes_since(start)
    assert {(c.kind, c.namespace, c.name) for c in changes} == gone
    assert {c.op for c in changes} == {"deleted"}
    assert [c.revision for c in changes] == list(range(start + 1, start + 4)) and store.revision() == start + 3
    assert changes[0].kind == "Component"  # the owner first, then what it owned


def test_deleting_a_project_deletes_its_components_and_theirs(store: Store) -> None:
    cascade_world(store)
    before = _present(store)
    start = store.revision()
    store.delete("Project", "acme", "cart")
    gone = {("Project", "acme", "cart")} | {
        (kind, "acme", name)
        for comp in ("api", "web")
        for kind, name in (("Component", comp), ("Workload", f"{comp}-workload"), ("ReleaseBinding", f"{comp}-dev"))
    }
    assert _present(store) == before - gone
    assert {(c.kind, c.namespace, c.name, c.op) for c in store.changes_since(start)} == {
        (*key, "deleted") for key in gone
    }


def test_deleting_a_binding_or_workload_touches_nothing_else(store: Store) -> None:
    cascade_world(store)
    before = _present(store)
    store.delete("ReleaseBinding", "acme", "api-dev")
    store.delete("Workload", "acme", "api-workload")
    assert _present(store) == before - {("ReleaseBinding", "acme", "api-dev"), ("Workload", "acme", "api-workload")}


def test_a_failed_cascade_leaves_everything(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    cascade_world(store)
    before, start = _present(store), store.revision()
    original = Store._record
    calls = []

    def failing(self: Store, *args: Any) -> None:
        calls.append(args)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        original(self, *args)

    monkeypatch.setattr(Store, "_record", failing)
    with pytest.raises(RuntimeError):
        store.delete("Component", "acme", "api")
    assert _present(store) == before and store.revision() == start and store.changes_since(start) == []


def test_namespace_holding_objects_cannot_be_deleted(store: Store) -> None:
    store.create(project("cart"))
    with pytest.raises(Conflict, match="Namespace 'acme' is not empty"):
        store.delete("Namespace", None, "acme")
    store.delete("Project", "acme", "cart")
    store.delete("Namespace", None, "acme")
    assert store.get("Namespace", None, "acme") is None


def test_namespace_gets_phase_active_and_cluster_objects_drop_namespace(store: Store) -> None:
    assert store.get("Namespace", None, "acme")["status"] == {"phase": "Active"}  # type: ignore[index]
    doc = namespace("b")
    doc["metadata"]["namespace"] = "ignored"
    assert "namespace" not in store.create(doc)["metadata"]


def _all_pages(store: Store, limit: int, **kwargs: Any) -> list[str]:
    names: list[str] = []
    cursor = ""
    while True:
        page = store.list("Project", "acme", limit=limit, cursor=cursor, **kwargs)
        names += [item["metadata"]["name"] for item in page.items]
        if not page.next_cursor:
            assert page.remaining == 0
            return names
        cursor = page.next_cursor


def test_paging_has_no_duplicates_or_gaps(store: Store) -> None:
    wanted = sorted(f"p{i:02d}" for i in range(23))
    for name in reversed(wanted):
        store.create(project(name))
    first = store.list("Project", "acme", limit=5)
    assert [i["metadata"]["name"] for i in first.items] == wanted[:5] and first.remaining == 18
    assert _all_pages(store, 5) == wanted
    assert _all_pages(store, 23) == wanted
    assert _all_pages(store, 100) == wanted


def test_paging_with_a_selector(store: Store) -> None:
    for i in range(10):
        store.create(project(f"p{i}", labels={"parity": "even" if i % 2 == 0 else "odd"}))
    page = store.list("Project", "acme", selector="parity=even", limit=2)
    assert [i["metadata"]["name"] for i in page.items] == ["p0", "p2"] and page.remaining == 3
    assert _all_pages(store, 2, selector="parity=even") == ["p0", "p2", "p4", "p6", "p8"]
    assert _all_pages(store, 3, selector="parity notin (even)") == ["p1", "p3", "p5", "p7", "p9"]


def test_list_filter_by_project(store: Store) -> None:
    store.create(project("cart"))
    store.create(project("pay"))
    for name, owner in (("a", "cart"), ("b", "pay"), ("c", "cart")):
        store.create(component(name, owner))
    page = store.list("Component", "acme", filters={"project": "cart"})
    assert [i["metadata"]["name"] for i in page.items] == ["a", "c"]
    with pytest.raises(Invalid) as caught:
        store.list("Component", "acme", filters={"owner": "cart"})
    assert caught.value.details[0][0] == "owner"


def test_list_across_namespaces_orders_by_namespace_then_name(store: Store) -> None:
    store.create(namespace("zeta"))
    store.create(project("b", ns="zeta"))
    store.create(project("z"))
    store.create(project("a", ns="zeta"))
    page = store.list("Project", None, limit=2)
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in page.items] == [("acme", "z"), ("zeta", "a")]
    rest = store.list("Project", None, limit=2, cursor=page.next_cursor)
    assert [i["metadata"]["name"] for i in rest.items] == ["b"] and rest.next_cursor == ""


@pytest.mark.parametrize("cursor", ["%%%", base64.urlsafe_b64encode(b'{"a": 1}').decode(), "bm90IGpzb24="])
def test_bad_cursor_is_invalid(store: Store, cursor: str) -> None:
    with pytest.raises(Invalid) as caught:
        store.list("Project", "acme", cursor=cursor)
    assert caught.value.details[0][0] == "cursor"


def test_bad_selector_and_limit_are_invalid(store: Store) -> None:
    with pytest.raises(Invalid) as caught:
        store.list("Project", "acme", selector="a in (")
    assert caught.value.details[0][0] == "labelSelector"
    with pytest.raises(Invalid) as caught:
        store.list("Project", "acme", limit=0)
    assert caught.value.details[0][0] == "limit"


def test_revision_and_changes(store: Store) -> None:
    start = store.revision()
    store.create(project("cart"))
    store.replace(project("cart", pipeline="x"))
    store.put_status("Project", "acme", "cart", {"conditions": []})
    store.delete("Project", "acme", "cart")
    changes = store.changes_since(start)
    assert [(c.kind, c.namespace, c.name, c.op) for c in changes] == [
        ("Project", "acme", "cart", "created"),
        ("Project", "acme", "cart", "replaced"),
        ("Project", "acme", "cart", "status"),
        ("Project", "acme", "cart", "deleted"),
    ]
    assert [c.revision for c in changes] == list(range(start + 1, start + 5)) and store.revision() == start + 4
    assert store.changes_since(store.revision()) == []


def test_a_refused_write_leaves_no_trace(store: Store) -> None:
    store.create(project("cart"))
    before = store.revision()
    with pytest.raises(Conflict):
        store.create(project("cart"))
    with pytest.raises(NotFound):
        store.delete("Project", "acme", "ghost")
    assert store.revision() == before and store.changes_since(before) == []


def test_authz_revision_moves_only_on_authz_writes(store: Store) -> None:
    before = store.authz_revision()
    store.create(project("cart"))
    assert store.authz_revision() == before
    store.create(
        {
            "apiVersion": API,
            "kind": "AuthzRole",
            "metadata": {"name": "viewer", "namespace": "acme"},
            "spec": {"actions": ["logs:view"]},
        }
    )
    assert store.authz_revision() == before + 1
    store.delete("AuthzRole", "acme", "viewer")
    assert store.authz_revision() == before + 2


def test_change_log_is_pruned(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "CHANGES_KEPT", 3)
    monkeypatch.setattr(store_module, "_PRUNE_EVERY", 1)
    for i in range(6):
        store.create(project(f"p{i}"))
    kept = store.changes_since(0)
    assert [c.revision for c in kept] == [store.revision() - 2, store.revision() - 1, store.revision()]


def test_two_stores_on_one_file_see_each_other(tmp_path: Path, store: Store) -> None:
    url = str(store.engine.url)
    other = Store(url)
    other.create(project("cart"))
    assert store.get("Project", "acme", "cart") is not None
    assert store.revision() == other.revision()


def test_concurrent_writers_get_distinct_revisions(store: Store) -> None:
    start = store.revision()

    def writer(prefix: str) -> None:
        for i in range(8):
            store.create(project(f"{prefix}{i}"))

    threads = [threading.Thread(target=writer, args=(prefix,)) for prefix in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    changes = store.changes_since(start)
    assert [c.revision for c in changes] == list(range(start + 1, start + 33))
    resource_versions = {int(i["metadata"]["resourceVersion"]) for i in store.list("Project", "acme").items}
    assert resource_versions == {c.revision for c in changes}


# ------------------------------------------------------------ the owner column (issue 16)


def _owner_column(store: Store, kind: str, name: str, ns: str = "acme") -> str:
    from sqlalchemy import select

    table = store_module.resources
    with store.engine.connect() as conn:
        found = conn.execute(
            select(table.c.owner).where(table.c.kind == kind, table.c.namespace == ns, table.c.name == name)
        ).scalar_one()
    return str(found)


def _set_owner_column(store: Store, kind: str, name: str, owner: str, ns: str = "acme") -> None:
    """Write the column alone, so the document and the column disagree: what the store then does shows which of
    the two it reads."""
    from sqlalchemy import update

    table = store_module.resources
    with store.engine.begin() as conn:
        conn.execute(
            update(table).where(table.c.kind == kind, table.c.namespace == ns, table.c.name == name).values(owner=owner)
        )


def test_the_owner_column_holds_the_list_filter_field_and_every_write_sets_it(store: Store) -> None:
    cascade_world(store)
    assert _owner_column(store, "Component", "api") == "cart"
    assert _owner_column(store, "Workload", "api-workload") == "api"
    assert _owner_column(store, "ReleaseBinding", "api-dev") == "api"
    assert _owner_column(store, "Project", "cart") == ""  # a kind without a list filter
    _set_owner_column(store, "Component", "api", "stale")
    relabelled = store.get("Component", "acme", "api")
    assert relabelled is not None
    relabelled["metadata"]["labels"] = {"tier": "web"}  # spec.owner is immutable: a replace rewrites it as is
    store.replace(relabelled)
    assert _owner_column(store, "Component", "api") == "cart"
    _set_owner_column(store, "Component", "api", "stale")
    store.put_status("Component", "acme", "api", {"conditions": []})
    assert _owner_column(store, "Component", "api") == "cart"


def test_list_filters_and_the_cascade_read_the_owner_column(store: Store) -> None:
    cascade_world(store)
    _set_owner_column(store, "ReleaseBinding", "api-dev", "web")
    by_web = store.list("ReleaseBinding", "acme", filters={"component": "web"})
    assert [i["metadata"]["name"] for i in by_web.items] == ["api-dev", "web-dev"]
    assert store.list("ReleaseBinding", "acme", filters={"component": "api"}).items == []
    store.delete("Component", "acme", "web")
    assert store.get("ReleaseBinding", "acme", "api-dev") is None  # went with web, whose column it held
    assert store.get("Workload", "acme", "api-workload") is not None


def _component_pages(store: Store, limit: int, **kwargs: Any) -> list[tuple[list[str], int]]:
    """Every page of Components in acme as (names, remaining)."""
    pages: list[tuple[list[str], int]] = []
    cursor = ""
    while True:
        page = store.list("Component", "acme", limit=limit, cursor=cursor, **kwargs)
        pages.append(([i["metadata"]["name"] for i in page.items], page.remaining))
        if not page.next_cursor:
            return pages
        cursor = page.next_cursor


def test_filtered_paging_is_exact_across_pages_with_and_without_a_selector(store: Store) -> None:
    for proj in ("cart", "pay"):
        store.create(project(proj))
    for i in range(12):
        doc = component(f"c{i:02d}", "cart" if i % 3 else "pay")
        doc["metadata"]["labels"] = {"tier": "web" if i % 2 else "db"}
        store.create(doc)
    cart = [f"c{i:02d}" for i in range(12) if i % 3]  # 8: c01 c02 c04 c05 c07 c08 c10 c11
    assert _component_pages(store, 3, filters={"project": "cart"}) == [
        (cart[0:3], 5),
        (cart[3:6], 2),
        (cart[6:8], 0),
    ]
    cart_web = [name for name in cart if int(name[1:]) % 2]  # c01 c05 c07 c11
    assert _component_pages(store, 3, filters={"project": "cart"}, selector="tier=web") == [
        (cart_web[0:3], 1),
        (cart_web[3:4], 0),
    ]
    assert _component_pages(store, 8, filters={"project": "cart"}) == [(cart, 0)]
    assert _component_pages(store, 5, filters={"project": "nobody"}) == [([], 0)]


def _drop_owner_column(store: Store) -> None:
    """Make the table as it was before the owner column (issue 16)."""
    from sqlalchemy import text

    with store.engine.begin() as conn:
        conn.execute(text("DROP INDEX cp_resources_by_owner"))
        conn.execute(text("ALTER TABLE cp_resources DROP COLUMN owner"))


def test_a_table_without_the_owner_column_gets_it_filled_when_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import inspect

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = Store(url)
    old.create(namespace("acme"))
    cascade_world(old)
    _drop_owner_column(old)
    old.close()
    monkeypatch.setattr(store_module, "_BACKFILL_BATCH", 2)  # several batches, across both namespaces
    reopened = Store(url)
    assert _owner_column(reopened, "Component", "api") == "cart"
    assert _owner_column(reopened, "Component", "api", ns="other") == "cart"
    assert _owner_column(reopened, "Component", "api-shop") == "shop"
    assert _owner_column(reopened, "ReleaseBinding", "web-dev") == "web"
    assert _owner_column(reopened, "Workload", "api-workload", ns="other") == "api"
    indexes = {index["name"]: index["column_names"] for index in inspect(reopened.engine).get_indexes("cp_resources")}
    assert indexes["cp_resources_by_owner"] == ["kind", "namespace", "owner", "name"]
    assert [i["metadata"]["name"] for i in reopened.list("Workload", "acme", filters={"component": "web"}).items] == [
        "web-workload"
    ]
    reopened.delete("Project", "acme", "cart")
    assert {(kind, name) for kind, ns, name in _present(reopened) if ns == "acme"} == {
        ("Project", "shop"),
        ("Component", "api-shop"),
        ("Workload", "api-shop-workload"),
        ("ReleaseBinding", "api-shop-dev"),
    }
    reopened.close()
    again = Store(url)  # opening a migrated table changes nothing
    assert _owner_column(again, "Component", "api-shop") == "shop"
    again.close()
