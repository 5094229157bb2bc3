"""v1 Secrets in the store: `stringData` merged into base64 `data` on write, values and keys checked, generation
following `type`/`data`, `immutable` honoured, `secret_value` for the reconcilers; and a replace that changes
nothing writes nothing (Kubernetes' no-op update), for Secrets and CRs alike."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from controlplane.errors import Invalid
from controlplane.store import Store


def secret(name: str = "smtp", **fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "acme"}, **fields}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'cp.db'}")
    s.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme"}})
    return s


def test_string_data_is_merged_into_data_and_not_kept(store: Store) -> None:
    stored = store.create(secret(stringData={"username": "ann", "password": "pä55"}, data={"token": b64("t")}))
    assert stored["type"] == "Opaque"
    assert "stringData" not in stored
    assert stored["data"] == {"token": b64("t"), "username": b64("ann"), "password": b64("pä55")}
    assert "stringData" not in store.get("Secret", "acme", "smtp")  # type: ignore[operator]


def test_string_data_wins_over_data(store: Store) -> None:
    stored = store.create(secret(data={"k": b64("old")}, stringData={"k": "new"}))
    assert stored["data"] == {"k": b64("new")}


def test_secret_value_decodes_and_misses_are_none(store: Store) -> None:
    store.create(secret(stringData={"username": "ann"}, data={"raw": base64.b64encode(b"\xff\xfe").decode()}))
    assert store.secret_value("acme", "smtp", "username") == "ann"
    assert store.secret_value("acme", "smtp", "nope") is None
    assert store.secret_value("acme", "other", "username") is None
    assert store.secret_value("elsewhere", "smtp", "username") is None
    assert store.secret_value("acme", "smtp", "raw") is None  # not UTF-8 text


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"data": {"k": "not base64!"}}, "data.k"),
        ({"data": {"k": "abc"}}, "data.k"),  # unpadded
        ({"data": {"bad/key": b64("v")}}, "data"),
        ({"stringData": {"bad key": "v"}}, "stringData"),
        ({"stringData": {"k": 1}}, "stringData.k"),
        ({"spec": {}}, "spec"),
    ],
)
def test_bad_secrets_name_the_field(store: Store, fields: dict[str, Any], field: str) -> None:
    with pytest.raises(Invalid) as caught:
        store.create(secret(**fields))
    assert field in [path for path, _ in caught.value.details]


def test_generation_follows_data_and_labels_do_not_bump_it(store: Store) -> None:
    store.create(secret(stringData={"k": "1"}))
    changed = store.replace(secret(stringData={"k": "2"}))
    assert changed["metadata"]["generation"] == 2
    labelled = secret(stringData={"k": "2"})
    labelled["metadata"]["labels"] = {"team": "a"}
    relabelled = store.replace(labelled)
    assert relabelled["metadata"]["generation"] == 2
    assert relabelled["metadata"]["resourceVersion"] != changed["metadata"]["resourceVersion"]


def test_immutable_secret_keeps_its_data(store: Store) -> None:
    store.create(secret(immutable=True, stringData={"k": "1"}))
    with pytest.raises(Invalid) as caught:
        store.replace(secret(immutable=True, stringData={"k": "2"}))
    assert caught.value.details == [("", "data is immutable while immutable is true")]
    with pytest.raises(Invalid):
        store.replace(secret(immutable=False, stringData={"k": "1"}))
    assert store.secret_value("acme", "smtp", "k") == "1"


def test_a_replace_that_changes_nothing_writes_nothing(store: Store) -> None:
    first = store.create(secret(stringData={"k": "1"}))
    revision = store.revision()
    again = store.replace(secret(stringData={"k": "1"}))
    assert again == first
    assert store.revision() == revision
    assert store.changes_since(revision) == []


def test_a_no_op_replace_of_a_cr_keeps_its_resource_version(store: Store) -> None:
    project = {
        "apiVersion": "openchoreo.dev/v1alpha1",
        "kind": "Project",
        "metadata": {"name": "shop", "namespace": "acme"},
        "spec": {"deploymentPipelineRef": {"name": "default"}, "type": {"name": "default"}},
    }
    first = store.create(dict(project))
    store.put_status("Project", "acme", "shop", {"conditions": []})
    with_status = store.get("Project", "acme", "shop")
    revision = store.revision()
    assert store.replace(dict(project)) == with_status
    assert store.revision() == revision
    assert with_status is not None and with_status["metadata"]["uid"] == first["metadata"]["uid"]


def test_secret_writes_are_changes_the_reconcilers_see(store: Store) -> None:
    revision = store.revision()
    store.create(secret(stringData={"k": "1"}))
    store.replace(secret(stringData={"k": "2"}))
    store.delete("Secret", "acme", "smtp")
    assert [(c.kind, c.namespace, c.name, c.op) for c in store.changes_since(revision)] == [
        ("Secret", "acme", "smtp", "created"),
        ("Secret", "acme", "smtp", "replaced"),
        ("Secret", "acme", "smtp", "deleted"),
    ]
