"""The proxy validator both tunnel ends apply (CPN §2 "Internal API", validator.go)."""

from __future__ import annotations

import pytest

from tunnel.paths import MAX_BODY_BYTES, Refusal, refusal


def check(
    target: str = "k8s",
    method: str = "GET",
    path: str = "/api/v1/namespaces/default/configmaps",
    query: str = "",
    headers: dict[str, list[str]] | None = None,
    body_size: int = 0,
) -> Refusal | None:
    return refusal(target, method, path, query, headers or {}, body_size)


def test_plain_requests_pass() -> None:
    assert check() is None
    for target in ("k8s", "monitoring", "logs"):
        assert check(target=target) is None
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"):
        assert check(method=method) is None
    assert check(query="fieldManager=x&force=true", body_size=MAX_BODY_BYTES) is None
    assert check(path="/api/v1/namespaces/default/pods/p/log", query="follow=false") is None
    assert check(query="watch=false") is None
    assert check(path="/api/v1/namespaces/kube-system/configmaps") is None


def test_unknown_target_is_404() -> None:
    assert check(target="hubble") == Refusal(404, "unknown target: hubble")
    assert check(target="") == Refusal(404, "unknown target: ")


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "get", "PROPFIND", ""])
def test_other_methods_are_405(method: str) -> None:
    result = check(method=method)
    assert result is not None and result.status == 405


def test_body_over_10_mib_is_413() -> None:
    result = check(method="POST", body_size=MAX_BODY_BYTES + 1)
    assert result is not None and result.status == 413


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/namespaces/kube-system/secrets",
        "/api/v1/namespaces/kube-system/secrets/bootstrap-token",
        "/apis/v1/serviceaccounts",
        "/x/apis/v1/serviceaccounts/y",
        "//api/v1/namespaces/kube-system/secrets",
        "/api//v1/namespaces/kube-system//secrets",
        "/api/v1/namespaces/kube-system/%73ecrets",
        "/API/v1/namespaces/kube-system/secrets",
    ],
)
def test_blocked_paths_are_403(path: str) -> None:
    result = check(path=path)
    assert result is not None and result.status == 403


@pytest.mark.parametrize(
    "path", ["/api/../api/v1/secrets", "/a/..", "..", "/a/%2e%2e/b", "/a/%252e%252e/b", "/a\x00b", "/a%00b"]
)
def test_traversal_and_nul_are_400(path: str) -> None:
    result = check(path=path)
    assert result is not None and result.status == 400


@pytest.mark.parametrize(
    ("path", "query", "headers"),
    [
        ("/api/v1/pods", "watch=true", {}),
        ("/api/v1/pods", "labelSelector=a&watch=1", {}),
        ("/api/v1/watch/pods", "", {}),
        ("/apis/apps/v1/watch/deployments", "", {}),
        ("/api/v1/namespaces/a/pods/p/log", "follow=true", {}),
        ("/api/v1/namespaces/a/pods/p/log", "container=c&follow=True", {}),
        ("/api/v1/namespaces/a/pods/p/exec", "", {"Upgrade": ["SPDY/3.1"]}),
        ("/api/v1/namespaces/a/pods/p/exec", "", {"upgrade": ["websocket"]}),
    ],
)
def test_streaming_is_501(path: str, query: str, headers: dict[str, list[str]]) -> None:
    result = check(path=path, query=query, headers=headers)
    assert result is not None and result.status == 501


def test_order_target_before_method_before_path_before_size() -> None:
    assert check(target="x", method="TRACE").status == 404  # type: ignore[union-attr]
    assert check(method="TRACE", path="/..").status == 405  # type: ignore[union-attr]
    assert check(path="/..", body_size=MAX_BODY_BYTES + 1).status == 400  # type: ignore[union-attr]
    blocked = "/api/v1/namespaces/kube-system/secrets"
    assert check(path=blocked, body_size=MAX_BODY_BYTES + 1).status == 403  # type: ignore[union-attr]
    assert check(query="watch=true", body_size=MAX_BODY_BYTES + 1).status == 413  # type: ignore[union-attr]
