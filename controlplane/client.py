"""`observer apply -f | get | delete`: kubectl's manner for the control plane's REST API.

One result line per document, in kubectl's words (`project.openchoreo.dev/shop created`), and one error line per
document that failed, with the field the control plane named; the other documents of the file still go through
and the exit status says whether all did. Documents are sent in dependency order (namespaces and planes before the
projects that point at them, bindings last), so one file can hold a whole walk-through in any order.

"unchanged" means the control plane wrote nothing: a replace that changes nothing keeps the object's
resourceVersion (as the Kubernetes API server does), so the client compares the resourceVersion before and after
rather than guessing from fields, which also covers a Secret (whose values the API never shows).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx
import yaml

from controlplane import kinds

# Apply order: what others reference comes first (deletes go the other way).
ORDER = (
    "Namespace",
    "Secret",
    "ClusterAuthzRole",
    "AuthzRole",
    "ClusterAuthzRoleBinding",
    "AuthzRoleBinding",
    "ClusterObservabilityPlane",
    "ObservabilityPlane",
    "ClusterDataPlane",
    "DataPlane",
    "Environment",
    "DeploymentPipeline",
    "ObservabilityAlertsNotificationChannel",
    "Project",
    "Component",
    "Workload",
    "ReleaseBinding",
)


class ManifestError(ValueError):
    """A file that cannot be read as Kubernetes-style documents."""


@dataclass(frozen=True)
class Outcome:
    """What happened to one document: a kubectl-style line, and whether it failed."""

    line: str
    failed: bool = False


def load_documents(paths: Sequence[str], stdin: TextIO = sys.stdin) -> list[dict[str, Any]]:
    """Every non-empty YAML document of the files (`-` reads standard input; a directory, its `.yaml`, `.yml` and
    `.json` files by name, as kubectl reads one), in file order; a `kind: List` (what `get -o yaml` of several
    objects gives) stands for its items."""
    documents: list[dict[str, Any]] = []
    for path in _files(paths):
        try:
            text = stdin.read() if path == "-" else Path(path).read_text()
            loaded = list(yaml.safe_load_all(text))
        except (OSError, yaml.YAMLError) as exc:
            raise ManifestError(f"{path}: {exc}") from None
        for number, document in enumerate(loaded, start=1):
            if document is None:
                continue
            if not isinstance(document, dict):
                raise ManifestError(f"{path}: document {number} is not a mapping")
            if document.get("kind") == "List" and isinstance(document.get("items"), list):
                items = document["items"]
                if not all(isinstance(item, dict) for item in items):
                    raise ManifestError(f"{path}: document {number} is a List whose items are not all mappings")
                documents.extend(items)
            else:
                documents.append(document)
    return documents


def _files(paths: Sequence[str]) -> list[str]:
    files: list[str] = []
    for path in paths:
        if path != "-" and Path(path).is_dir():
            files += sorted(str(each) for each in Path(path).iterdir() if each.suffix in (".yaml", ".yml", ".json"))
        else:
            files.append(path)
    return files


def find_kind(name: str) -> kinds.Kind:
    """A kind by its name, plural or lowercase singular, as kubectl accepts them (`project`, `projects`)."""
    wanted = name.lower()
    for row in kinds.KINDS:
        if wanted in (row.kind.lower(), row.plural, row.path_segment) or wanted == f"{row.plural}.{row.group}":
            return row
    known = ", ".join(sorted(row.plural for row in kinds.KINDS))
    raise ManifestError(f"unknown kind {name!r}; one of: {known}")


class ControlPlaneClient:
    """The REST calls behind the commands; the bearer token, when given, goes on every request."""

    def __init__(self, server: str, token: str = "", timeout: float = 30.0, verify: bool | str = True) -> None:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=timeout, verify=verify)

    def close(self) -> None:
        """Close the connection pool (the client holds keep-alive connections to the control plane)."""
        self._http.close()

    def __enter__(self) -> ControlPlaneClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; a control plane that cannot be reached (or answers too slowly) is a ManifestError, so
        each document reports it on its line instead of the command dying with a traceback."""
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ManifestError(f"cannot reach the control plane at {self._http.base_url}: {exc}") from None

    def apply(self, documents: Iterable[Mapping[str, Any]], default_namespace: str) -> list[Outcome]:
        """Creates what is missing and replaces what exists; unchanged when the control plane wrote nothing."""
        outcomes = []
        for document in _ordered(documents):
            try:
                outcomes.append(self._apply_one(document, default_namespace))
            except ManifestError as exc:
                outcomes.append(Outcome(f"error: {_what(document)}: {exc}", failed=True))
        return outcomes

    def delete(self, documents: Iterable[Mapping[str, Any]], default_namespace: str) -> list[Outcome]:
        """Deletes each document's object (dependents first); a missing one is reported, not an error."""
        outcomes = []
        for document in reversed(_ordered(documents)):
            try:
                row, namespace, name = _address(document, default_namespace)
            except ManifestError as exc:
                outcomes.append(Outcome(f"error: {exc}", failed=True))
                continue
            try:
                outcomes.append(self.delete_named(row, name, namespace))
            except ManifestError as exc:
                outcomes.append(Outcome(f"error: {_what(document)}: {exc}", failed=True))
        return outcomes

    def delete_named(self, row: kinds.Kind, name: str, namespace: str) -> Outcome:
        """Delete one object by kind and name (`delete KIND NAME`); a missing one is reported, not an error."""
        answer = self._call("DELETE", row.item_path(name, namespace if row.namespaced else None))
        if answer.status_code == 404:
            return Outcome(f'{_label(row)} "{name}" not found')
        if answer.status_code >= 400:
            return Outcome(_error_line(row, name, answer), failed=True)
        return Outcome(f'{_label(row)} "{name}" deleted')

    def get(self, row: kinds.Kind, namespace: str, name: str = "") -> list[dict[str, Any]]:
        """One object, or every object of the kind (every page of the list); ManifestError says what failed."""
        if name:
            answer = self._call("GET", row.item_path(name, namespace if row.namespaced else None))
            if answer.status_code >= 400:
                raise ManifestError(_error_line(row, name, answer))
            return [answer.json()]
        items: list[dict[str, Any]] = []
        cursor = ""
        while True:
            params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
            answer = self._call("GET", row.collection_path(namespace if row.namespaced else None), params=params)
            if answer.status_code >= 400:
                raise ManifestError(_error_line(row, "", answer))
            page = answer.json()
            items.extend(page.get("items") or [])
            cursor = (page.get("pagination") or {}).get("nextCursor") or ""
            if not cursor:
                return items

    def _apply_one(self, document: Mapping[str, Any], default_namespace: str) -> Outcome:
        try:
            row, namespace, name = _address(document, default_namespace)
        except ManifestError as exc:
            return Outcome(f"error: {exc}", failed=True)
        body = dict(document)
        if row.namespaced:
            body["metadata"] = {**document["metadata"], "namespace": namespace}
        scope = namespace if row.namespaced else None
        live = self._call("GET", row.item_path(name, scope))
        if live.status_code == 404:
            answer = self._call("POST", row.collection_path(scope), json=body)
            verb = "created"
        elif live.status_code >= 400:
            return Outcome(_error_line(row, name, live), failed=True)
        else:
            answer = self._call("PUT", row.item_path(name, scope), json=body)
            verb = "unchanged" if answer.status_code < 400 and _same(live.json(), answer.json()) else "configured"
        if answer.status_code >= 400:
            return Outcome(_error_line(row, name, answer), failed=True)
        return Outcome(f"{_label(row)}/{name} {verb}")


def _ordered(documents: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    rank = {kind: number for number, kind in enumerate(ORDER)}
    return sorted(documents, key=lambda doc: rank.get(str(doc.get("kind")), len(ORDER)))


def _address(document: Mapping[str, Any], default_namespace: str) -> tuple[kinds.Kind, str, str]:
    kind = document.get("kind")
    metadata = document.get("metadata")
    if not isinstance(kind, str) or not isinstance(metadata, Mapping) or not metadata.get("name"):
        raise ManifestError("every document needs kind and metadata.name")
    row = kinds.BY_KIND.get(kind)
    if row is None:
        raise ManifestError(f"{kind} {metadata.get('name')}: the control plane does not serve kind {kind!r}")
    return row, str(metadata.get("namespace") or default_namespace), str(metadata["name"])


def _what(document: Mapping[str, Any]) -> str:
    """`Kind "name"` of a document, for an error line that is not about its content."""
    metadata = document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return f'{document.get("kind")} "{name}"'


def _same(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Whether a replace wrote nothing: the control plane keeps the resourceVersion of a no-op replace."""
    version_before = (before.get("metadata") or {}).get("resourceVersion")
    return bool(version_before) and version_before == (after.get("metadata") or {}).get("resourceVersion")


def _label(row: kinds.Kind) -> str:
    return f"{row.kind.lower()}.{row.group}" if row.group else row.kind.lower()


def _error_line(row: kinds.Kind, name: str, answer: httpx.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = str(body.get("error") or body.get("message") or answer.text[:200] or answer.reason_phrase)
    details = body.get("details")
    if not isinstance(details, list):
        details = []
    fields = "; ".join(
        f"{each.get('field')}: {each.get('message')}" if each.get("field") else str(each.get("message"))
        for each in details
        if isinstance(each, dict)
    )
    code = body.get("code") or answer.status_code
    target = f'{row.kind} "{name}"' if name else row.plural
    if fields:  # the details say it all, field by field (the message only repeats the first)
        return f"error: {target} is invalid: {fields} [{code}]"
    return f"error: {target}: {message} [{code}]"
